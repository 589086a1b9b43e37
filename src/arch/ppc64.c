/* The ppc64 flush unit: dcbst per line, then sync. The line size comes from the OS (auxv). */
#include "arch.h"
#include "ppc64_clean.h"

void xm__arch_flush_unit(struct xm__flush_unit *unit) {
  unit->method = "dcbst";
  unit->unsupported = NULL;
  unit->line = 0; /* no user-readable register holds it: flush.c asks the OS */
  unit->line_source = NULL;
  unit->clean = xm__clean_dcbst;
}

/* ---- instruction cache ------------------------------------------------------------------------ */
/* dcbst per line, sync, icbi per line, sync, isync. Stepping by 32 bytes reaches every line of
   every ppc64 cache (128-byte lines are only visited more than once), so no line size is needed. */
enum { ICACHE_STEP = 32 };

static void sync_icbi(uintptr_t start, uintptr_t end) {
  uintptr_t first = start & ~(uintptr_t)(ICACHE_STEP - 1);
  for (uintptr_t a = first; a < end; a += ICACHE_STEP)
    __asm__ volatile("dcbst 0, %0" : : "r"(a) : "memory");
  __asm__ volatile("sync" : : : "memory");
  for (uintptr_t a = first; a < end; a += ICACHE_STEP)
    __asm__ volatile("icbi 0, %0" : : "r"(a) : "memory");
  __asm__ volatile("sync\n\tisync" : : : "memory");
}

void xm__arch_icache_unit(struct xm__icache_unit *unit) {
  unit->method = "icbi";
  unit->sync = sync_icbi;
}
