/* Advice and locking: every helper's range errors and empty ranges, and each effect that can be
   observed, behind a probe (qemu-user accepts and ignores most advice). On Windows what has no
   native equivalent must say XM_E_NOT_IMPLEMENTED, never succeed silently. */
#include "xmtest_faults.h"

#include <stdbool.h>

#define PS (xm_page_size())

typedef int (*range_helper)(const xm_mapping *m, size_t offset, size_t count);
static const struct {
  const char *name;
  range_helper fn;
} helpers[] = {
    {"remove_range", xm_mapping_remove_range},
    {"async_prefetch", xm_mapping_async_prefetch},
    {"drop_page_cache", xm_mapping_drop_page_cache},
    {"lock_on_fault", xm_mapping_lock_on_fault},
    {"unlock", xm_mapping_unlock},
};
#define N_HELPERS (sizeof helpers / sizeof helpers[0])
#define N_ADVICE ((int)XM_ADVICE_POPULATE_WRITE + 1)

static xm_mapping *map_file(xm_descriptor f, size_t size, bool private_copy) {
  xm_builder b = xm_builder_new(size);
  xm_builder_from_file(&b, f);
  if (private_copy) xm_builder_private(&b);
  xm_mapping *m = NULL;
  XT_OK(xm_builder_build(&b, &m));
  return m;
}

static void assert_range_error(int rc, size_t offset, size_t count, size_t size) {
  assert_int_equal(rc, XM_E_INVALID_RANGE);
  char text[128];
  snprintf(text, sizeof text, "offset=%llu count=%llu region_size=%llu", (unsigned long long)offset,
           (unsigned long long)count, (unsigned long long)size);
  xt_assert_errmsg_has(text);
  xt_assert_errmsg_has(xm_strerror(XM_E_INVALID_RANGE));
}

/* ---- validation --------------------------------------------------------------------------------- */
static void range_errors(void **state) {
  (void)state;
  xm_mapping *m = xt_anon(4 * PS);
  const size_t size = 4 * PS;
  const size_t bad[][2] = {{size + 1, 0}, {0, size + 1}, {size, 1}, {PS, size}, {SIZE_MAX, 2}, {1, SIZE_MAX}};
  xm__test_fail_nth(0, 0);
  for (size_t h = 0; h < N_HELPERS; h++)
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
      assert_range_error(helpers[h].fn(m, bad[i][0], bad[i][1]), bad[i][0], bad[i][1], size);
  for (int adv = 0; adv < N_ADVICE; adv++)
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
      assert_range_error(xm_mapping_advise(m, bad[i][0], bad[i][1], (xm_advice)adv), bad[i][0], bad[i][1], size);
  /* through the region interface the same failure is crosvm's InvalidAddress */
  XT_STATUS(XM_E_INVALID_ADDRESS, xm_region_advise(xm_mapping_region(m), PS, size, XM_ADVICE_WILLNEED));
  XT_STATUS(XM_E_INVALID_ARGUMENT, xm_mapping_advise(m, 0, PS, (xm_advice)N_ADVICE));
  XT_STATUS(XM_E_INVALID_ARGUMENT, xm_mapping_advise(m, 0, PS, (xm_advice)-1));
  /* destructive advice never widens onto bytes the caller did not name */
  XT_STATUS(XM_E_NOT_PAGE_ALIGNED, xm_mapping_remove_range(m, 1, PS));
  XT_STATUS(XM_E_NOT_PAGE_ALIGNED, xm_mapping_remove_range(m, 0, PS + 1));
  XT_STATUS(XM_E_NOT_PAGE_ALIGNED, xm_mapping_drop_page_cache(m, PS / 2, PS / 2));
  assert_int_equal(xm__test_os_calls(), 0); /* all refused before any OS call */
  xm_mapping_free(m);

  for (size_t h = 0; h < N_HELPERS; h++)
    XT_STATUS(XM_E_INVALID_ARGUMENT, helpers[h].fn(NULL, 0, 0));
  XT_STATUS(XM_E_INVALID_ARGUMENT, xm_mapping_use_hugepages(NULL));
  XT_STATUS(XM_E_INVALID_ARGUMENT, xm_mapping_use_dontfork(NULL));
  XT_STATUS(XM_E_INVALID_ARGUMENT, xm_region_advise(NULL, 0, 0, XM_ADVICE_NORMAL));
}

static void empty_ranges(void **state) {
  (void)state;
  xm_mapping *m = xt_anon(4 * PS);
  xm_mapping *empty = xt_anon(0);
  xm__test_fail_nth(0, 0);
  for (size_t h = 0; h < N_HELPERS; h++) {
    XT_OK(helpers[h].fn(m, 0, 0));
    XT_OK(helpers[h].fn(m, 4 * PS, 0));
    XT_OK(helpers[h].fn(m, PS + 3, 0));
    XT_OK(helpers[h].fn(empty, 0, 0));
    assert_range_error(helpers[h].fn(empty, 0, 1), 0, 1, 0);
  }
  for (int adv = 0; adv < N_ADVICE; adv++) {
    XT_OK(xm_mapping_advise(m, 4 * PS, 0, (xm_advice)adv));
    XT_OK(xm_mapping_advise(empty, 0, 0, (xm_advice)adv));
  }
  XT_OK(xm_mapping_use_dontfork(empty));
  XT_OK(xm_mapping_use_hugepages(empty));
  assert_int_equal(xm__test_os_calls(), 0);
  xm_mapping_free(empty);
  xm_mapping_free(m);
}

/* ---- every advice on shared anonymous memory ------------------------------------------------ */
static bool no_windows_equivalent(xm_advice adv) {
  switch (adv) {
  case XM_ADVICE_REMOVE:
  case XM_ADVICE_DONTFORK:
  case XM_ADVICE_DOFORK:
  case XM_ADVICE_HUGEPAGE:
  case XM_ADVICE_NOHUGEPAGE:
  case XM_ADVICE_MERGEABLE:
  case XM_ADVICE_UNMERGEABLE: return true;
  default: return false;
  }
}

static void every_advice(void **state) {
  (void)state;
  xm_mapping *m = xt_anon(8 * PS);
  memset(xm_mapping_ptr(m), 0x21, 8 * PS);
  for (int adv = 0; adv < N_ADVICE; adv++) {
    int rc = xm_mapping_advise(m, 2 * PS, 4 * PS, (xm_advice)adv);
    if (rc != XM_OK) print_message("advice %d: %s\n", adv, xm_errmsg());
#ifdef _WIN32
    if (no_windows_equivalent((xm_advice)adv))
      assert_int_equal(rc, XM_E_NOT_IMPLEMENTED);
    else
      assert_true(rc == XM_OK || rc == XM_E_NOT_IMPLEMENTED);
#else
    (void)no_windows_equivalent;
    /* Linux has every one of them; an old kernel or a disabled feature refuses with an errno */
    assert_true(rc == XM_OK || rc == XM_E_SYSTEM_CALL);
    if (rc == XM_E_SYSTEM_CALL) assert_int_not_equal(xm_os_error(), 0);
#endif
    /* whatever the advice did, unremoved bytes keep their value (REMOVE zeroes its own range) */
    assert_int_equal(((unsigned char *)xm_mapping_ptr(m))[0], 0x21);
    assert_int_equal(((unsigned char *)xm_mapping_ptr(m))[7 * PS], 0x21);
  }
  xm_mapping_free(m);
}

/* ---- effects ---------------------------------------------------------------------------------- */
static void remove_range_zeroes(void **state) {
  (void)state;
  /* the probe: does this system really free the pages? */
  xm_mapping *scratch = xt_anon(2 * PS);
  memset(xm_mapping_ptr(scratch), 0x77, 2 * PS);
  int rc = xm_mapping_remove_range(scratch, 0, PS);
  unsigned char after = ((unsigned char *)xm_mapping_ptr(scratch))[0];
  xm_mapping_free(scratch);
#ifdef _WIN32
  (void)after;
  assert_int_equal(rc, XM_E_NOT_IMPLEMENTED);
  XT_SKIP("remove_range has no Windows equivalent (XM_E_NOT_IMPLEMENTED, verified)");
#else
  XT_OK(rc);
  if (after != 0) XT_SKIP("MADV_REMOVE was accepted but the data stayed: this system (qemu-user) ignores it");

  xm_mapping *m = xt_anon(4 * PS);
  unsigned char *p = xm_mapping_ptr(m);
  memset(p, 0x11, 4 * PS);
  XT_OK(xm_mapping_remove_range(m, PS, 2 * PS));
  xm_slice s;
  XT_OK(xm_mapping_get_slice(m, PS, 2 * PS, &s));
  assert_true(xm_slice_is_all_zero(s));
  assert_int_equal(p[PS - 1], 0x11);
  assert_int_equal(p[3 * PS], 0x11);
  XT_OK(xm_mapping_remove_range(m, 3 * PS, PS)); /* the range may end at the mapping's end */
  assert_int_equal(p[3 * PS], 0);
  xm_mapping_free(m);

  /* on shared memory the other mapping sees the hole too */
  xm_shm *shm = NULL;
  XT_OK(xm_shm_new("remove", 2 * PS, &shm));
  xm_builder b = xm_builder_new(2 * PS);
  xm_builder_from_shm(&b, shm);
  xm_mapping *m1 = NULL, *m2 = NULL;
  XT_OK(xm_builder_build(&b, &m1));
  XT_OK(xm_builder_build(&b, &m2));
  memset(xm_mapping_ptr(m1), 0x12, 2 * PS);
  XT_OK(xm_mapping_remove_range(m2, 0, PS));
  assert_int_equal(((unsigned char *)xm_mapping_ptr(m1))[5], 0);
  assert_int_equal(((unsigned char *)xm_mapping_ptr(m1))[PS + 5], 0x12);
  xm_mapping_free(m1);
  xm_mapping_free(m2);
  xm_shm_free(shm);
#endif
}

static void drop_page_cache_keeps_file_data(void **state) {
  (void)state;
  const size_t len = 3 * PS;
  unsigned char *data = xt_pattern(len, 13, 5);
  xm_descriptor f = xt_temp_file(data, len, 1);

  /* a shared file mapping: the page cache keeps the data, written bytes included */
  xm_mapping *m = map_file(f, len, false);
  unsigned char *p = xm_mapping_ptr(m);
  p[PS + 1] = 0xee;
  data[PS + 1] = 0xee;
  int rc = xm_mapping_drop_page_cache(m, 0, len);
#ifdef _WIN32
  assert_int_equal(rc, XM_E_NOT_IMPLEMENTED); /* MEM_RESET does not work on views of files */
#else
  XT_OK(rc);
#endif
  assert_memory_equal(p, data, len);
  xm_mapping_free(m);

  /* shared anonymous memory (shmem / a pagefile section) */
  xm_mapping *anon = xt_anon(2 * PS);
  memset(xm_mapping_ptr(anon), 0x42, 2 * PS);
  XT_OK(xm_mapping_drop_page_cache(anon, 0, 2 * PS));
#ifndef _WIN32
  /* MADV_DONTNEED on MAP_SHARED only drops this mapping's page-table entries (MEM_RESET on
     Windows may discard the contents: nothing to check there) */
  assert_int_equal(((unsigned char *)xm_mapping_ptr(anon))[PS], 0x42);
#endif
  xm_mapping_free(anon);

  /* a private file mapping: dropping discards the private copies, the file shows again */
  m = map_file(f, len, true);
  p = xm_mapping_ptr(m);
  p[2 * PS + 3] = 0x99;
  rc = xm_mapping_drop_page_cache(m, 2 * PS, PS);
  unsigned char seen = p[2 * PS + 3];
  xm_mapping_free(m);
  xt_close(f);
  free(data);
#ifdef _WIN32
  (void)seen;
  assert_int_equal(rc, XM_E_NOT_IMPLEMENTED);
#else
  XT_OK(rc);
  if (seen == 0x99) XT_SKIP("MADV_DONTNEED left the private copy in place: this system (qemu-user) ignores it");
  assert_int_equal(seen, (unsigned char)((2 * PS + 3) * 13 + 5));
#endif
}

static void lock_and_unlock(void **state) {
  (void)state;
  xm_mapping *m = xt_anon(4 * PS);
  int rc = xm_mapping_lock_on_fault(m, 0, 4 * PS);
  if (rc != XM_OK) {
    /* RLIMIT_MEMLOCK (EPERM / ENOMEM / EAGAIN) or the working-set quota: the OS error is reported */
    assert_int_equal(rc, XM_E_SYSTEM_CALL);
    assert_int_not_equal(xm_os_error(), 0);
    xt_assert_errmsg_has("(os error ");
    print_message("locking refused: %s\n", xm_errmsg());
  } else {
    memset(xm_mapping_ptr(m), 1, 4 * PS); /* locked memory works as before */
    XT_OK(xm_mapping_unlock(m, 0, 4 * PS));
  }
  /* an unaligned range locks the pages it touches */
  rc = xm_mapping_lock_on_fault(m, PS + 1, 10);
  assert_true(rc == XM_OK || rc == XM_E_SYSTEM_CALL);
  if (rc == XM_OK) XT_OK(xm_mapping_unlock(m, PS + 1, 10));
  xm_mapping_free(m);
}

static void async_prefetch_reads_ahead(void **state) {
  (void)state;
  const size_t len = 4 * PS;
  unsigned char *data = xt_pattern(len, 13, 5);
  xm_descriptor f = xt_temp_file(data, len, 0);
  xm_builder b = xm_builder_new(len);
  xm_builder_from_file(&b, f);
  xm_builder_protection(&b, XM_PROT_READ);
  xm_mapping *m = NULL;
  XT_OK(xm_builder_build(&b, &m));
  XT_OK(xm_mapping_async_prefetch(m, PS, 2 * PS));
  XT_OK(xm_mapping_async_prefetch(m, 1, len - 1)); /* unaligned starts round down */
  assert_memory_equal(xm_mapping_ptr(m), data, len);
  xm_mapping_free(m);
  xt_close(f);
  free(data);
}

static void use_hugepages(void **state) {
  (void)state;
  xm_mapping *small = xt_anon(PS);
  int rc = xm_mapping_use_hugepages(small);
#ifdef _WIN32
  assert_true(rc == XM_OK || rc == XM_E_NOT_IMPLEMENTED);
#else
  XT_OK(rc);                                          /* below the PMD size: nothing to ask */
#endif
  xm_mapping_free(small);
  const size_t big_size = 8u << 20; /* at least one PMD on 4 KiB-page systems */
  xm_mapping *big = xt_anon(big_size);
  rc = xm_mapping_use_hugepages(big);
  if (rc != XM_OK) print_message("use_hugepages: %s\n", xm_errmsg());
#ifdef _WIN32
  assert_int_equal(rc, XM_E_NOT_IMPLEMENTED);
#else
  assert_true(rc == XM_OK || rc == XM_E_SYSTEM_CALL); /* EINVAL where THP is compiled out */
#endif
  ((unsigned char *)xm_mapping_ptr(big))[big_size - 1] = 1;
  xm_mapping_free(big);
}

static void use_dontfork(void **state) {
  (void)state;
  xm_mapping *m = xt_anon(2 * PS);
  ((unsigned char *)xm_mapping_ptr(m))[0] = 1;
  int rc = xm_mapping_use_dontfork(m);
#ifdef _WIN32
  assert_int_equal(rc, XM_E_NOT_IMPLEMENTED);
  xm_mapping_free(m);
  XT_SKIP("there is no fork on Windows (XM_E_NOT_IMPLEMENTED, verified)");
#else
  XT_OK(rc);
  int sig = xt_child_touch(xm_mapping_ptr(m), 0);
  assert_true(sig != XT_CHILD_FAILED);
  assert_int_equal(((unsigned char *)xm_mapping_ptr(m))[0], 1); /* the parent keeps it */
  xm_mapping_free(m);
  if (sig == 0)
    XT_SKIP("MADV_DONTFORK was accepted but the child still sees the mapping: this system (qemu-user) ignores it");
  if (sig == XT_CHILD_HUNG) XT_SKIP("a faulting child process never ended here (qemu-i386 spins on the fault)");
  assert_int_equal(sig, SIGSEGV);
#endif
}

/* The everyday round trip on an anonymous mapping: prefetch, drop, lock and unlock (twice, as
   munlock allows), then prefetch a file mapping whose data stays. Windows: PrefetchVirtualMemory,
   MEM_RESET on a pagefile view, VirtualLock at once within the working-set quota; what has no
   Windows equivalent says so, and MEM_RESET is not tried on a view of a file. */
static void prefetch_drop_and_lock(void **state) {
  (void)state;
  xm_mapping *m = xt_anon(4 * PS);
  XT_OK(xm_mapping_async_prefetch(m, 0, 4 * PS));
  XT_OK(xm_mapping_write_obj(m, "data", 4, PS));
  XT_OK(xm_mapping_drop_page_cache(m, PS, PS));
#ifdef _WIN32
  XT_STATUS(XM_E_NOT_IMPLEMENTED, xm_mapping_advise(m, 0, PS, XM_ADVICE_RANDOM));
  xt_assert_errmsg_has("no Windows equivalent");
  xt_assert_errmsg_has("RANDOM");
  XT_STATUS(XM_E_NOT_IMPLEMENTED, xm_mapping_remove_range(m, 0, PS));
  XT_STATUS(XM_E_NOT_IMPLEMENTED, xm_mapping_use_dontfork(m));
  XT_STATUS(XM_E_NOT_IMPLEMENTED, xm_mapping_use_hugepages(m));
#endif
  int rc = xm_mapping_lock_on_fault(m, 0, 2 * PS);
  if (rc != XM_OK) {
    print_message("locking refused: %s\n", xm_errmsg());
    assert_int_equal(rc, XM_E_SYSTEM_CALL);
  }
  XT_OK(xm_mapping_unlock(m, 0, 2 * PS));
  XT_OK(xm_mapping_unlock(m, 0, 2 * PS)); /* unlocking unlocked pages is fine, as munlock */
  xm_mapping_free(m);

  xm_descriptor f = xt_pattern_file(PS, 1);
  m = map_file(f, PS, false);
#ifdef _WIN32
  XT_STATUS(XM_E_NOT_IMPLEMENTED, xm_mapping_drop_page_cache(m, 0, PS));
#else
  XT_OK(xm_mapping_drop_page_cache(m, 0, PS));
#endif
  XT_OK(xm_mapping_async_prefetch(m, 0, PS));
  unsigned char want[16], got[16];
  xt_fill_position_pattern(want, sizeof want, 0);
  XT_OK(xm_mapping_read_obj(m, got, sizeof got, 0));
  assert_memory_equal(got, want, sizeof got);
  xm_mapping_free(m);
  xt_close(f);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(range_errors),
      cmocka_unit_test(empty_ranges),
      cmocka_unit_test(every_advice),
      cmocka_unit_test(remove_range_zeroes),
      cmocka_unit_test(drop_page_cache_keeps_file_data),
      cmocka_unit_test(lock_and_unlock),
      cmocka_unit_test(async_prefetch_reads_ahead),
      cmocka_unit_test(use_hugepages),
      cmocka_unit_test(use_dontfork),
      cmocka_unit_test(prefetch_drop_and_lock),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
