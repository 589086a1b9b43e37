/* The flush unit for architectures xmmap has no cache-maintenance code for: none. */
#include "arch.h"

void xm__arch_flush_unit(struct xm__flush_unit *unit) {
  unit->method = "none";
  unit->unsupported = "Cache flush not implemented for this architecture";
  unit->line = 0;
  unit->line_source = NULL;
  unit->clean = NULL;
}

/* Instruction cache: nothing user space can do alone here; no instructions known here: the OS call or the compiler's builtin. */
void xm__arch_icache_unit(struct xm__icache_unit *unit) {
  unit->method = NULL;
  unit->sync = NULL;
}
