/* The aarch64 flush unit: DC CVAC per line, then DSB SY; the line from CTR_EL0.DminLine. */
#include "aarch64_icache.h"
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

/* ---- instruction cache ------------------------------------------------------------------------ */
static struct xm__aarch64_icache_plan icache_plan; /* written once before the unit is published */

static void sync_dc_cvau_ic_ivau(uintptr_t start, uintptr_t end) {
  const struct xm__aarch64_icache_plan p = icache_plan;
  if (p.clean_data)
    for (uintptr_t a = start & ~(uintptr_t)(p.dline - 1); a < end; a += p.dline)
      __asm__ volatile("dc cvau, %0" : : "r"(a) : "memory");
  __asm__ volatile("dsb ish" : : : "memory");
  if (p.invalidate_insn) {
    for (uintptr_t a = start & ~(uintptr_t)(p.iline - 1); a < end; a += p.iline)
      __asm__ volatile("ic ivau, %0" : : "r"(a) : "memory");
    __asm__ volatile("dsb ish" : : : "memory");
  }
  __asm__ volatile("isb" : : : "memory");
}

void xm__arch_icache_unit(struct xm__icache_unit *unit) {
  uint64_t ctr;
  __asm__ volatile("mrs %0, ctr_el0" : "=r"(ctr));
  icache_plan = xm__aarch64_icache_plan(ctr);
  unit->method = "dc cvau + ic ivau";
  unit->sync = sync_dc_cvau_ic_ivau;
}
