/* The fault round trip: a page is made inaccessible, touched, and a hook lifts its protection so
   that the access completes — what a fastmem JIT or a write tracker pays per fault. The baseline is
   the same work without xmmap: a raw sigaction (vectored handler) that calls mprotect
   (VirtualProtect) (bench_posix.c / bench_windows.c). */
#include <stdlib.h>

#include "bench.h"

static xm_fault_action lift(const xm_fault *f, void *user) {
  (void)f;
  struct bench *b = user;
  return xm_mapping_protect(b->m, 0, b->page, XM_PROT_READ_WRITE) == XM_OK ? XM_FAULT_RETRY : XM_FAULT_PASS;
}

static xm_fault_action never(const xm_fault *f, void *user) {
  (void)f;
  (void)user;
  return XM_FAULT_PASS;
}

/* param: the number of hooks registered; all but one cover pages of another range. */
int bench_setup_fault(struct bench *b, const struct workload *w) {
  b->page = xm_page_size();
  int rc = bench_map_anon(b, 2 * b->page);
  if (rc) return rc;
  b->hooks = calloc(w->param, sizeof *b->hooks);
  if (!b->hooks) return bench_fail(b, XM_E_NO_MEMORY, "out of memory");
  size_t others = w->param - 1;
  if (others) {
    rc = xm_arena_new(others * b->page, &b->hook_arena);
    if (rc) return bench_xm_failed(b, "xm_arena_new", rc);
  }
  unsigned char *space = others ? xm_region_ptr(xm_arena_region(b->hook_arena)) : NULL;
  for (size_t i = 0; i < others; i++, b->hook_count++) {
    rc = xm_fault_hook_add(space + i * b->page, b->page, never, NULL, &b->hooks[i]);
    if (rc) return bench_xm_failed(b, "xm_fault_hook_add", rc);
  }
  rc = xm_fault_hook_add(b->base, b->page, lift, b, &b->hooks[b->hook_count]);
  if (rc) return bench_xm_failed(b, "xm_fault_hook_add", rc);
  b->hook_count++;
  return bench_raw_fault_setup(b);
}

void bench_teardown_fault(struct bench *b) {
  for (size_t i = 0; i < b->hook_count; i++)
    xm_fault_hook_remove(b->hooks[i]);
  free(b->hooks);
  b->hooks = NULL;
  b->hook_count = 0;
  xm_arena_free(b->hook_arena);
  b->hook_arena = NULL;
  bench_raw_fault_teardown(b);
}

int bench_xm_fault(struct bench *b, uint64_t iters, double *seconds) {
  volatile unsigned char *p = b->base;
  int rc = 0;
  double t0 = tool_now();
  for (uint64_t i = 0; i < iters && rc == 0; i++) {
    rc = xm_mapping_protect(b->m, 0, b->page, XM_PROT_NONE);
    p[0] = (unsigned char)i; /* faults; the hook lifts the protection; the store completes */
  }
  *seconds = tool_now() - t0;
  return rc ? bench_xm_failed(b, "xm_mapping_protect", rc) : 0;
}
