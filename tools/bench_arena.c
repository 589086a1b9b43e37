/* Arena bookkeeping at scale: one add+remove of a one-unit piece among n mapped pieces (a removal
   of piece k, which leaves a hole between two mapped neighbours, and its add back). The pieces
   are adjacent and map every other unit of one shared-memory object, so that the kernel keeps one
   mapping per piece and no more (about n mappings for the arena and n for the baseline). The
   baseline is the same two OS calls on the same layout made raw (bench_posix.c /
   bench_windows.c): what the arena costs beyond the system. The growth row measures among n
   against among 100, both through xmmap and interleaved round by round in one run, so that what
   the machine does between two rows does not enter the ratio. */
#include <stdlib.h>

#include "bench.h"

struct bench_arena {
  xm_arena *arena;
  xm_shm *shm;
  size_t n, unit, next;
  struct bench_raw_arena *raw;
};

static void free_arena(struct bench_arena *s) {
  if (!s) return;
  bench_raw_arena_free(s->raw);
  xm_arena_free(s->arena);
  xm_shm_free(s->shm);
  free(s);
}

void bench_teardown_arena(struct bench *b) {
  free_arena(b->arena);
  free_arena(b->arena_few);
  b->arena = b->arena_few = NULL;
}

/* An arena of n adjacent one-unit pieces (and its raw twin when with_raw) in *out. */
static int make_arena(struct bench *b, size_t n, bool with_raw, struct bench_arena **out) {
  struct bench_arena *s = calloc(1, sizeof *s);
  if (!s) return bench_fail(b, XM_E_NO_MEMORY, "out of memory");
  *out = s;
  s->n = n;
  size_t used, limit;
  /* about 2n mappings: skipped where the kernel's count would not allow them with headroom */
  if (xm_map_count(&used, &limit) == XM_OK && used + 2 * s->n + 1000 > limit)
    return bench_fail(b, XM_E_NOT_IMPLEMENTED, "%zu pieces twice need more than vm.max_map_count=%zu allows", s->n,
                      limit);
  int rc = xm_arena_new(s->n * xm_allocation_granularity(), &s->arena);
  if (rc) return bench_xm_failed(b, "xm_arena_new", rc);
  s->unit = xm_arena_granularity(s->arena);
  rc = xm_shm_new("xmmap-bench-arena", 2 * (uint64_t)s->n * s->unit, &s->shm);
  if (rc) return bench_xm_failed(b, "xm_shm_new", rc);
  xm_descriptor d = xm_shm_descriptor(s->shm);
  for (size_t k = 0; k < s->n; k++) {
    rc = xm_arena_add_fd(s->arena, k * s->unit, s->unit, d, 2 * (uint64_t)k * s->unit, XM_PROT_READ_WRITE);
    if (rc) return bench_xm_failed(b, "xm_arena_add_fd", rc);
  }
  return with_raw ? bench_raw_arena_new(b, d, s->n, s->unit, &s->raw) : 0;
}

int bench_setup_arena(struct bench *b, const struct workload *w) {
  return make_arena(b, b->smoke ? 50 : w->param, true, &b->arena);
}

int bench_setup_arena_growth(struct bench *b, const struct workload *w) {
  int rc = make_arena(b, b->smoke ? 50 : w->param, false, &b->arena);
  return rc ? rc : make_arena(b, b->smoke ? 10 : 100, false, &b->arena_few);
}

static int cycle(struct bench *b, struct bench_arena *s, uint64_t iters, double *seconds) {
  const xm_descriptor d = xm_shm_descriptor(s->shm);
  int rc = XM_OK;
  size_t k = s->next;
  double t0 = tool_now();
  for (uint64_t i = 0; i < iters && rc == XM_OK; i++) {
    rc = xm_arena_remove(s->arena, k * s->unit, s->unit);
    if (rc == XM_OK)
      rc = xm_arena_add_fd(s->arena, k * s->unit, s->unit, d, 2 * (uint64_t)k * s->unit, XM_PROT_READ_WRITE);
    k = k + 7919 < s->n ? k + 7919 : (k + 7919) % s->n; /* scattered over the pieces */
  }
  *seconds = tool_now() - t0;
  s->next = k;
  return rc ? bench_xm_failed(b, "xm_arena_remove/add_fd", rc) : 0;
}

int bench_xm_arena(struct bench *b, uint64_t iters, double *seconds) { return cycle(b, b->arena, iters, seconds); }
int bench_xm_arena_few(struct bench *b, uint64_t iters, double *seconds) {
  return cycle(b, b->arena_few, iters, seconds);
}

int bench_raw_arena(struct bench *b, uint64_t iters, double *seconds) {
  return bench_raw_arena_cycle(b, b->arena->raw, iters, seconds);
}
