/* xm_region_protect: a mapping's region by xm_mapping_protect's rules, external memory as asked,
   and an arena piece by piece — never above what each piece was added with, unmapped parts
   refused with the first one named, all or nothing under injected OS failures. */
#include "xmtest_prot.h"

#define U (xm_allocation_granularity())
#define PAGE (xm_page_size())

static void need_prot_query(void) {
  if (!xt_os_prot_known()) XT_SKIP("/proc/self/maps is not readable here: page protection cannot be checked");
}

static void mapping_region(void **state) {
  (void)state;
  need_prot_query();
  xm_builder b = xm_builder_new(4 * PAGE);
  xm_builder_protection(&b, XM_PROT_READ);
  xm_mapping *m = NULL;
  XT_OK(xm_builder_build(&b, &m));
  xm_region *r = xm_mapping_region(m);
  unsigned char *p = xm_mapping_ptr(m);
  XT_STATUS(XM_E_INVALID_ARGUMENT, xm_region_protect(NULL, 0, PAGE, XM_PROT_READ));
  XT_STATUS(XM_E_ACCESS, xm_region_protect(r, 0, PAGE, XM_PROT_READ_WRITE));
  xt_assert_errmsg_has("above the 0x1 the mapping was built with");
  XT_STATUS(XM_E_INVALID_RANGE, xm_region_protect(r, PAGE, 4 * PAGE, XM_PROT_NONE));
  XT_STATUS(XM_E_INVALID_ARGUMENT, xm_region_protect(r, 0, PAGE, 0x40));
  XT_OK(xm_region_protect(r, PAGE + 1, 2, XM_PROT_NONE)); /* every page it touches */
  XT_OS_PROT(p, XM_PROT_READ);
  XT_OS_PROT(p + PAGE, XM_PROT_NONE);
  XT_OS_PROT(p + 2 * PAGE, XM_PROT_READ);
  uint8_t v;
  XT_STATUS(XM_E_ACCESS, XM_READ_OBJ(m, PAGE + 100, &v)); /* the accessors follow */
  XT_OK(XM_READ_OBJ(m, 0, &v));
  xm_mapping_free(m);
}

static void external_region(void **state) {
  (void)state;
  need_prot_query();
  xm_mapping *m = xt_anon(3 * PAGE);
  unsigned char *p = xm_mapping_ptr(m);
  xm_region *r = NULL;
  XT_OK(xm_external_mapping_new((uint64_t)(uintptr_t)(p + 10), 3 * PAGE - 10, &r));
  XT_STATUS(XM_E_INVALID_ADDRESS, xm_region_protect(r, PAGE, 3 * PAGE, XM_PROT_READ));
  XT_STATUS(XM_E_INVALID_ARGUMENT, xm_region_protect(r, 0, 1, 0x10));
  XT_OK(xm_region_protect(r, PAGE, 1, XM_PROT_READ)); /* offset PAGE is p + PAGE + 10: page 1 */
  XT_OS_PROT(p, XM_PROT_READ_WRITE);
  XT_OS_PROT(p + PAGE, XM_PROT_READ);
  XT_OS_PROT(p + 2 * PAGE, XM_PROT_READ_WRITE);
  XT_OK(xm_region_protect(r, 0, 3 * PAGE - 10, XM_PROT_NONE)); /* the whole span, first page included */
  XT_OS_PROT(p, XM_PROT_NONE);
  XT_OS_PROT(p + 2 * PAGE, XM_PROT_NONE);
  XT_OK(xm_region_protect(r, 0, 3 * PAGE - 10, XM_PROT_READ_WRITE));
  xm_region_free(r);
  xm_mapping_free(m);
}

/* Arena of 6 units: [0, 2U) read-write, [2U, 3U) read-only, [3U, 4U) a hole, [4U, 6U) read-write. */
static xm_arena *three_pieces(void) {
  xm_arena *a = xt_arena(6 * U);
  XT_OK(xm_arena_add_anon(a, 0, 2 * U, XM_PROT_READ_WRITE));
  XT_OK(xm_arena_add_anon(a, 2 * U, U, XM_PROT_READ));
  XT_OK(xm_arena_add_anon(a, 4 * U, 2 * U, XM_PROT_READ_WRITE));
  return a;
}

/* The OS protection of every page of the arena's first 3 units equals want[]. */
static void assert_pages(const unsigned char *base, const unsigned *want, size_t n) {
  for (size_t i = 0; i < n; i++)
    XT_OS_PROT(base + i * PAGE, want[i]);
}

static void arena_pieces(void **state) {
  (void)state;
  need_prot_query();
  xm_arena *a = three_pieces();
  xm_region *r = xm_arena_region(a);
  unsigned char *base = xt_arena_base(a);
  const size_t n = 3 * U / PAGE;
  unsigned *want = calloc(n, sizeof *want);
  assert_non_null(want);

  XT_OK(xm_region_protect(r, 0, 3 * U, XM_PROT_READ)); /* across two pieces, each allows it */
  for (size_t i = 0; i < n; i++)
    want[i] = XM_PROT_READ;
  assert_pages(base, want, n);

  XT_STATUS(XM_E_ACCESS, xm_region_protect(r, 0, 3 * U, XM_PROT_READ_WRITE));
  char expect[128];
  snprintf(expect, sizeof expect, "above the 0x1 the piece at arena offset %zu was added with", 2 * U);
  xt_assert_errmsg_has(expect);
  assert_pages(base, want, n); /* nothing changed, not even the first piece */

  XT_STATUS(XM_E_INVALID_ADDRESS, xm_region_protect(r, 2 * U + PAGE, 3 * U, XM_PROT_NONE));
  snprintf(expect, sizeof expect, "arena offset=%zu size=%zu", 3 * U, U);
  xt_assert_errmsg_has(expect);
  XT_OS_PROT(base + 2 * U, XM_PROT_READ);
  XT_OS_PROT(base + 4 * U, XM_PROT_READ_WRITE);
  XT_STATUS(XM_E_INVALID_ADDRESS, xm_region_protect(r, 0, 7 * U, XM_PROT_NONE));

  /* Back up to what each was added with; raising a piece back to its ceiling is allowed. */
  XT_OK(xm_region_protect(r, 0, 2 * U, XM_PROT_READ_WRITE));
  XT_OS_PROT(base, XM_PROT_READ_WRITE);
  XT_OS_PROT(base + 2 * U, XM_PROT_READ);

  /* Removing and adding a piece again resets its protection to the add's. */
  XT_OK(xm_region_protect(r, 4 * U, 2 * U, XM_PROT_NONE));
  XT_OK(xm_arena_remove(a, 4 * U, 2 * U));
  XT_STATUS(XM_E_INVALID_ADDRESS, xm_region_protect(r, 4 * U, U, XM_PROT_NONE));
  XT_OK(xm_arena_add_anon(a, 4 * U, 2 * U, XM_PROT_READ_WRITE));
  XT_OS_PROT(base + 4 * U, XM_PROT_READ_WRITE);
  XT_OK(xm_region_protect(r, 5 * U, U, XM_PROT_READ));       /* part of a piece */
  XT_OK(xm_arena_add_anon(a, 4 * U, U, XM_PROT_READ_WRITE)); /* replaces the front half only */
  XT_OS_PROT(base + 4 * U, XM_PROT_READ_WRITE);
  XT_OS_PROT(base + 5 * U, XM_PROT_READ);
  XT_STATUS(XM_E_ACCESS, xm_region_protect(r, 0, U, XM_PROT_READ_WRITE | XM_PROT_EXEC));
  free(want);
  xm_arena_free(a);
}

/* Every OS call of a change across pieces made to fail in turn: each failure leaves every page as it
   was (pages of one piece at different protections included), and the walk ends in success. */
static void arena_all_or_nothing(void **state) {
  (void)state;
  need_prot_query();
  xm_arena *a = three_pieces();
  xm_region *r = xm_arena_region(a);
  unsigned char *base = xt_arena_base(a);
  const size_t n = 3 * U / PAGE;
  unsigned *want = calloc(n, sizeof *want);
  assert_non_null(want);
  XT_OK(xm_region_protect(r, PAGE, PAGE, XM_PROT_NONE)); /* the first piece is mixed */
  for (size_t i = 0; i < n; i++)
    want[i] = i * PAGE >= 2 * U ? XM_PROT_READ : i == 1 ? XM_PROT_NONE : XM_PROT_READ_WRITE;
  assert_pages(base, want, n);
  int rc = XM_E_SYSTEM_CALL;
  long failures = 0;
  for (long nth = 1; rc != XM_OK && nth < 50; nth++) {
    xm__test_fail_nth(nth, XT_INJECTED_ERROR);
    rc = xm_region_protect(r, 0, 3 * U, XM_PROT_NONE);
    xm__test_fail_nth(0, 0);
    if (rc == XM_OK) break;
    assert_int_equal(rc, XM_E_SYSTEM_CALL);
    xt_assert_errmsg_has(xm_backend_name()[0] == 'w' ? "VirtualProtect" : "mprotect");
    assert_pages(base, want, n);
    failures++;
  }
  XT_OK(rc);
  assert_true(failures >= 2); /* the second piece's call failed after the first piece changed */
  for (size_t i = 0; i < n; i++)
    want[i] = XM_PROT_NONE;
  assert_pages(base, want, n);
  free(want);
  xm_arena_free(a);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(mapping_region),
      cmocka_unit_test(external_region),
      cmocka_unit_test(arena_pieces),
      cmocka_unit_test(arena_all_or_nothing),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
