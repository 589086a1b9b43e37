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
