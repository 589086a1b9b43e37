/* `xmmap bench`'s workloads: what each one sets up, its xmmap side and the raw side written here
   (memcpy, or the OS's own calls from bench_posix.c / bench_windows.c), and the table of them.
   The flush workload is in bench_flush.c; statistics and output in bench_report.c. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "bench_cxx.h"

_Static_assert(N_OFFSETS == BENCH_CXX_OFFSETS, "the C++ u64 loop cycles through the same offsets");

int bench_fail(struct bench *b, int rc, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(b->error, sizeof b->error, fmt, ap);
  va_end(ap);
  if (n < 0) b->error[0] = '\0';
  return rc;
}

int bench_xm_failed(struct bench *b, const char *call, int rc) {
  /* Not implemented makes the workload n/a: the library's reason is the whole note. */
  if (rc == XM_E_NOT_IMPLEMENTED) {
    tool_format(b->error, sizeof b->error, "%s", xm_errmsg());
    return rc;
  }
  return bench_fail(b, rc, "%s: %s", call, xm_errmsg());
}

/* ---- setup ----------------------------------------------------------------------------------- */
int bench_map_anon(struct bench *b, size_t size) {
  xm_builder bl = xm_builder_new(size);
  int rc = xm_builder_build(&bl, &b->m);
  if (rc) return bench_xm_failed(b, "xm_builder_build", rc);
  b->base = xm_mapping_ptr(b->m);
  memset(b->base, 0x5a, size); /* fault everything in before the clock runs */
  return 0;
}

/* A caller buffer in b->buf, filled. page_aligned puts it at the same distance from the mapping's
   pages every run: memcpy's speed depends on that distance modulo 4 KiB (a few bytes apart, loads
   wait on earlier stores to the same low address bits), and where malloc puts a block depends on
   what ran before. */
static int alloc_buf(struct bench *b, size_t size, bool page_aligned) {
  const size_t page = xm_page_size();
  b->buf_block = malloc(page_aligned ? size + page : size);
  if (!b->buf_block) return bench_fail(b, XM_E_NO_MEMORY, "out of memory for a %zu-byte buffer", size);
  b->buf = b->buf_block;
  if (page_aligned) b->buf = (unsigned char *)(((uintptr_t)b->buf_block + page - 1) & ~(uintptr_t)(page - 1));
  memset(b->buf, 0xa5, size);
  return 0;
}

static int make_file(struct bench *b) {
  if (tool_file_create(&b->file, b->dir, FILE_SIZE) != 0)
    return bench_fail(b, XM_E_SYSTEM_CALL, "cannot create a %zu-byte file in %s", FILE_SIZE, b->dir);
  b->have_file = true;
  return 0;
}

static int setup_u64(struct bench *b, const struct workload *w) {
  uint32_t x = 0x9e3779b9u; /* fixed seed: the same offsets every run */
  for (unsigned i = 0; i < N_OFFSETS; i++) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    uint32_t off = (x % (uint32_t)(U64_SPAN - 16)) & ~7u;
    b->offsets[i] = off + (w->param ? 3u : 0u); /* param: odd offsets */
  }
  return bench_map_anon(b, U64_SPAN);
}

static int setup_slice(struct bench *b, const struct workload *w) {
  (void)w;
  int rc = bench_map_anon(b, SLICE_SPAN);
  return rc ? rc : alloc_buf(b, SLICE_SPAN, false);
}

/* The safe-copy figures are tracked from run to run: their buffer is page-aligned. */
static int setup_slice_aligned(struct bench *b, const struct workload *w) {
  (void)w;
  int rc = bench_map_anon(b, SLICE_SPAN);
  return rc ? rc : alloc_buf(b, SLICE_SPAN, true);
}

static int setup_nothing(struct bench *b, const struct workload *w) {
  (void)b;
  (void)w;
  return 0;
}

static int setup_file_write(struct bench *b, const struct workload *w) {
  (void)w;
  int rc = make_file(b);
  return rc ? rc : alloc_buf(b, FILE_SIZE, false);
}

/* An xmmap mapping and a raw mapping of the same file. */
static int setup_msync(struct bench *b, const struct workload *w) {
  (void)w;
  int rc = make_file(b);
  if (rc) return rc;
  xm_builder bl = xm_builder_new(FILE_SIZE);
  xm_builder_from_file(&bl, b->file.d);
  rc = xm_builder_build(&bl, &b->m);
  if (rc) return bench_xm_failed(b, "xm_builder_build", rc);
  b->base = xm_mapping_ptr(b->m);
  memset(b->base, 1, FILE_SIZE);
  rc = bench_raw_map_file(b, false, &b->raw);
  if (rc) return rc;
  memset(b->raw.addr, 1, FILE_SIZE);
  rc = xm_mapping_msync(b->m);
  return rc ? bench_xm_failed(b, "xm_mapping_msync", rc) : 0;
}

void bench_teardown(struct bench *b) {
  bench_teardown_dirty(b); /* a tracker goes before the mapping it tracks */
  bench_teardown_arena(b);
  xm_mapping_free(b->m);
  b->m = NULL;
  b->base = NULL;
  free(b->buf_block);
  b->buf_block = NULL;
  b->buf = NULL;
  if (b->raw.addr) bench_raw_unmap(&b->raw);
  if (b->have_file) tool_file_close(&b->file);
  b->have_file = false;
  b->clean = NULL;
  xm_code_free(b->code);
  b->code = NULL;
  if (b->rwx) bench_raw_unmap_rwx(b);
  bench_teardown_fault(b);
  bench_teardown_arena_size(b);
}

/* ---- 1. checked u64 access ------------------------------------------------------------------- */
static int xm_u64(struct bench *b, uint64_t iters, double *seconds) {
  const xm_mapping *m = b->m;
  const uint32_t *offsets = b->offsets;
  uint64_t acc = 0;
  int rc = 0;
  double t0 = tool_now();
  /* Each status checked as a caller would: on success the check folds away. */
  for (uint64_t i = 0; i < iters; i++) {
    size_t off = offsets[i & (N_OFFSETS - 1)];
    uint64_t v = 0;
    if ((rc = xm_mapping_read_obj(m, &v, sizeof v, off)) != XM_OK) break;
    v += i;
    if ((rc = xm_mapping_write_obj(m, &v, sizeof v, off)) != XM_OK) break;
    acc += v;
  }
  *seconds = tool_now() - t0;
  b->sink += acc;
  return rc ? bench_xm_failed(b, "xm_mapping_read_obj/write_obj", rc) : 0;
}

static int raw_u64(struct bench *b, uint64_t iters, double *seconds) {
  unsigned char *base = b->base;
  const uint32_t *offsets = b->offsets;
  uint64_t acc = 0;
  double t0 = tool_now();
  for (uint64_t i = 0; i < iters; i++) {
    size_t off = offsets[i & (N_OFFSETS - 1)];
    uint64_t v;
    memcpy(&v, base + off, sizeof v);
    v += i;
    memcpy(base + off, &v, sizeof v);
    acc += v;
  }
  *seconds = tool_now() - t0;
  b->sink += acc;
  return 0;
}

/* ---- 2. and 3. slices, checked and fault-safe ------------------------------------------------ */
enum copy_via { VIA_MEMCPY, VIA_CHECKED, VIA_SAFE };

/* Copies param bytes per iteration between buf and successive offsets of the mapping, through
   memcpy (raw side), the checked accessors or the fault-safe ones. */
LOOP_HELPER int slice_loop(struct bench *b, uint64_t iters, double *seconds, enum copy_via via, bool write) {
  static const char *const calls[2][2] = {{"xm_mapping_read_slice", "xm_mapping_write_slice"},
                                          {"xm_mapping_read_slice_safe", "xm_mapping_write_slice_safe"}};
  const size_t n = b->param;
  size_t off = 0, copied = 0, total = 0;
  int rc = 0;
  double t0 = tool_now();
  for (uint64_t i = 0; i < iters; i++) {
    if (via == VIA_MEMCPY) {
      if (write)
        memcpy(b->base + off, b->buf, n);
      else
        memcpy(b->buf, b->base + off, n);
    } else if (via == VIA_CHECKED) {
      rc |= write ? xm_mapping_write_slice(b->m, b->buf, n, off, &copied)
                  : xm_mapping_read_slice(b->m, b->buf, n, off, &copied);
      total += copied;
    } else {
      /* Each status checked as a caller of a safe copy does: a fault ends the loop. */
      rc = write ? xm_mapping_write_slice_safe(b->m, b->buf, n, off, &copied)
                 : xm_mapping_read_slice_safe(b->m, b->buf, n, off, &copied);
      if (rc != XM_OK) break;
      total += copied;
    }
    off = off + n < SLICE_SPAN ? off + n : 0;
  }
  *seconds = tool_now() - t0;
  if (via == VIA_MEMCPY)
    b->sink += write ? b->base[0] : b->buf[0];
  else
    b->sink += total;
  return rc ? bench_xm_failed(b, calls[via == VIA_SAFE][write], rc) : 0;
}

static int xm_read_slice(struct bench *b, uint64_t iters, double *seconds) {
  return slice_loop(b, iters, seconds, VIA_CHECKED, false);
}
static int xm_write_slice(struct bench *b, uint64_t iters, double *seconds) {
  return slice_loop(b, iters, seconds, VIA_CHECKED, true);
}
static int xm_read_slice_safe(struct bench *b, uint64_t iters, double *seconds) {
  return slice_loop(b, iters, seconds, VIA_SAFE, false);
}
static int raw_read_memcpy(struct bench *b, uint64_t iters, double *seconds) {
  return slice_loop(b, iters, seconds, VIA_MEMCPY, false);
}
static int raw_write_memcpy(struct bench *b, uint64_t iters, double *seconds) {
  return slice_loop(b, iters, seconds, VIA_MEMCPY, true);
}

/* ---- 4. and 5. create + destroy (raw sides: bench_posix.c / bench_windows.c) ----------------- */
static int xm_anon_cycle(struct bench *b, uint64_t iters, double *seconds) {
  double t0 = tool_now();
  for (uint64_t i = 0; i < iters; i++) {
    xm_builder bl = xm_builder_new(b->param);
    xm_mapping *m = NULL;
    int rc = xm_builder_build(&bl, &m);
    if (rc) return bench_xm_failed(b, "xm_builder_build", rc);
    xm_mapping_free(m);
  }
  *seconds = tool_now() - t0;
  return 0;
}

static int xm_shm_cycle(struct bench *b, uint64_t iters, double *seconds) {
  const size_t size = b->param;
  double t0 = tool_now();
  for (uint64_t i = 0; i < iters; i++) {
    xm_shm *shm = NULL;
    xm_mapping *m = NULL;
    int rc = xm_shm_new("xmmap-bench", size, &shm);
    if (rc) return bench_xm_failed(b, "xm_shm_new", rc);
    xm_builder bl = xm_builder_new(size);
    xm_builder_from_shm(&bl, shm);
    rc = xm_builder_build(&bl, &m);
    if (rc) {
      xm_shm_free(shm);
      return bench_xm_failed(b, "xm_builder_build", rc);
    }
    xm_mapping_free(m);
    xm_shm_free(shm);
  }
  *seconds = tool_now() - t0;
  return 0;
}

/* ---- 6. map a file, write it, (msync,) unmap ------------------------------------------------- */
static int xm_file_write(struct bench *b, uint64_t iters, double *seconds) {
  double t0 = tool_now();
  for (uint64_t i = 0; i < iters; i++) {
    xm_builder bl = xm_builder_new(FILE_SIZE);
    xm_builder_from_file(&bl, b->file.d);
    xm_mapping *m = NULL;
    int rc = xm_builder_build(&bl, &m);
    if (rc) return bench_xm_failed(b, "xm_builder_build", rc);
    b->buf[0] = (unsigned char)i;
    rc = xm_mapping_write_slice(m, b->buf, FILE_SIZE, 0, NULL);
    if (!rc && b->param) rc = xm_mapping_msync(m);
    xm_mapping_free(m);
    if (rc) return bench_xm_failed(b, b->param ? "xm_mapping_msync" : "xm_mapping_write_slice", rc);
  }
  *seconds = tool_now() - t0;
  return 0;
}

/* The baseline maps where huge pages could back the file (the library places its mappings so). */
static int raw_file_write(struct bench *b, uint64_t iters, double *seconds) {
  double t0 = tool_now();
  for (uint64_t i = 0; i < iters; i++) {
    struct raw_view v;
    b->buf[0] = (unsigned char)i;
    int rc = bench_raw_map_file(b, true, &v);
    if (rc) return rc;
    memcpy(v.addr, b->buf, FILE_SIZE);
    if (b->param) rc = bench_raw_sync(b, &v);
    bench_raw_unmap(&v);
    if (rc) return rc;
  }
  *seconds = tool_now() - t0;
  return 0;
}

/* ---- 8. msync (7. flush is in bench_flush.c) ------------------------------------------------- */
/* Each sync timed alone; param: the mapping is dirtied first, outside the clock. */
LOOP_HELPER int msync_loop(struct bench *b, uint64_t iters, double *seconds, bool raw) {
  unsigned char *p = raw ? b->raw.addr : b->base;
  double total = 0;
  for (uint64_t i = 0; i < iters; i++) {
    if (b->param) memset(p, (int)(i & 0x7f) + 1, FILE_SIZE);
    double t0 = tool_now();
    int rc = raw ? bench_raw_sync(b, &b->raw) : xm_mapping_msync(b->m);
    total += tool_now() - t0;
    if (rc) return raw ? rc : bench_xm_failed(b, "xm_mapping_msync", rc);
  }
  *seconds = total;
  return 0;
}

static int xm_msync(struct bench *b, uint64_t iters, double *seconds) { return msync_loop(b, iters, seconds, false); }
static int raw_msync(struct bench *b, uint64_t iters, double *seconds) { return msync_loop(b, iters, seconds, true); }

/* ---- 12. the accessors through xmmap.hpp (bench_cxx.cpp); baseline: the C loops above -------- */
static int cxx_u64(struct bench *b, uint64_t iters, double *seconds) {
  if (bench_cxx_missing) return bench_fail(b, XM_E_NOT_IMPLEMENTED, "%s", bench_cxx_missing);
  uint64_t acc = 0;
  double t0 = tool_now();
  int rc = bench_cxx_u64(b->m, b->offsets, iters, &acc);
  *seconds = tool_now() - t0;
  b->sink += acc;
  return rc ? bench_xm_failed(b, "xmmap::mapping::read_obj/write_obj", rc) : 0;
}

LOOP_HELPER int cxx_slice(struct bench *b, uint64_t iters, double *seconds, bool write) {
  if (bench_cxx_missing) return bench_fail(b, XM_E_NOT_IMPLEMENTED, "%s", bench_cxx_missing);
  size_t total = 0;
  double t0 = tool_now();
  int rc = write ? bench_cxx_write_slice(b->m, b->buf, b->param, SLICE_SPAN, iters, &total)
                 : bench_cxx_read_slice(b->m, b->buf, b->param, SLICE_SPAN, iters, &total);
  *seconds = tool_now() - t0;
  b->sink += total;
  return rc ? bench_xm_failed(b, write ? "xmmap::mapping::write_slice" : "xmmap::mapping::read_slice", rc) : 0;
}
static int cxx_read_slice(struct bench *b, uint64_t iters, double *seconds) {
  return cxx_slice(b, iters, seconds, false);
}
static int cxx_write_slice(struct bench *b, uint64_t iters, double *seconds) {
  return cxx_slice(b, iters, seconds, true);
}

/* ---- the workloads --------------------------------------------------------------------------- */
const struct workload bench_workloads[] = {
    {"checked u64 r+w, aligned", NS_PER_OP, GOAL_RATIO_MAX, 1.20, 200000000, 50000000, 0, setup_u64, xm_u64, raw_u64},
    {"checked u64 r+w, odd", NS_PER_OP, GOAL_RATIO_MAX, 1.20, 200000000, 50000000, 1, setup_u64, xm_u64, raw_u64},
    {"read_slice 4 KiB", GB_PER_S, GOAL_RATIO_MIN, 0.90, 4000000, 1000000, 4 * KIB, setup_slice, xm_read_slice,
     raw_read_memcpy},
    {"read_slice 64 KiB", GB_PER_S, GOAL_RATIO_MIN, 0.90, 256000, 64000, 64 * KIB, setup_slice, xm_read_slice,
     raw_read_memcpy},
    {"read_slice 1 MiB", GB_PER_S, GOAL_RATIO_MIN, 0.90, 16000, 4000, MIB, setup_slice, xm_read_slice, raw_read_memcpy},
    {"write_slice 4 KiB", GB_PER_S, GOAL_RATIO_MIN, 0.90, 4000000, 1000000, 4 * KIB, setup_slice, xm_write_slice,
     raw_write_memcpy},
    {"write_slice 64 KiB", GB_PER_S, GOAL_RATIO_MIN, 0.90, 256000, 64000, 64 * KIB, setup_slice, xm_write_slice,
     raw_write_memcpy},
    {"write_slice 1 MiB", GB_PER_S, GOAL_RATIO_MIN, 0.90, 16000, 4000, MIB, setup_slice, xm_write_slice,
     raw_write_memcpy},
    /* The safe copy's cost per call (arming the fault handler): the 4 KiB figure is tracked so
       that it does not grow; at 1 MiB the copy itself must dominate. */
    {"read_slice_safe 4 KiB", US_PER_OP, GOAL_NONE, 0, 4000000, 1000000, 4 * KIB, setup_slice_aligned,
     xm_read_slice_safe, raw_read_memcpy},
    {"read_slice_safe 1 MiB", US_PER_OP, GOAL_RATIO_MAX, 1.10, 16000, 4000, MIB, setup_slice_aligned,
     xm_read_slice_safe, raw_read_memcpy},
    {"anon 4 KiB create+destroy", US_PER_OP, GOAL_RATIO_MAX, 1.10, 100000, 20000, 4 * KIB, setup_nothing, xm_anon_cycle,
     bench_raw_anon_cycle},
    {"shm 1 MiB create+map+destroy", US_PER_OP, GOAL_RATIO_MAX, 1.10, 50000, 20000, MIB, setup_nothing, xm_shm_cycle,
     bench_raw_shm_cycle},
    {"file 1 MiB map+write+unmap", US_PER_OP, GOAL_FAULTS, 0, 2000, 500, 0, setup_file_write, xm_file_write,
     raw_file_write},
    {"file 1 MiB map+write+msync+unmap", US_PER_OP, GOAL_FAULTS, 0, 200, 50, 1, setup_file_write, xm_file_write,
     raw_file_write},
    {"flush dirty 1 MiB", US_PER_OP, GOAL_RATIO_MAX, 1.05, 8000, 2000, MIB, bench_setup_flush, bench_xm_flush,
     bench_raw_flush},
    {"flush dirty 4 KiB object", US_PER_OP, GOAL_RATIO_MAX, 1.05, 1000000, 200000, 4 * KIB, bench_setup_flush,
     bench_xm_flush, bench_raw_flush},
    /* Code for a JIT: the dual view must cost what a plain RWX buffer does; toggle shown beside it
       (its cost is the two protection changes). */
    {"JIT write 4 KiB", US_PER_OP, GOAL_RATIO_MAX, 1.10, 400000, 100000, 4 * KIB, bench_setup_jit, bench_xm_jit,
     bench_raw_jit},
    {"JIT write 64 KiB", US_PER_OP, GOAL_RATIO_MAX, 1.10, 40000, 10000, 64 * KIB, bench_setup_jit, bench_xm_jit,
     bench_raw_jit},
    {"JIT write 4 KiB (toggle)", US_PER_OP, GOAL_NONE, 0, 100000, 25000, 4 * KIB | JIT_TOGGLE, bench_setup_jit,
     bench_xm_jit, bench_raw_jit},
    {"JIT write 64 KiB (toggle)", US_PER_OP, GOAL_NONE, 0, 20000, 5000, 64 * KIB | JIT_TOGGLE, bench_setup_jit,
     bench_xm_jit, bench_raw_jit},
    /* A fault a hook resolves (fastmem, write tracking): the dispatcher's cost beside a raw handler,
       with one hook and among 10,000. */
    {"fault round trip, 1 hook", US_PER_OP, GOAL_RATIO_MAX, 1.10, 200000, 50000, 1, bench_setup_fault, bench_xm_fault,
     bench_raw_fault},
    {"fault round trip, 10000 hooks", US_PER_OP, GOAL_RATIO_MAX, 1.10, 200000, 50000, 10000, bench_setup_fault,
     bench_xm_fault, bench_raw_fault},
    {"msync clean 1 MiB", US_PER_OP, GOAL_RATIO_MAX, 1.02, 20000, 5000, 0, setup_msync, xm_msync, raw_msync},
    {"msync dirty 1 MiB", US_PER_OP, GOAL_RATIO_MAX, 1.02, 300, 100, 1, setup_msync, xm_msync, raw_msync},
    /* The arena's bookkeeping at scale: within 1.3x of the raw calls among 100 pieces, and among
       30,000 within 1.5x of among 100 (the last row: both arenas in one run, round by round). */
    {"arena add+remove among 100 pieces", US_PER_OP, GOAL_RATIO_MAX, 1.30, 200000, 50000, 100, bench_setup_arena,
     bench_xm_arena, bench_raw_arena},
    {"arena add+remove among 10,000 pieces", US_PER_OP, GOAL_NONE, 0, 200000, 50000, 10000, bench_setup_arena,
     bench_xm_arena, bench_raw_arena},
    {"arena add+remove among 30,000 pieces", US_PER_OP, GOAL_NONE, 0, 200000, 50000, 30000, bench_setup_arena,
     bench_xm_arena, bench_raw_arena},
    {"arena among 30,000 (baseline: among 100)", US_PER_OP, GOAL_RATIO_MAX, 1.50, 200000, 50000, 30000,
     bench_setup_arena_growth, bench_xm_arena, bench_xm_arena_few},
    /* Write tracking: one round = 1% of 1 GiB's pages written, then collected and re-armed. */
    {"write tracking 1 GiB, 1%: uffd-wp", US_PER_OP, GOAL_RATIO_MAX, 1.20, 400, 100, DIRTY_UFFD_WP, bench_setup_dirty,
     bench_xm_dirty, bench_raw_dirty},
    {"write tracking 1 GiB, 1%: protect", US_PER_OP, GOAL_RATIO_MAX, 1.20, 200, 50, DIRTY_PROTECT, bench_setup_dirty,
     bench_xm_dirty, bench_raw_dirty},
    /* The C++ owner's accessors must cost what the C calls do (they are the same inline code). */
    {"C++ checked u64 r+w, aligned", NS_PER_OP, GOAL_RATIO_MAX, 1.02, 200000000, 50000000, 0, setup_u64, cxx_u64,
     xm_u64},
    {"C++ checked u64 r+w, odd", NS_PER_OP, GOAL_RATIO_MAX, 1.02, 200000000, 50000000, 1, setup_u64, cxx_u64, xm_u64},
    {"C++ read_slice 4 KiB", GB_PER_S, GOAL_RATIO_MIN, 0.98, 4000000, 1000000, 4 * KIB, setup_slice, cxx_read_slice,
     xm_read_slice},
    {"C++ write_slice 4 KiB", GB_PER_S, GOAL_RATIO_MIN, 0.98, 4000000, 1000000, 4 * KIB, setup_slice, cxx_write_slice,
     xm_write_slice},
    /* The arena's cost must not grow with its size (Windows split reservations: see bench_arena_size.c;
       elsewhere the placeholder or mmap path). */
    {"arena add+remove, one unit: 512 GiB arena (baseline: 1 GiB)", US_PER_OP, GOAL_RATIO_MAX, 1.50, 20000, 5000, 0,
     bench_setup_arena_size, bench_xm_arena_big, bench_xm_arena_small},
};
const size_t bench_workload_count = sizeof bench_workloads / sizeof bench_workloads[0];
