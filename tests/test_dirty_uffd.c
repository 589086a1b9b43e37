/* The kernel write-tracking back end ("uffd-wp", src/os.h) white-box, on a memfd shared mapping,
   an anonymous shared one, a private anonymous one and a shared file mapping: exactly the written
   pages are collected and re-armed, writes after a collect come next time, a replaced sub-range is
   tracked again after restart_range, first_bit and count are honoured, huge pages and a forked
   child work, and injected failures release everything (threads: test_dirty_uffd_threads.c).
   Where the probe says no (Windows, QEMU user mode, valgrind, kernels before 6.7) the tests skip
   with its reason, and every call must say XM_E_NOT_IMPLEMENTED. */
#include "xmtest_uffd.h"

/* The probe answers the same each time, with a reason exactly when it says no, and a tracker on a
   machine without it is refused with that reason. */
static void probe_gives_a_reason(void **state) {
  (void)state;
  const char *why = "unset", *again = "unset";
  bool ok = xm__os_wp_available(&why);
  assert_true(xm__os_wp_available(&again) == ok);
  if (ok) {
    print_message("uffd-wp write tracking is available\n");
    return;
  }
  assert_non_null(why);
  assert_true(strlen(why) > 10);
  assert_ptr_equal(why, again);
  print_message("uffd-wp write tracking is not available: %s\n", why);
  static unsigned char buffer[1 << 17]; /* any page-aligned memory: nothing may touch it */
  struct xm__os_wp wp = {-1};
  uintptr_t aligned = ((uintptr_t)buffer + 65535) & ~(uintptr_t)65535;
  XT_STATUS(XM_E_NOT_IMPLEMENTED, xm__os_wp_start((void *)aligned, xm__os_page_size(), &wp));
  xt_assert_errmsg_has(why);
  assert_int_equal(wp.handle, -1);
}

#ifndef _WIN32

/* Exactly the written pages, then none (re-armed), then the writes after the collect. Reads,
   and pages written before tracking started, are never reported. */
static void collects_exactly_the_written_pages(void **state) {
  (void)state;
  SKIP_WITHOUT_UFFD_WP();
  for (int kind = 0; kind < KINDS; kind++) {
    struct memory m = map_memory((enum kind)kind, 64);
    struct xm__os_wp wp = {-1};
    XT_OK(xm__os_wp_start(m.p, m.pages * page, &wp));
    assert_true(wp.handle >= 0);
    expect_collect(&wp, &m, NULL, 0);
    static const size_t written[] = {0, 3, 17, 30, 31, 63};
    for (size_t k = 0; k < sizeof written / sizeof written[0]; k++)
      m.p[written[k] * page + 5] = 0xa5;
    assert_int_equal(xt_touch(m.p + 40 * page), 40); /* a read */
    expect_collect(&wp, &m, written, sizeof written / sizeof written[0]);
    expect_collect(&wp, &m, NULL, 0);
    m.p[9 * page + page - 1] = 1;
    m.p[9 * page] = 2; /* twice: still one page */
    static const size_t later[] = {9};
    expect_collect(&wp, &m, later, 1);
    expect_collect(&wp, &m, NULL, 0);
    xm__os_wp_stop(&wp, m.p, m.pages * page);
    assert_int_equal(wp.handle, -1);
    m.p[10 * page] = 7; /* no longer protected: the write simply happens */
    assert_int_equal(m.p[10 * page], 7);
    assert_int_equal(m.p[3 * page + 5], 0xa5);
    unmap_memory(&m);
  }
}

/* Bits go to first_bit + page (across words), other bits stay as they were, count accumulates,
   and more written regions than one scan returns are all collected. */
static void first_bit_count_and_long_answers(void **state) {
  (void)state;
  SKIP_WITHOUT_UFFD_WP();
  for (int kind = 0; kind < KINDS; kind++) {
    struct memory m = map_memory((enum kind)kind, 1200);
    struct xm__os_wp wp = {-1};
    XT_OK(xm__os_wp_start(m.p, m.pages * page, &wp));
    for (size_t i = 0; i < 130; i++) /* one run of 130 pages: whole words of the bitmap */
      m.p[(100 + i) * page] = 1;
    for (size_t i = 400; i < 1200; i += 2) /* 400 separate regions */
      m.p[i * page] = 1;
    const size_t first_bit = 77, nbits = first_bit + m.pages + 64;
    uint64_t *bitmap = calloc((nbits + 63) / 64, sizeof *bitmap);
    assert_non_null(bitmap);
    bitmap[0] = 1;                                                         /* before first_bit: must stay */
    bitmap[(first_bit + 5) / 64] |= (uint64_t)1 << ((first_bit + 5) % 64); /* an unwritten page's bit */
    size_t count = 1000;
    XT_OK(xm__os_wp_collect(&wp, m.p, m.pages * page, bitmap, first_bit, &count));
    assert_int_equal(count, 1000 + 130 + 400);
    assert_true(bit(bitmap, 0));
    assert_true(bit(bitmap, first_bit + 5));
    for (size_t i = 0; i < m.pages; i++) {
      bool want = i == 5 || (i >= 100 && i < 230) || (i >= 400 && i % 2 == 0);
      if (bit(bitmap, first_bit + i) != want) print_message("%s: page %zu\n", kind_names[kind], i);
      assert_true(bit(bitmap, first_bit + i) == want);
    }
    for (size_t i = 1; i < first_bit; i++)
      assert_false(bit(bitmap, i));
    for (size_t i = first_bit + m.pages; i < nbits; i++)
      assert_false(bit(bitmap, i));
    free(bitmap);
    expect_collect(&wp, &m, NULL, 0);
    xm__os_wp_stop(&wp, m.p, m.pages * page);
    unmap_memory(&m);
  }
}

/* A sub-range replaced by a new mapping of the same memfd is not tracked: a collect fails rather
   than miss its writes (and still reports what it re-protected before the failure); after
   restart_range the whole range is tracked again. */
static void restart_after_the_mapping_was_replaced(void **state) {
  (void)state;
  SKIP_WITHOUT_UFFD_WP();
  struct memory m = map_memory(MEMFD, 16);
  struct xm__os_wp wp = {-1};
  XT_OK(xm__os_wp_start(m.p, m.pages * page, &wp));
  void *q = mmap(m.p + 4 * page, 4 * page, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, m.memfd, 4 * (off_t)page);
  assert_ptr_equal(q, m.p + 4 * page);
  assert_int_equal(m.p[5 * page], 5); /* the same object */
  m.p[1 * page] = 1;
  m.p[5 * page] = 1;
  uint64_t bitmap[1] = {0};
  size_t count = 0;
  XT_STATUS(XM_E_SYSTEM_CALL, xm__os_wp_collect(&wp, m.p, m.pages * page, bitmap, 0, &count));
  xt_assert_errmsg_has("PAGEMAP_SCAN");
  assert_true(bit(bitmap, 1)); /* re-protected before the scan failed: still reported */
  assert_int_equal(count, 1);
  XT_OK(xm__os_wp_restart_range(&wp, m.p + 4 * page, 4 * page));
  expect_collect(&wp, &m, NULL, 0);
  m.p[5 * page] = 2;
  m.p[12 * page] = 2;
  static const size_t written[] = {5, 12};
  expect_collect(&wp, &m, written, 2);
  expect_collect(&wp, &m, NULL, 0);
  xm__os_wp_stop(&wp, m.p, m.pages * page);
  unmap_memory(&m);
}

/* Every OS call of start, restart_range and collect failed in turn: XM_E_SYSTEM_CALL with the
   injected error, no descriptor or mapping left behind, and the tracker (or the memory, for start)
   as usable as before. */
static void injected_failures_release_everything(void **state) {
  (void)state;
  SKIP_WITHOUT_UFFD_WP();
  for (int kind = 0; kind < KINDS; kind++) {
    struct memory m = map_memory((enum kind)kind, 8);
    size_t len = m.pages * page;
    struct xm__os_wp wp = {-1};
    XT_OK(xm__os_wp_start(m.p, len, &wp)); /* opens the process's pagemap descriptor for good */
    xm__os_wp_stop(&wp, m.p, len);
    xt_snapshot before = xt_snap();
    long points = 0;
    for (long n = 1;; n++) {
      xm__test_fail_nth(n, XT_INJECTED_ERROR);
      int rc = xm__os_wp_start(m.p, len, &wp);
      long calls = xm__test_os_calls();
      xm__test_fail_nth(0, 0);
      if (rc == XM_OK) {
        assert_true(calls < n);
        break;
      }
      points++;
      assert_int_equal(rc, XM_E_SYSTEM_CALL);
      assert_int_equal(xm_os_error(), XT_INJECTED_ERROR);
      assert_int_equal(wp.handle, -1);
      xt_assert_no_leak(before);
      m.p[0] = 3; /* not left protected */
    }
    assert_true(points >= 4); /* userfaultfd, UFFDIO_API, UFFDIO_REGISTER, UFFDIO_WRITEPROTECT */
    m.p[2 * page] = 1;
    xm__test_fail_nth(1, XT_INJECTED_ERROR);
    uint64_t bitmap[1] = {0};
    size_t count = 0;
    XT_STATUS(XM_E_SYSTEM_CALL, xm__os_wp_collect(&wp, m.p, len, bitmap, 0, &count));
    xm__test_fail_nth(0, 0);
    assert_int_equal(count, 0);
    static const size_t written[] = {2};
    expect_collect(&wp, &m, written, 1); /* nothing was re-armed by the failed collect */
    for (long n = 1; n <= 2; n++) {
      xm__test_fail_nth(n, XT_INJECTED_ERROR);
      XT_STATUS(XM_E_SYSTEM_CALL, xm__os_wp_restart_range(&wp, m.p + 2 * page, 2 * page));
      xm__test_fail_nth(0, 0);
      m.p[6 * page] = 1;
      bitmap[0] = 0;
      count = 0;
      XT_OK(xm__os_wp_collect(&wp, m.p, len, bitmap, 0, &count)); /* still tracked, written page seen */
      assert_true(bit(bitmap, 6));
    }
    xm__os_wp_stop(&wp, m.p, len);
    xt_assert_no_leak(before);
    unmap_memory(&m);
  }
}

/* A collect that fails after its first scan call (more written regions than one call returns)
   still reports what that call re-protected; the next collect reports the rest: no write is lost. */
static void a_failing_scan_loses_no_write(void **state) {
  (void)state;
  SKIP_WITHOUT_UFFD_WP();
  struct memory m = map_memory(MEMFD, 1200);
  struct xm__os_wp wp = {-1};
  XT_OK(xm__os_wp_start(m.p, m.pages * page, &wp));
  for (size_t i = 0; i < m.pages; i += 2) /* 600 separate regions */
    m.p[i * page] = 1;
  uint64_t *first = calloc(m.pages / 64 + 1, sizeof *first), *second = calloc(m.pages / 64 + 1, sizeof *second);
  assert_non_null(first);
  assert_non_null(second);
  size_t count = 0, more = 0;
  xm__test_fail_nth(2, XT_INJECTED_ERROR); /* the second PAGEMAP_SCAN */
  XT_STATUS(XM_E_SYSTEM_CALL, xm__os_wp_collect(&wp, m.p, m.pages * page, first, 0, &count));
  xm__test_fail_nth(0, 0);
  assert_true(count > 0 && count < 600);
  XT_OK(xm__os_wp_collect(&wp, m.p, m.pages * page, second, 0, &more));
  assert_int_equal(count + more, 600);
  for (size_t i = 0; i < m.pages; i++) {
    assert_false(bit(first, i) && bit(second, i)); /* each reported once */
    assert_true(bit(first, i) || bit(second, i) || i % 2 == 1);
  }
  free(first);
  free(second);
  xm__os_wp_stop(&wp, m.p, m.pages * page);
  unmap_memory(&m);
}

/* A transparent huge page is tracked like small ones: the written page is reported (its whole
   huge page may be: false positives are allowed), and after the collect nothing is. */
static void huge_pages_report_the_written_page(void **state) {
  (void)state;
  SKIP_WITHOUT_UFFD_WP();
  const size_t huge = 2 * 1024 * 1024, len = 2 * huge;
  unsigned char *r = mmap(NULL, len + huge, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  assert_true(r != MAP_FAILED);
  unsigned char *p = (unsigned char *)(((uintptr_t)r + huge - 1) & ~(uintptr_t)(huge - 1));
  (void)madvise(p, len, MADV_HUGEPAGE); /* where THP is "madvise"; a kernel without THP ignores it */
  memset(p, 1, len);
  struct xm__os_wp wp = {-1};
  XT_OK(xm__os_wp_start(p, len, &wp));
  const size_t pages = len / page;
  uint64_t *bitmap = calloc(pages / 64, sizeof *bitmap);
  assert_non_null(bitmap);
  for (int round = 0; round < 3; round++) {
    size_t target = (size_t)round * 300 + 3;
    p[target * page] = 2;
    memset(bitmap, 0, pages / 8);
    size_t count = 0;
    XT_OK(xm__os_wp_collect(&wp, p, len, bitmap, 0, &count));
    assert_true(bit(bitmap, target));
    assert_true(count >= 1 && count <= pages);
    memset(bitmap, 0, pages / 8);
    count = 0;
    XT_OK(xm__os_wp_collect(&wp, p, len, bitmap, 0, &count));
    assert_int_equal(count, 0);
  }
  free(bitmap);
  xm__os_wp_stop(&wp, p, len);
  assert_int_equal(munmap(r, len + huge), 0);
}

/* A forked child's tracker scans the child's memory, not its parent's: the process's pagemap
   descriptor is opened again there. */
static int child_tracks_its_own_memory(int out) {
  struct memory m = map_memory(MEMFD, 8);
  struct xm__os_wp wp = {-1};
  if (xm__os_wp_start(m.p, m.pages * page, &wp) != XM_OK) return xt_say(out, 1, "start: %s", xm_errmsg());
  m.p[5 * page] = 9;
  uint64_t bitmap[1] = {0};
  size_t count = 0;
  if (xm__os_wp_collect(&wp, m.p, m.pages * page, bitmap, 0, &count) != XM_OK)
    return xt_say(out, 2, "collect: %s", xm_errmsg());
  if (bitmap[0] != 1u << 5 || count != 1)
    return xt_say(out, 3, "collected bitmap 0x%llx, %zu pages", (unsigned long long)bitmap[0], count);
  xm__os_wp_stop(&wp, m.p, m.pages * page);
  return xt_say(out, 0, "the child collected exactly its written page");
}

static void forked_child_tracks_its_own_memory(void **state) {
  (void)state;
  SKIP_WITHOUT_UFFD_WP();
  struct memory m = map_memory(MEMFD, 8); /* the parent tracks too, so its pagemap is open */
  struct xm__os_wp wp = {-1};
  XT_OK(xm__os_wp_start(m.p, m.pages * page, &wp));
  xt_child c = xt_run_child(child_tracks_its_own_memory, 30);
  xt_assert_child_passed(&c);
  m.p[1 * page] = 1;
  static const size_t written[] = {1};
  expect_collect(&wp, &m, written, 1);
  xm__os_wp_stop(&wp, m.p, m.pages * page);
  unmap_memory(&m);
}

/* A shared mapping the process may never write (a read-only descriptor) cannot be registered:
   refused with the call named, nothing left behind. */
static void read_only_shared_mapping_is_refused(void **state) {
  (void)state;
  SKIP_WITHOUT_UFFD_WP();
  struct memory warm = map_memory(PRIVATE_ANON, 1);
  struct xm__os_wp wp = {-1};
  XT_OK(xm__os_wp_start(warm.p, page, &wp)); /* opens the process's pagemap descriptor for good */
  xm__os_wp_stop(&wp, warm.p, page);
  unmap_memory(&warm);
  xm_descriptor f = xt_pattern_file(4 * page, 0);
  void *p = mmap(NULL, 4 * page, PROT_READ, MAP_SHARED, f, 0);
  assert_true(p != MAP_FAILED);
  xt_snapshot before = xt_snap();
  XT_STATUS(XM_E_SYSTEM_CALL, xm__os_wp_start(p, 4 * page, &wp));
  xt_assert_errmsg_has("UFFDIO_REGISTER");
  assert_int_equal(xm_os_error(), EPERM);
  assert_int_equal(wp.handle, -1);
  xt_assert_no_leak(before);
  munmap(p, 4 * page);
  xt_close(f);
}

int main(void) {
  page = xm__os_page_size();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(probe_gives_a_reason),
      cmocka_unit_test(collects_exactly_the_written_pages),
      cmocka_unit_test(first_bit_count_and_long_answers),
      cmocka_unit_test(restart_after_the_mapping_was_replaced),
      cmocka_unit_test(injected_failures_release_everything),
      cmocka_unit_test(a_failing_scan_loses_no_write),
      cmocka_unit_test(huge_pages_report_the_written_page),
      cmocka_unit_test(forked_child_tracks_its_own_memory),
      cmocka_unit_test(read_only_shared_mapping_is_refused),
  };
  return XT_RUN_TESTS_AFTER_A_SNAPSHOT(tests);
}
#else
/* Windows: the probe says no, and every call says why. */
static void every_call_is_not_implemented(void **state) {
  (void)state;
  assert_non_null(unavailable());
  void *p = VirtualAlloc(NULL, 65536, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE);
  assert_non_null(p);
  struct xm__os_wp wp = {-1};
  uint64_t bitmap[1] = {0};
  size_t count = 0;
  XT_STATUS(XM_E_NOT_IMPLEMENTED, xm__os_wp_start(p, 4096, &wp));
  XT_STATUS(XM_E_NOT_IMPLEMENTED, xm__os_wp_restart_range(&wp, p, 4096));
  XT_STATUS(XM_E_NOT_IMPLEMENTED, xm__os_wp_collect(&wp, p, 4096, bitmap, 0, &count));
  xt_assert_errmsg_has("no asynchronous write protection");
  assert_int_equal(bitmap[0], 0);
  assert_int_equal(count, 0);
  xm__os_wp_stop(&wp, p, 4096);
  assert_int_equal(wp.handle, -1);
  VirtualFree(p, 0, MEM_RELEASE);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(probe_gives_a_reason),
      cmocka_unit_test(every_call_is_not_implemented),
  };
  return XT_RUN_TESTS_AFTER_A_SNAPSHOT(tests);
}
#endif
