/* System facts, each read from the OS once and cached (a benign race: every thread computes the
   same value, and size_t-wide relaxed atomics publish it). */
#include <stdatomic.h>

#include "internal.h"

static atomic_size_t page_size_cache;
static atomic_size_t granularity_cache;

size_t xm__page_size(void) {
  size_t v = atomic_load_explicit(&page_size_cache, memory_order_relaxed);
  if (v == 0) {
    v = xm__os_page_size();
    atomic_store_explicit(&page_size_cache, v, memory_order_relaxed);
  }
  return v;
}

size_t xm__granularity(void) {
  size_t v = atomic_load_explicit(&granularity_cache, memory_order_relaxed);
  if (v == 0) {
    v = xm__os_granularity();
    atomic_store_explicit(&granularity_cache, v, memory_order_relaxed);
  }
  return v;
}

size_t xm_page_size(void) { return xm__page_size(); }
size_t xm_allocation_granularity(void) { return xm__granularity(); }
const char *xm_backend_name(void) { return xm__os_backend_name(); }
const char *xm_arena_strategy(void) { return xm__os_arena_strategy(); }

int xm_map_count(size_t *used, size_t *limit) {
  if (!used || !limit) return xm__fail(XM_E_INVALID_ARGUMENT, "used and limit must not be NULL");
  size_t u = 0, l = 0;
  int rc = xm__os_map_count(&u, &l);
  if (rc) return rc;
  *used = u;
  *limit = l;
  return XM_OK;
}

enum { ONCE_UNSET, ONCE_RUNNING, ONCE_DONE };

/* What fn writes is published by the release store of ONCE_DONE and read only after an acquire
   load sees it. Only an int-sized atomic is used, so no target needs libatomic. */
void xm__once(atomic_int *state, void (*fn)(void)) {
  if (atomic_load_explicit(state, memory_order_acquire) == ONCE_DONE) return;
  int expected = ONCE_UNSET;
  if (atomic_compare_exchange_strong_explicit(state, &expected, ONCE_RUNNING, memory_order_acq_rel,
                                              memory_order_acquire)) {
    fn();
    atomic_store_explicit(state, ONCE_DONE, memory_order_release);
    return;
  }
  /* Another thread runs fn: it reads a few id registers and asks the OS once, so the wait is short. */
  while (atomic_load_explicit(state, memory_order_acquire) != ONCE_DONE) {}
}
