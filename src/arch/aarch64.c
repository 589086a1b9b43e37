/* The aarch64 flush unit: DC CVAC per line, then DSB SY; the line from CTR_EL0.DminLine. */
#include "arch.h"
#include "aarch64_clean.h"

void xm__arch_flush_unit(struct xm__flush_unit *unit) {
  /* EL0 reads of CTR_EL0 are allowed (or emulated) by Linux; DminLine, bits [19:16], is log2 of
     the smallest data-cache line in 4-byte words across all CPUs (the kernel sanitises it). */
  uint64_t ctr;
  __asm__ volatile("mrs %0, ctr_el0" : "=r"(ctr));
  unit->method = "dc cvac";
  unit->unsupported = NULL;
  unit->line = (size_t)4 << ((ctr >> 16) & 0xfu);
  unit->line_source = "ctr_el0";
  unit->clean = xm__clean_dc_cvac;
}
