/* The aarch64 flush unit: DC CVAC per line, then DSB SY; the line from CTR_EL0.DminLine. */
#include "arch.h"

/* Loops compare with != so that end may be 0 when the range ends at the top of the address
   space. The "memory" clobber keeps earlier stores ahead of the clean of their line. */
static void clean_dc_cvac(uintptr_t first, uintptr_t end, size_t line) {
  uintptr_t p = first;
  do {
    __asm__ volatile("dc cvac, %0" : : "r"(p) : "memory");
    p += line;
  } while (p != end);
  /* Full system, not ISH: the reader may be a non-coherent device or a guest's uncached mapping
     outside the inner-shareable domain, and DSB SY is what completes cleans to the PoC for
     every observer (Linux's dcache_clean_poc does the same). */
  __asm__ volatile("dsb sy" : : : "memory");
}

void xm__arch_flush_unit(struct xm__flush_unit *unit) {
  /* EL0 reads of CTR_EL0 are allowed (or emulated) by Linux; DminLine, bits [19:16], is log2 of
     the smallest data-cache line in 4-byte words across all CPUs (the kernel sanitises it). */
  uint64_t ctr;
  __asm__ volatile("mrs %0, ctr_el0" : "=r"(ctr));
  unit->method = "dc cvac";
  unit->unsupported = NULL;
  unit->line = (size_t)4 << ((ctr >> 16) & 0xfu);
  unit->line_source = "ctr_el0";
  unit->clean = clean_dc_cvac;
}
