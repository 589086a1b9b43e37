/* The uffd-wp back end (src/os.h) under threads: trackers made, used and stopped on several
   threads at once, and writer threads racing a collecting thread - no write may be missed. Where
   the probe says no (Windows, QEMU user mode, valgrind, kernels before 6.7) the tests skip with its
   reason. Also run under TSan. */
#include "xmtest_uffd.h"

#ifndef _WIN32
/* Trackers made, used and stopped on several threads at once share only the probe's answer and
   the process's pagemap descriptor: each still collects exactly its own writes. */
enum { PARALLEL_THREADS = 4 };
static XT_THREAD_RET parallel_tracker(void *arg) {
  long *failures = arg;
  for (int round = 0; round < xt_rounds(40); round++) {
    unsigned char *p = mmap(NULL, 8 * page, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
      ++*failures;
      continue;
    }
    struct xm__os_wp wp = {-1};
    uint64_t bitmap[1] = {0};
    size_t count = 0;
    if (xm__os_wp_start(p, 8 * page, &wp) != XM_OK) {
      ++*failures;
    } else {
      p[(size_t)(round % 8) * page] = 1;
      if (xm__os_wp_collect(&wp, p, 8 * page, bitmap, 0, &count) != XM_OK || count != 1 ||
          bitmap[0] != (uint64_t)1 << (round % 8))
        ++*failures;
      xm__os_wp_stop(&wp, p, 8 * page);
    }
    munmap(p, 8 * page);
  }
  return 0;
}

static void trackers_on_several_threads(void **state) {
  (void)state;
  SKIP_WITHOUT_UFFD_WP();
  xt_thread t[PARALLEL_THREADS];
  long failures[PARALLEL_THREADS] = {0};
  for (int i = 0; i < PARALLEL_THREADS; i++)
    xt_thread_start(&t[i], parallel_tracker, &failures[i]);
  for (int i = 0; i < PARALLEL_THREADS; i++) {
    xt_thread_join(t[i]);
    assert_int_equal(failures[i], 0);
  }
}

/* ---- racing writers: a write is reported by the first collect that starts after it ----------- */
/* Writers make at least 2000 writes, and go on until RACE_COLLECTS more collects have started (or
   they made RACE_WRITES writes). */
enum { RACE_PAGES = 256, RACE_WRITERS = 2, RACE_WRITES = 50000, RACE_COLLECTS = 500 };
struct race {
  struct memory m;
  struct xm__os_wp wp;
  _Atomic long collects_started;
  _Atomic int writers_ready, writers_done;
  uint64_t (*reports)[RACE_PAGES / 64]; /* per collect */
  long max_collects;
  struct record {
    unsigned page;
    long first, last; /* a collect in [first, last] must report it */
  } records[RACE_WRITERS][RACE_WRITES];
  int writes[RACE_WRITERS];
};

struct writer {
  struct race *r;
  int id;
};

static XT_THREAD_RET race_writer(void *arg) {
  const struct writer *w = arg;
  struct race *r = w->r;
  unsigned seed = 12345u + (unsigned)w->id * 7919u;
  atomic_fetch_add(&r->writers_ready, 1);
  while (atomic_load(&r->collects_started) == 0) /* overlap the collects */
    ;
  const long until = atomic_load(&r->collects_started) + xt_rounds(RACE_COLLECTS);
  int i = 0;
  for (; i < RACE_WRITES && (i < 2000 || atomic_load(&r->collects_started) < until); i++) {
    seed = seed * 1103515245u + 12345u;
    unsigned p = (seed >> 8) % RACE_PAGES;
    /* the collect running now may or may not see the write; the next one to start must */
    long first = atomic_load(&r->collects_started) - 1;
    ((volatile long *)(void *)(r->m.p + p * page))[1 + w->id] = i; /* its sequence number, in its own slot */
    long last = atomic_load(&r->collects_started);
    r->records[w->id][i] = (struct record){p, first < 0 ? 0 : first, last};
  }
  r->writes[w->id] = i;
  atomic_fetch_add(&r->writers_done, 1);
  return 0;
}

static void no_write_is_missed_by_racing_collects(void **state) {
  (void)state;
  SKIP_WITHOUT_UFFD_WP();
  struct race *r = calloc(1, sizeof *r);
  assert_non_null(r);
  r->m = map_memory(MEMFD, RACE_PAGES);
  r->max_collects = 200000;
  r->reports = calloc((size_t)r->max_collects, sizeof *r->reports);
  assert_non_null(r->reports);
  XT_OK(xm__os_wp_start(r->m.p, RACE_PAGES * page, &r->wp));
  xt_thread t[RACE_WRITERS];
  struct writer writers[RACE_WRITERS];
  for (int i = 0; i < RACE_WRITERS; i++) {
    writers[i] = (struct writer){r, i};
    xt_thread_start(&t[i], race_writer, &writers[i]);
  }
  while (atomic_load(&r->writers_ready) < RACE_WRITERS)
    ;
  long c = 0;
  for (bool done = false; !done && c < r->max_collects - 1; c++) {
    done = atomic_load(&r->writers_done) == RACE_WRITERS; /* one more collect after the last write */
    atomic_store(&r->collects_started, c + 1);            /* collect c starts */
    size_t count = 0;
    XT_OK(xm__os_wp_collect(&r->wp, r->m.p, RACE_PAGES * page, r->reports[c], 0, &count));
  }
  for (int i = 0; i < RACE_WRITERS; i++)
    xt_thread_join(t[i]);
  long missed = 0;
  long writes = 0;
  for (int w = 0; w < RACE_WRITERS; w++)
    for (int i = 0; i < r->writes[w]; i++, writes++) {
      const struct record *rec = &r->records[w][i];
      bool seen = false;
      for (long k = rec->first; k <= rec->last && k < c && !seen; k++)
        seen = bit(r->reports[k], rec->page);
      missed += !seen;
    }
  print_message("%ld writes by %d threads over %ld collects, %ld missed\n", writes, RACE_WRITERS, c, missed);
  assert_int_equal(missed, 0);
  xm__os_wp_stop(&r->wp, r->m.p, RACE_PAGES * page);
  unmap_memory(&r->m);
  free(r->reports);
  free(r);
}

int main(void) {
  page = xm__os_page_size();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(trackers_on_several_threads),
      cmocka_unit_test(no_write_is_missed_by_racing_collects),
  };
  return XT_RUN_TESTS_AFTER_A_SNAPSHOT(tests);
}
#else
static void skipped_by_probe(void **state) {
  (void)state;
  SKIP_WITHOUT_UFFD_WP();
  fail_msg("Windows must not offer uffd-wp");
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(skipped_by_probe)};
  return XT_RUN_TESTS_AFTER_A_SNAPSHOT(tests);
}
#endif
