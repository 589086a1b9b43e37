/* The ppc64 flush unit: dcbst per line, then sync. The line size comes from the OS (auxv). */
#include "arch.h"

/* Loops compare with != so that end may be 0 when the range ends at the top of the address
   space. The "memory" clobber keeps earlier stores ahead of the clean of their line. */
static void clean_dcbst(uintptr_t first, uintptr_t end, size_t line) {
  uintptr_t p = first;
  do {
    __asm__ volatile("dcbst 0, %0" : : "r"(p) : "memory");
    p += line;
  } while (p != end);
  /* dcbst only starts the write-back; sync waits for it to complete. */
  __asm__ volatile("sync" : : : "memory");
}

void xm__arch_flush_unit(struct xm__flush_unit *unit) {
  unit->method = "dcbst";
  unit->unsupported = NULL;
  unit->line = 0; /* no user-readable register holds it: flush.c asks the OS */
  unit->line_source = NULL;
  unit->clean = clean_dcbst;
}
