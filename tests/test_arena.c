/* The arena: crosvm's arena tests in units of the allocation granularity, removed ranges that
   fault, validation, empty and odd sizes, and threads changing one arena, or mapping beside it,
   at once. Descriptors in the arena and failures have their own test_arena_*.c. */
#include "xmtest_faults.h"

#include <stdatomic.h>
#include <stdbool.h>

/* Every arena offset and rounded size is a multiple of this (64 KiB on Windows). */
#define U (xm_allocation_granularity())

static bool unit_readable(const unsigned char *base, size_t k) {
  unsigned char r = 0;
  xt_probe_readable(base + k * U, U, 1, &r);
  return r != 0;
}

/* ---- crosvm's arena tests, pages replaced by the unit ----------------------------------------- */
static void arena_new(void **state) {
  (void)state;
  xm_arena *a = xt_arena(0x40000);
  xm_region *r = xm_arena_region(a);
  assert_int_equal(xm_region_size(r), 0x40000);
  assert_non_null(xm_region_ptr(r));
  assert_int_equal((uintptr_t)xm_region_ptr(r) % U, 0);
  xm_arena_free(a);
  const char *strategy = xm_arena_strategy();
  print_message("arena strategy: %s\n", strategy);
#ifdef _WIN32
  assert_true(strcmp(strategy, "placeholders") == 0 || strcmp(strategy, "split reservations") == 0);
#else
  assert_string_equal(strategy, "mmap");
#endif
}

static void arena_add(void **state) {
  (void)state;
  xm_arena *a = xt_arena(0x40000 > 4 * U ? 0x40000 : 4 * U);
  XT_OK(xm_arena_add_anon(a, 0, 4 * U, XM_PROT_READ_WRITE));
  xm_arena_free(a);
}

static void arena_remove(void **state) {
  (void)state;
  xm_arena *a = xt_arena(0x40000 > 4 * U ? 0x40000 : 4 * U);
  XT_OK(xm_arena_add_anon(a, 0, 4 * U, XM_PROT_READ_WRITE));
  XT_OK(xm_arena_remove(a, 0, U));
  XT_OK(xm_arena_remove(a, 0, 2 * U)); /* re-removing is fine */
  xm_arena_free(a);
}

static void arena_add_alignment_error(void **state) {
  (void)state;
  xm_arena *a = xt_arena(2 * U);
  XT_OK(xm_arena_add_anon(a, 0, 0x100, XM_PROT_READ_WRITE)); /* an unaligned size is rounded up */
  XT_STATUS(XM_E_NOT_PAGE_ALIGNED, xm_arena_add_anon(a, U + 1, 0x100, XM_PROT_READ_WRITE));
  char text[128];
  const size_t unit = xm_arena_granularity(a); /* the page where Windows has placeholders */
  snprintf(text, sizeof text, "offset %lu is not a multiple of the %lu-byte %s", (unsigned long)(U + 1),
           (unsigned long)unit, unit == xm_page_size() ? "page" : "allocation granularity");
  xt_assert_errmsg_has(text);
  xt_assert_errmsg_has(xm_strerror(XM_E_NOT_PAGE_ALIGNED));
  xm_arena_free(a);
}

static void arena_add_oob_error(void **state) {
  (void)state;
  xm_arena *a = xt_arena(U);
  XT_STATUS(XM_E_INVALID_ADDRESS, xm_arena_add_anon(a, 0, U + 1, XM_PROT_READ_WRITE));
  xt_assert_errmsg_has(xm_strerror(XM_E_INVALID_ADDRESS));
  XT_STATUS(XM_E_INVALID_ADDRESS, xm_arena_add_anon(a, U, 1, XM_PROT_READ_WRITE));
  XT_STATUS(XM_E_INVALID_ADDRESS, xm_arena_add_anon(a, 0, SIZE_MAX, XM_PROT_READ_WRITE));
  XT_STATUS(XM_E_INVALID_ADDRESS, xm_arena_remove(a, U, SIZE_MAX - U + 1)); /* offset + size wraps */
  XT_STATUS(XM_E_INVALID_ADDRESS, xm_arena_remove(a, 0, U + 1));
  xm_arena_free(a);
}

static void arena_add_overlapping(void **state) {
  (void)state;
  xm_arena *a = xt_arena(12 * U);
  XT_OK(xm_arena_add_anon(a, 4 * U, 4 * U, XM_PROT_READ_WRITE));
  XT_OK(xm_arena_add_anon(a, 2 * U, 3 * U, XM_PROT_READ_WRITE)); /* front overlap */
  XT_OK(xm_arena_add_anon(a, 7 * U, 3 * U, XM_PROT_READ_WRITE)); /* back overlap */
  XT_OK(xm_arena_add_anon(a, 3 * U, 6 * U, XM_PROT_READ_WRITE)); /* spans several */
  xm_arena_free(a);
}

static void arena_remove_overlapping(void **state) {
  (void)state;
  xm_arena *a = xt_arena(12 * U);
  XT_OK(xm_arena_add_anon(a, 4 * U, 4 * U, XM_PROT_READ_WRITE));
  XT_OK(xm_arena_add_anon(a, 2 * U, 2 * U, XM_PROT_READ_WRITE));
  XT_OK(xm_arena_add_anon(a, 8 * U, 2 * U, XM_PROT_READ_WRITE));
  XT_OK(xm_arena_remove(a, 3 * U, 2 * U));
  XT_OK(xm_arena_remove(a, 7 * U, 2 * U));
  XT_OK(xm_arena_remove(a, 5 * U, 2 * U));
  xm_arena_free(a);
}

static void arena_remove_unaligned(void **state) {
  (void)state;
  xm_arena *a = xt_arena(U);
  XT_OK(xm_arena_add_anon(a, 0, U, XM_PROT_READ_WRITE));
  XT_OK(xm_arena_remove(a, 0, U - 1)); /* rounded up: the whole unit goes */
  assert_false(unit_readable(xt_arena_base(a), 0));
  xm_arena_free(a);
}

static void arena_msync(void **state) {
  (void)state;
  const size_t size = 0x40000, ps = xm_page_size();
  xm_arena *a = xt_arena(size);
  xm_region *r = xm_arena_region(a);
  XT_OK(xm_region_msync(r, 0, ps));
  XT_OK(xm_region_msync(r, 0, size));
  XT_OK(xm_region_msync(r, ps, size - ps));
  XT_STATUS(XM_E_INVALID_ADDRESS, xm_region_msync(r, ps, size));
  XT_OK(xm_region_msync(r, size, 0));
  /* and with memory mapped in parts of it */
  XT_OK(xm_arena_add_anon(a, U, U, XM_PROT_READ_WRITE));
  XT_OK(xm_region_msync(r, 0, size));
  XT_OK(xm_region_msync(r, U + 1, 10));
  xm_arena_free(a);
}

static void arena_madvise(void **state) {
  (void)state;
  const size_t size = 0x40000, ps = xm_page_size();
  xm_arena *a = xt_arena(size);
  xm_region *r = xm_arena_region(a);
  XT_OK(xm_arena_add_anon(a, 0, size, XM_PROT_READ_WRITE)); /* MADV_REMOVE needs a writable mapping */
  int pageout = xm_region_advise(r, 0, ps, XM_ADVICE_PAGEOUT);
  if (pageout == XM_E_NOT_IMPLEMENTED) {
    print_message("PAGEOUT: %s\n", xm_errmsg());
  } else {
    XT_OK(pageout);
    XT_OK(xm_region_advise(r, 0, size, XM_ADVICE_PAGEOUT));
  }
  int remove = xm_region_advise(r, ps, size - ps, XM_ADVICE_REMOVE);
  if (remove == XM_E_NOT_IMPLEMENTED)
    print_message("REMOVE: %s\n", xm_errmsg());
  else
    XT_OK(remove);
  XT_STATUS(XM_E_INVALID_ADDRESS, xm_region_advise(r, ps, size, XM_ADVICE_PAGEOUT));
  XT_STATUS(XM_E_INVALID_ADDRESS, xm_region_advise(r, ps, size, XM_ADVICE_REMOVE));
  XT_STATUS(XM_E_INVALID_ARGUMENT, xm_region_advise(r, 0, ps, (xm_advice)99));
  XT_STATUS(XM_E_NOT_PAGE_ALIGNED, xm_region_advise(r, 1, ps, XM_ADVICE_REMOVE));
  XT_OK(xm_region_advise(r, size, 0, XM_ADVICE_REMOVE));
  XT_OK(xm_region_advise(r, 0, size, XM_ADVICE_WILLNEED));
  /* advice over reserved space has nothing to act on */
  XT_OK(xm_arena_remove(a, 0, size));
  XT_OK(xm_region_advise(r, 0, size, XM_ADVICE_WILLNEED));
  xm_arena_free(a);
}

/* ---- what is not mapped faults (crosvm's arena read zeros there) ------------------------------ */
static void removed_range_faults(void **state) {
  (void)state;
  xm_arena *a = xt_arena(4 * U);
  unsigned char *base = xt_arena_base(a);
  unsigned char seen[4];
  xt_probe_readable(base, U, 4, seen); /* a fresh arena is inaccessible */
  for (int k = 0; k < 4; k++)
    assert_false(seen[k]);
  XT_OK(xm_arena_add_anon(a, 0, 4 * U, XM_PROT_READ_WRITE));
  memset(base, 0x5a, 4 * U);
  XT_OK(xm_arena_remove(a, U, 2 * U));
  xt_probe_readable(base, U, 4, seen);
  assert_true(seen[0] && !seen[1] && !seen[2] && seen[3]);
  assert_int_equal(base[U - 1], 0x5a); /* the neighbours keep their data */
  assert_int_equal(base[3 * U], 0x5a);
#ifdef _WIN32
  MEMORY_BASIC_INFORMATION mbi;
  assert_int_equal(VirtualQuery(base + U, &mbi, sizeof mbi), sizeof mbi);
  assert_true(mbi.State != MEM_COMMIT || (mbi.Protect & PAGE_NOACCESS));
#else
  /* An unguarded read kills the reader with SIGSEGV (crosvm read zeros there). */
  int sig = xt_child_touch(base + U + 17, 0);
  if (sig != SIGSEGV) print_message("child ended with %d\n", sig);
  assert_int_equal(sig, SIGSEGV);
#endif
  xm_arena_free(a);
}

/* ---- pieces of the library's own objects --------------------------------------------------------- */
/* The arena knows the objects the library made (no descriptor checks by the OS on the hot path)
   and applies their policies before any OS call; a descriptor number reused after xm_shm_free is
   checked again as any descriptor. */
static void pieces_of_library_objects(void **state) {
  (void)state;
  xm_arena *a = xt_arena(4 * U);
  unsigned char *base = xt_arena_base(a);
  xm_shm *shm = NULL, *clone = NULL;
  XT_OK(xm_shm_new("known", 2 * U, &shm));
  XT_OK(xm_shm_clone(shm, &clone));
  XT_OK(xm_arena_add_fd(a, 0, U, xm_shm_descriptor(shm), U, XM_PROT_READ_WRITE));
  XT_OK(xm_arena_add_fd(a, U, U, xm_shm_descriptor(clone), U, XM_PROT_READ_WRITE));
  base[7] = 0x5c;
  assert_int_equal(base[U + 7], 0x5c); /* both pieces are the object's second unit */

  xm__test_fail_nth(0, 0);
  XT_STATUS(XM_E_ACCESS, xm_arena_add_fd(a, 2 * U, U, xm_shm_descriptor(shm), 0, XM_PROT_READ | XM_PROT_EXEC));
  xt_assert_errmsg_has("without XM_SHM_EXEC");
  XT_STATUS(XM_E_ACCESS, xm_arena_add_fd(a, 0, U, xm_shm_descriptor(clone), 0, XM_PROT_READ | XM_PROT_EXEC));
  assert_int_equal(xm__test_os_calls(), 0);
  assert_int_equal(base[7], 0x5c); /* the piece refused over it is still the old one */

  xm_shm *exec = NULL;
  XT_OK(xm_shm_new_ex("known-exec", U, XM_SHM_EXEC, 0, &exec));
  XT_OK(xm_arena_add_fd(a, 3 * U, U, xm_shm_descriptor(exec), 0, XM_PROT_READ | XM_PROT_EXEC));
  xm_shm_free(exec);

#if !defined(_WIN32)
  /* The freed object's number, reused by a pipe: refused as a pipe, not mapped as the object. */
  const xm_descriptor freed = xm_shm_descriptor(clone);
  xm_shm_free(clone);
  clone = NULL;
  int fds[2];
  assert_int_equal(pipe(fds), 0);
  if (fds[0] == freed || fds[1] == freed) {
    XT_STATUS(XM_E_INVALID_ARGUMENT, xm_arena_add_fd(a, 2 * U, U, freed, 0, XM_PROT_READ));
    xt_assert_errmsg_has("cannot be mapped");
  }
  close(fds[0]);
  close(fds[1]);
#endif
  xm_shm_free(clone);
  xm_arena_free(a);
  xm_shm_free(shm);
}

/* ---- validation --------------------------------------------------------------------------------- */
static void validation(void **state) {
  (void)state;
  xm_arena *a = xt_arena(4 * U);
  unsigned char *base = xt_arena_base(a);
  XT_OK(xm_arena_add_anon(a, 0, U, XM_PROT_READ_WRITE));
  base[0] = 42;
  xm_shm *shm = NULL;
  XT_OK(xm_shm_new("validation", 2 * U, &shm));
  const xm_descriptor d = xm_shm_descriptor(shm);

  xm__test_fail_nth(0, 0);
  XT_STATUS(XM_E_INVALID_ARGUMENT, xm_arena_add_anon(a, 0, U, 8));
  XT_STATUS(XM_E_INVALID_ARGUMENT, xm_arena_add_fd(a, 0, U, d, 0, 0x10));
  XT_STATUS(XM_E_NOT_PAGE_ALIGNED, xm_arena_add_fd(a, 0, U, d, 1, XM_PROT_READ));
  xt_assert_errmsg_has("descriptor offset 1 is not a multiple");
  XT_STATUS(XM_E_INVALID_OFFSET, xm_arena_add_fd(a, 0, U, d, (uint64_t)INT64_MAX + 1, XM_PROT_READ));
  XT_STATUS(XM_E_INVALID_OFFSET, xm_arena_add_fd(a, 0, U, d, (uint64_t)INT64_MAX - 1, XM_PROT_READ));
  XT_STATUS(XM_E_NOT_PAGE_ALIGNED, xm_arena_remove(a, 1, U));
  XT_STATUS(XM_E_INVALID_ADDRESS, xm_arena_remove(a, 4 * U, 1));
  /* size 0 is a no-op (crosvm fails in mmap), after the same validation */
  XT_OK(xm_arena_add_anon(a, 0, 0, XM_PROT_READ_WRITE));
  XT_OK(xm_arena_add_anon(a, 4 * U, 0, XM_PROT_READ_WRITE));
  XT_OK(xm_arena_remove(a, 0, 0));
  XT_STATUS(XM_E_NOT_PAGE_ALIGNED, xm_arena_add_anon(a, 1, 0, XM_PROT_READ_WRITE));
  XT_STATUS(XM_E_INVALID_ADDRESS, xm_arena_remove(a, 5 * U, 0));
  assert_int_equal(xm__test_os_calls(), 0); /* all refused before any OS call */

  /* an invalid descriptor is found by an OS call on it, before anything changes */
  XT_STATUS(XM_E_SYSTEM_CALL, xm_arena_add_fd(a, 0, U, XT_BAD_DESCRIPTOR, 0, XM_PROT_READ));
  assert_int_equal(xm_os_error(), XT_BAD_DESCRIPTOR_ERROR);
  assert_int_equal(base[0], 42);

  /* NULL handles */
  XT_STATUS(XM_E_INVALID_ARGUMENT, xm_arena_new(U, NULL));
  XT_STATUS(XM_E_INVALID_ARGUMENT, xm_arena_add_anon(NULL, 0, U, XM_PROT_READ));
  XT_STATUS(XM_E_INVALID_ARGUMENT, xm_arena_add_fd(NULL, 0, U, d, 0, XM_PROT_READ));
  XT_STATUS(XM_E_INVALID_ARGUMENT, xm_arena_remove(NULL, 0, U));
  assert_null(xm_arena_region(NULL));
  xm_arena_free(NULL);
  xm_region_free(xm_arena_region(a)); /* the arena's region lives and dies with the arena */
  assert_int_equal(base[0], 42);

  xm_shm_free(shm);
  xm_arena_free(a);
}

static void empty_and_odd_sizes(void **state) {
  (void)state;
  xm_arena *a = NULL;
  xm__test_fail_nth(0, 0);
  XT_OK(xm_arena_new(0, &a)); /* valid and empty, like an empty mapping */
  assert_int_equal(xm__test_os_calls(), 0);
  xm_region *r = xm_arena_region(a);
  assert_null(xm_region_ptr(r));
  assert_int_equal(xm_region_size(r), 0);
  XT_OK(xm_arena_add_anon(a, 0, 0, XM_PROT_READ));
  XT_STATUS(XM_E_INVALID_ADDRESS, xm_arena_add_anon(a, 0, 1, XM_PROT_READ));
  XT_OK(xm_region_msync(r, 0, 0));
  XT_OK(xm_region_advise(r, 0, 0, XM_ADVICE_WILLNEED));
  xm_arena_free(a);

  /* a size that is not a multiple of the unit: the last unit is reserved whole */
  a = xt_arena(2 * U + 1);
  assert_int_equal(xm_region_size(xm_arena_region(a)), 2 * U + 1);
  XT_OK(xm_arena_add_anon(a, 2 * U, 1, XM_PROT_READ_WRITE));
  unsigned char *base = xt_arena_base(a);
  base[3 * U - 1] = 1; /* the whole unit is mapped */
  XT_STATUS(XM_E_INVALID_ADDRESS, xm_arena_add_anon(a, 2 * U, 2, XM_PROT_READ_WRITE));
  XT_STATUS(XM_E_INVALID_ADDRESS, xm_region_msync(xm_arena_region(a), 2 * U, 2));
  xm_arena_free(a);
}

/* ---- threads ------------------------------------------------------------------------------------ */
#define THREADS 4
#define UNITS_PER_THREAD 4
#define ROUNDS 100

struct worker {
  xm_arena *arena;
  size_t first; /* the thread's first unit */
  int failures;
  char why[160];
};

static void worker_fail(struct worker *w, const char *what, int round) {
  if (w->failures++ == 0) snprintf(w->why, sizeof w->why, "round %d: %s (%s)", round, what, xm_errmsg());
}

/* Each thread churns its own units (the data must stay its own) while the others change theirs:
   the arena's list and the OS state are shared, and serialized inside. */
static void work(struct worker *w) {
  xm_arena *a = w->arena;
  unsigned char *p = xt_arena_base(a) + w->first * U;
  const size_t at = w->first * U;
  for (int round = 0; round < ROUNDS; round++) {
    unsigned char tag = (unsigned char)(w->first * 16 + (size_t)round % 13 + 1);
    if (xm_arena_add_anon(a, at, UNITS_PER_THREAD * U, XM_PROT_READ_WRITE) != XM_OK) worker_fail(w, "add", round);
    memset(p, tag, UNITS_PER_THREAD * U);
    if (xm_arena_remove(a, at + U, U) != XM_OK) worker_fail(w, "remove", round);
    if (xm_arena_add_anon(a, at + U, 2 * U, XM_PROT_READ_WRITE) != XM_OK) worker_fail(w, "re-add", round);
    if (p[0] != tag || p[U - 1] != tag || p[3 * U] != tag || p[U] != 0 || p[3 * U - 1] != 0)
      worker_fail(w, "data", round);
    if (xm_region_msync(xm_arena_region(a), at, UNITS_PER_THREAD * U) != XM_OK) worker_fail(w, "msync", round);
    int advised = xm_region_advise(xm_arena_region(a), at, UNITS_PER_THREAD * U, XM_ADVICE_WILLNEED);
    if (advised != XM_OK && advised != XM_E_NOT_IMPLEMENTED) worker_fail(w, "advise", round);
    if (xm_arena_remove(a, at, UNITS_PER_THREAD * U) != XM_OK) worker_fail(w, "remove all", round);
    /* objects made and freed while the other threads add theirs: the arena's table of known
       objects (one slot per live object, reused) must give each add its own object's policy */
    xm_shm *shm = NULL;
    if (xm_shm_new_ex("arena-race", U, round % 3 ? 0 : XM_SHM_EXEC, 0, &shm) != XM_OK) {
      worker_fail(w, "shm", round);
      continue;
    }
    int exec = xm_arena_add_fd(a, at, U, xm_shm_descriptor(shm), 0, XM_PROT_READ | XM_PROT_EXEC);
    if (exec != (round % 3 ? XM_E_ACCESS : XM_OK)) worker_fail(w, "exec policy", round);
    if (xm_arena_add_fd(a, at, U, xm_shm_descriptor(shm), 0, XM_PROT_READ_WRITE) != XM_OK)
      worker_fail(w, "add shm", round);
    p[5] = tag;
    if (xm_arena_remove(a, at, U) != XM_OK) worker_fail(w, "remove shm", round);
    xm_shm_free(shm);
  }
  /* leave one unit mapped with the thread's mark */
  if (xm_arena_add_anon(a, at + 2 * U, U, XM_PROT_READ_WRITE) != XM_OK) worker_fail(w, "final add", ROUNDS);
  p[2 * U] = (unsigned char)(0xc0 + w->first);
}

static XT_THREAD_RET thread_main(void *arg) {
  work(arg);
  return 0;
}

static void concurrent_changes(void **state) {
  (void)state;
  xm_arena *a = xt_arena(THREADS * UNITS_PER_THREAD * U);
  struct worker workers[THREADS];
  memset(workers, 0, sizeof workers);
  xt_thread threads[THREADS];
  for (int t = 0; t < THREADS; t++) {
    workers[t].arena = a;
    workers[t].first = (size_t)t * UNITS_PER_THREAD;
    xt_thread_start(&threads[t], thread_main, &workers[t]);
  }
  for (int t = 0; t < THREADS; t++)
    xt_thread_join(threads[t]);
  for (int t = 0; t < THREADS; t++) {
    if (workers[t].failures)
      print_message("thread %d: %d failures, first: %s\n", t, workers[t].failures, workers[t].why);
    assert_int_equal(workers[t].failures, 0);
  }
  unsigned char seen[THREADS * UNITS_PER_THREAD];
  unsigned char *base = xt_arena_base(a);
  xt_probe_readable(base, U, THREADS * UNITS_PER_THREAD, seen);
  for (size_t k = 0; k < THREADS * UNITS_PER_THREAD; k++) {
    bool mapped = k % UNITS_PER_THREAD == 2;
    assert_int_equal(seen[k] != 0, mapped);
    if (mapped) assert_int_equal(base[k * U], 0xc0 + k - 2);
  }
  xm_arena_free(a);
}
/* Other threads' mappings (and their placement probes) may land where a Windows arena with split
   reservations frees address space for a moment: the arena must never touch what is theirs, and
   must stay usable whatever it lost. Elsewhere the arena never frees its addresses, and the same
   churn must simply work. */
struct arena_race {
  atomic_int stop;
  atomic_int failures;
};

static XT_THREAD_RET mapping_churn(void *arg) {
  struct arena_race *race = arg;
  const size_t gran = xm_allocation_granularity();
  for (int i = 0; !atomic_load(&race->stop); i++) {
    xm_builder b = xm_builder_new((size_t)(1 + i % 4) * gran);
    if (i % 2) xm_builder_align(&b, 1u << 20);
    xm_mapping *m = NULL;
    if (xm_builder_build(&b, &m) != XM_OK) {
      atomic_fetch_add(&race->failures, 1);
      continue;
    }
    unsigned char *p = xm_mapping_ptr(m);
    p[0] = (unsigned char)i; /* faults if the arena freed this view */
    if (p[0] != (unsigned char)i) atomic_fetch_add(&race->failures, 1);
    xm_mapping_free(m);
  }
  return 0;
}

static void arena_races_mappings(void **state) {
  (void)state;
  struct arena_race race;
  atomic_init(&race.stop, 0);
  atomic_init(&race.failures, 0);
  xt_thread threads[3];
  for (int i = 0; i < 3; i++)
    xt_thread_start(&threads[i], mapping_churn, &race);
  xm_arena *a = xt_arena(16 * U);
  unsigned char *base = xt_arena_base(a);
  int lost = 0;
  const int rounds = xt_rounds(300);
  for (int round = 0; round < rounds; round++) {
    size_t at = (size_t)(round % 12) * U;
    int rc = xm_arena_add_anon(a, at, 4 * U, XM_PROT_READ_WRITE);
    if (rc == XM_OK) {
      base[at] = 1;
      base[at + 4 * U - 1] = 2;
    } else {
      assert_int_equal(rc, XM_E_SYSTEM_CALL); /* address space lost to another thread */
      lost++;
    }
    rc = xm_arena_remove(a, at + U, U);
    if (rc != XM_OK) {
      assert_int_equal(rc, XM_E_SYSTEM_CALL);
      lost++;
    }
  }
  atomic_store(&race.stop, 1);
  for (int i = 0; i < 3; i++)
    xt_thread_join(threads[i]);
  xm_arena_free(a);
  if (lost) print_message("%d arena changes lost address space to other threads\n", lost);
  assert_int_equal(atomic_load(&race.failures), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(arena_new),
      cmocka_unit_test(arena_add),
      cmocka_unit_test(arena_remove),
      cmocka_unit_test(arena_add_alignment_error),
      cmocka_unit_test(arena_add_oob_error),
      cmocka_unit_test(arena_add_overlapping),
      cmocka_unit_test(arena_remove_overlapping),
      cmocka_unit_test(arena_remove_unaligned),
      cmocka_unit_test(arena_msync),
      cmocka_unit_test(arena_madvise),
      cmocka_unit_test(removed_range_faults),
      cmocka_unit_test(pieces_of_library_objects),
      cmocka_unit_test(validation),
      cmocka_unit_test(empty_and_odd_sizes),
      cmocka_unit_test(concurrent_changes),
      cmocka_unit_test(arena_races_mappings),
  };
  return XT_RUN_TESTS_AFTER_A_SNAPSHOT(tests);
}
