/* `xmmap bench`: fixed workloads, each interleaved round by round with its raw baseline (the same
   work in plain libc / Win32 calls, written here) in the same process. Medians, p10/p90 over the
   rounds, the ratio to the baseline and page faults per iteration; the goals are reported, not
   asserted. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tool.h"

#ifdef _WIN32
#define WIN32_LEAN_AND_MEAN
#include <windows.h>
#else
#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>
#endif

static const char bench_help[] =
    "usage: xmmap bench [--quick] [--json] [--dir DIR]\n"
    "\n"
    "Runs fixed workloads (fixed sizes and seeds), each interleaved round by round with its raw\n"
    "baseline - the same work in plain mmap/munmap/memfd/msync (POSIX) or CreateFileMapping/\n"
    "MapViewOfFile/UnmapViewOfFile/FlushViewOfFile (Windows) calls - in this process:\n"
    "  1. checked u64 read+write at offsets from an L1-resident table, aligned and odd\n"
    "     (baseline: unchecked memcpy)                                     goal: ratio <= 1.20\n"
    "  2. read_slice / write_slice of 4 KiB, 64 KiB, 1 MiB (baseline: memcpy)\n"
    "                                                           goal: >= 0.90 of memcpy's GB/s\n"
    "  3. create+destroy a 4 KiB anonymous mapping (baseline: the same mapping raw)  <= 1.10\n"
    "  4. create+destroy a 1 MiB shared-memory object and its mapping               <= 1.10\n"
    "  5. map a 1 MiB file, write it, unmap; and the same with msync\n"
    "     (baseline: a 2 MiB-aligned raw mapping)      goal: faults/iter <= the baseline's\n"
    "  6. flush a dirty 1 MiB region and a dirty 4 KiB object (baseline: a raw loop of the\n"
    "     best flush instruction + fence; n/a where the library has no flush)       <= 1.05\n"
    "     (the 4 KiB figure includes dirtying its lines, one store each: a single flush is\n"
    "     too short to time alone)\n"
    "  7. msync of a clean and of a dirty 1 MiB file mapping                        <= 1.02\n"
    "Prints the environment (CPU, flags, line size, kernel, THP mode, the temporary directory's\n"
    "file system) and a table: workload | median | p10 | p90 | baseline median | ratio |\n"
    "faults/iter. ratio = xmmap / baseline (for time lower is better, for GB/s higher is better).\n"
    "Under Wine (or qemu-user) the figures are labelled as emulated. A progress line goes to stderr when it is a\n"
    "terminal.\n"
    "\n"
    "options:\n"
    "  --quick     5 rounds and smaller counts: the whole run within 2 minutes\n"
    "              (default: 9 rounds, within 5 minutes)\n"
    "  --json      one JSON object: {\"workloads\": [{\"name\", \"unit\", \"median\", \"p10\", \"p90\",\n"
    "              \"baseline\", \"ratio\", \"faults_per_iter\", \"baseline_faults_per_iter\"}...],\n"
    "              \"env\": {...}}\n"
    "  --dir DIR   where the file workloads put their file (default: the temporary directory)\n"
    "  --smoke     tiny counts, for tests of the tool itself: the figures mean nothing\n"
    "  -h, --help  this text\n"
    "\n"
    "exit status: 0 every workload ran, 1 a workload failed, 2 usage error\n";

/* For the loop helpers each side calls with constants: inlined, every side keeps a loop of its own
   with no branch on the side inside. */
#if defined(__GNUC__)
#define LOOP_HELPER static inline __attribute__((always_inline))
#else
#define LOOP_HELPER static inline
#endif

#define KIB ((size_t)1 << 10)
#define MIB ((size_t)1 << 20)
#define U64_SPAN (16 * KIB)   /* the checked-access region: fits L1 with the offset table */
#define N_OFFSETS 1024u       /* power of two */
#define SLICE_SPAN MIB
#define FILE_SIZE MIB

enum goal { GOAL_NONE, GOAL_RATIO_MAX, GOAL_RATIO_MIN, GOAL_FAULTS };
enum unit { NS_PER_OP, US_PER_OP, GB_PER_S };
static const char *const unit_names[] = {"ns/op", "us/op", "GB/s"};

struct bench;
/* Runs iters iterations; *seconds is the time of the measured part. 0, or a negative status:
   XM_E_NOT_IMPLEMENTED makes the workload n/a, anything else a failure (message in b->error). */
typedef int (*run_fn)(struct bench *b, uint64_t iters, double *seconds);
typedef void (*clean_fn)(unsigned char *p, size_t n, size_t line);

struct workload {
  const char *name;
  enum unit unit;
  enum goal goal;
  double goal_value;
  uint64_t iters_full, iters_quick;
  size_t param;                          /* size, or a variant */
  int (*setup)(struct bench *b, const struct workload *w);
  run_fn xm, raw;
};

struct bench {
  size_t param;
  xm_mapping *m;
  unsigned char *base;     /* xm_mapping_ptr(m) */
  unsigned char *buf;      /* a caller buffer */
  unsigned char *raw_base; /* a raw FILE_SIZE mapping of the file, for the msync baseline */
  uint32_t offsets[N_OFFSETS];
  tool_file file;
  bool have_file;
  const char *dir;
  clean_fn clean; /* the raw flush loop, or NULL */
  size_t line;
  uint64_t sink;
  char error[512];
#ifdef _WIN32
  HANDLE raw_section;
#endif
};

static int TOOL_PRINTF(3, 4) bench_fail(struct bench *b, int rc, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(b->error, sizeof b->error, fmt, ap);
  va_end(ap);
  if (n < 0) b->error[0] = '\0';
  return rc;
}

/* An xmmap call failed: keep its message. */
static int xm_failed(struct bench *b, const char *call, int rc) {
  if (rc == XM_E_NOT_IMPLEMENTED) {
    tool_format(b->error, sizeof b->error, "%s", xm_errmsg());
    return rc;
  }
  return bench_fail(b, rc, "%s: %s", call, xm_errmsg());
}

static int raw_failed(struct bench *b, const char *call) {
#ifdef _WIN32
  return bench_fail(b, XM_E_SYSTEM_CALL, "%s failed (error %lu)", call, (unsigned long)GetLastError());
#else
  return bench_fail(b, XM_E_SYSTEM_CALL, "%s failed: %s", call, strerror(errno));
#endif
}

/* ---- raw primitives (the baselines' own system calls) --------------------------------------- */
#ifdef _WIN32
/* A read-write view of a new section of file (NULL: the pagefile), the section in *section; NULL
   with nothing left open when either call fails (message in b->error). */
static void *raw_map(struct bench *b, HANDLE file, size_t size, HANDLE *section) {
  *section = CreateFileMappingW(file ? file : INVALID_HANDLE_VALUE, NULL, PAGE_READWRITE,
                                (DWORD)((uint64_t)size >> 32), (DWORD)size, NULL);
  if (!*section) {
    raw_failed(b, "CreateFileMapping");
    return NULL;
  }
  void *p = MapViewOfFile(*section, FILE_MAP_READ | FILE_MAP_WRITE, 0, 0, size);
  if (!p) {
    raw_failed(b, "MapViewOfFile");
    CloseHandle(*section);
    *section = NULL;
  }
  return p;
}
static void raw_unmap(void *p, HANDLE section) {
  UnmapViewOfFile(p);
  CloseHandle(section);
}
#endif

/* The raw flush loops: the instruction xm_flush_method() names, then its fence, like the arch
   unit but written here. */
#if defined(__x86_64__) || defined(__i386__)
static void clean_clwb(unsigned char *p, size_t n, size_t line) {
  for (uintptr_t a = (uintptr_t)p & ~(uintptr_t)(line - 1), end = (uintptr_t)p + n; a < end; a += line)
    __asm__ volatile(".byte 0x66; xsaveopt %0" : : "m"(*(const volatile char *)a) : "memory");
  __asm__ volatile("sfence" : : : "memory");
}
static void clean_clflushopt(unsigned char *p, size_t n, size_t line) {
  for (uintptr_t a = (uintptr_t)p & ~(uintptr_t)(line - 1), end = (uintptr_t)p + n; a < end; a += line)
    __asm__ volatile(".byte 0x66; clflush %0" : : "m"(*(const volatile char *)a) : "memory");
  __asm__ volatile("sfence" : : : "memory");
}
static void clean_clflush(unsigned char *p, size_t n, size_t line) {
  for (uintptr_t a = (uintptr_t)p & ~(uintptr_t)(line - 1), end = (uintptr_t)p + n; a < end; a += line)
    __asm__ volatile("clflush %0" : : "m"(*(const volatile char *)a) : "memory");
  __asm__ volatile("mfence" : : : "memory");
}
#elif defined(__aarch64__)
static void clean_dc_cvac(unsigned char *p, size_t n, size_t line) {
  for (uintptr_t a = (uintptr_t)p & ~(uintptr_t)(line - 1), end = (uintptr_t)p + n; a < end; a += line)
    __asm__ volatile("dc cvac, %0" : : "r"(a) : "memory");
  __asm__ volatile("dsb sy" : : : "memory");
}
#elif defined(__powerpc64__)
static void clean_dcbst(unsigned char *p, size_t n, size_t line) {
  for (uintptr_t a = (uintptr_t)p & ~(uintptr_t)(line - 1), end = (uintptr_t)p + n; a < end; a += line)
    __asm__ volatile("dcbst 0, %0" : : "r"(a) : "memory");
  __asm__ volatile("sync" : : : "memory");
}
#endif

static clean_fn raw_clean_for(const char *method) {
#if defined(__x86_64__) || defined(__i386__)
  if (strcmp(method, "clwb") == 0) return clean_clwb;
  if (strcmp(method, "clflushopt") == 0) return clean_clflushopt;
  if (strcmp(method, "clflush") == 0) return clean_clflush;
#elif defined(__aarch64__)
  if (strcmp(method, "dc cvac") == 0) return clean_dc_cvac;
#elif defined(__powerpc64__)
  if (strcmp(method, "dcbst") == 0) return clean_dcbst;
#endif
  (void)method;
  return NULL;
}

/* ---- setup ----------------------------------------------------------------------------------- */
static int map_anon(struct bench *b, size_t size) {
  xm_builder bl = xm_builder_new(size);
  int rc = xm_builder_build(&bl, &b->m);
  if (rc) return xm_failed(b, "xm_builder_build", rc);
  b->base = xm_mapping_ptr(b->m);
  memset(b->base, 0x5a, size); /* fault everything in before the clock runs */
  return 0;
}

static int alloc_buf(struct bench *b, size_t size) {
  b->buf = malloc(size);
  if (!b->buf) return bench_fail(b, XM_E_NO_MEMORY, "out of memory for a %zu-byte buffer", size);
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
  return map_anon(b, U64_SPAN);
}

static int setup_slice(struct bench *b, const struct workload *w) {
  (void)w;
  int rc = map_anon(b, SLICE_SPAN);
  return rc ? rc : alloc_buf(b, SLICE_SPAN);
}

static int setup_nothing(struct bench *b, const struct workload *w) {
  (void)b;
  (void)w;
  return 0;
}

static int setup_file_write(struct bench *b, const struct workload *w) {
  (void)w;
  int rc = make_file(b);
  return rc ? rc : alloc_buf(b, FILE_SIZE);
}

static int setup_flush(struct bench *b, const struct workload *w) {
  (void)w;
  b->clean = raw_clean_for(xm_flush_method());
  b->line = xm_cacheline_size();
  return map_anon(b, MIB);
}

/* An xmmap mapping and a raw mapping of the same file. */
static int setup_msync(struct bench *b, const struct workload *w) {
  (void)w;
  int rc = make_file(b);
  if (rc) return rc;
  xm_builder bl = xm_builder_new(FILE_SIZE);
  xm_builder_from_file(&bl, b->file.d);
  rc = xm_builder_build(&bl, &b->m);
  if (rc) return xm_failed(b, "xm_builder_build", rc);
  b->base = xm_mapping_ptr(b->m);
  memset(b->base, 1, FILE_SIZE);
#ifdef _WIN32
  b->raw_base = raw_map(b, b->file.d, FILE_SIZE, &b->raw_section);
  if (!b->raw_base) return XM_E_SYSTEM_CALL;
#else
  void *p = mmap(NULL, FILE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, b->file.d, 0);
  if (p == MAP_FAILED) return raw_failed(b, "mmap");
  b->raw_base = p;
#endif
  memset(b->raw_base, 1, FILE_SIZE);
  rc = xm_mapping_msync(b->m);
  return rc ? xm_failed(b, "xm_mapping_msync", rc) : 0;
}

static void teardown(struct bench *b) {
  xm_mapping_free(b->m);
  b->m = NULL;
  b->base = NULL;
  free(b->buf);
  b->buf = NULL;
  if (b->raw_base) {
#ifdef _WIN32
    raw_unmap(b->raw_base, b->raw_section);
    b->raw_section = NULL;
#else
    munmap(b->raw_base, FILE_SIZE);
#endif
  }
  b->raw_base = NULL;
  if (b->have_file) tool_file_close(&b->file);
  b->have_file = false;
  b->clean = NULL;
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
  return rc ? xm_failed(b, "xm_mapping_read_obj/write_obj", rc) : 0;
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

/* ---- 2. slices ------------------------------------------------------------------------------ */
/* Copies param bytes per iteration between buf and successive offsets of the mapping, through
   the checked accessors (xm side) or memcpy (raw side). */
LOOP_HELPER int slice_loop(struct bench *b, uint64_t iters, double *seconds, bool raw, bool write) {
  const size_t n = b->param;
  size_t off = 0, copied = 0, total = 0;
  int rc = 0;
  double t0 = tool_now();
  for (uint64_t i = 0; i < iters; i++) {
    if (raw) {
      if (write)
        memcpy(b->base + off, b->buf, n);
      else
        memcpy(b->buf, b->base + off, n);
    } else {
      rc |= write ? xm_mapping_write_slice(b->m, b->buf, n, off, &copied)
                  : xm_mapping_read_slice(b->m, b->buf, n, off, &copied);
      total += copied;
    }
    off = off + n < SLICE_SPAN ? off + n : 0;
  }
  *seconds = tool_now() - t0;
  if (raw)
    b->sink += write ? b->base[0] : b->buf[0];
  else
    b->sink += total;
  return rc ? xm_failed(b, write ? "xm_mapping_write_slice" : "xm_mapping_read_slice", rc) : 0;
}

static int xm_read_slice(struct bench *b, uint64_t iters, double *seconds) {
  return slice_loop(b, iters, seconds, false, false);
}
static int xm_write_slice(struct bench *b, uint64_t iters, double *seconds) {
  return slice_loop(b, iters, seconds, false, true);
}
static int raw_read_memcpy(struct bench *b, uint64_t iters, double *seconds) {
  return slice_loop(b, iters, seconds, true, false);
}
static int raw_write_memcpy(struct bench *b, uint64_t iters, double *seconds) {
  return slice_loop(b, iters, seconds, true, true);
}

/* ---- 3. and 4. create + destroy ------------------------------------------------------------- */
static int xm_anon_cycle(struct bench *b, uint64_t iters, double *seconds) {
  double t0 = tool_now();
  for (uint64_t i = 0; i < iters; i++) {
    xm_builder bl = xm_builder_new(b->param);
    xm_mapping *m = NULL;
    int rc = xm_builder_build(&bl, &m);
    if (rc) return xm_failed(b, "xm_builder_build", rc);
    xm_mapping_free(m);
  }
  *seconds = tool_now() - t0;
  return 0;
}

static int raw_anon_cycle(struct bench *b, uint64_t iters, double *seconds) {
  const size_t size = b->param;
  double t0 = tool_now();
  for (uint64_t i = 0; i < iters; i++) {
#ifdef _WIN32
    HANDLE s;
    void *p = raw_map(b, NULL, size, &s);
    if (!p) return XM_E_SYSTEM_CALL;
    raw_unmap(p, s);
#else
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return raw_failed(b, "mmap");
    munmap(p, size);
#endif
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
    if (rc) return xm_failed(b, "xm_shm_new", rc);
    xm_builder bl = xm_builder_new(size);
    xm_builder_from_shm(&bl, shm);
    rc = xm_builder_build(&bl, &m);
    if (rc) {
      xm_shm_free(shm);
      return xm_failed(b, "xm_builder_build", rc);
    }
    xm_mapping_free(m);
    xm_shm_free(shm);
  }
  *seconds = tool_now() - t0;
  return 0;
}

static int raw_shm_cycle(struct bench *b, uint64_t iters, double *seconds) {
#ifdef _WIN32
  return raw_anon_cycle(b, iters, seconds); /* a pagefile-backed section is Windows' shm */
#else
  const size_t size = b->param;
  double t0 = tool_now();
  for (uint64_t i = 0; i < iters; i++) {
#if defined(__linux__)
    int fd = memfd_create("xmmap-bench", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0) return raw_failed(b, "memfd_create");
#else
    char name[64];
    tool_format(name, sizeof name, "/xmmap-bench-%ld", (long)getpid());
    int fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0600);
    if (fd < 0) return raw_failed(b, "shm_open");
    shm_unlink(name);
#endif
    if (ftruncate(fd, (off_t)size) != 0) {
      close(fd);
      return raw_failed(b, "ftruncate");
    }
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
      close(fd);
      return raw_failed(b, "mmap");
    }
    munmap(p, size);
    close(fd);
  }
  *seconds = tool_now() - t0;
  return 0;
#endif
}

/* ---- 5. map a file, write it, (msync,) unmap -------------------------------------------------- */
static int xm_file_write(struct bench *b, uint64_t iters, double *seconds) {
  double t0 = tool_now();
  for (uint64_t i = 0; i < iters; i++) {
    xm_builder bl = xm_builder_new(FILE_SIZE);
    xm_builder_from_file(&bl, b->file.d);
    xm_mapping *m = NULL;
    int rc = xm_builder_build(&bl, &m);
    if (rc) return xm_failed(b, "xm_builder_build", rc);
    b->buf[0] = (unsigned char)i;
    rc = xm_mapping_write_slice(m, b->buf, FILE_SIZE, 0, NULL);
    if (!rc && b->param) rc = xm_mapping_msync(m);
    xm_mapping_free(m);
    if (rc) return xm_failed(b, b->param ? "xm_mapping_msync" : "xm_mapping_write_slice", rc);
  }
  *seconds = tool_now() - t0;
  return 0;
}

static int raw_file_write(struct bench *b, uint64_t iters, double *seconds) {
  double t0 = tool_now();
  for (uint64_t i = 0; i < iters; i++) {
    b->buf[0] = (unsigned char)i;
#ifdef _WIN32
    HANDLE s;
    void *p = raw_map(b, b->file.d, FILE_SIZE, &s);
    if (!p) return XM_E_SYSTEM_CALL;
    memcpy(p, b->buf, FILE_SIZE);
    if (b->param && (!FlushViewOfFile(p, FILE_SIZE) || !FlushFileBuffers(b->file.d))) {
      int rc = raw_failed(b, "FlushViewOfFile/FlushFileBuffers");
      raw_unmap(p, s);
      return rc;
    }
    raw_unmap(p, s);
#else
    /* 2 MiB-aligned: reserve, then map the file over the aligned part. */
    const size_t huge = 2 * MIB, span = FILE_SIZE + huge;
    void *r = mmap(NULL, span, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (r == MAP_FAILED) return raw_failed(b, "mmap");
    uintptr_t at = ((uintptr_t)r + huge - 1) & ~(uintptr_t)(huge - 1);
    void *p = mmap((void *)at, FILE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, b->file.d, 0);
    if (p == MAP_FAILED) {
      munmap(r, span);
      return raw_failed(b, "mmap");
    }
    memcpy(p, b->buf, FILE_SIZE);
    if (b->param && msync(p, FILE_SIZE, MS_SYNC) != 0) {
      munmap(r, span);
      return raw_failed(b, "msync");
    }
    munmap(r, span);
#endif
  }
  *seconds = tool_now() - t0;
  return 0;
}

/* ---- 6. flush ------------------------------------------------------------------------------- */
/* A large region is dirtied outside the clock and each flush timed alone. One flush of a small
   object takes about as long as reading the clock, so those are timed in batches, each iteration
   dirtying the object's lines with one store per line (the same for both sides) and flushing it. */
#define FLUSH_TIMED_ALONE (64 * KIB)

static void dirty_lines(unsigned char *p, size_t n, size_t line, uint64_t i) {
  for (size_t off = 0; off < n; off += line) p[off] = (unsigned char)(i + off / line);
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
        b->clean(b->base, n, b->line);
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
        b->clean(b->base, n, b->line);
      else
        rc = xm_mapping_flush_region(b->m, 0, n);
      total += tool_now() - t0;
    }
    *seconds = total;
  }
  return rc ? xm_failed(b, "xm_mapping_flush_region", rc) : 0;
}

static int xm_flush(struct bench *b, uint64_t iters, double *seconds) { return flush_loop(b, iters, seconds, false); }

static int raw_flush(struct bench *b, uint64_t iters, double *seconds) {
  if (!b->clean) return bench_fail(b, XM_E_NOT_IMPLEMENTED, "no raw flush loop for %s", xm_flush_method());
  return flush_loop(b, iters, seconds, true);
}

/* ---- 7. msync ------------------------------------------------------------------------------- */
static int xm_msync(struct bench *b, uint64_t iters, double *seconds) {
  double total = 0;
  for (uint64_t i = 0; i < iters; i++) {
    if (b->param) memset(b->base, (int)(i & 0x7f) + 1, FILE_SIZE); /* dirty, outside the clock */
    double t0 = tool_now();
    int rc = xm_mapping_msync(b->m);
    total += tool_now() - t0;
    if (rc) return xm_failed(b, "xm_mapping_msync", rc);
  }
  *seconds = total;
  return 0;
}

static int raw_msync(struct bench *b, uint64_t iters, double *seconds) {
  double total = 0;
  for (uint64_t i = 0; i < iters; i++) {
    if (b->param) memset(b->raw_base, (int)(i & 0x7f) + 1, FILE_SIZE);
    double t0 = tool_now();
#ifdef _WIN32
    bool ok = FlushViewOfFile(b->raw_base, FILE_SIZE) && FlushFileBuffers(b->file.d);
#else
    bool ok = msync(b->raw_base, FILE_SIZE, MS_SYNC) == 0;
#endif
    total += tool_now() - t0;
    if (!ok) return raw_failed(b, "msync");
  }
  *seconds = total;
  return 0;
}

/* ---- the workloads -------------------------------------------------------------------------- */
static const struct workload workloads[] = {
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
    {"anon 4 KiB create+destroy", US_PER_OP, GOAL_RATIO_MAX, 1.10, 100000, 20000, 4 * KIB, setup_nothing,
     xm_anon_cycle, raw_anon_cycle},
    {"shm 1 MiB create+map+destroy", US_PER_OP, GOAL_RATIO_MAX, 1.10, 50000, 20000, MIB, setup_nothing, xm_shm_cycle,
     raw_shm_cycle},
    {"file 1 MiB map+write+unmap", US_PER_OP, GOAL_FAULTS, 0, 2000, 500, 0, setup_file_write, xm_file_write,
     raw_file_write},
    {"file 1 MiB map+write+msync+unmap", US_PER_OP, GOAL_FAULTS, 0, 200, 50, 1, setup_file_write, xm_file_write,
     raw_file_write},
    {"flush dirty 1 MiB", US_PER_OP, GOAL_RATIO_MAX, 1.05, 8000, 2000, MIB, setup_flush, xm_flush, raw_flush},
    {"flush dirty 4 KiB object", US_PER_OP, GOAL_RATIO_MAX, 1.05, 1000000, 200000, 4 * KIB, setup_flush, xm_flush,
     raw_flush},
    {"msync clean 1 MiB", US_PER_OP, GOAL_RATIO_MAX, 1.02, 20000, 5000, 0, setup_msync, xm_msync, raw_msync},
    {"msync dirty 1 MiB", US_PER_OP, GOAL_RATIO_MAX, 1.02, 300, 100, 1, setup_msync, xm_msync, raw_msync},
};
#define N_WORKLOADS (sizeof workloads / sizeof workloads[0])

struct result {
  bool failed, not_available, no_baseline;
  char note[512];
  double median, p10, p90, baseline;
  double faults, baseline_faults;
};

static double metric(const struct workload *w, uint64_t iters, double seconds) {
  if (seconds <= 0) seconds = 1e-9;
  switch (w->unit) {
  case NS_PER_OP: return seconds / (double)iters * 1e9;
  case US_PER_OP: return seconds / (double)iters * 1e6;
  case GB_PER_S: return (double)w->param * (double)iters / seconds / 1e9;
  }
  return 0;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* The q-quantile (0..1) of n sorted values, linearly interpolated. */
static double quantile(const double *sorted, size_t n, double q) {
  double pos = q * (double)(n - 1);
  size_t lo = (size_t)pos;
  if (lo + 1 >= n) return sorted[n - 1];
  double frac = pos - (double)lo;
  return sorted[lo] * (1 - frac) + sorted[lo + 1] * frac;
}

struct options {
  bool quick, json, smoke, progress;
  const char *dir;
  unsigned rounds;
  double budget; /* seconds one side of one round may take */
};

static void progress(const struct options *o, size_t index, const char *name, const char *what) {
  if (!o->progress) return;
  char line[160];
  tool_format(line, sizeof line, "[%2zu/%zu] %s: %s", index + 1, N_WORKLOADS, name, what);
  fprintf(stderr, "\r%-79.79s", line);
  fflush(stderr);
}

/* One side of one round: the metric and the faults per iteration. */
static int run_side(struct bench *b, run_fn fn, uint64_t iters, double *seconds, double *faults) {
  uint64_t f0 = tool_page_faults();
  int rc = fn(b, iters, seconds);
  *faults = (double)(tool_page_faults() - f0) / (double)iters;
  return rc;
}

static void run_workload(const struct options *o, size_t index, struct result *res) {
  const struct workload *w = &workloads[index];
  struct bench *b = calloc(1, sizeof *b);
  memset(res, 0, sizeof *res);
  if (!b) {
    res->failed = true;
    tool_format(res->note, sizeof res->note, "out of memory");
    return;
  }
#ifdef _WIN32
  b->file.d = NULL;
#else
  b->file.d = -1;
#endif
  b->dir = o->dir;
  b->param = w->param;
  double *xs = calloc(o->rounds, sizeof *xs), *bs = calloc(o->rounds, sizeof *bs);
  double faults_sum = 0, base_faults_sum = 0;
  int rc = xs && bs ? 0 : bench_fail(b, XM_E_NO_MEMORY, "out of memory");
  if (!rc) {
    progress(o, index, w->name, "setup");
    rc = w->setup(b, w);
  }

  uint64_t iters = o->quick ? w->iters_quick : w->iters_full;
  if (o->smoke) iters = iters / 2000 ? iters / 2000 : 1;
  bool baseline_ok = true;
  if (!rc) {
    /* Warm-up (not recorded), which also sizes the rounds to the time budget. */
    progress(o, index, w->name, "warm-up");
    uint64_t warm = iters / 20 ? iters / 20 : 1;
    double sx = 0, sb = 0, f;
    rc = run_side(b, w->xm, warm, &sx, &f);
    if (!rc) {
      int brc = run_side(b, w->raw, warm, &sb, &f);
      if (brc == XM_E_NOT_IMPLEMENTED) {
        baseline_ok = false;
        tool_format(res->note, sizeof res->note, "baseline n/a: %s", b->error);
      } else if (brc) {
        rc = brc;
      }
    }
    double per_op = (sx > sb ? sx : sb) / (double)warm;
    if (!rc && per_op > 0 && per_op * (double)iters > o->budget) {
      uint64_t fit = (uint64_t)(o->budget / per_op);
      iters = fit > 1 ? fit : 1;
    }
  }
  for (unsigned r = 0; !rc && r < o->rounds; r++) {
    char what[64];
    tool_format(what, sizeof what, "round %u/%u", r + 1, o->rounds);
    progress(o, index, w->name, what);
    /* Alternate which side goes first, so neither always runs on a warmer machine. */
    for (int side = 0; !rc && side < 2; side++) {
      bool xm_side = (side == 0) == (r % 2 == 0);
      double seconds = 0, faults = 0;
      if (xm_side) {
        rc = run_side(b, w->xm, iters, &seconds, &faults);
        xs[r] = metric(w, iters, seconds);
        faults_sum += faults;
      } else if (baseline_ok) {
        rc = run_side(b, w->raw, iters, &seconds, &faults);
        bs[r] = metric(w, iters, seconds);
        base_faults_sum += faults;
      }
    }
  }
  if (rc == XM_E_NOT_IMPLEMENTED) {
    res->not_available = true;
    tool_format(res->note, sizeof res->note, "n/a: %s", b->error);
  } else if (rc) {
    res->failed = true;
    tool_format(res->note, sizeof res->note, "failed: %s", b->error);
  } else {
    qsort(xs, o->rounds, sizeof *xs, cmp_double);
    res->median = quantile(xs, o->rounds, 0.5);
    res->p10 = quantile(xs, o->rounds, 0.1);
    res->p90 = quantile(xs, o->rounds, 0.9);
    res->faults = faults_sum / o->rounds;
    res->no_baseline = !baseline_ok;
    if (baseline_ok) {
      qsort(bs, o->rounds, sizeof *bs, cmp_double);
      res->baseline = quantile(bs, o->rounds, 0.5);
      res->baseline_faults = base_faults_sum / o->rounds;
    }
  }
  teardown(b);
  if (b->sink == 0x5eed) fputc('\0', stderr); /* keeps the work observable */
  free(xs);
  free(bs);
  free(b);
}

/* ---- reporting ------------------------------------------------------------------------------ */
struct env {
  char cpu[128], flags[96], os[256], thp[64], fs[96], emulated[96];
  const char *dir;
  bool faults_counted;
};

static void collect_env(struct env *e, const char *dir) {
  tool_cpu_model(e->cpu, sizeof e->cpu);
  tool_cpu_flags(e->flags, sizeof e->flags);
  tool_os_description(e->os, sizeof e->os);
  tool_thp_mode(e->thp, sizeof e->thp);
  tool_fs_type(dir, e->fs, sizeof e->fs);
  const char *emulator = tool_emulator();
  e->emulated[0] = '\0';
  if (emulator) tool_format(e->emulated, sizeof e->emulated, "%s", emulator);
  e->dir = dir;
  e->faults_counted = true;
}

static double ratio_of(const struct result *r) {
  if (r->failed || r->not_available || r->no_baseline || r->baseline <= 0) return -1;
  return r->median / r->baseline;
}

/* "met", "missed" or "" (no goal or no figure). */
static const char *goal_state(const struct workload *w, const struct result *r) {
  double ratio = ratio_of(r);
  switch (w->goal) {
  case GOAL_RATIO_MAX: return ratio < 0 ? "" : ratio <= w->goal_value ? "met" : "missed";
  case GOAL_RATIO_MIN: return ratio < 0 ? "" : ratio >= w->goal_value ? "met" : "missed";
  case GOAL_FAULTS:
    if (r->failed || r->not_available || r->no_baseline || r->faults != r->faults) return "";
    return r->faults <= r->baseline_faults + 0.5 ? "met" : "missed";
  case GOAL_NONE: return "";
  }
  return "";
}

static void fmt_value(char *buf, size_t len, double v) {
  if (v >= 1000)
    tool_format(buf, len, "%.0f", v);
  else if (v >= 100)
    tool_format(buf, len, "%.1f", v);
  else if (v >= 10)
    tool_format(buf, len, "%.2f", v);
  else
    tool_format(buf, len, "%.3f", v);
}

static void print_json(const struct options *o, const struct env *e, const struct result *res) {
  printf("{\"workloads\": [");
  for (size_t i = 0; i < N_WORKLOADS; i++) {
    const struct workload *w = &workloads[i];
    const struct result *r = &res[i];
    bool have = !r->failed && !r->not_available;
    bool have_base = have && !r->no_baseline;
    printf("%s\n  {\"name\": ", i ? "," : "");
    tool_json_string(stdout, w->name);
    printf(", \"unit\": ");
    tool_json_string(stdout, unit_names[w->unit]);
    printf(", \"median\": ");
    tool_json_number(stdout, have ? r->median : (double)NAN);
    printf(", \"p10\": ");
    tool_json_number(stdout, have ? r->p10 : (double)NAN);
    printf(", \"p90\": ");
    tool_json_number(stdout, have ? r->p90 : (double)NAN);
    printf(", \"baseline\": ");
    tool_json_number(stdout, have_base ? r->baseline : (double)NAN);
    printf(", \"ratio\": ");
    double ratio = ratio_of(r);
    tool_json_number(stdout, ratio >= 0 ? ratio : (double)NAN);
    printf(", \"faults_per_iter\": ");
    tool_json_number(stdout, have ? r->faults : (double)NAN);
    printf(", \"baseline_faults_per_iter\": ");
    tool_json_number(stdout, have_base ? r->baseline_faults : (double)NAN);
    if (r->note[0]) {
      printf(", \"note\": ");
      tool_json_string(stdout, r->note);
    }
    printf("}");
  }
  printf("],\n \"env\": {\"xmmap\": ");
  tool_json_string(stdout, xm_version());
  printf(", \"backend\": ");
  tool_json_string(stdout, xm_backend_name());
  printf(", \"arch\": ");
  tool_json_string(stdout, tool_arch());
  printf(", \"cpu\": ");
  tool_json_string(stdout, e->cpu);
  printf(", \"cpu_flags\": ");
  tool_json_string(stdout, e->flags);
  printf(", \"cacheline_size\": %llu, \"cacheline_source\": ", (unsigned long long)xm_cacheline_size());
  tool_json_string(stdout, xm_cacheline_source());
  printf(", \"flush_method\": ");
  tool_json_string(stdout, xm_flush_method());
  printf(", \"kernel\": ");
  tool_json_string(stdout, e->os);
  printf(", \"thp\": ");
  tool_json_string(stdout, e->thp);
  printf(", \"temp_dir\": ");
  tool_json_string(stdout, e->dir);
  printf(", \"temp_dir_fs\": ");
  tool_json_string(stdout, e->fs);
  printf(", \"page_size\": %llu, \"allocation_granularity\": %llu", (unsigned long long)xm_page_size(),
         (unsigned long long)xm_allocation_granularity());
  printf(", \"emulated\": ");
  tool_json_string(stdout, e->emulated[0] ? e->emulated : NULL);
  printf(", \"faults_counted\": %s", e->faults_counted ? "true" : "false");
  printf(", \"mode\": ");
  tool_json_string(stdout, o->smoke ? "smoke" : o->quick ? "quick" : "full");
  printf(", \"rounds\": %u}}\n", o->rounds);
}

static void print_text(const struct options *o, const struct env *e, const struct result *res) {
  printf("xmmap bench (%s%s): xmmap %s, %s back end, %s\n", o->smoke ? "smoke" : o->quick ? "quick" : "full",
         e->emulated[0] ? ", EMULATED" : "", xm_version(), xm_backend_name(), tool_arch());
  printf("  %-12s %s\n", "cpu", e->cpu);
  printf("  %-12s %s\n", "cpu flags", e->flags);
  printf("  %-12s %llu bytes (%s), flush method %s\n", "cache line", (unsigned long long)xm_cacheline_size(),
         xm_cacheline_source(), xm_flush_method());
  printf("  %-12s %s\n", "kernel", e->os);
  printf("  %-12s %s\n", "thp", e->thp);
  printf("  %-12s %s (%s)\n", "temp dir", e->dir, e->fs);
  if (e->emulated[0])
    printf("  %-12s %s: every figure below is EMULATED, not the speed of the real system\n", "emulated", e->emulated);
  if (!e->faults_counted) printf("  %-12s this system does not count page faults: faults/iter is n/a\n", "faults");
  printf("  %-12s %u per workload, each interleaved with its baseline; median, p10 and p90 over the rounds\n\n",
         "rounds", o->rounds);

  printf("%-34s | %-16s | %-10s | %-10s | %-15s | %-6s | %s\n", "workload", "median", "p10", "p90",
         "baseline median", "ratio", "faults/iter");
  printf("%.35s+%.18s+%.12s+%.12s+%.17s+%.8s+%.13s\n", "------------------------------------",
         "------------------", "------------", "------------", "-----------------", "--------", "-------------");
  for (size_t i = 0; i < N_WORKLOADS; i++) {
    const struct workload *w = &workloads[i];
    const struct result *r = &res[i];
    if (r->failed || r->not_available) {
      printf("%-34s | %s\n", w->name, r->note);
      continue;
    }
    char med[32], p10[32], p90[32], base[32], ratio[32], faults[32], value[48];
    fmt_value(med, sizeof med, r->median);
    tool_format(value, sizeof value, "%s %s", med, unit_names[w->unit]);
    fmt_value(p10, sizeof p10, r->p10);
    fmt_value(p90, sizeof p90, r->p90);
    if (r->no_baseline) {
      tool_format(base, sizeof base, "n/a");
      tool_format(ratio, sizeof ratio, "n/a");
    } else {
      fmt_value(base, sizeof base, r->baseline);
      tool_format(ratio, sizeof ratio, "%.3f", ratio_of(r));
    }
    if (r->faults == r->faults)
      tool_format(faults, sizeof faults, "%.2f", r->faults);
    else
      tool_format(faults, sizeof faults, "n/a");
    printf("%-34s | %-16s | %-10s | %-10s | %-15s | %-6s | %s\n", w->name, value, p10, p90, base, ratio, faults);
  }

  printf("\nratio = xmmap / baseline: for ns/op and us/op lower is better, for GB/s higher is better.\n");
  printf("goals (tracked, not asserted):\n");
  for (size_t i = 0; i < N_WORKLOADS; i++) {
    const struct workload *w = &workloads[i];
    const struct result *r = &res[i];
    const char *state = goal_state(w, r);
    char goal[96];
    switch (w->goal) {
    case GOAL_RATIO_MAX: tool_format(goal, sizeof goal, "ratio <= %.2f", w->goal_value); break;
    case GOAL_RATIO_MIN: tool_format(goal, sizeof goal, "ratio >= %.2f", w->goal_value); break;
    case GOAL_FAULTS:
      if (r->faults == r->faults)
        tool_format(goal, sizeof goal, "faults/iter %.2f <= baseline's %.2f", r->faults, r->baseline_faults);
      else
        tool_format(goal, sizeof goal, "faults/iter <= the baseline's");
      break;
    case GOAL_NONE: goal[0] = '\0'; break;
    }
    printf("  %-34s %-44s %s\n", w->name, goal, state[0] ? state : r->no_baseline ? "no baseline here" : "n/a");
    if (r->no_baseline && r->note[0]) printf("  %-34s (%s)\n", "", r->note);
  }
#ifdef _WIN32
  printf("note: on Windows the file baseline is a plain MapViewOfFile view (64 KiB-aligned; Windows has no\n"
         "transparent huge pages for files).\n");
#endif
}

int tool_bench(int argc, char **argv) {
  struct options o = {false, false, false, false, NULL, 9, 1.0};
  for (int i = 1; i < argc; i++) {
    if (tool_is_help(argv[i])) {
      fputs(bench_help, stdout);
      return TOOL_EXIT_OK;
    }
    if (strcmp(argv[i], "--quick") == 0) {
      o.quick = true;
    } else if (strcmp(argv[i], "--json") == 0) {
      o.json = true;
    } else if (strcmp(argv[i], "--smoke") == 0) {
      o.smoke = true;
    } else if (strcmp(argv[i], "--dir") == 0) {
      if (i + 1 >= argc) return tool_usage_error("bench", "--dir needs a directory");
      o.dir = argv[++i];
    } else {
      return tool_usage_error("bench", "unknown option '%s'", argv[i]);
    }
  }
  if (!o.dir) o.dir = tool_temp_dir();
  if (o.quick || o.smoke) {
    o.rounds = 5;
    o.budget = o.smoke ? 0.02 : 0.3;
  }
  o.progress = tool_stderr_is_terminal();

  struct env e;
  collect_env(&e, o.dir);
  struct result *res = calloc(N_WORKLOADS, sizeof *res);
  if (!res) {
    fprintf(stderr, "xmmap bench: out of memory\n");
    return TOOL_EXIT_FAILED;
  }
  bool failed = false;
  for (size_t i = 0; i < N_WORKLOADS; i++) {
    run_workload(&o, i, &res[i]);
    failed |= res[i].failed;
  }
  /* The file workloads fault hundreds of pages in: a counter that never moved is not counting
     (Wine keeps PageFaultCount at 0). */
  if (tool_page_faults() == 0) {
    e.faults_counted = false;
    for (size_t i = 0; i < N_WORKLOADS; i++) res[i].faults = res[i].baseline_faults = (double)NAN;
  }
  if (o.progress) fprintf(stderr, "\r%79s\r", "");

  if (o.json)
    print_json(&o, &e, res);
  else
    print_text(&o, &e, res);
  free(res);
  return failed ? TOOL_EXIT_FAILED : TOOL_EXIT_OK;
}
