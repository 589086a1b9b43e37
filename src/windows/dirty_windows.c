/* The Windows back end's kernel write tracking: none. Windows has no asynchronous write protection
   of views (GetWriteWatch needs MEM_WRITE_WATCH, which only VirtualAlloc memory takes, never a view
   of a section), so the front end write-protects pages itself ("protect"). */
#include "win.h"

static const char no_write_watch[] = "Windows has no asynchronous write protection for views";

bool xm__os_wp_available(const char **why) {
  *why = no_write_watch;
  return false;
}

int xm__os_wp_start(void *addr, size_t len, struct xm__os_wp *wp) {
  (void)addr;
  (void)len;
  wp->handle = -1;
  return xm__fail(XM_E_NOT_IMPLEMENTED, "uffd-wp write tracking: %s", no_write_watch);
}

int xm__os_wp_restart_range(struct xm__os_wp *wp, void *addr, size_t len) {
  (void)wp;
  (void)addr;
  (void)len;
  return xm__fail(XM_E_NOT_IMPLEMENTED, "uffd-wp write tracking: %s", no_write_watch);
}

int xm__os_wp_collect(struct xm__os_wp *wp, void *addr, size_t len, uint64_t *bitmap, size_t first_bit, size_t *count) {
  (void)wp;
  (void)addr;
  (void)len;
  (void)bitmap;
  (void)first_bit;
  (void)count;
  return xm__fail(XM_E_NOT_IMPLEMENTED, "uffd-wp write tracking: %s", no_write_watch);
}

void xm__os_wp_stop(struct xm__os_wp *wp, void *addr, size_t len) {
  (void)addr;
  (void)len;
  wp->handle = -1;
}
