/* The aarch64 instruction-cache sequence chosen from CTR_EL0, apart from the instructions so that
   tests on every target can feed it register values and check the choice. */
#ifndef XMMAP_AARCH64_ICACHE_H
#define XMMAP_AARCH64_ICACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct xm__aarch64_icache_plan {
  bool clean_data;      /* DC CVAU per data line, then DSB ISH (else only the DSB ISH) */
  bool invalidate_insn; /* IC IVAU per instruction line, then DSB ISH (else nothing) */
  size_t dline, iline;  /* the smallest line sizes of all CPUs, in bytes */
};

/* CTR_EL0: IminLine [3:0] and DminLine [19:16] are log2 of words (4 bytes); IDC [28] says the
   data cache need not be cleaned to the PoU for instruction coherence, DIC [29] that the
   instruction cache need not be invalidated. An ISB always ends the sequence. */
static inline struct xm__aarch64_icache_plan xm__aarch64_icache_plan(uint64_t ctr) {
  struct xm__aarch64_icache_plan p;
  p.clean_data = ((ctr >> 28) & 1u) == 0;
  p.invalidate_insn = ((ctr >> 29) & 1u) == 0;
  p.dline = (size_t)4 << ((ctr >> 16) & 0xfu);
  p.iline = (size_t)4 << (ctr & 0xfu);
  return p;
}

#endif /* XMMAP_AARCH64_ICACHE_H */
