/* Builds that fail leave nothing behind: the leak check itself can fail, bad input leaks nothing,
   and every OS call of a build, failed in turn by the test seam, gives XM_E_SYSTEM_CALL with the
   injected error and releases every mapping, reservation, descriptor and handle. */
#include "xmtest.h"

/* The leak checks below can fail: a mapping or a descriptor kept alive shows in the snapshot. */
static void leak_check_sees_leaks(void **state) {
  (void)state;
  xt_snapshot before = xt_snap();
  xm_mapping *m = xt_anon(xm_allocation_granularity());
  xt_snapshot with_mapping = xt_snap();
  if (xt_mappings_comparable()) assert_true(with_mapping.mappings > before.mappings);
  xm_mapping_free(m);
  xm_shm *shm = NULL;
  XT_OK(xm_shm_new("leak-probe", xm_allocation_granularity(), &shm));
  assert_int_equal(xt_snap().handles, before.handles + 1);
  xm_shm_free(shm);
  xt_assert_same(before, xt_snap());
}

/* Bad input: each gets its status, and nothing leaks (mappings, descriptors, handles). */
static void bad_builds_leak_nothing(void **state) {
  (void)state;
  xm_mapping *m = NULL;
  xt_snapshot warm = xt_snap();
  (void)warm;
  xt_snapshot before = xt_snap();

  xm_builder b = xm_builder_new(SIZE_MAX);
  assert_int_not_equal(xm_builder_build(&b, &m), XM_OK);
  b = xm_builder_new(SIZE_MAX - 4095);
  assert_int_not_equal(xm_builder_build(&b, &m), XM_OK);
  b = xm_builder_new(SIZE_MAX - 8 * xm_page_size()); /* the alignment slack overflows */
  xm_builder_align(&b, 1u << 21);
  XT_STATUS(XM_E_OVERFLOW, xm_builder_build(&b, &m));
  b = xm_builder_new(SIZE_MAX - 8 * xm_page_size()); /* fits the arithmetic, not the address space */
  xm_builder_guard_pages(&b, 1);
  assert_int_not_equal(xm_builder_build(&b, &m), XM_OK);
  b = xm_builder_new(4096);
  xm_builder_from_file(&b, XT_BAD_DESCRIPTOR);
  xm_builder_align(&b, 1u << 21);
  XT_STATUS(XM_E_SYSTEM_CALL, xm_builder_build(&b, &m));
  b = xm_builder_new(4096);
  xm_builder_offset(&b, 4096);
  XT_STATUS(XM_E_INVALID_ARGUMENT, xm_builder_build(&b, &m)); /* an offset needs a file */
  XT_STATUS(XM_E_INVALID_ARGUMENT, xm_builder_build(NULL, &m));
  XT_STATUS(XM_E_INVALID_ARGUMENT, xm_builder_build(&b, NULL));
  b = xm_builder_new(4096);
  xm_builder_from_shm(&b, NULL);
  XT_STATUS(XM_E_INVALID_ARGUMENT, xm_builder_build(&b, &m));

  /* a read-only file mapped writable: the OS refuses, nothing is left behind */
  xm_descriptor ro = xt_temp_file("0123456789", 10, 0);
  xt_snapshot with_file = xt_snap();
  b = xm_builder_new(10);
  xm_builder_from_file(&b, ro);
  xm_builder_align(&b, 1u << 21);
  XT_STATUS(XM_E_SYSTEM_CALL, xm_builder_build(&b, &m));
  assert_int_not_equal(xm_os_error(), 0);
  xt_assert_same(with_file, xt_snap());
  xt_close(ro);

  assert_null(m);
  xt_assert_same(before, xt_snap());
}

/* Every OS call of a build fails in turn: the status is SYSTEM_CALL and nothing leaks. */
static void injected_failures_leak_nothing(void **state) {
  (void)state;
  xm_descriptor f = xt_temp_file("abcdefgh", 8, 1);
  xt_snapshot before = xt_snap();
  for (int variant = 0; variant < 3; variant++) {
    long failed = 0; /* failure points that failed the build: the walk must find some */
    for (long n = 1;; n++) {
      xm_builder b = xm_builder_new(8192);
      if (variant >= 1) xm_builder_from_file(&b, f);
      if (variant == 2) {
        xm_builder_align(&b, 1u << 20);
        xm_builder_guard_pages(&b, 2);
        xm_builder_populate(&b);
      }
      xm_mapping *m = NULL;
      xm__test_fail_nth(n, 12 /* ENOMEM / ERROR_INVALID_ACCESS: any OS error will do */);
      int rc = xm_builder_build(&b, &m);
      long calls = xm__test_os_calls();
      xm__test_fail_nth(0, 0);
      if (rc == XM_OK) {
        xm_mapping_free(m);
        if (calls < n) break; /* every failure point has been walked */
        continue;             /* a best-effort call (e.g. populate advice) failed harmlessly */
      }
      assert_int_equal(rc, XM_E_SYSTEM_CALL);
      assert_int_equal(xm_os_error(), 12);
      assert_true(strlen(xm_errmsg()) > 0);
      assert_null(m);
      xt_assert_same(before, xt_snap());
      failed++;
    }
    assert_true(failed > 0);
  }
  xt_close(f);
}

/* ---- placed builds: fixed addresses, guards, alignment, private files --------------------------- */
#define WIN_GRAN ((size_t)65536)

/* What a build can leave behind. Windows: its views and its PAGE_NOACCESS reservations (guards,
   placement probes), counting only these keeps the heap and thread stacks out of the picture, and
   the back end's handles; POSIX: every mapping and descriptor. */
static xt_snapshot back_end_snap(void) {
#ifdef _WIN32
  xt_snapshot s = {0, xm__test_open_handles()};
  MEMORY_BASIC_INFORMATION mbi;
  unsigned char *p = NULL;
  while (VirtualQuery(p, &mbi, sizeof mbi) == sizeof mbi) {
    if (mbi.State != MEM_FREE &&
        (mbi.Type == MEM_MAPPED || (mbi.Type == MEM_PRIVATE && mbi.AllocationProtect == PAGE_NOACCESS)))
      s.mappings++;
    p = (unsigned char *)mbi.BaseAddress + mbi.RegionSize;
    if ((uintptr_t)p < (uintptr_t)mbi.BaseAddress) break;
  }
  return s;
#else
  return xt_snap();
#endif
}

/* Every failure point of each build (the fault-injection seam fails the n-th OS call) leaves no
   handle, view or reservation behind, and reports the OS error it was given. */
struct build_case {
  const char *name;
  int source; /* 0 anon, 1 file, 2 shm */
  xm_prot prot;
  unsigned options; /* 1 align, 2 guard, 4 private, 8 populate, 16 fixed */
};

static int build_case(const struct build_case *c, xm_descriptor file, const xm_shm *shm, void *fixed, xm_mapping **m) {
  xm_builder b = xm_builder_new(3 * 4096);
  if (c->source == 1) xm_builder_from_file(&b, file);
  if (c->source == 2) xm_builder_from_shm(&b, shm);
  if (c->source != 0) xm_builder_offset(&b, WIN_GRAN + 4096);
  xm_builder_protection(&b, c->prot);
  if (c->options & 1) xm_builder_align(&b, 1u << 20);
  if (c->options & 2) xm_builder_guard_pages(&b, 1);
  if (c->options & 4) xm_builder_private(&b);
  if (c->options & 8) xm_builder_populate(&b);
  if (c->options & 16) xm_builder_fixed_noreplace(&b, fixed);
  return xm_builder_build(&b, m);
}

#ifdef _WIN32
#define MSYNC_OS_CALLS 2 /* FlushViewOfFile, then FlushFileBuffers */
#define XT_ACCESS_ERROR ERROR_ACCESS_DENIED
#define XT_PARAMETER_ERROR ERROR_INVALID_PARAMETER
#else
#define MSYNC_OS_CALLS 1 /* msync */
#define XT_ACCESS_ERROR EACCES
#define XT_PARAMETER_ERROR EINVAL
#endif

/* Every failure point of each placed build leaves no view, reservation or handle behind and
   reports the OS error it was given; msync, prefetch and shared memory report injected failures
   too. */
static void injected_failures_in_placed_builds(void **state) {
  (void)state;
  static const struct build_case cases[] = {
      {"anon", 0, XM_PROT_READ_WRITE, 0},
      {"anon none", 0, XM_PROT_NONE, 0},
      {"anon execute-only", 0, XM_PROT_EXEC, 0},
      {"anon read-execute guarded", 0, XM_PROT_READ | XM_PROT_EXEC, 2},
      {"anon aligned guarded", 0, XM_PROT_READ_WRITE, 1 | 2 | 8},
      {"anon fixed guarded", 0, XM_PROT_READ_WRITE, 16 | 2},
      {"file", 1, XM_PROT_READ_WRITE, 8},
      {"file read-only guarded", 1, XM_PROT_READ, 2},
      {"file private aligned", 1, XM_PROT_READ_WRITE, 4 | 1},
      {"file none", 1, XM_PROT_NONE, 0},
      {"shm aligned guarded", 2, XM_PROT_READ_WRITE, 1 | 2},
      {"shm fixed", 2, XM_PROT_READ, 16},
  };
  xm_descriptor f = xt_pattern_file(4 * WIN_GRAN, 1);
  xm_shm *shm = xt_shm("test", 4 * WIN_GRAN);
  xm_mapping *probe = xt_anon(4 * WIN_GRAN);
  void *fixed = (unsigned char *)xm_mapping_ptr(probe) + WIN_GRAN;
  xm_mapping_free(probe);
  long points = 0, harmless = 0;
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const struct build_case *c = &cases[i];
    xm_mapping *m = NULL;
    xm__test_fail_nth(0, 0);
    XT_OK(build_case(c, f, shm, fixed, &m)); /* also warms up what the first build loads */
    long calls = xm__test_os_calls();
    xm_mapping_free(m);
    assert_true(calls > 0);
    xt_snapshot before = back_end_snap();
    for (long n = 1; n <= calls; n++) {
      m = NULL;
      xm__test_fail_nth(n, XT_INJECTED_ERROR);
      int rc = build_case(c, f, shm, fixed, &m);
      xm__test_fail_nth(0, 0);
#ifndef _WIN32
      if (rc == XM_OK) { /* a best-effort call (a placement hint, populate advice) failed harmlessly */
        xm_mapping_free(m);
        xt_assert_same(before, back_end_snap());
        harmless++;
        continue;
      }
#endif
      if (rc != XM_E_SYSTEM_CALL || xm_os_error() != XT_INJECTED_ERROR)
        print_message("%s, failing OS call %ld of %ld: %d (%s)\n", c->name, n, calls, rc, xm_errmsg());
      assert_int_equal(rc, XM_E_SYSTEM_CALL);
      assert_int_equal(xm_os_error(), XT_INJECTED_ERROR);
      assert_null(m);
      xt_assert_same(before, back_end_snap());
      points++;
    }
  }
  print_message("%ld failure points injected (%ld harmless to a best-effort call)\n", points, harmless);
  assert_true(points > 0);

  /* msync and advice report injected failures too */
  xm_builder b = xm_builder_new(4096);
  xm_builder_from_file(&b, f);
  xm_mapping *m = NULL;
  XT_OK(xm_builder_build(&b, &m));
  for (long n = 1; n <= MSYNC_OS_CALLS; n++) {
    xm__test_fail_nth(n, XT_ACCESS_ERROR);
    XT_STATUS(XM_E_SYSTEM_CALL, xm_mapping_msync(m));
    assert_int_equal(xm_os_error(), XT_ACCESS_ERROR);
  }
  xm__test_fail_nth(1, XT_PARAMETER_ERROR);
  XT_STATUS(XM_E_SYSTEM_CALL, xm_mapping_async_prefetch(m, 0, 4096));
  xm__test_fail_nth(0, 0);
  xm_mapping_free(m);

  /* shm new and clone */
  xt_snapshot with_shm = xt_snap();
  xm_shm *s2 = NULL;
  xm__test_fail_nth(1, XT_INJECTED_ERROR);
  XT_STATUS(XM_E_SYSTEM_CALL, xm_shm_new("x", 4096, &s2));
  xm__test_fail_nth(1, XT_INJECTED_ERROR);
  XT_STATUS(XM_E_SYSTEM_CALL, xm_shm_clone(shm, &s2));
  xm__test_fail_nth(0, 0);
  assert_null(s2);
  assert_int_equal(xt_snap().handles, with_shm.handles);
  xm_shm_free(shm);
  xt_close(f);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(leak_check_sees_leaks),
      cmocka_unit_test(bad_builds_leak_nothing),
      cmocka_unit_test(injected_failures_leak_nothing),
      cmocka_unit_test(injected_failures_in_placed_builds),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
