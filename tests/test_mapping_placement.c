/* Where a mapping goes and what it is made of: alignment, populate and dontdump, guard pages that
   are reserved, fault and go with the mapping, fixed addresses that never replace what is there,
   large-folio placement, and huge pages by probe. */
#include "xmtest_faults.h"

/* Windows' allocation granularity: the sizes and alignments below are the same on every target. */
#define WIN_GRAN ((size_t)65536)

static void alignment(void **state) {
  (void)state;
  const uint64_t two_mib = 2u << 20;
  xm_builder b = xm_builder_new(4096);
  xm_builder_align(&b, two_mib);
  xm_mapping *m = NULL;
  XT_OK(xm_builder_build(&b, &m));
  assert_int_equal((uintptr_t)xm_mapping_ptr(m) % two_mib, 0);
  uint32_t v = 3;
  XT_OK(XM_WRITE_OBJ(m, 4092, &v));
  xm_mapping_free(m);

  xm_builder_align(&b, xm_page_size()); /* at most the granularity: nothing to do */
  XT_OK(xm_builder_build(&b, &m));
  xm_mapping_free(m);

  xm_builder_align(&b, 3);
  XT_STATUS(XM_E_INVALID_ALIGNMENT, xm_builder_build(&b, &m));
  xt_assert_errmsg_has("not a power of two");
  xm_builder_align(&b, (uint64_t)1 << 63);
  assert_int_not_equal(xm_builder_build(&b, &m), XM_OK);
}

/* Alignments from two units to 16 MiB are honoured; with an unaligned shm offset the alignment
   applies to the unit-aligned base below the mapping's pointer. */
static void alignment_up_to_16_mib(void **state) {
  (void)state;
  const uint64_t aligns[] = {2 * WIN_GRAN, 1u << 21, 1u << 24};
  for (size_t i = 0; i < sizeof aligns / sizeof aligns[0]; i++) {
    xm_builder b = xm_builder_new(3 * WIN_GRAN);
    xm_builder_align(&b, aligns[i]);
    xm_mapping *m = NULL;
    XT_OK(xm_builder_build(&b, &m));
    assert_int_equal((uintptr_t)xm_mapping_ptr(m) % aligns[i], 0);
    XT_OK(xm_mapping_write_obj(m, &aligns[i], sizeof aligns[i], 3 * WIN_GRAN - 8));
    xm_mapping_free(m);
  }
  xm_shm *shm = xt_shm("align", 4 * WIN_GRAN);
  xm_builder b = xm_builder_new(100);
  xm_builder_from_shm(&b, shm);
  xm_builder_offset(&b, WIN_GRAN + 12);
  xm_builder_align(&b, 1u << 22);
  xm_mapping *m = NULL;
  XT_OK(xm_builder_build(&b, &m));
  assert_int_equal(((uintptr_t)xm_mapping_ptr(m) - 12) % (1u << 22), 0);
  xm_mapping_free(m);
  xm_shm_free(shm);
}

static void populate_and_dontdump(void **state) {
  (void)state;
  xm_builder b = xm_builder_new(64 * 1024);
  xm_builder_populate(&b); /* allowed for anonymous mappings too (crosvm refuses) */
  xm_builder_dontdump(&b);
  xm_mapping *m = NULL;
  XT_OK(xm_builder_build(&b, &m));
  uint8_t v = 0xAB, r = 0;
  XT_OK(XM_WRITE_OBJ(m, 65535, &v));
  XT_OK(XM_READ_OBJ(m, 65535, &r));
  assert_int_equal(r, 0xAB);
  xm_mapping_free(m);
}

static void guard_pages_and_noreplace(void **state) {
  (void)state;
  size_t gran = xm_allocation_granularity();
  xm_builder b = xm_builder_new(gran);
  xm_builder_guard_pages(&b, 1);
  xm_mapping *m = NULL;
  XT_OK(xm_builder_build(&b, &m));
  uint8_t v = 1;
  XT_OK(XM_WRITE_OBJ(m, gran - 1, &v));
  void *where = xm_mapping_ptr(m);
  xm_mapping_free(m);

  /* the freed range is free again: a fixed no-replace mapping takes it, a second one is refused */
  b = xm_builder_new(gran);
  xm_builder_fixed_noreplace(&b, where);
  XT_OK(xm_builder_build(&b, &m));
  assert_ptr_equal(xm_mapping_ptr(m), where);
  xm_mapping *again = NULL;
  XT_STATUS(XM_E_EXISTS, xm_builder_build(&b, &again));
  xt_assert_errmsg_has("already");
  xm_mapping_free(m);

  xm_builder_fixed_noreplace(&b, (uint8_t *)where + 1);
  XT_STATUS(XM_E_NOT_PAGE_ALIGNED, xm_builder_build(&b, &m));
}

/* Guard pages are reserved on both sides of an aligned mapping (a whole unit's view on Windows)
   and released with it; nothing is left. */
static void guard_pages_reserved_and_released(void **state) {
  (void)state;
  const size_t page = xm_page_size(), gran = xm_allocation_granularity();
  const size_t extent = (10000 + gran - 1) / gran * gran; /* what the mapping itself takes */
  xt_snapshot before = xt_snap();
  xm_builder b = xm_builder_new(10000);
  xm_builder_guard_pages(&b, 2);
  xm_builder_align(&b, 4 * WIN_GRAN);
  xm_mapping *m = NULL;
  XT_OK(xm_builder_build(&b, &m));
  unsigned char *p = xm_mapping_ptr(m);
  assert_int_equal((uintptr_t)p % (4 * WIN_GRAN), 0);
#ifdef _WIN32
  MEMORY_BASIC_INFORMATION below = xt_query(p - 2 * page), above = xt_query(p + extent);
  assert_int_equal(below.State, MEM_RESERVE);
  assert_int_equal(above.State, MEM_RESERVE);
  assert_true((unsigned char *)above.AllocationBase + above.RegionSize >= p + extent + 2 * page);
#endif
  XT_OK(xm_mapping_write_obj(m, "edge", 4, 9996));
  xm_mapping_free(m);
#ifdef _WIN32
  assert_int_equal(xt_query(p - 2 * page).State, MEM_FREE);
  assert_int_equal(xt_query(p).State, MEM_FREE);
  assert_int_equal(xt_query(p + extent).State, MEM_FREE);
#endif
  xt_assert_released(p - 2 * page, extent + 4 * page);
  xt_assert_no_leak(before);
}

/* Guard pages really fault, on both sides, and the mapping between them does not. */
static void guard_pages_fault(void **state) {
  (void)state;
  size_t gran = xm_allocation_granularity(), page = xm_page_size();
  xm_builder b = xm_builder_new(gran);
  xm_builder_guard_pages(&b, 2);
  xm_mapping *m = NULL;
  XT_OK(xm_builder_build(&b, &m));
  uint8_t *p = xm_mapping_ptr(m);
  xt_assert_accessible(m, p);
  xt_assert_accessible(m, p + gran - 1);
  xt_assert_faults(m, p - 1);
  xt_assert_faults(m, p - 2 * page);
  xt_assert_faults(m, p + gran);
  xt_assert_faults(m, p + gran + page);
  xm_mapping_free(m);
}

/* A fixed no-replace address that is occupied is refused without clobbering it; once free it is
   taken; guard pages around a fixed address that would overlap a mapping are refused too. */
static void fixed_noreplace_refuses_occupied(void **state) {
  (void)state;
  const size_t gran = xm_allocation_granularity();
  xm_mapping *probe = xt_anon(2 * gran);
  void *addr = xm_mapping_ptr(probe);
  long handles = xt_snap().handles;
  xm_builder b = xm_builder_new(2 * gran);
  xm_builder_fixed_noreplace(&b, addr);
  xm_mapping *m = NULL;
  XT_STATUS(XM_E_EXISTS, xm_builder_build(&b, &m)); /* occupied: refused, nothing clobbered */
  assert_int_equal(xt_snap().handles, handles);
  xm_mapping_free(probe);
  XT_OK(xm_builder_build(&b, &m));
  assert_ptr_equal(xm_mapping_ptr(m), addr);
  /* guard pages around a fixed address are refused when they would overlap */
  xm_builder g = xm_builder_new(gran);
  xm_builder_fixed_noreplace(&g, (unsigned char *)addr + 2 * gran);
  xm_builder_guard_pages(&g, 1);
  xm_mapping *m2 = NULL;
  XT_STATUS(XM_E_EXISTS, xm_builder_build(&g, &m2));
  assert_int_equal(xt_snap().handles, handles);
  xm_mapping_free(m);
}

/* File mappings of 64 KiB or more and any mapping of 2 MiB or more start on a 2 MiB boundary,
   so the kernel can back them with large folios; repeated create/destroy keeps that placement. */
static void large_folio_placement(void **state) {
  (void)state;
  /* POSIX: 2 MiB boundaries for large folios. Windows has no large folios: views start on the
     64 KiB allocation granularity, which is what is checked there. */
  const uintptr_t unit =
      xm_allocation_granularity() == xm_page_size() ? (uintptr_t)2 << 20 : xm_allocation_granularity();
  void *zeros = calloc(1, 1 << 20);
  assert_non_null(zeros);
  xm_descriptor f = xt_temp_file(zeros, 1 << 20, 1);
  free(zeros);
  for (int round = 0; round < 3; round++) {
    xm_builder b = xm_builder_new(1 << 20);
    xm_builder_from_file(&b, f);
    xm_mapping *m = NULL;
    XT_OK(xm_builder_build(&b, &m));
    assert_int_equal((uintptr_t)xm_mapping_ptr(m) % unit, 0);
    xm_mapping *anon = xt_anon(4u << 20);
    assert_int_equal((uintptr_t)xm_mapping_ptr(anon) % unit, 0);
    xm_mapping_free(anon);
    xm_mapping_free(m);
  }
  xm_mapping *small = xt_anon(64 << 10); /* small anonymous mappings are left where the OS puts them */
  assert_non_null(xm_mapping_ptr(small));
  xm_mapping_free(small);
  xt_close(f);
}

/* Huge pages where the system has them (the build itself is the probe), and a size that is not a
   power of two refused. */
static void huge_pages_by_probe(void **state) {
  (void)state;
  const size_t size = 2u << 20;
  xm_builder b = xm_builder_new(size);
  xm_builder_huge_pages(&b, 0);
  xm_mapping *m = NULL;
  int rc = xm_builder_build(&b, &m);
  if (rc == XM_E_SYSTEM_CALL || rc == XM_E_NOT_IMPLEMENTED)
    XT_SKIP("huge pages unavailable here: %s", xm_errmsg()); /* the probe is the build itself */
  XT_OK(rc);
  uint64_t v = 42, r = 0;
  XT_OK(XM_WRITE_OBJ(m, size - 8, &v));
  XT_OK(XM_READ_OBJ(m, size - 8, &r));
  assert_int_equal(r, 42);
  xm_mapping_free(m);
  xm_builder_huge_pages(&b, 3 * 1024 * 1024); /* not a power of two */
  XT_STATUS(XM_E_INVALID_ARGUMENT, xm_builder_build(&b, &m));
}

/* Where huge pages cannot be had (no privilege, none reserved) the build fails with a status and a
   message and leaks nothing; a file never gets them (XM_E_NOT_IMPLEMENTED). */
static void huge_pages_refused_cleanly(void **state) {
  (void)state;
#ifdef _WIN32
  const size_t size = 4096; /* the library rounds up to the large-page minimum */
#else
  const size_t size = 2u << 20; /* hugetlb mappings are unmapped in whole huge pages */
#endif
  xt_snapshot before = xt_snap();
  xm_builder b = xm_builder_new(size);
  xm_builder_huge_pages(&b, 0);
  xm_mapping *m = NULL;
  int rc = xm_builder_build(&b, &m);
  if (rc == XM_OK) { /* Windows with "Lock pages in memory" granted, Linux with huge pages reserved */
    XT_OK(xm_mapping_write_obj(m, "huge", 4, 0));
    xm_mapping_free(m);
  } else {
    print_message("huge pages unavailable: %s\n", xm_errmsg());
    assert_true(rc == XM_E_SYSTEM_CALL || rc == XM_E_NOT_IMPLEMENTED);
    assert_true(strlen(xm_errmsg()) > 0);
  }
  assert_int_equal(xt_snap().handles, before.handles);
  /* a file cannot have huge pages */
  xm_descriptor f = xt_pattern_file(4096, 1);
  xt_snapshot with_file = xt_snap();
  b = xm_builder_new(4096);
  xm_builder_from_file(&b, f);
  xm_builder_huge_pages(&b, 0);
  XT_STATUS(XM_E_NOT_IMPLEMENTED, xm_builder_build(&b, &m));
  xt_assert_no_leak(with_file);
  xt_close(f);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(alignment),
      cmocka_unit_test(alignment_up_to_16_mib),
      cmocka_unit_test(populate_and_dontdump),
      cmocka_unit_test(guard_pages_and_noreplace),
      cmocka_unit_test(guard_pages_reserved_and_released),
      cmocka_unit_test(guard_pages_fault),
      cmocka_unit_test(fixed_noreplace_refuses_occupied),
      cmocka_unit_test(large_folio_placement),
      cmocka_unit_test(huge_pages_by_probe),
      cmocka_unit_test(huge_pages_refused_cleanly),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
