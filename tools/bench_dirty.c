/* The write-tracking workloads: over 1 GiB of written-in memory, each round writes 1% of its pages
   (a different scattered set every round, one store per page) and then collects and re-arms. The
   measured round includes the writes, because a strategy's cost is split between them (the
   first-write fault: taken by the kernel for uffd-wp, by a signal handler for protect) and the
   collect. The xmmap side runs xm_dirty_collect on a tracker of the strategy the row names; the
   raw side the same strategy in plain OS calls (bench_dirty_posix.c / bench_dirty_windows.c) on a
   mapping of its own. */
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "os.h" /* xm__os_wp_available: why a machine has no uffd-wp, for the n/a note */

#define DIRTY_SPAN ((size_t)1 << 30)
#define DIRTY_SMOKE_SPAN (64 * MIB) /* --smoke: the figures mean nothing; emulators and 32-bit fit */

struct bench_dirty {
  size_t span, pages, per_round; /* per_round: 1% of pages */
  uint64_t *bitmap;
  uint64_t round;
  xm_dirty *tracker;
  struct bench_raw_tracker *raw;
  unsigned char *raw_base;
};

static const char *const strategy_names[] = {"uffd-wp", "protect"};

/* Writes round's pages of [base, base + span): per_round distinct pages, scattered (an odd stride
   modulo a power-of-two page count visits every page once). */
LOOP_HELPER void write_round(const struct bench_dirty *d, unsigned char *base, size_t page) {
  size_t first = (size_t)(d->round * 7919u);
  for (size_t k = 0; k < d->per_round; k++) {
    size_t p = (first + k * 100003u) & (d->pages - 1);
    base[p * page] = (unsigned char)(d->round + 1);
  }
}

int bench_setup_dirty(struct bench *b, const struct workload *w) {
  const int strategy = (int)w->param;
  const size_t page = xm_page_size();
  struct bench_dirty *d = calloc(1, sizeof *d);
  if (!d) return bench_fail(b, XM_E_NO_MEMORY, "out of memory");
  b->dirty = d;
  d->span = b->smoke ? DIRTY_SMOKE_SPAN : DIRTY_SPAN;
  d->pages = d->span / page;
  d->per_round = d->pages / 100;
  d->bitmap = calloc(d->pages / 64 + 1, sizeof *d->bitmap);
  if (!d->bitmap) return bench_fail(b, XM_E_NO_MEMORY, "out of memory");
  const char *why = NULL;
  if (strategy == DIRTY_UFFD_WP && !xm__os_wp_available(&why))
    return bench_fail(b, XM_E_NOT_IMPLEMENTED, "no uffd-wp here: %s", why);

  int rc = bench_map_anon(b, d->span); /* written in full: the tracker starts on resident memory */
  if (rc) /* 32-bit: two 1 GiB mappings may not fit the address space; n/a there, not a defect */
    return rc == XM_E_SYSTEM_CALL && sizeof(void *) < 8 ? bench_fail(b, XM_E_NOT_IMPLEMENTED, "%s", b->error) : rc;
  /* XMMAP_DIRTY=protect forces the fallback, read when a tracker is made. */
  const char *old = getenv("XMMAP_DIRTY");
  char *saved = old ? strdup(old) : NULL;
  if (strategy == DIRTY_PROTECT)
    tool_setenv("XMMAP_DIRTY", "protect");
  else
    tool_setenv("XMMAP_DIRTY", NULL);
  rc = xm_dirty_new(xm_mapping_region(b->m), 0, d->span, 0, &d->tracker);
  tool_setenv("XMMAP_DIRTY", saved);
  free(saved);
  if (rc) return bench_xm_failed(b, "xm_dirty_new", rc);
  if (strcmp(xm_dirty_strategy(d->tracker), strategy_names[strategy]) != 0)
    return bench_fail(b, XM_E_NOT_IMPLEMENTED, "the tracker chose \"%s\", not \"%s\"", xm_dirty_strategy(d->tracker),
                      strategy_names[strategy]);
  if (xm_dirty_page_size(d->tracker) != page)
    return bench_fail(b, XM_E_SYSTEM_CALL, "the tracker's page is %zu bytes, not %zu", xm_dirty_page_size(d->tracker),
                      page);
  rc = bench_raw_tracker_new(b, strategy, d->span, &d->raw, &d->raw_base);
  return rc == XM_E_NOT_IMPLEMENTED ? 0 : rc; /* the baseline n/a shows at its first run */
}

void bench_teardown_dirty(struct bench *b) {
  struct bench_dirty *d = b->dirty;
  if (!d) return;
  xm_dirty_free(d->tracker); /* before its mapping goes (bench_teardown frees b->m) */
  if (d->raw) bench_raw_tracker_free(d->raw);
  free(d->bitmap);
  free(d);
  b->dirty = NULL;
}

/* A round that reported fewer pages than it wrote missed a write: the workload fails. */
static int check_count(struct bench *b, const char *side, size_t count) {
  const struct bench_dirty *d = b->dirty;
  if (count >= d->per_round) return 0;
  return bench_fail(b, XM_E_SYSTEM_CALL, "%s reported %zu pages of the %zu written", side, count, d->per_round);
}

int bench_xm_dirty(struct bench *b, uint64_t iters, double *seconds) {
  struct bench_dirty *d = b->dirty;
  const size_t page = xm_page_size(), bitmap_bytes = (d->pages / 64 + 1) * sizeof *d->bitmap;
  size_t count = 0;
  int rc = 0;
  double t0 = tool_now();
  for (uint64_t i = 0; i < iters; i++, d->round++) {
    write_round(d, b->base, page);
    memset(d->bitmap, 0, bitmap_bytes);
    rc = xm_dirty_collect(d->tracker, d->bitmap, d->pages, &count);
    if (rc != XM_OK || count < d->per_round) break;
  }
  *seconds = tool_now() - t0;
  if (rc) return bench_xm_failed(b, "xm_dirty_collect", rc);
  return check_count(b, "xm_dirty_collect", count);
}

int bench_raw_dirty(struct bench *b, uint64_t iters, double *seconds) {
  struct bench_dirty *d = b->dirty;
  if (!d->raw) return bench_raw_tracker_new(b, (int)b->param, d->span, &d->raw, &d->raw_base); /* n/a: why */
  const size_t page = xm_page_size(), bitmap_bytes = (d->pages / 64 + 1) * sizeof *d->bitmap;
  size_t count = 0;
  int rc = bench_raw_tracker_enter(b, d->raw);
  if (rc) return rc;
  double t0 = tool_now();
  for (uint64_t i = 0; i < iters; i++, d->round++) {
    write_round(d, d->raw_base, page);
    memset(d->bitmap, 0, bitmap_bytes);
    count = 0;
    rc = bench_raw_tracker_collect(b, d->raw, d->bitmap, &count);
    if (rc || count < d->per_round) break;
  }
  *seconds = tool_now() - t0;
  bench_raw_tracker_leave(d->raw);
  return rc ? rc : check_count(b, "the raw tracker", count);
}
