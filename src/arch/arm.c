/* The 32-bit Arm flush unit: none, because user space cannot clean to the point of coherency. */
#include "arch.h"

void xm__arch_flush_unit(struct xm__flush_unit *unit) {
  /* CP15 cache maintenance traps at EL0, and the cacheflush syscall only reaches the PoU. */
  unit->method = "none";
  unit->unsupported = "Userspace cannot flush to PoC";
  unit->line = 0;
  unit->line_source = NULL;
  unit->clean = NULL;
}

/* Instruction cache: nothing user space can do alone here; the cacheflush system call does it (src/posix), or the compiler's builtin. */
void xm__arch_icache_unit(struct xm__icache_unit *unit) {
  unit->method = NULL;
  unit->sync = NULL;
}
