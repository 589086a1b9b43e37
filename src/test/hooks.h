/* Every test-only hook of the library, compiled only into the tests' xmmap_testable copy
   (XMMAP_TEST_HOOKS). Release builds see empty inline stand-ins for the back-end side. */
#ifndef XMMAP_TEST_HOOKS_H
#define XMMAP_TEST_HOOKS_H

#include <stdbool.h>
#include <stddef.h>

#include "xmmap/xmmap.h"

#ifdef XMMAP_TEST_HOOKS
/* ---- called by tests ---------------------------------------------------------------------- */
/* Makes the n-th OS primitive from now fail with os_error (n = 0 disarms) and restarts the count
   of OS calls (src/test/inject.c). */
XM_API void xm__test_fail_nth(long n, int os_error);
/* The OS primitives called since the last xm__test_fail_nth. */
XM_API long xm__test_os_calls(void);
/* Windows: the handles the back end holds open now (src/test/handles_windows.c). */
XM_API long xm__test_open_handles(void);
/* Windows split reservations: hook(addr, len) is called with each range a change has just freed,
   so that a test can play the other thread that takes it; NULL removes it. */
XM_API void xm__test_arena_freed_hook(void (*hook)(void *addr, size_t len));

/* ---- called by the back ends ---------------------------------------------------------------- */
/* The fault-injection seam (src/os.h): true when this OS primitive must act as failed. */
bool xm__test_inject_failure(int *os_error);
/* Windows: a handle the back end opened / is about to close. */
void xm__test_handle_opened(void *handle);
void xm__test_handle_closed(void *handle);
/* Windows split reservations: [addr, addr + len) was just freed. */
void xm__test_arena_freed(void *addr, size_t len);
#else
static inline bool xm__test_inject_failure(int *os_error) {
  (void)os_error;
  return false;
}
static inline void xm__test_handle_opened(void *handle) { (void)handle; }
static inline void xm__test_handle_closed(void *handle) { (void)handle; }
static inline void xm__test_arena_freed(void *addr, size_t len) {
  (void)addr;
  (void)len;
}
#endif

#endif /* XMMAP_TEST_HOOKS_H */
