/* What the parts of `xmmap bench` share: a workload and its two sides, the state one workload
   runs on, its result, and the raw OS baselines (bench_posix.c / bench_windows.c). */
#ifndef XMMAP_TOOL_BENCH_H
#define XMMAP_TOOL_BENCH_H

#include "arch.h" /* xm__clean_lines_fn: the raw flush baseline is the arch unit's own loop */
#include "tool.h"

/* For the loop helpers each side calls with constants: inlined, every side keeps a loop of its own
   with no branch on the side inside. */
#if defined(__GNUC__)
#define LOOP_HELPER static inline __attribute__((always_inline))
#else
#define LOOP_HELPER static inline
#endif

#define KIB ((size_t)1 << 10)
#define MIB ((size_t)1 << 20)
#define U64_SPAN (16 * KIB) /* the checked-access region: fits L1 with the offset table */
#define N_OFFSETS 1024u     /* power of two */
#define SLICE_SPAN MIB
#define FILE_SIZE MIB

enum goal { GOAL_NONE, GOAL_RATIO_MAX, GOAL_RATIO_MIN, GOAL_FAULTS };
enum unit { NS_PER_OP, US_PER_OP, GB_PER_S };

struct bench;
/* Runs iters iterations; *seconds is the time of the measured part. 0, or a negative status:
   XM_E_NOT_IMPLEMENTED makes the workload n/a, anything else a failure (message in b->error). */
typedef int (*run_fn)(struct bench *b, uint64_t iters, double *seconds);

struct workload {
  const char *name;
  enum unit unit;
  enum goal goal;
  double goal_value;
  uint64_t iters_full, iters_quick;
  size_t param; /* size, or a variant */
  int (*setup)(struct bench *b, const struct workload *w);
  run_fn xm, raw;
};

extern const struct workload bench_workloads[];
extern const size_t bench_workload_count;

/* A raw mapping made by bench_raw_map_file: addr is where the bytes are; the rest is what
   releasing it takes (the whole reservation on POSIX, the section handle on Windows). */
struct raw_view {
  unsigned char *addr;
  void *release_addr;
  size_t release_len;
  void *section;
};

struct bench {
  size_t param;
  xm_mapping *m;
  unsigned char *base;      /* xm_mapping_ptr(m) */
  unsigned char *buf;       /* a caller buffer: buf_block, or the first page boundary in it */
  unsigned char *buf_block; /* what malloc returned */
  struct raw_view raw;      /* a raw FILE_SIZE mapping of the file, for the msync baseline */
  uint32_t offsets[N_OFFSETS];
  tool_file file;
  bool have_file;
  const char *dir;
  xm__clean_lines_fn clean; /* the raw flush loop, or NULL */
  xm_code *code;            /* the JIT workloads' buffer */
  unsigned char *rwx;       /* their baseline's read-write-execute buffer */
  size_t rwx_len;
  size_t line;
  size_t page;
  xm_fault_hook **hooks; /* the fault workloads' hooks */
  size_t hook_count;
  xm_arena *hook_arena;                      /* the range the other hooks cover */
  unsigned char *raw_page;                   /* the fault baseline's own page */
  struct bench_dirty *dirty;                 /* the write-tracking workloads' state (bench_dirty.c) */
  struct bench_arena *arena, *arena_few;     /* the arena workloads' state (bench_arena.c) */
  xm_arena *arena_big, *arena_small;         /* the arena-size workload (bench_arena_size.c) */
  uint64_t arena_big_step, arena_small_step; /* where its next change goes */
  xm_shm *arena_shm;                         /* what its pieces map */
  bool smoke;                                /* --smoke: workloads may shrink what they set up */
  uint64_t sink;
  char error[512];
};

/* The command line, as bench.c read it. */
struct bench_options {
  bool quick, json, smoke, progress;
  const char *dir;
  const char *only; /* run only the workloads whose name contains it, or NULL */
  unsigned rounds;
  double budget; /* seconds one side of one round may take */
};

/* The result of one workload: medians over the rounds, or why there are none. */
struct result {
  bool failed, not_available, no_baseline, not_selected;
  char note[512];
  double median, p10, p90, baseline;
  double faults, baseline_faults;
};

/* ---- bench_workloads.c ----------------------------------------------------------------------- */
/* An anonymous read-write mapping of size bytes in b->m, faulted in. */
int bench_map_anon(struct bench *b, size_t size);
/* Frees whatever a workload's setup took. */
void bench_teardown(struct bench *b);
/* Records a failure's message in b->error and returns rc. */
int bench_fail(struct bench *b, int rc, const char *fmt, ...) TOOL_PRINTF(3, 4);
/* An xmmap call failed: keeps its message. */
int bench_xm_failed(struct bench *b, const char *call, int rc);

/* ---- bench_flush.c: the flush workload, with the arch unit's loop as its baseline ------------ */
int bench_setup_flush(struct bench *b, const struct workload *w);
int bench_xm_flush(struct bench *b, uint64_t iters, double *seconds);
int bench_raw_flush(struct bench *b, uint64_t iters, double *seconds);

/* ---- bench_jit.c: write code and make it executable; baseline memcpy into RWX + cache clear -- */
enum { JIT_TOGGLE = 1 }; /* in a JIT workload's param (a size, a page multiple): the toggle strategy */
int bench_setup_jit(struct bench *b, const struct workload *w);
int bench_xm_jit(struct bench *b, uint64_t iters, double *seconds);
int bench_raw_jit(struct bench *b, uint64_t iters, double *seconds);

/* ---- bench_arena_size.c: add+remove in a 512 GiB arena; baseline the same in a 1 GiB one ---- */
int bench_setup_arena_size(struct bench *b, const struct workload *w);
void bench_teardown_arena_size(struct bench *b);
int bench_xm_arena_big(struct bench *b, uint64_t iters, double *seconds);
int bench_xm_arena_small(struct bench *b, uint64_t iters, double *seconds);

/* ---- bench_fault.c: fault, hook lifts the protection, retry; baseline a raw handler --------- */
int bench_setup_fault(struct bench *b, const struct workload *w);
void bench_teardown_fault(struct bench *b);
int bench_xm_fault(struct bench *b, uint64_t iters, double *seconds);
/* ---- bench_dirty.c: write tracking over 1 GiB, 1% of pages written per round, and its raw
   baselines in bench_dirty_posix.c / bench_dirty_windows.c ------------------------------------ */
enum { DIRTY_UFFD_WP, DIRTY_PROTECT }; /* a write-tracking workload's param: the strategy */
int bench_setup_dirty(struct bench *b, const struct workload *w);
int bench_xm_dirty(struct bench *b, uint64_t iters, double *seconds);
int bench_raw_dirty(struct bench *b, uint64_t iters, double *seconds);
void bench_teardown_dirty(struct bench *b);
/* A raw tracker of strategy over a new len-byte read-write shared mapping, written in full and
   then armed (*base: the mapping); XM_E_NOT_IMPLEMENTED with the reason in b->error where the OS
   has no such strategy. */
struct bench_raw_tracker;
int bench_raw_tracker_new(struct bench *b, int strategy, size_t len, struct bench_raw_tracker **out,
                          unsigned char **base);
/* Around a run of rounds: installs (and removes) what catches the first writes, if anything. */
int bench_raw_tracker_enter(struct bench *b, struct bench_raw_tracker *t);
void bench_raw_tracker_leave(struct bench_raw_tracker *t);
/* Sets the bit of every page written since the last collect, re-arms those pages, and adds how
   many there were to *count. */
int bench_raw_tracker_collect(struct bench *b, struct bench_raw_tracker *t, uint64_t *bitmap, size_t *count);
void bench_raw_tracker_free(struct bench_raw_tracker *t);

/* ---- bench_arena.c: add+remove among param pieces; its raw baseline in bench_posix.c /
   bench_windows.c ------------------------------------------------------------------------------ */
int bench_setup_arena(struct bench *b, const struct workload *w);
int bench_xm_arena(struct bench *b, uint64_t iters, double *seconds);
int bench_raw_arena(struct bench *b, uint64_t iters, double *seconds);
/* The same among param pieces, with the same among 100 pieces as the baseline (both xmmap). */
int bench_setup_arena_growth(struct bench *b, const struct workload *w);
int bench_xm_arena_few(struct bench *b, uint64_t iters, double *seconds);
void bench_teardown_arena(struct bench *b);
/* The raw layout: n adjacent unit-sized views of d, view k at object offset 2k units, in a
   reservation of their own; a cycle replaces view k with reserved space and maps it back (the
   two OS calls the arena makes), k scattered as on the xmmap side. */
struct bench_raw_arena;
int bench_raw_arena_new(struct bench *b, xm_descriptor d, size_t n, size_t unit, struct bench_raw_arena **out);
int bench_raw_arena_cycle(struct bench *b, struct bench_raw_arena *r, uint64_t iters, double *seconds);
void bench_raw_arena_free(struct bench_raw_arena *r);

/* ---- bench_report.c -------------------------------------------------------------------------- */
/* The workload's figure for iters iterations that took seconds. */
double bench_metric(const struct workload *w, uint64_t iters, double seconds);
void bench_sort(double *values, size_t n);
/* The q-quantile (0..1) of n sorted values, linearly interpolated. */
double bench_quantile(const double *sorted, size_t n, double q);
/* The whole report, text or JSON, for the results of every workload (faults_counted: whether
   this system counts page faults at all). */
void bench_report(const struct bench_options *o, const struct result *res, bool faults_counted);

/* ---- bench_posix.c / bench_windows.c (one is compiled): the raw baselines -------------------- */
/* A failed OS call: its error (errno / GetLastError) into b->error; XM_E_SYSTEM_CALL. */
int bench_raw_failed(struct bench *b, const char *call);
/* Create and destroy a param-byte anonymous shared mapping; the same with a shared-memory
   object. */
int bench_raw_anon_cycle(struct bench *b, uint64_t iters, double *seconds);
int bench_raw_shm_cycle(struct bench *b, uint64_t iters, double *seconds);
/* A read-write shared mapping of FILE_SIZE bytes of b->file; huge_aligned places it on a 2 MiB
   boundary where the OS can back a file with huge pages. */
int bench_raw_map_file(struct bench *b, bool huge_aligned, struct raw_view *v);
/* Writes the view back to the file and waits for it (msync MS_SYNC / FlushViewOfFile +
   FlushFileBuffers). */
int bench_raw_sync(struct bench *b, const struct raw_view *v);
void bench_raw_unmap(struct raw_view *v);
/* A private read-write-execute buffer of size bytes in b->rwx (b->rwx_len), and its release. */
int bench_raw_map_rwx(struct bench *b, size_t size);
void bench_raw_unmap_rwx(struct bench *b);
/* The fault baseline: a page of its own, and a handler of its own in front while it runs, that
   lifts the page's protection with one OS call. */
int bench_raw_fault_setup(struct bench *b);
void bench_raw_fault_teardown(struct bench *b);
int bench_raw_fault(struct bench *b, uint64_t iters, double *seconds);
/* A line the text report adds about the baselines on this OS, or NULL. */
extern const char *const bench_raw_note;

#endif /* XMMAP_TOOL_BENCH_H */
