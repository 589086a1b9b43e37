/* Write tracking through the public API, with the strategy this run gets (ctest runs it again
   with XMMAP_DIRTY=protect): exactly the pages written, nothing twice, the owner's protection
   kept, safe copies recorded, arena pieces replaced under a tracker, two trackers at once, the
   recovery when per-page protection is refused, and writers racing a collecting thread with
   every write reported by the first collect that starts after it completed. */
#include <stdatomic.h>

#include "xmtest_faults.h"
#include "xmtest_prot.h"

#define PAGE (xm_page_size())
#define U (xm_allocation_granularity())

/* cmocka puts its own fault handlers in front around every test: each tracker puts back the one
   that main() captured after a first tracker had the library install its dispatcher. */
static void own_fault_signals(void) {
#ifndef _WIN32
  xt_own_fault_signals();
#endif
}

static void capture_fault_signals(void) {
#ifndef _WIN32
  xm_mapping *m = NULL;
  xm_builder b = xm_builder_new(xm_page_size());
  xm_dirty *d = NULL;
  if (xm_builder_build(&b, &m) == XM_OK && xm_dirty_new(xm_mapping_region(m), 0, xm_page_size(), 0, &d) == XM_OK)
    xm_dirty_free(d);
  xm_mapping_free(m);
  (void)xt_capture_library_handler();
#endif
}

static int forced_protect(void) {
  const char *v = getenv("XMMAP_DIRTY");
  return v && strcmp(v, "protect") == 0;
}

/* A tracker over [offset, offset + len) of r, its strategy checked against XMMAP_DIRTY. */
static xm_dirty *track(xm_region *r, size_t offset, size_t len) {
  own_fault_signals();
  xm_dirty *d = NULL;
  XT_OK(xm_dirty_new(r, offset, len, 0, &d));
  assert_non_null(d);
  const char *s = xm_dirty_strategy(d);
  assert_true(strcmp(s, "protect") == 0 || strcmp(s, "uffd-wp") == 0);
  if (forced_protect()) assert_string_equal(s, "protect");
  assert_int_equal(xm_dirty_page_size(d), PAGE);
  return d;
}

static int is_protect(const xm_dirty *d) { return strcmp(xm_dirty_strategy(d), "protect") == 0; }

/* Collects and asserts exactly the pages listed in want[0..n) were reported. */
static void expect_pages(xm_dirty *d, size_t npages, const size_t *want, size_t n) {
  uint64_t bits[64];
  assert_true(npages <= 64 * 64);
  memset(bits, 0xa5, sizeof bits); /* collect clears what it does not report */
  size_t count = 12345;
  XT_OK(xm_dirty_collect(d, bits, npages, &count));
  for (size_t i = 0, k = 0; i < npages; i++) {
    int set = (bits[i / 64] >> (i % 64)) & 1;
    int wanted = k < n && want[k] == i;
    if (set != wanted) print_message("page %lu reported %d, expected %d\n", (unsigned long)i, set, wanted);
    assert_int_equal(set, wanted);
    k += (size_t)wanted;
  }
  assert_int_equal(count, n);
}

static void bad_input(void **state) {
  (void)state;
  xm_mapping *m = xt_anon(8 * PAGE);
  xm_region *r = xm_mapping_region(m);
  xm_dirty *d = NULL;
  XT_STATUS(XM_E_INVALID_ARGUMENT, xm_dirty_new(NULL, 0, PAGE, 0, &d));
  XT_STATUS(XM_E_INVALID_ARGUMENT, xm_dirty_new(r, 0, PAGE, 0, NULL));
  XT_STATUS(XM_E_INVALID_ARGUMENT, xm_dirty_new(r, 0, PAGE, 1, &d));
  xt_assert_errmsg_has("flags 0x1");
  XT_STATUS(XM_E_INVALID_ARGUMENT, xm_dirty_new(r, 0, 0, 0, &d));
  XT_STATUS(XM_E_INVALID_ADDRESS, xm_dirty_new(r, PAGE, 8 * PAGE, 0, &d));
  XT_STATUS(XM_E_NOT_PAGE_ALIGNED, xm_dirty_new(r, 100, PAGE, 0, &d));
  assert_null(d);
  d = track(r, 2 * PAGE, 4 * PAGE);
  xm_dirty *other = NULL;
  XT_STATUS(XM_E_EXISTS, xm_dirty_new(r, 0, 3 * PAGE, 0, &other)); /* overlaps page 2 */
  XT_STATUS(XM_E_EXISTS, xm_dirty_new(r, 5 * PAGE, PAGE, 0, &other));
  /* The same memory through another region is the same memory. */
  xm_region *ext = NULL;
  XT_OK(xm_external_mapping_new((uint64_t)(uintptr_t)xm_mapping_ptr(m), 8 * PAGE, &ext));
  XT_STATUS(XM_E_EXISTS, xm_dirty_new(ext, 4 * PAGE, PAGE, 0, &other));
  assert_null(other);
  other = track(ext, 6 * PAGE, 2 * PAGE); /* beside it is free */
  uint64_t bits[1];
  size_t count;
  XT_STATUS(XM_E_INVALID_ARGUMENT, xm_dirty_collect(d, bits, 3, &count));
  xt_assert_errmsg_has("needs 4");
  XT_STATUS(XM_E_INVALID_ARGUMENT, xm_dirty_collect(d, NULL, 64, &count));
  XT_STATUS(XM_E_INVALID_ARGUMENT, xm_dirty_collect(NULL, bits, 64, &count));
  XT_OK(xm_dirty_collect(d, bits, 4, NULL)); /* count is optional */
  assert_int_equal(xm_dirty_page_size(NULL), 0);
  assert_null(xm_dirty_strategy(NULL));
  xm_dirty_free(NULL);
  xm_dirty_free(other);
  xm_dirty_free(d);
  XT_OK(xm_dirty_new(r, 0, 8 * PAGE, 0, &d)); /* free gave the range back */
  xm_dirty_free(d);
  xm_region_free(ext);
  xm_mapping_free(m);
}

static void exact_pages(void **state) {
  (void)state;
  XT_SKIP_IF_RETRIED_FAULTS_ARE_REPORTED();
  const size_t n = 64;
  xm_mapping *m = xt_anon(n * PAGE);
  unsigned char *p = xm_mapping_ptr(m);
  xm_dirty *d = track(xm_mapping_region(m), 0, n * PAGE);
  expect_pages(d, n, NULL, 0); /* nothing written since creation */
  p[3 * PAGE] = 1;
  p[17 * PAGE + PAGE - 1] = 2;
  p[63 * PAGE + 5] = 3;
  uint32_t v = 7;
  XT_OK(XM_WRITE_OBJ(m, 40 * PAGE + 2, &v)); /* the checked accessor */
  const size_t want[] = {3, 17, 40, 63};
  expect_pages(d, n, want, 4);
  expect_pages(d, n, NULL, 0); /* reported once */
  p[3 * PAGE] = 4;             /* written again after the collect: reported again */
  const size_t again[] = {3};
  expect_pages(d, n, again, 1);
  assert_int_equal(p[3 * PAGE], 4);
  assert_int_equal(p[17 * PAGE + PAGE - 1], 2);
  xm_dirty_free(d);
  p[10 * PAGE] = 1; /* untracked again, and writable */
  xm_mapping_free(m);
}

/* A safe copy into tracked pages faults into the tracker's hook first, so it completes. */
static void safe_copy_recorded(void **state) {
  (void)state;
  XT_SKIP_IF_RETRIED_FAULTS_ARE_REPORTED();
  const size_t n = 8;
  xm_mapping *m = xt_anon(n * PAGE);
  xm_dirty *d = track(xm_mapping_region(m), 0, n * PAGE);
  unsigned char *buf = xt_pattern(3 * PAGE, 5, 1);
  size_t copied = 0;
  XT_OK(xm_mapping_write_slice_safe(m, buf, 2 * PAGE + 10, 2 * PAGE + 100, &copied));
  assert_int_equal(copied, 2 * PAGE + 10);
  assert_memory_equal((unsigned char *)xm_mapping_ptr(m) + 2 * PAGE + 100, buf, 2 * PAGE + 10);
  const size_t want[] = {2, 3, 4};
  expect_pages(d, n, want, 3);
  free(buf);
  xm_dirty_free(d);
  xm_mapping_free(m);
}

/* The tracker never gives a page more than its owner did, follows the owner's later changes, and
   leaves the owner's protection behind when freed. */
static void owner_protection_kept(void **state) {
  (void)state;
  XT_SKIP_IF_RETRIED_FAULTS_ARE_REPORTED();
  if (!xt_os_prot_known()) XT_SKIP("/proc/self/maps is not readable here: page protection cannot be checked");
  const size_t n = 8;
  xm_mapping *m = xt_anon(n * PAGE);
  unsigned char *p = xm_mapping_ptr(m);
  XT_OK(xm_mapping_protect(m, 5 * PAGE, PAGE, XM_PROT_READ));
  xm_dirty *d = track(xm_mapping_region(m), 0, n * PAGE);
  const unsigned clean = is_protect(d) ? XM_PROT_READ : XM_PROT_READ_WRITE;
  XT_OS_PROT(p + 5 * PAGE, XM_PROT_READ);
  XT_OS_PROT(p + 6 * PAGE, clean);
  p[6 * PAGE] = 1;
  XT_OS_PROT(p + 6 * PAGE, XM_PROT_READ_WRITE); /* lifted to the owner's, not above */
  XT_OS_PROT(p + 5 * PAGE, XM_PROT_READ);
  uint8_t v = 1;
  XT_STATUS(XM_E_ACCESS, XM_WRITE_OBJ(m, 5 * PAGE, &v));
#ifndef _WIN32
  int sig = xt_child_touch(p + 5 * PAGE, 1);
  if (sig != XT_CHILD_HUNG) assert_true(sig == SIGSEGV || sig == SIGBUS); /* the page is really read-only */
#endif
  /* The owner raises the whole mapping while it is tracked: clean pages stay write-protected. */
  XT_OK(xm_mapping_protect(m, 0, n * PAGE, XM_PROT_READ_WRITE));
  XT_OS_PROT(p + 5 * PAGE, clean);
  XT_OS_PROT(p + 7 * PAGE, clean);
  XT_OS_PROT(p + 6 * PAGE, XM_PROT_READ_WRITE); /* written, not collected yet */
  p[5 * PAGE] = 2;
  const size_t want[] = {5, 6};
  expect_pages(d, n, want, 2);
  XT_OS_PROT(p + 6 * PAGE, clean); /* re-armed */
  /* The owner lowers part of it; the region call takes the same path. */
  XT_OK(xm_region_protect(xm_mapping_region(m), 2 * PAGE, 2 * PAGE, XM_PROT_READ));
  XT_OS_PROT(p + 2 * PAGE, XM_PROT_READ);
  XT_STATUS(XM_E_ACCESS, XM_WRITE_OBJ(m, 2 * PAGE, &v));
  p[1 * PAGE] = 3;
  const size_t one[] = {1};
  expect_pages(d, n, one, 1);
  xm_dirty_free(d);
  XT_OS_PROT(p + 1 * PAGE, XM_PROT_READ_WRITE); /* the owner's protection is back */
  XT_OS_PROT(p + 2 * PAGE, XM_PROT_READ);
  XT_OS_PROT(p + 7 * PAGE, XM_PROT_READ_WRITE);
  xm_mapping_free(m);
}

/* Pieces added and removed inside a tracked arena range are reported in full at the next collect;
   the pieces around them report only what was written. */
static void arena_pieces_replaced(void **state) {
  (void)state;
  XT_SKIP_IF_RETRIED_FAULTS_ARE_REPORTED();
  xm_arena *a = xt_arena(8 * U);
  xm_region *r = xm_arena_region(a);
  unsigned char *base = xt_arena_base(a);
  XT_OK(xm_arena_add_anon(a, 0, 4 * U, XM_PROT_READ_WRITE));
  const size_t n = 8 * U / PAGE, per = U / PAGE;
  xm_dirty *d = track(r, 0, 8 * U);
  uint64_t *bits = calloc((n + 63) / 64, 8);
  assert_non_null(bits);
  size_t count = 0;
  XT_OK(xm_dirty_collect(d, bits, n, &count));
  assert_int_equal(count, 0);
  XT_OK(xm_arena_add_anon(a, 5 * U, U, XM_PROT_READ_WRITE));
  base[PAGE] = 1; /* page 1 of the first piece */
  XT_OK(xm_dirty_collect(d, bits, n, &count));
  for (size_t i = 0; i < n; i++) {
    int set = (bits[i / 64] >> (i % 64)) & 1;
    int must = i == 1 || (i >= 5 * per && i < 6 * per);
    int may = must || i >= 4 * per; /* the reserved space around a change may be reported */
    if (set != must && !(set && may)) print_message("page %lu reported %d\n", (unsigned long)i, set);
    assert_true(must ? set : (!set || may));
  }
  XT_OK(xm_dirty_collect(d, bits, n, &count));
  assert_int_equal(count, 0); /* the new piece is tracked now */
  base[5 * U + 3 * PAGE % U] = 9;
  XT_OK(xm_dirty_collect(d, bits, n, &count));
  assert_int_equal(count, 1);
  assert_true((bits[(5 * per + 3 % per) / 64] >> ((5 * per + 3 % per) % 64)) & 1);
  XT_OK(xm_arena_remove(a, 5 * U, U));
  XT_OK(xm_dirty_collect(d, bits, n, &count));
  assert_true(count >= per);
  XT_OK(xm_dirty_collect(d, bits, n, &count));
  assert_int_equal(count, 0);
  free(bits);
  xm_dirty_free(d);
  base[3 * U] = 5; /* the owner's read-write is back */
  xm_arena_free(a);
}

/* Commit and decommit of tracked pages succeed (Linux populates for writing and removes only
   writable pages: the tracker lifts them first) and are reported as changed. */
static void commit_and_decommit_reported(void **state) {
  (void)state;
  XT_SKIP_IF_RETRIED_FAULTS_ARE_REPORTED();
  xm_shm *shm = xt_shm("dirty-commit", 4 * U);
  xm_mapping *m = xt_map_shm(shm, 4 * U, 0, XM_PROT_READ_WRITE);
  xm_region *r = xm_mapping_region(m);
  unsigned char *p = xm_mapping_ptr(m);
  const size_t n = 4 * U / PAGE, per = U / PAGE;
  xm_dirty *d = track(r, 0, 4 * U);
  uint64_t *bits = calloc((n + 63) / 64, 8);
  assert_non_null(bits);
  size_t count = 0;
  XT_OK(xm_region_decommit(r, U, U));
  XT_OK(xm_dirty_collect(d, bits, n, &count));
  assert_int_equal(count, per);
  for (size_t i = per; i < 2 * per; i++)
    assert_true((bits[i / 64] >> (i % 64)) & 1);
  XT_OK(xm_region_commit(r, 2 * U, U, XM_PROT_READ_WRITE));
  XT_OK(xm_dirty_collect(d, bits, n, &count));
  assert_int_equal(count, per);
  assert_true((bits[(2 * per) / 64] >> ((2 * per) % 64)) & 1);
  XT_OK(xm_dirty_collect(d, bits, n, &count));
  assert_int_equal(count, 0);
  p[U + 5] = 1; /* tracked again after the decommit */
  XT_OK(xm_dirty_collect(d, bits, n, &count));
  assert_int_equal(count, 1);
  assert_true((bits[per / 64] >> (per % 64)) & 1);
  free(bits);
  xm_dirty_free(d);
  xm_mapping_free(m);
  xm_shm_free(shm);
}

/* Two trackers on two regions at once report each its own pages. */
static void two_regions(void **state) {
  (void)state;
  XT_SKIP_IF_RETRIED_FAULTS_ARE_REPORTED();
  xm_mapping *m1 = xt_anon(16 * PAGE), *m2 = xt_anon(16 * PAGE);
  xm_dirty *d1 = track(xm_mapping_region(m1), 0, 16 * PAGE);
  xm_dirty *d2 = track(xm_mapping_region(m2), 4 * PAGE, 8 * PAGE);
  ((unsigned char *)xm_mapping_ptr(m1))[7 * PAGE] = 1;
  ((unsigned char *)xm_mapping_ptr(m2))[7 * PAGE] = 1; /* page 3 of d2's range */
  ((unsigned char *)xm_mapping_ptr(m2))[1 * PAGE] = 1; /* outside d2's range */
  const size_t w1[] = {7}, w2[] = {3};
  expect_pages(d1, 16, w1, 1);
  expect_pages(d2, 8, w2, 1);
  xm_dirty_free(d1);
  expect_pages(d2, 8, NULL, 0);
  xm_dirty_free(d2);
  xm_mapping_free(m1);
  xm_mapping_free(m2);
}

/* Per-page protection refused (the map-count limit's ENOMEM, injected here): the write still goes
   through and the whole range is reported, then tracking is exact again. */
static void refused_protection_recovers(void **state) {
  (void)state;
  XT_SKIP_IF_RETRIED_FAULTS_ARE_REPORTED();
  const size_t n = 16;
  xm_mapping *m = xt_anon(n * PAGE);
  unsigned char *p = xm_mapping_ptr(m);
  xm_dirty *d = track(xm_mapping_region(m), 0, n * PAGE);
  if (!is_protect(d)) {
    xm_dirty_free(d);
    xm_mapping_free(m);
    XT_SKIP("the kernel tracks writes here (uffd-wp); the XMMAP_DIRTY=protect run covers this");
  }
  size_t all[16];
  for (size_t i = 0; i < n; i++)
    all[i] = i;
  /* The hook's lift of the written page fails. */
  xm__test_fail_nth(1, XT_INJECTED_ERROR);
  p[4 * PAGE] = 42;
  xm__test_fail_nth(0, 0);
  assert_int_equal(p[4 * PAGE], 42);
  p[9 * PAGE] = 1; /* everything is lifted: no fault */
  expect_pages(d, n, all, n);
  expect_pages(d, n, NULL, 0); /* re-armed: exact again */
  p[2 * PAGE] = 1;
  /* Collect's re-protection fails: it reports everything, and keeps doing so until one succeeds. */
  xm__test_fail_nth(1, XT_INJECTED_ERROR);
  expect_pages(d, n, all, n);
  xm__test_fail_nth(0, 0);
  p[11 * PAGE] = 1;
  expect_pages(d, n, all, n);
  expect_pages(d, n, NULL, 0);
  p[12 * PAGE] = 1;
  const size_t one[] = {12};
  expect_pages(d, n, one, 1);
  /* The owner's protection change on the tracked range: its all-or-nothing first call refused,
     nothing changes; the per-page lift after it refused, everything is lifted and reported. */
  p[5 * PAGE] = 1;
  XT_OK(xm_mapping_protect(m, 0, n * PAGE, XM_PROT_READ));
  xm__test_fail_nth(1, XT_INJECTED_ERROR);
  XT_STATUS(XM_E_SYSTEM_CALL, xm_mapping_protect(m, 0, n * PAGE, XM_PROT_READ_WRITE));
  xm__test_fail_nth(0, 0);
  uint8_t v = 1;
  XT_STATUS(XM_E_ACCESS, XM_WRITE_OBJ(m, 0, &v));
  xm__test_fail_nth(2, XT_INJECTED_ERROR);
  XT_OK(xm_mapping_protect(m, 0, n * PAGE, XM_PROT_READ_WRITE));
  assert_int_equal(xm__test_os_calls(), 3); /* without write; page 5's lift (refused); all writable */
  xm__test_fail_nth(0, 0);
  p[7 * PAGE] = 1;
  expect_pages(d, n, all, n);
  expect_pages(d, n, NULL, 0);
  /* A tracker whose first protection is refused starts with everything reported. */
  xm_dirty_free(d);
  xm__test_fail_nth(1, XT_INJECTED_ERROR);
  d = track(xm_mapping_region(m), 0, n * PAGE);
  xm__test_fail_nth(0, 0);
  p[0] = 1;
  expect_pages(d, n, all, n);
  expect_pages(d, n, NULL, 0);
  xm_dirty_free(d);
  xm_mapping_free(m);
}

/* ---- writers racing a collector ----------------------------------------------------------------
   One clock orders everything: a writer takes a ticket before its store (begin) and after it
   (done); the collector takes one before each collect (start) and after it (end). Each write must
   be reported by some collect that ended after the write began (no collect can report a store
   that had not begun) and that is no later than the first collect starting after the write was
   done. Checked after the run from the logs. */
enum { RACE_PAGES = 128, RACE_WRITERS = 3, RACE_MAX_COLLECTS = 1 << 16 };

struct race_write {
  uint32_t page;
  long begin, done;
};
struct race_collect {
  long start, end;
  uint64_t bits[RACE_PAGES / 64];
};
struct race {
  xm_mapping *m;
  xm_dirty *d;
  atomic_long clock;
  atomic_int go, stop; /* the writers start after the first collect and stop when told */
  atomic_int writing;  /* writers that have done their first write */
  int max_writes, nwrites[RACE_WRITERS];
  struct race_write *log[RACE_WRITERS];
  struct race_collect *collects;
  size_t ncollects;
};
struct race_writer {
  struct race *race;
  int id;
};

static XT_THREAD_RET race_writer(void *arg) {
  struct race_writer *w = arg;
  struct race *race = w->race;
  uint32_t *mem = xm_mapping_ptr(race->m);
  uint32_t x = 2463534242u + (uint32_t)w->id * 7919u;
  while (!atomic_load(&race->go)) {}
  int k = 0;
  for (; k < race->max_writes && !atomic_load(&race->stop); k++) {
    x ^= x << 13, x ^= x >> 17, x ^= x << 5;
    uint32_t page = x % RACE_PAGES;
    struct race_write *e = &race->log[w->id][k];
    e->page = page;
    e->begin = atomic_fetch_add(&race->clock, 1);
    /* each writer its own slot in the page: the sequence number, one atomic store */
#if defined(_MSC_VER) /* no __atomic for plain memory: an aligned volatile 4-byte store is one store */
    *(volatile uint32_t *)&mem[page * (PAGE / 4) + (uint32_t)w->id] = (uint32_t)k + 1;
#else
    __atomic_store_n(&mem[page * (PAGE / 4) + (uint32_t)w->id], (uint32_t)k + 1, __ATOMIC_RELAXED);
#endif
    e->done = atomic_fetch_add(&race->clock, 1);
    if (k == 0) atomic_fetch_add(&race->writing, 1);
  }
  race->nwrites[w->id] = k;
  return 0;
}

static void race_collect(struct race *race) {
  struct race_collect *c = &race->collects[race->ncollects++];
  c->start = atomic_fetch_add(&race->clock, 1);
  XT_OK(xm_dirty_collect(race->d, c->bits, RACE_PAGES, NULL));
  c->end = atomic_fetch_add(&race->clock, 1);
}

static void writers_race_collector(void **state) {
  (void)state;
  XT_SKIP_IF_RETRIED_FAULTS_ARE_REPORTED();
  XT_SKIP_UNLESS_THREADS_RESUME_AFTER_FAULTS();
  struct race race = {.max_writes = 1 << 17};
  const size_t collects = (size_t)xt_rounds(1000);
  race.m = xt_anon(RACE_PAGES * PAGE);
  race.d = track(xm_mapping_region(race.m), 0, RACE_PAGES * PAGE);
  race.collects = calloc(RACE_MAX_COLLECTS + 1, sizeof *race.collects);
  assert_non_null(race.collects);
  struct race_writer ws[RACE_WRITERS];
  xt_thread t[RACE_WRITERS];
  for (int i = 0; i < RACE_WRITERS; i++) {
    race.log[i] = calloc((size_t)race.max_writes, sizeof *race.log[i]);
    assert_non_null(race.log[i]);
    ws[i] = (struct race_writer){&race, i};
    xt_thread_start(&t[i], race_writer, &ws[i]);
  }
  race_collect(&race);
  atomic_store(&race.go, 1);
  /* as many collects again once every writer writes: the writers run through all of them */
  while (atomic_load(&race.writing) < RACE_WRITERS && race.ncollects < RACE_MAX_COLLECTS - collects)
    race_collect(&race);
  for (size_t end = race.ncollects + collects; race.ncollects < end;)
    race_collect(&race);
  atomic_store(&race.stop, 1);
  for (int i = 0; i < RACE_WRITERS; i++)
    xt_thread_join(t[i]);
  race_collect(&race); /* starts after every write was done */
  /* Every slot holds its writer's last sequence number for that page: no store was lost. */
  const uint32_t *mem = xm_mapping_ptr(race.m);
  for (int i = 0; i < RACE_WRITERS; i++) {
    uint32_t last[RACE_PAGES] = {0};
    for (int k = 0; k < race.nwrites[i]; k++)
      last[race.log[i][k].page] = (uint32_t)k + 1;
    for (size_t pg = 0; pg < RACE_PAGES; pg++)
      assert_int_equal(mem[pg * (PAGE / 4) + (size_t)i], last[pg]);
  }
  size_t checked = 0;
  for (int i = 0; i < RACE_WRITERS; i++) {
    for (int k = 0; k < race.nwrites[i]; k++) {
      const struct race_write *e = &race.log[i][k];
      /* starts and ends grow with the index: the first collect starting after the write was done,
         and the first ending after it began */
      size_t lo = 0, hi = race.ncollects - 1;
      while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (race.collects[mid].start > e->done)
          hi = mid;
        else
          lo = mid + 1;
      }
      size_t first_after = lo, j = 0;
      for (hi = first_after; j < hi;) {
        size_t mid = (j + hi) / 2;
        if (race.collects[mid].end > e->begin)
          hi = mid;
        else
          j = mid + 1;
      }
      int reported = 0;
      for (; j <= first_after && !reported; j++)
        reported = (race.collects[j].bits[e->page / 64] >> (e->page % 64)) & 1;
      if (!reported)
        print_message("writer %d's write %d to page %u (tickets %ld..%ld) missed by collect %lu (start %ld)\n", i, k,
                      e->page, e->begin, e->done, (unsigned long)first_after, race.collects[first_after].start);
      assert_true(reported);
      checked++;
    }
  }
  print_message("%lu writes checked against %lu collects (%s)\n", (unsigned long)checked, (unsigned long)race.ncollects,
                xm_dirty_strategy(race.d));
  for (int i = 0; i < RACE_WRITERS; i++)
    free(race.log[i]);
  free(race.collects);
  xm_dirty_free(race.d);
  xm_mapping_free(race.m);
}

/* A tracker on an arena while another thread adds and removes pieces in it: the stable piece's
   writes are all reported, and the churned pieces never make a collect fail. */
struct churn {
  xm_arena *a;
  atomic_int stop;
  int rc; /* the first failure, checked on the test's thread (cmocka asserts only there) */
  char msg[320];
};

static XT_THREAD_RET churn_pieces(void *arg) {
  struct churn *c = arg;
  for (int k = 0; !atomic_load(&c->stop) && c->rc == XM_OK; k++) {
    size_t at = (4 + (size_t)(k % 4)) * U;
    c->rc = xm_arena_add_anon(c->a, at, U, XM_PROT_READ_WRITE);
    if (c->rc == XM_OK) ((unsigned char *)xt_arena_base(c->a))[at] = 1;
    if (c->rc == XM_OK) c->rc = xm_arena_remove(c->a, at, U);
  }
  if (c->rc) snprintf(c->msg, sizeof c->msg, "%s", xm_errmsg());
  return 0;
}

/* The churn itself, without cmocka's asserts (it runs in a child on POSIX): 0, or the failing step
   with its message in msg. */
static int churn_run(char *msg, size_t len) {
  struct churn c = {.a = NULL};
  if (xm_arena_new(8 * U, &c.a) != XM_OK || xm_arena_add_anon(c.a, 0, 4 * U, XM_PROT_READ_WRITE) != XM_OK) {
    snprintf(msg, len, "arena: %s", xm_errmsg());
    return 1;
  }
  const size_t n = 8 * U / PAGE;
  own_fault_signals();
  xm_dirty *d = NULL;
  uint64_t *bits = calloc((n + 63) / 64, 8);
  if (!bits || xm_dirty_new(xm_arena_region(c.a), 0, 8 * U, 0, &d) != XM_OK) {
    snprintf(msg, len, "tracker: %s", xm_errmsg());
    return 2;
  }
  xt_thread t;
  xt_thread_start(&t, churn_pieces, &c);
  unsigned char *base = xt_arena_base(c.a);
  int step = 0;
  for (int round = 0; round < xt_rounds(200) && !step; round++) {
    size_t page = (size_t)round * 7 % (4 * U / PAGE);
    base[page * PAGE] = (unsigned char)round;
    if (xm_dirty_collect(d, bits, n, NULL) != XM_OK) {
      snprintf(msg, len, "collect: %s", xm_errmsg());
      step = 3;
    } else if (!((bits[page / 64] >> (page % 64)) & 1)) {
      snprintf(msg, len, "round %d: the write to page %zu was not reported", round, page);
      step = 4;
    }
  }
  atomic_store(&c.stop, 1);
  xt_thread_join(t);
  if (!step && c.rc) {
    snprintf(msg, len, "the churning thread failed: %s", c.msg);
    step = 5;
  }
  free(bits);
  xm_dirty_free(d);
  xm_arena_free(c.a);
  if (!step) snprintf(msg, len, "a tracker on an arena whose pieces another thread changes: every write reported");
  return step;
}

#ifndef _WIN32
static int churn_child(int out) {
  char msg[400];
  int step = churn_run(msg, sizeof msg);
  return xt_say(out, step, "%s", msg);
}
#endif

static void arena_churn(void **state) {
  (void)state;
  XT_SKIP_IF_RETRIED_FAULTS_ARE_REPORTED();
#ifdef _WIN32
  char msg[400];
  int step = churn_run(msg, sizeof msg);
  if (step) fail_msg("step %d: %s", step, msg);
#else
  /* In a child: qemu-i386 7.2 can end the whole process (status 255, no signal, no fault reaching
     any handler) when a thread exits while others fault; that is told apart from a failure. */
  xt_child c = xt_run_child(churn_child, 120);
  if (c.status != -1 && WIFEXITED(c.status) && WEXITSTATUS(c.status) == 255 && c.msg[0] == '\0')
    XT_SKIP("the process ended with status 255 without a message or a fault reaching a handler: the "
            "emulator lost the threads (qemu-i386 7.2)");
  if (c.status != -1 && WIFSIGNALED(c.status) && WTERMSIG(c.status) == SIGKILL && strstr(c.msg, "killed"))
    XT_SKIP("the child never finished here: %s", c.msg);
  xt_assert_child_passed(&c);
#endif
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(bad_input),
      cmocka_unit_test(exact_pages),
      cmocka_unit_test(safe_copy_recorded),
      cmocka_unit_test(owner_protection_kept),
      cmocka_unit_test(arena_pieces_replaced),
      cmocka_unit_test(commit_and_decommit_reported),
      cmocka_unit_test(two_regions),
      cmocka_unit_test(refused_protection_recovers),
      /* Threads fault last: under qemu-i386 7.2 faults are not always delivered once other
         threads have faulted. */
      cmocka_unit_test(arena_churn),
      cmocka_unit_test(writers_race_collector),
  };
  capture_fault_signals();
  return cmocka_run_group_tests(tests, NULL, NULL);
}
