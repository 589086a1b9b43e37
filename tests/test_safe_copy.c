/* Fault-safe copies recover their own faults: a fault inside the mapping gives XM_E_FAULT with its
   offset instead of killing the process, with everything before the faulting page copied, on
   any number of threads at once; otherwise they keep the contract of read/write_slice. POSIX: a
   file truncated under its mapping (SIGBUS) and a page made inaccessible behind the library's
   back (SIGSEGV); Windows: a PAGE_NOACCESS page (Windows refuses to shrink a mapped file; Wine
   raises an access violation where Windows raises EXCEPTION_IN_PAGE_ERROR). Faults that are not
   a safe copy's: test_safe_copy_chaining.c. */
#include "xmtest_faults.h"

#include <stdatomic.h>

static size_t page;

static void expect_fault_at(size_t offset) {
  char want[64];
  snprintf(want, sizeof want, "faulted at offset %zu ", offset);
  xt_assert_errmsg_has(want);
  xt_assert_errmsg_has("memory access faulted");
  assert_int_equal(xm_os_error(), 0);
}

#ifndef _WIN32
/* cmocka swaps its own SIGSEGV/SIGBUS handler in around every test (with signal(), which also
   drops SA_SIGINFO when it puts the previous one back) and so replaces the library's handler, as
   any program that installs a handler after the library's would. Each test that needs faults
   recovered puts the library's handler back first; it is captured in main() right after the
   library installed it. */
static void own_fault_signals(void) { xt_own_fault_signals(); }

/* See xt_sigbus_reports_address: where SIGBUS has no true address the SIGBUS test skips. */
static int sigbus_addr_ok = 1;
static uintptr_t sigbus_addr_seen, sigbus_addr_expected;

/* A file truncated under its mapping: SIGBUS on the pages past the end. */
static void truncated_file(void **state) {
  (void)state;
  if (!sigbus_addr_ok)
    XT_SKIP("SIGBUS si_addr is %p for a fault at %p: this emulator reports host addresses (qemu-user "
            "with a 32-bit guest), so no handler can place a SIGBUS",
            (void *)sigbus_addr_seen, (void *)sigbus_addr_expected);
  own_fault_signals();
  xm_descriptor fd;
  xm_mapping *m = xt_truncated_file_mapping(page, &fd);
  assert_non_null(m);
  unsigned char *buf = malloc(3 * page);
  assert_non_null(buf);
  size_t copied = 12345;
  XT_STATUS(XM_E_FAULT, xm_mapping_read_slice_safe(m, buf, page, 2 * page, &copied));
  expect_fault_at(2 * page);
  assert_int_equal(copied, 12345); /* out-parameters are written only on success */
  /* page 0 is still there */
  XT_OK(xm_mapping_read_slice_safe(m, buf, page, 0, &copied));
  assert_int_equal(copied, page);
  for (size_t i = 0; i < page; i++)
    assert_int_equal(buf[i], (unsigned char)(i * 7 + 3));
  /* a copy that starts in page 0 stops where the file ends */
  XT_STATUS(XM_E_FAULT, xm_mapping_read_slice_safe(m, buf, 2 * page, page / 2, &copied));
  expect_fault_at(page);
  char want[96];
  snprintf(want, sizeof want, "read of %zu bytes at offset %zu faulted", 2 * page, page / 2);
  xt_assert_errmsg_has(want);
  XT_STATUS(XM_E_FAULT, xm_mapping_write_slice_safe(m, buf, 16, page + 3, &copied));
  expect_fault_at(page + 3);
  xt_assert_errmsg_has("write of 16 bytes at offset");
  /* the clamped count: a copy reaching past the end is cut at the mapping's end, then faults */
  XT_STATUS(XM_E_FAULT, xm_mapping_read_slice_safe(m, buf, 10 * page, 2 * page + 1, &copied));
  expect_fault_at(2 * page + 1);
  XT_OK(xm_mapping_write_slice_safe(m, buf, 10, page - 10, &copied));
  assert_int_equal(copied, 10);
  free(buf);
  xm_mapping_free(m);
  xt_close(fd);
}
#else
static void own_fault_signals(void) {}
#endif

/* Portable: a page made inaccessible behind the library's back (the checked path would refuse
   an XM_PROT_NONE page with XM_E_ACCESS before copying). */
static void inaccessible_page(void **state) {
  (void)state;
  own_fault_signals();
  xm_mapping *m = xt_anon_patterned(4 * page);
  xt_raw_protect((unsigned char *)xm_mapping_ptr(m) + 2 * page, page, 0);
  unsigned char *buf = malloc(4 * page);
  assert_non_null(buf);
  size_t copied = 777;
  XT_STATUS(XM_E_FAULT, xm_mapping_read_slice_safe(m, buf, page, 2 * page, &copied));
  expect_fault_at(2 * page);
  assert_int_equal(copied, 777);
  XT_STATUS(XM_E_FAULT, xm_mapping_read_slice_safe(m, buf, 4 * page, 0, &copied));
  expect_fault_at(2 * page);
  char want[64];
  snprintf(want, sizeof want, "(%zu bytes copied)", 2 * page);
  xt_assert_errmsg_has(want);
  /* everything before the faulting page was copied */
  for (size_t i = 0; i < 2 * page; i++)
    assert_int_equal(buf[i], (unsigned char)(i * 13 + 5));
  XT_STATUS(XM_E_FAULT, xm_mapping_write_slice_safe(m, buf, page, 2 * page + 100, &copied));
  expect_fault_at(2 * page + 100);
  XT_STATUS(XM_E_FAULT, xm_mapping_write_slice_safe(m, buf, 2 * page, page + 1, &copied));
  expect_fault_at(2 * page);
  /* the pages around it still copy, both ways */
  XT_OK(xm_mapping_read_slice_safe(m, buf, 2 * page, 0, &copied));
  assert_int_equal(copied, 2 * page);
  XT_OK(xm_mapping_write_slice_safe(m, buf, page, 3 * page, &copied));
  assert_int_equal(copied, page);
  /* and a copy that faults many times over works every time */
  for (int i = 0; i < 200; i++)
    XT_STATUS(XM_E_FAULT, xm_mapping_read_slice_safe(m, buf, 64, 2 * page + 64, &copied));
  xt_raw_protect((unsigned char *)xm_mapping_ptr(m) + 2 * page, page, 1);
  XT_OK(xm_mapping_read_slice_safe(m, buf, 4 * page, 0, &copied));
  assert_int_equal(copied, 4 * page);
  free(buf);
  xm_mapping_free(m);
}

/* The contract of read/write_slice: range, clamping, protection, empty and NULL cases. */
static void same_contract_as_slices(void **state) {
  (void)state;
  own_fault_signals();
  xm_mapping *m = xt_anon_patterned(2 * page);
  unsigned char buf[32], back[32];
  size_t copied = 0;
  for (size_t i = 0; i < sizeof buf; i++)
    buf[i] = (unsigned char)(0xA0 + i);
  XT_OK(xm_mapping_write_slice_safe(m, buf, sizeof buf, 2 * page - 10, &copied));
  assert_int_equal(copied, 10); /* clamped */
  XT_OK(xm_mapping_read_slice_safe(m, back, sizeof back, 2 * page - 10, &copied));
  assert_int_equal(copied, 10);
  assert_memory_equal(back, buf, 10);
  XT_OK(xm_mapping_read_slice_safe(m, back, sizeof back, 2 * page, &copied));
  assert_int_equal(copied, 0);
  XT_STATUS(XM_E_INVALID_ADDRESS, xm_mapping_read_slice_safe(m, back, 1, 2 * page + 1, &copied));
  xt_assert_errmsg_has("requested memory out of range");
  XT_STATUS(XM_E_INVALID_ADDRESS, xm_mapping_write_slice_safe(m, buf, 1, SIZE_MAX, &copied));
  XT_OK(xm_mapping_read_slice_safe(m, back, 0, 5, NULL));
  XT_STATUS(XM_E_INVALID_ARGUMENT, xm_mapping_read_slice_safe(NULL, back, 1, 0, &copied));
  XT_STATUS(XM_E_INVALID_ARGUMENT, xm_mapping_read_slice_safe(m, NULL, 1, 0, &copied));
  XT_STATUS(XM_E_INVALID_ARGUMENT, xm_mapping_write_slice_safe(m, NULL, 1, 0, &copied));
  XT_OK(xm_mapping_write_slice_safe(m, NULL, 0, 0, &copied)); /* nothing to copy */
  /* the mapping's protection: XM_E_ACCESS before any copy, per page */
  XT_OK(xm_mapping_protect(m, page, page, XM_PROT_READ));
  XT_STATUS(XM_E_ACCESS, xm_mapping_write_slice_safe(m, buf, 8, page - 4, &copied));
  xt_assert_errmsg_has("write of 8 bytes at offset");
  XT_OK(xm_mapping_write_slice_safe(m, buf, 8, page - 8, &copied));
  XT_OK(xm_mapping_read_slice_safe(m, back, 8, page + 4, &copied));
  XT_OK(xm_mapping_protect(m, 0, 2 * page, XM_PROT_NONE));
  XT_STATUS(XM_E_ACCESS, xm_mapping_read_slice_safe(m, back, 8, 0, &copied));
  xm_mapping_free(m);

  xm_builder b = xm_builder_new(page);
  xm_builder_protection(&b, XM_PROT_WRITE);
  xm_mapping *wo = NULL;
  XT_OK(xm_builder_build(&b, &wo));
  XT_OK(xm_mapping_write_slice_safe(wo, buf, 8, 0, &copied));
  XT_STATUS(XM_E_ACCESS, xm_mapping_read_slice_safe(wo, back, 8, 0, &copied));
  xm_mapping_free(wo);

  xm_mapping *empty = xt_anon(0);
  XT_OK(xm_mapping_read_slice_safe(empty, back, 8, 0, &copied));
  assert_int_equal(copied, 0);
  XT_STATUS(XM_E_INVALID_ADDRESS, xm_mapping_write_slice_safe(empty, buf, 8, 1, &copied));
  xm_mapping_free(empty);
}

/* A file mapping with an unaligned offset: offsets stay relative to the mapping's pointer. */
static void offsets_are_mapping_relative(void **state) {
  (void)state;
  own_fault_signals();
  size_t gran = xm_allocation_granularity();
  size_t len = gran + 4 * page;
  unsigned char *data = malloc(len);
  assert_non_null(data);
  for (size_t i = 0; i < len; i++)
    data[i] = (unsigned char)(i * 3 + 1);
  xm_descriptor f = xt_temp_file(data, len, 1);
  xm_builder b = xm_builder_new(3 * page);
  xm_builder_from_file(&b, f);
  xm_builder_offset(&b, gran + 100);
  xm_mapping *m = NULL;
  XT_OK(xm_builder_build(&b, &m));
  unsigned char got[64];
  size_t copied;
  XT_OK(xm_mapping_read_slice_safe(m, got, sizeof got, 10, &copied));
  assert_memory_equal(got, data + gran + 110, sizeof got);
  /* the page holding mapping offset page + 50 (the view's second page) made inaccessible */
  unsigned char *p = (unsigned char *)xm_mapping_ptr(m) + page + 50;
  unsigned char *pg = (unsigned char *)((uintptr_t)p & ~(uintptr_t)(page - 1));
  xt_raw_protect(pg, page, 0);
  size_t pg_offset = (size_t)(pg - (unsigned char *)xm_mapping_ptr(m));
  XT_STATUS(XM_E_FAULT, xm_mapping_read_slice_safe(m, got, sizeof got, page + 50, &copied));
  expect_fault_at(page + 50);
  unsigned char *big = malloc(3 * page);
  assert_non_null(big);
  XT_STATUS(XM_E_FAULT, xm_mapping_read_slice_safe(m, big, 3 * page, 0, &copied));
  expect_fault_at(pg_offset);
  free(big);
  xt_raw_protect(pg, page, 1);
  xm_mapping_free(m);
  xt_close(f);
  free(data);
}

/* Many faults on many threads: each copy is recovered on its own thread (POSIX: siglongjmp out of
   the signal handler; Windows: the vectored handler resumes through a rewritten context), and
   every stack and every thread's state stays sound. */
static XT_THREAD_RET safe_copy_worker(void *arg) {
  atomic_int *failures = arg;
  xm_mapping *m = xt_anon(3 * page);
  unsigned char *p = xm_mapping_ptr(m);
  memset(p, 0x3c, 3 * page);
  xt_raw_protect(p + page, page, 0);
  unsigned char *buf = malloc(3 * page);
  if (!buf) {
    atomic_fetch_add(failures, 1);
    xm_mapping_free(m);
    return 0;
  }
  const int n = xt_rounds(500);
  for (int i = 0; i < n; i++) {
    size_t at = (size_t)(i * 37) % (page - 96), copied = 0;
    memset(buf, 0, 3 * page);
    if (xm_mapping_read_slice_safe(m, buf, 3 * page - at, at, &copied) != XM_E_FAULT) atomic_fetch_add(failures, 1);
    if (buf[0] != 0x3c || buf[page - 1 - at] != 0x3c) atomic_fetch_add(failures, 1); /* copied up to the fault */
    if (xm_mapping_write_slice_safe(m, buf, 200, page - 96, &copied) != XM_E_FAULT) atomic_fetch_add(failures, 1);
    if (xm_mapping_read_slice_safe(m, buf, page, 2 * page, &copied) != XM_OK || copied != page)
      atomic_fetch_add(failures, 1);
  }
  free(buf);
  xm_mapping_free(m);
  return 0;
}

static void safe_copies_fault_on_many_threads(void **state) {
  (void)state;
  own_fault_signals();
  atomic_int failures;
  atomic_init(&failures, 0);
  xt_thread threads[4];
  for (int i = 0; i < 4; i++)
    xt_thread_start(&threads[i], safe_copy_worker, &failures);
  for (int i = 0; i < 4; i++)
    xt_thread_join(threads[i]);
  assert_int_equal(atomic_load(&failures), 0);
}

int main(void) {
  page = xm_page_size();
#ifndef _WIN32
  uintptr_t seen = 0, expected = 0;
  sigbus_addr_ok = xt_sigbus_reports_address(page, &seen, &expected);
  sigbus_addr_seen = seen;
  sigbus_addr_expected = expected;
  /* The first safe copy installs the library's handler; kept for own_fault_signals(). */
  if (xt_capture_library_handler() != XM_OK) return 1;
#endif
  const struct CMUnitTest tests[] = {
#ifndef _WIN32
      cmocka_unit_test(truncated_file),
#endif
      cmocka_unit_test(inaccessible_page),
      cmocka_unit_test(same_contract_as_slices),
      cmocka_unit_test(offsets_are_mapping_relative),
      cmocka_unit_test(safe_copies_fault_on_many_threads),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
