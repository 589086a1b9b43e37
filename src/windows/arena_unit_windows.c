/* The Windows back end's arena unit and its descriptor check (src/os.h "arena"). */
#include "win.h"

/* Both strategies place views on the allocation granularity (placeholders would allow the page:
   MEM_REPLACE_PLACEHOLDER lifts the 64 KiB rule, but the arena does not plan sub-64 KiB pieces
   yet). */
size_t xm__os_arena_unit(void) { return xm__os_granularity(); }

/* Large-page sections are not told apart: their views fail where the OS refuses them. */
int xm__os_check_arena_descriptor(xm_descriptor d, size_t *page_size) {
  int rc = xm__os_check_descriptor(XM__SOURCE_DESCRIPTOR, d);
  if (!rc) *page_size = xm__os_page_size();
  return rc;
}
