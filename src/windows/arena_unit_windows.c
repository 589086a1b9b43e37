/* The Windows back end's arena unit and its descriptor check (src/os.h "arena"). */
#include <string.h>

#include "win.h"

/* Placeholders place views on the page: MEM_REPLACE_PLACEHOLDER lifts the 64 KiB rule for the
   view's address and its section offset (Dolphin, PCSX2, yuzu and Ryujinx map 4 KiB pieces), and
   a placeholder splits on any page (src/windows/placeholder_plan.h plans it). Split reservations
   are plain MapViewOfFileEx views and reservations: the allocation granularity. */
size_t xm__os_arena_unit(void) {
  return strcmp(xm__os_arena_strategy(), "placeholders") == 0 ? xm__os_page_size() : xm__os_granularity();
}

/* Large-page sections are not told apart: their views fail where the OS refuses them. */
int xm__os_check_arena_descriptor(xm_descriptor d, size_t *page_size) {
  int rc = xm__os_check_descriptor(XM__SOURCE_DESCRIPTOR, d);
  if (!rc) *page_size = xm__os_page_size();
  return rc;
}
