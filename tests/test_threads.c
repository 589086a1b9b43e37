/* Thread safety, as include/xmmap/xmmap.h states it (facts are computed once and thread-safe;
   a mapping's accessors, flush, msync and advice may run from many threads at once; errors are
   per thread; freeing must not race with uses of the same object): 8 threads race the once-initialised facts at
   start-up, then concurrently create, use (checked, volatile and fault-safe access), flush, sync
   and free their own mappings and shared-memory objects, share one mapping and one arena (each
   thread adds and removes ranges of it), and check after each of their own failures that
   xm_errmsg() / xm_os_error() are theirs; threads racing placement for address space retry,
   never fail or overlap. Run under TSan by the host-tsan preset. */
#include "xmtest.h"

#include <stdatomic.h>

#ifdef _WIN32
static void yield_now(void) { SwitchToThread(); }
#else
#include <sched.h>
static void yield_now(void) { sched_yield(); }
#endif

#define NTHREADS 8
#define UNITS_PER_THREAD 4

/* Under valgrind and emulators XMMAP_TEST_ROUNDS asks for fewer rounds (see xt_rounds). */
static int rounds(void) { return xt_rounds(100); }

/* A reusable spinning barrier (C11 atomics; no pthread_barrier on Windows). */
static atomic_int barrier_count, barrier_phase;
static void barrier_wait(void) {
  int phase = atomic_load(&barrier_phase);
  if (atomic_fetch_add(&barrier_count, 1) + 1 == NTHREADS) {
    atomic_store(&barrier_count, 0);
    atomic_fetch_add(&barrier_phase, 1);
    return;
  }
  while (atomic_load(&barrier_phase) == phase)
    yield_now();
}

struct facts {
  size_t page, gran, line;
  const char *method, *source;
};

struct worker {
  int id;
  struct facts facts;
  xm_mapping *shared; /* one page per thread */
  xm_arena *arena;    /* UNITS_PER_THREAD units per thread */
  int operations;     /* calls made, for the summary */
  int intruded;       /* adds another thread's allocation got in the way of (split reservations) */
  char error[256];    /* the first thing that went wrong, "" if nothing did */
};

static xm_mapping *shared_mapping;
static xm_arena *shared_arena;

#define CHECK(w, cond, ...)                                                                                            \
  do {                                                                                                                 \
    (w)->operations++;                                                                                                 \
    if (!(cond) && (w)->error[0] == '\0') {                                                                            \
      snprintf((w)->error, sizeof(w)->error, __VA_ARGS__);                                                             \
      return;                                                                                                          \
    }                                                                                                                  \
  } while (0)
#define CHECK_RC(w, expected, call)                                                                                    \
  do {                                                                                                                 \
    int rc_ = (call);                                                                                                  \
    CHECK(w, rc_ == (expected), "thread %d: %s -> %d (%s), expected %d", (w)->id, #call, rc_, xm_errmsg(),             \
          (int)(expected));                                                                                            \
  } while (0)

/* This thread's own failures, each checked after the other threads had a chance to fail too. */
static void own_failures(struct worker *w, xm_mapping *m, int round) {
  char want[96];
  uint64_t v = 0;
  size_t offset = xm_mapping_size(m) + (size_t)(1000 * w->id + round);
  CHECK_RC(w, XM_E_INVALID_ADDRESS, xm_mapping_read_obj(m, &v, sizeof v, offset));
  yield_now();
  snprintf(want, sizeof want, "offset=%zu count=8", offset);
  CHECK(w, strstr(xm_errmsg(), want) != NULL, "thread %d: xm_errmsg() \"%s\" is not its own (%s)", w->id, xm_errmsg(),
        want);
  CHECK(w, xm_os_error() == 0, "thread %d: xm_os_error() %d after a failure without an OS call", w->id, xm_os_error());

  xm_slice whole = {xm_mapping_ptr(m), (size_t)(16 + w->id)}, out;
  CHECK_RC(w, XM_E_OUT_OF_BOUNDS, xm_slice_sub(whole, 0, (size_t)(17 + w->id), &out));
  yield_now();
  snprintf(want, sizeof want, "address 0x%x is out of bounds", 17 + w->id);
  CHECK(w, strcmp(xm_errmsg(), want) == 0, "thread %d: xm_errmsg() \"%s\" is not \"%s\"", w->id, xm_errmsg(), want);

  /* an OS failure: its error number is this thread's */
  xm_builder b = xm_builder_new(4096);
  xm_builder_from_file(&b, XT_BAD_DESCRIPTOR);
  xm_mapping *none = NULL;
  CHECK_RC(w, XM_E_SYSTEM_CALL, xm_builder_build(&b, &none));
  yield_now();
  CHECK(w, xm_os_error() == XT_BAD_DESCRIPTOR_ERROR, "thread %d: xm_os_error() %d, expected %d", w->id, xm_os_error(),
        XT_BAD_DESCRIPTOR_ERROR);
  CHECK(w, strstr(xm_errmsg(), "mmap related system call failed") != NULL, "thread %d: xm_errmsg() \"%s\"", w->id,
        xm_errmsg());
}

/* A private mapping: checked, volatile and safe access, flush, msync, advice, then free. */
static void own_mapping(struct worker *w, int round, int flush_status) {
  size_t page = w->facts.page, size = page * (size_t)(1 + (round + w->id) % 4);
  xm_builder b = xm_builder_new(size);
  if (round % 3 == 1) xm_builder_populate(&b);
  xm_mapping *m = NULL;
  CHECK_RC(w, XM_OK, xm_builder_build(&b, &m));
  uint64_t pattern = 0x1000000000000000u * (uint64_t)(w->id + 1) + (uint64_t)round, got = 0;
  for (size_t off = 0; off + 8 <= size; off += page / 2) {
    CHECK_RC(w, XM_OK, xm_mapping_write_obj(m, &pattern, sizeof pattern, off + 3));
    CHECK_RC(w, XM_OK, xm_mapping_read_obj(m, &got, sizeof got, off + 3));
    CHECK(w, got == pattern, "thread %d: read back 0x%llx", w->id, (unsigned long long)got);
  }
  CHECK_RC(w, XM_OK, xm_mapping_write_obj_volatile(m, &pattern, 8, size - 8));
  got = 0;
  CHECK_RC(w, XM_OK, xm_mapping_read_obj_volatile(m, &got, 8, size - 8));
  CHECK(w, got == pattern, "thread %d: volatile read back 0x%llx", w->id, (unsigned long long)got);
  unsigned char buf[64];
  size_t copied = 0;
  memset(buf, w->id, sizeof buf);
  CHECK_RC(w, XM_OK, xm_mapping_write_slice_safe(m, buf, sizeof buf, size - 32, &copied));
  CHECK(w, copied == 32, "thread %d: safe write copied %zu", w->id, copied);
  CHECK_RC(w, XM_OK, xm_mapping_read_slice(m, buf, sizeof buf, size - 64, &copied));
  CHECK(w, copied == 64 && buf[63] == (unsigned char)w->id, "thread %d: slice read back %u", w->id, buf[63]);
  CHECK_RC(w, flush_status, xm_mapping_flush_region(m, 5, size - 10));
  CHECK_RC(w, XM_OK, xm_mapping_msync(m));
  CHECK_RC(w, XM_OK, xm_mapping_sync_range(m, 0, size, XM_SYNC_ASYNC));
  own_failures(w, m, round);
  xm_mapping_free(m);
}

/* A shared-memory object mapped twice (once through a clone): one memory. */
static void own_shm(struct worker *w, int round) {
  size_t page = w->facts.page;
  xm_shm *shm = NULL, *clone = NULL;
  char name[32];
  snprintf(name, sizeof name, "xmmap-thread-%d", w->id);
  CHECK_RC(w, XM_OK, xm_shm_new(name, page, &shm));
  CHECK_RC(w, XM_OK, xm_shm_clone(shm, &clone));
  xm_builder b = xm_builder_new(page);
  xm_builder_from_shm(&b, shm);
  xm_mapping *one = NULL, *two = NULL;
  CHECK_RC(w, XM_OK, xm_builder_build(&b, &one));
  xm_builder_from_shm(&b, clone);
  CHECK_RC(w, XM_OK, xm_builder_build(&b, &two));
  uint32_t v = (uint32_t)(w->id * 100000 + round), got = 0;
  CHECK_RC(w, XM_OK, xm_mapping_write_obj_volatile(one, &v, 4, 64));
  CHECK_RC(w, XM_OK, xm_mapping_read_obj_volatile(two, &got, 4, 64));
  CHECK(w, got == v, "thread %d: shm views disagree (%u, %u)", w->id, got, v);
  xm_mapping_free(one);
  xm_shm_free(shm); /* the clone and its mapping outlive the original */
  CHECK_RC(w, XM_OK, xm_mapping_read_obj(two, &got, 4, 64));
  CHECK(w, got == v, "thread %d: shm clone lost the data", w->id);
  xm_mapping_free(two);
  xm_shm_free(clone);
}

/* This thread's page of the shared mapping: accessed, flushed, synced and advised while the
   other threads do the same with theirs. */
static void shared_page(struct worker *w, int round, int flush_status) {
  size_t page = w->facts.page, base = page * (size_t)w->id;
  uint64_t v = (uint64_t)w->id << 32 | (uint64_t)round, got = 0;
  CHECK_RC(w, XM_OK, xm_mapping_write_obj_volatile(w->shared, &v, 8, base + 8 * (size_t)(round % 16)));
  CHECK_RC(w, XM_OK, xm_mapping_read_obj(w->shared, &got, 8, base + 8 * (size_t)(round % 16)));
  CHECK(w, got == v, "thread %d: shared page read back 0x%llx", w->id, (unsigned long long)got);
  CHECK_RC(w, flush_status, xm_mapping_flush_region(w->shared, base, page));
  CHECK_RC(w, XM_OK, xm_mapping_sync_range(w->shared, base, page, XM_SYNC_SYNC));
  CHECK_RC(w, XM_OK, xm_region_msync(xm_mapping_region(w->shared), base, page));
  int advise = xm_mapping_advise(w->shared, base, page, XM_ADVICE_WILLNEED);
  CHECK(w, advise == XM_OK || advise == XM_E_NOT_IMPLEMENTED, "thread %d: advise -> %d (%s)", w->id, advise,
        xm_errmsg());
}

/* Adds this thread's units. With Windows split reservations another thread's allocation may take
   the addresses an add freed, for as long as it lives: the add fails as documented (the message
   names it, the range stays reserved around it) and is made again once the other thread lets go. */
static int add_units(struct worker *w, size_t at, size_t len) {
  for (int tries = 0;; tries++) {
    int rc = xm_arena_add_anon(w->arena, at, len, XM_PROT_READ_WRITE);
    if (rc != XM_E_SYSTEM_CALL || tries == 1000 || strcmp(xm_arena_strategy(), "split reservations") != 0 ||
        !strstr(xm_errmsg(), "taken by an allocation that is not the arena's"))
      return rc;
    w->intruded++;
    yield_now();
  }
}

/* This thread's units of the shared arena: add, use, remove, while the others change theirs. */
static void arena_units(struct worker *w, int round) {
  size_t unit = w->facts.gran, first = unit * UNITS_PER_THREAD * (size_t)w->id;
  size_t at = first + unit * (size_t)(round % UNITS_PER_THREAD);
  size_t len = unit * (size_t)(1 + (round / UNITS_PER_THREAD) % (UNITS_PER_THREAD - round % UNITS_PER_THREAD));
  CHECK_RC(w, XM_OK, add_units(w, at, len));
  volatile unsigned char *p = (unsigned char *)xm_region_ptr(xm_arena_region(w->arena)) + at;
  CHECK(w, p[0] == 0 && p[len - 1] == 0, "thread %d: fresh arena memory is not zero", w->id);
  p[0] = (unsigned char)(w->id + 1);
  p[len - 1] = (unsigned char)round;
  CHECK(w, p[0] == (unsigned char)(w->id + 1), "thread %d: arena memory lost a write", w->id);
  CHECK_RC(w, XM_OK, xm_region_msync(xm_arena_region(w->arena), at, len));
  /* a failure of this thread's own, inside the arena's validation */
  CHECK_RC(w, XM_E_NOT_PAGE_ALIGNED, xm_arena_add_anon(w->arena, at + 1, len, XM_PROT_READ));
  yield_now();
  char want[64];
  snprintf(want, sizeof want, "offset %zu is not a multiple", at + 1);
  CHECK(w, strstr(xm_errmsg(), want) != NULL, "thread %d: xm_errmsg() \"%s\" lacks \"%s\"", w->id, xm_errmsg(), want);
  CHECK_RC(w, XM_OK, xm_arena_remove(w->arena, at, len));
}

static void facts_of(struct facts *f) {
  /* the first calls of the process: each of these is initialised once, raced here */
  f->line = xm_cacheline_size();
  f->method = xm_flush_method();
  f->source = xm_cacheline_source();
  f->page = xm_page_size();
  f->gran = xm_allocation_granularity();
}

static XT_THREAD_RET worker_main(void *arg) {
  struct worker *w = arg;
  barrier_wait();
  facts_of(&w->facts); /* the process's first calls into the library */
  barrier_wait();
  if (w->id == 0) { /* the shared objects, after the race */
    xm_builder b = xm_builder_new(w->facts.page * NTHREADS);
    if (xm_builder_build(&b, &shared_mapping) != XM_OK ||
        xm_arena_new(w->facts.gran * UNITS_PER_THREAD * NTHREADS, &shared_arena) != XM_OK)
      snprintf(w->error, sizeof w->error, "thread 0: shared objects: %s", xm_errmsg());
  }
  barrier_wait();
  w->shared = shared_mapping;
  w->arena = shared_arena;
  if (!w->shared || !w->arena) return 0;
  int flush_status = strcmp(w->facts.method, "none") == 0 ? XM_E_NOT_IMPLEMENTED : XM_OK;
  const int n = rounds();
  for (int round = 0; round < n; round++) {
    /* after a failure the thread only keeps the others' barriers company */
    if (!w->error[0]) own_mapping(w, round, flush_status);
    if (!w->error[0]) own_shm(w, round);
    if (!w->error[0]) shared_page(w, round, flush_status);
    if (!w->error[0]) arena_units(w, round);
    if (round % 8 == 0) barrier_wait(); /* bunch the threads up again now and then */
  }
  return 0;
}

static void threads_share_the_library(void **state) {
  (void)state;
  /* Nothing here calls the library before the threads do: they race its once-initialised facts
     (this is the program's first test), and thread 0 makes the shared objects afterwards. */
  static struct worker workers[NTHREADS];
  memset(workers, 0, sizeof workers);
  for (int i = 0; i < NTHREADS; i++)
    workers[i].id = i;
  xt_thread threads[NTHREADS];
  for (int i = 0; i < NTHREADS; i++)
    xt_thread_start(&threads[i], worker_main, &workers[i]);
  for (int i = 0; i < NTHREADS; i++)
    xt_thread_join(threads[i]);
  int operations = 0, intruded = 0;
  for (int i = 0; i < NTHREADS; i++) {
    if (workers[i].error[0]) print_message("%s\n", workers[i].error);
    operations += workers[i].operations;
    intruded += workers[i].intruded;
  }
  if (intruded)
    print_message("%d arena adds made again after another thread's allocation took their addresses\n", intruded);
  for (int i = 0; i < NTHREADS; i++)
    assert_string_equal(workers[i].error, "");
  /* every thread saw the same once-initialised facts */
  for (int i = 1; i < NTHREADS; i++) {
    assert_int_equal(workers[i].facts.page, workers[0].facts.page);
    assert_int_equal(workers[i].facts.gran, workers[0].facts.gran);
    assert_int_equal(workers[i].facts.line, workers[0].facts.line);
    assert_ptr_equal(workers[i].facts.method, workers[0].facts.method);
    assert_ptr_equal(workers[i].facts.source, workers[0].facts.source);
  }
  assert_int_equal(workers[0].facts.line, xm_cacheline_size());
  assert_string_equal(workers[0].facts.method, xm_flush_method());
  print_message("threads: %d threads, %d rounds, %d checked operations; flush %s, line %lu\n", NTHREADS, rounds(),
                operations, workers[0].facts.method, (unsigned long)workers[0].facts.line);
  /* the shared page of every thread holds its last write */
  size_t page = xm_page_size();
  for (int i = 0; i < NTHREADS; i++) {
    uint64_t v = 0;
    int last = rounds() - 1;
    XT_OK(xm_mapping_read_obj(shared_mapping, &v, 8, page * (size_t)i + 8 * (size_t)(last % 16)));
    assert_true(v == ((uint64_t)i << 32 | (uint64_t)last));
  }
  xm_arena_free(shared_arena);
  xm_mapping_free(shared_mapping);
}

/* Threads that each create and free many mappings and shm objects while the others do the same:
   no descriptor or handle is left afterwards. */
static XT_THREAD_RET churn_main(void *arg) {
  struct worker *w = arg;
  barrier_wait();
  for (int round = 0; round < rounds(); round++) {
    xm_builder b = xm_builder_new(w->facts.page * (size_t)(1 + round % 3));
    if (round % 2) xm_builder_guard_pages(&b, 1);
    if (round % 5 == 0) xm_builder_align(&b, (uint64_t)w->facts.gran * 4);
    xm_mapping *m = NULL;
    int rc = xm_builder_build(&b, &m);
    w->operations++;
    if (rc != XM_OK) {
      snprintf(w->error, sizeof w->error, "thread %d: build -> %d (%s)", w->id, rc, xm_errmsg());
      break;
    }
    xm_shm *s = NULL;
    rc = xm_shm_new("churn", w->facts.page, &s);
    if (rc != XM_OK) {
      snprintf(w->error, sizeof w->error, "thread %d: shm -> %d (%s)", w->id, rc, xm_errmsg());
      xm_mapping_free(m);
      break;
    }
    xm_shm_free(s);
    xm_mapping_free(m);
  }
  return 0;
}

static void churn_leaks_nothing(void **state) {
  (void)state;
  static struct worker workers[NTHREADS];
  memset(workers, 0, sizeof workers);
  atomic_store(&barrier_count, 0);
  xt_snapshot before = xt_snap();
  for (int i = 0; i < NTHREADS; i++) {
    workers[i].id = i;
    workers[i].facts.page = xm_page_size();
    workers[i].facts.gran = xm_allocation_granularity();
  }
  xt_thread threads[NTHREADS];
  for (int i = 0; i < NTHREADS; i++)
    xt_thread_start(&threads[i], churn_main, &workers[i]);
  for (int i = 0; i < NTHREADS; i++)
    xt_thread_join(threads[i]);
  for (int i = 0; i < NTHREADS; i++) {
    if (workers[i].error[0]) print_message("%s\n", workers[i].error);
    assert_string_equal(workers[i].error, "");
  }
  /* Descriptors and handles only: thread stacks come and go as mappings of their own (glibc
     caches them, valgrind and sanitizers manage their own), which a count cannot tell from a
     leak; mapping leaks are counted by the single-threaded tests. */
  xt_snapshot after = xt_snap();
  after.mappings = before.mappings;
  xt_assert_same(before, after);
}

/* Placement reserves address space and maps there after releasing the reservation (Windows
   cannot map into a reservation without placeholders), and guard pages and alignment need room:
   threads racing for address space must retry, never fail or overlap. */
static XT_THREAD_RET placement_worker(void *arg) {
  atomic_int *failures = arg;
  const size_t gran = xm_allocation_granularity(), page = xm_page_size();
  const int n = xt_rounds(200);
  for (int i = 0; i < n; i++) {
    xm_builder b = xm_builder_new(gran + page);
    xm_builder_align(&b, (i & 1) ? 1u << 20 : 4 * 65536u);
    if (i % 3) xm_builder_guard_pages(&b, 1);
    xm_mapping *m = NULL;
    if (xm_builder_build(&b, &m) != XM_OK) {
      atomic_fetch_add(failures, 1);
      continue;
    }
    uint64_t mark = (uint64_t)(uintptr_t)m, back = 0;
    xm_mapping_write_obj(m, &mark, sizeof mark, gran);
    xm_mapping_read_obj(m, &back, sizeof back, gran);
    if (back != mark) atomic_fetch_add(failures, 1);
    xm_mapping_free(m);
  }
  return 0;
}

static void placement_races(void **state) {
  (void)state;
  atomic_int failures;
  atomic_init(&failures, 0);
  xt_thread threads[NTHREADS];
  long handles = xt_snap().handles;
  for (int i = 0; i < NTHREADS; i++)
    xt_thread_start(&threads[i], placement_worker, &failures);
  for (int i = 0; i < NTHREADS; i++)
    xt_thread_join(threads[i]);
  assert_int_equal(atomic_load(&failures), 0);
  assert_int_equal(xt_snap().handles, handles);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(threads_share_the_library),
      cmocka_unit_test(churn_leaks_nothing),
      cmocka_unit_test(placement_races),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
