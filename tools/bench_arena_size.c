/* The arena's cost against its size: one add+remove of a one-unit piece in a 512 GiB arena
   (yuzu's size), with the same in a 1 GiB arena as the baseline. Each change goes somewhere else,
   scattered over the whole arena, as an emulator maps guest pages all over its fastmem range:
   first changes in a region are measured, not only changes where the arena was changed before. Windows without
   placeholders (Wine) takes the split-reservations path, whose changes must not grow with the
   arena (goal: 512 GiB within 1.5x of 1 GiB); elsewhere the rows measure the placeholder or mmap
   path (`xmmap info` says which). Both sides go through xmmap. */
#include <stdint.h>

#include "bench.h"

#define ARENA_BIG ((uint64_t)512 << 30)
#define ARENA_SMALL ((uint64_t)1 << 30)

static int new_arena(struct bench *b, uint64_t size, xm_arena **out) {
  if (size > SIZE_MAX / 2)
    return bench_fail(b, XM_E_NOT_IMPLEMENTED, "a %llu GiB arena needs a 64-bit address space",
                      (unsigned long long)(size >> 30));
  int rc = xm_arena_new((size_t)size, out);
  if (rc == XM_E_NO_MEMORY || rc == XM_E_NO_ADDRESS || rc == XM_E_SYSTEM_CALL)
    return bench_fail(b, XM_E_NOT_IMPLEMENTED, "no room for a %llu GiB arena here: %s",
                      (unsigned long long)(size >> 30), xm_errmsg());
  return rc ? bench_xm_failed(b, "xm_arena_new", rc) : 0;
}

int bench_setup_arena_size(struct bench *b, const struct workload *w) {
  (void)w;
  int rc = xm_shm_new("bench-arena", xm_allocation_granularity(), &b->arena_shm);
  if (rc) return bench_xm_failed(b, "xm_shm_new", rc);
  rc = new_arena(b, ARENA_BIG, &b->arena_big);
  if (!rc) rc = new_arena(b, ARENA_SMALL, &b->arena_small);
  return rc;
}

void bench_teardown_arena_size(struct bench *b) {
  xm_arena_free(b->arena_big);
  xm_arena_free(b->arena_small);
  xm_shm_free(b->arena_shm);
  b->arena_big = b->arena_small = NULL;
  b->arena_shm = NULL;
}

/* Change k goes to unit (k * a prime) of the arena: scattered, each unit in turn. */
static int add_remove(struct bench *b, xm_arena *a, uint64_t size, uint64_t *step, uint64_t iters, double *seconds) {
  const size_t unit = xm_arena_granularity(a);
  const uint64_t units = size / unit;
  int rc = 0;
  double t0 = tool_now();
  for (uint64_t i = 0; i < iters && rc == 0; i++) {
    const size_t at = (size_t)((*step)++ * 1000003u % units) * unit;
    rc = xm_arena_add_fd(a, at, unit, xm_shm_descriptor(b->arena_shm), 0, XM_PROT_READ_WRITE);
    if (rc == 0) rc = xm_arena_remove(a, at, unit);
  }
  *seconds = tool_now() - t0;
  return rc ? bench_xm_failed(b, "xm_arena_add_fd/xm_arena_remove", rc) : 0;
}

int bench_xm_arena_big(struct bench *b, uint64_t iters, double *seconds) {
  return add_remove(b, b->arena_big, ARENA_BIG, &b->arena_big_step, iters, seconds);
}
int bench_xm_arena_small(struct bench *b, uint64_t iters, double *seconds) {
  return add_remove(b, b->arena_small, ARENA_SMALL, &b->arena_small_step, iters, seconds);
}
