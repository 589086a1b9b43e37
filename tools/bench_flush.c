/* `xmmap bench`'s flush workload. Its baseline is the arch unit's own clean loop (the
   src/arch/<arch>_clean.h header that the library's arch file installs), compiled into the tool:
   the same instructions and fence as xm_mapping_flush_region, without the library's range checks
   and dispatch. */
#include <string.h>

#include "bench.h"

#if defined(__x86_64__) || defined(__i386__)
#include "arch/x86_clean.h"
#elif defined(__aarch64__)
#include "arch/aarch64_clean.h"
#elif defined(__powerpc64__)
#include "arch/ppc64_clean.h"
#elif defined(__riscv) && __riscv_xlen == 64
#include "arch/riscv64_clean.h"
#endif

/* xm_flush_method()'s name for each loop this CPU's arch unit may install. */
static const struct {
  const char *method;
  xm__clean_lines_fn clean;
} raw_cleans[] = {
#if defined(__x86_64__) || defined(__i386__)
    {"clwb", xm__clean_clwb},
    {"clflushopt", xm__clean_clflushopt},
    {"clflush", xm__clean_clflush},
#elif defined(__aarch64__)
    {"dc cvac", xm__clean_dc_cvac},
#elif defined(__powerpc64__)
    {"dcbst", xm__clean_dcbst},
#elif defined(__riscv) && __riscv_xlen == 64
    {"cbo.clean", xm__clean_cbo_clean},
#endif
    {"none", NULL},
};

int bench_setup_flush(struct bench *b, const struct workload *w) {
  (void)w;
  b->clean = NULL;
  for (size_t i = 0; i < sizeof raw_cleans / sizeof raw_cleans[0]; i++)
    if (strcmp(raw_cleans[i].method, xm_flush_method()) == 0) b->clean = raw_cleans[i].clean;
  b->line = xm_cacheline_size();
  return bench_map_anon(b, MIB);
}

/* A large region is dirtied outside the clock and each flush timed alone. One flush of a small
   object takes about as long as reading the clock, so those are timed in batches, each iteration
   dirtying the object's lines with one store per line (the same for both sides) and flushing it. */
#define FLUSH_TIMED_ALONE (64 * KIB)

static void dirty_lines(unsigned char *p, size_t n, size_t line, uint64_t i) {
  for (size_t off = 0; off < n; off += line)
    p[off] = (unsigned char)(i + off / line);
}

/* The raw side: the lines of [p, p + n), like the library rounds them, through the arch loop. */
static inline void raw_clean(const struct bench *b, unsigned char *p, size_t n) {
  uintptr_t mask = (uintptr_t)b->line - 1;
  b->clean((uintptr_t)p & ~mask, ((uintptr_t)p + n + mask) & ~mask, b->line);
}

/* Flushes param bytes per iteration through the library (xm side) or the raw loop. */
LOOP_HELPER int flush_loop(struct bench *b, uint64_t iters, double *seconds, bool raw) {
  const size_t n = b->param;
  int rc = 0;
  if (n < FLUSH_TIMED_ALONE) {
    double t0 = tool_now();
    for (uint64_t i = 0; !rc && i < iters; i++) {
      dirty_lines(b->base, n, b->line, i);
      if (raw)
        raw_clean(b, b->base, n);
      else
        rc = xm_mapping_flush_region(b->m, 0, n);
    }
    *seconds = tool_now() - t0;
  } else {
    double total = 0;
    for (uint64_t i = 0; !rc && i < iters; i++) {
      memset(b->base, (int)(i & 0x7f) + 1, n);
      double t0 = tool_now();
      if (raw)
        raw_clean(b, b->base, n);
      else
        rc = xm_mapping_flush_region(b->m, 0, n);
      total += tool_now() - t0;
    }
    *seconds = total;
  }
  return rc ? bench_xm_failed(b, "xm_mapping_flush_region", rc) : 0;
}

int bench_xm_flush(struct bench *b, uint64_t iters, double *seconds) { return flush_loop(b, iters, seconds, false); }

int bench_raw_flush(struct bench *b, uint64_t iters, double *seconds) {
  if (!b->clean) return bench_fail(b, XM_E_NOT_IMPLEMENTED, "no raw flush loop for %s", xm_flush_method());
  return flush_loop(b, iters, seconds, true);
}
