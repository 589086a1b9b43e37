/* The builder and the mapping, the core: crosvm's mmap tests, the empty mapping, checked and
   volatile access, the region interface of a mapping and of memory the caller mapped, and NULL
   handles. Files, protection, placement and leaks have their own test_mapping_*.c. */
#include "xmtest.h"

static void basic_map(void **state) {
  (void)state;
  xm_mapping *m = xt_anon(1024);
  assert_int_equal(xm_mapping_size(m), 1024);
  assert_non_null(xm_mapping_ptr(m));
  /* anonymous memory starts zeroed and is usable */
  uint64_t v = 1;
  XT_OK(XM_READ_OBJ(m, 1016, &v));
  assert_int_equal(v, 0);
  xm_mapping_free(m);
}

/* crosvm's map_invalid_size becomes: size 0 is a valid empty mapping, made without an OS call. */
static void map_empty(void **state) {
  (void)state;
  xm__test_fail_nth(0, 0);
  xm_mapping *m = xt_anon(0);
  assert_int_equal(xm__test_os_calls(), 0);
  assert_null(xm_mapping_ptr(m));
  assert_int_equal(xm_mapping_size(m), 0);
  uint8_t buf[4] = {0};
  size_t copied = 99;
  XT_OK(xm_mapping_read_slice(m, buf, sizeof buf, 0, &copied));
  assert_int_equal(copied, 0);
  XT_OK(xm_mapping_write_slice(m, buf, sizeof buf, 0, &copied));
  assert_int_equal(copied, 0);
  XT_STATUS(XM_E_INVALID_ADDRESS, xm_mapping_read_slice(m, buf, 1, 1, NULL));
  XT_OK(xm_mapping_read_obj(m, buf, 0, 0));
  XT_STATUS(XM_E_INVALID_ADDRESS, xm_mapping_read_obj(m, buf, 1, 0));
  XT_STATUS(XM_E_INVALID_ADDRESS, xm_mapping_write_obj(m, buf, 1, 0));
  XT_STATUS(XM_E_INVALID_ADDRESS, xm_mapping_read_obj_volatile(m, buf, 1, 0));
  xm_slice s;
  XT_OK(xm_mapping_get_slice(m, 0, 0, &s));
  assert_int_equal(s.size, 0);
  XT_STATUS(XM_E_OUT_OF_BOUNDS, xm_mapping_get_slice(m, 0, 1, &s));
  XT_OK(xm_mapping_msync(m));
  XT_OK(xm_mapping_flush_all(m));
  XT_OK(xm_mapping_flush_region(m, 0, 0));
  XT_STATUS(XM_E_INVALID_RANGE, xm_mapping_flush_region(m, 0, 1));
  XT_OK(xm_mapping_sync_range(m, 0, 0, XM_SYNC_SYNC));
  XT_OK(xm_mapping_advise(m, 0, 0, XM_ADVICE_WILLNEED));
  XT_OK(xm_region_msync(xm_mapping_region(m), 0, 0));
  assert_int_equal(xm__test_os_calls(), 0);
  xm_mapping_free(m);
}

/* crosvm's test_write_past_end: a slice copy is cut at the end; past the end is an error. */
static void write_past_end_is_clamped(void **state) {
  (void)state;
  xm_mapping *m = xt_anon(5);
  const uint8_t data[6] = {1, 2, 3, 4, 5, 6};
  size_t copied = 0;
  XT_OK(xm_mapping_write_slice(m, data, sizeof data, 0, &copied));
  assert_int_equal(copied, 5);
  uint8_t back[6] = {0};
  XT_OK(xm_mapping_read_slice(m, back, sizeof back, 0, &copied));
  assert_int_equal(copied, 5);
  assert_memory_equal(back, data, 5);
  XT_OK(xm_mapping_read_slice(m, back, sizeof back, 5, &copied)); /* offset == size copies 0 */
  assert_int_equal(copied, 0);
  XT_STATUS(XM_E_INVALID_ADDRESS, xm_mapping_read_slice(m, back, 1, 6, &copied));
  xt_assert_errmsg_has("requested memory out of range");
  XT_STATUS(XM_E_INVALID_ADDRESS, xm_mapping_write_slice(m, back, 1, SIZE_MAX, NULL));
  xm_mapping_free(m);
}

/* Doc tests of read_obj / write_obj and their volatile forms. */
static void obj_doc_tests(void **state) {
  (void)state;
  xm_mapping *m = xt_anon(1024);
  uint64_t v = 55, r = 0;
  XT_OK(XM_WRITE_OBJ(m, 32, &v));
  XT_OK(XM_READ_OBJ(m, 32, &r));
  assert_int_equal(r, 55);
  uint32_t w = 0xf00, wr = 0;
  XT_OK(xm_mapping_write_obj_volatile(m, &w, sizeof w, 16));
  XT_OK(xm_mapping_read_obj_volatile(m, &wr, sizeof wr, 16));
  assert_int_equal(wr, 0xf00);
  XT_OK(XM_READ_OBJ(m, 16, &wr));
  assert_int_equal(wr, 0xf00);
  xm_mapping_free(m);
}

static void obj_bounds(void **state) {
  (void)state;
  xm_mapping *m = xt_anon(64);
  uint64_t v = 0x1122334455667788u, r = 0;
  XT_OK(XM_WRITE_OBJ(m, 3, &v)); /* unaligned is fine */
  XT_OK(XM_READ_OBJ(m, 3, &r));
  assert_true(r == v);
  XT_OK(XM_WRITE_OBJ(m, 56, &v)); /* ends exactly at the end */
  XT_STATUS(XM_E_INVALID_ADDRESS, XM_WRITE_OBJ(m, 57, &v));
  xt_assert_errmsg_has("offset=57 count=8 size=64");
  XT_STATUS(XM_E_INVALID_ADDRESS, XM_READ_OBJ(m, 57, &r));
  XT_STATUS(XM_E_INVALID_ADDRESS, XM_READ_OBJ(m, SIZE_MAX - 3, &r)); /* offset + size overflows */
  XT_STATUS(XM_E_INVALID_ADDRESS, xm_mapping_read_obj(m, &r, SIZE_MAX, 1));
  xm_mapping_free(m);
}

static void volatile_access(void **state) {
  (void)state;
  xm_mapping *m = xt_anon(64);
  for (size_t size = 1; size <= 8; size *= 2) {
    uint64_t v = 0x0102030405060708u, r = 0;
    XT_OK(xm_mapping_write_obj_volatile(m, &v, size, 8));
    XT_OK(xm_mapping_read_obj_volatile(m, &r, size, 8));
    assert_memory_equal(&r, &v, size);
  }
  uint64_t v = UINT64_MAX;
  XT_OK(xm_mapping_write_obj_volatile(m, &v, 8, 56)); /* 8-byte access ends at the end */
  XT_STATUS(XM_E_INVALID_ALIGNMENT, xm_mapping_write_obj_volatile(m, &v, 8, 4));
  xt_assert_errmsg_has("naturally aligned");
  XT_STATUS(XM_E_INVALID_ALIGNMENT, xm_mapping_read_obj_volatile(m, &v, 4, 2));
  XT_STATUS(XM_E_INVALID_ALIGNMENT, xm_mapping_read_obj_volatile(m, &v, 3, 0));
  XT_STATUS(XM_E_INVALID_ALIGNMENT, xm_mapping_read_obj_volatile(m, &v, 16, 0));
  XT_STATUS(XM_E_INVALID_ALIGNMENT, xm_mapping_read_obj_volatile(m, &v, 0, 0));
  /* range beats alignment */
  XT_STATUS(XM_E_INVALID_ADDRESS, xm_mapping_read_obj_volatile(m, &v, 4, 62));
  XT_STATUS(XM_E_INVALID_ADDRESS, xm_mapping_write_obj_volatile(m, &v, 8, 64));
  xm_mapping_free(m);
}

/* An anonymous mapping of several allocation units and a bit starts on a unit and works up to
   its last byte; on Windows it is a view of a pagefile-backed section. */
static void anonymous_mapping_spans_units(void **state) {
  (void)state;
  const size_t gran = xm_allocation_granularity();
  xm_mapping *m = xt_anon(3 * gran + 100);
  assert_int_equal((uintptr_t)xm_mapping_ptr(m) % gran, 0);
  uint64_t v = 0x1122334455667788u, r = 0;
  XT_OK(XM_WRITE_OBJ(m, 3 * gran + 92, &v));
  XT_OK(XM_READ_OBJ(m, 3 * gran + 92, &r));
  assert_true(r == v);
#ifdef _WIN32
  MEMORY_BASIC_INFORMATION mbi = xt_query(xm_mapping_ptr(m));
  assert_int_equal(mbi.Type, MEM_MAPPED);
  assert_int_equal(mbi.Protect, PAGE_READWRITE);
#endif
  XT_OK(xm_mapping_msync(m));
  xm_mapping_free(m);
}

static void region_interface(void **state) {
  (void)state;
  size_t ps = xm_page_size();
  xm_mapping *m = xt_anon(0x40000);
  xm_region *r = xm_mapping_region(m);
  assert_ptr_equal(xm_region_ptr(r), xm_mapping_ptr(m));
  assert_int_equal(xm_region_size(r), 0x40000);
  XT_STATUS(XM_E_ADD_FD_MAPPING_UNSUPPORTED, xm_region_add_fd_mapping(r, 0, ps, XT_BAD_DESCRIPTOR, 0, XM_PROT_READ));
  assert_string_equal(xm_errmsg(), "`add_fd_mapping` is unsupported");
  XT_STATUS(XM_E_REMOVE_MAPPING_UNSUPPORTED, xm_region_remove_mapping(r, 0, ps));
  /* crosvm's arena_msync (a mapping's region on Windows) */
  XT_OK(xm_region_msync(r, 0, ps));
  XT_OK(xm_region_msync(r, 0, 0x40000));
  XT_OK(xm_region_msync(r, ps, 0x40000 - ps));
  XT_STATUS(XM_E_INVALID_ADDRESS, xm_region_msync(r, ps, 0x40000));
  XT_STATUS(XM_E_INVALID_ADDRESS, xm_region_advise(r, ps, 0x40000, XM_ADVICE_NORMAL));
  xm_region_free(r); /* a mapping's region is not freed this way: a no-op */
  assert_int_equal(xm_region_size(xm_mapping_region(m)), 0x40000);
  xm_mapping_free(m);

  static uint8_t outside[4096];
  xm_region *ext = NULL;
  XT_OK(xm_external_mapping_new((uint64_t)(uintptr_t)outside, sizeof outside, &ext));
  assert_ptr_equal(xm_region_ptr(ext), outside);
  assert_int_equal(xm_region_size(ext), sizeof outside);
  XT_STATUS(XM_E_REMOVE_MAPPING_UNSUPPORTED, xm_region_remove_mapping(ext, 0, 1));
  XT_STATUS(XM_E_INVALID_ADDRESS, xm_region_msync(ext, 1, sizeof outside));
  xm_region_free(ext);
  XT_STATUS(XM_E_INVALID_ADDRESS, xm_external_mapping_new(UINT64_MAX - 10, 100, &ext));
  XT_STATUS(XM_E_INVALID_ARGUMENT, xm_external_mapping_new(0, 1, NULL));
  assert_null(xm_region_ptr(NULL));
  assert_int_equal(xm_region_size(NULL), 0);
  XT_STATUS(XM_E_INVALID_ARGUMENT, xm_region_msync(NULL, 0, 0));
}

/* Memory the caller mapped itself, made a region: msync writes a shared file view back, and
   private memory has nothing to write. */
static void external_region_msync(void **state) {
  (void)state;
  const size_t ps = xm_page_size();
#ifdef _WIN32
  void *p = VirtualAlloc(NULL, 2 * ps, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE);
  assert_non_null(p);
#else
  void *p = mmap(NULL, 2 * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  assert_true(p != MAP_FAILED);
#endif
  xm_region *r = NULL;
  XT_OK(xm_external_mapping_new((uint64_t)(uintptr_t)p, 2 * ps, &r));
  XT_OK(xm_region_msync(r, 0, 2 * ps));
  XT_STATUS(XM_E_INVALID_ADDRESS, xm_region_msync(r, ps, 2 * ps));
  xm_region_free(r);
#ifdef _WIN32
  VirtualFree(p, 0, MEM_RELEASE);
#else
  munmap(p, 2 * ps);
#endif

  xm_descriptor f = xt_pattern_file(ps, 1);
#ifdef _WIN32
  HANDLE section = CreateFileMappingW(f, NULL, PAGE_READWRITE, 0, 0, NULL);
  assert_non_null(section);
  unsigned char *v = MapViewOfFile(section, FILE_MAP_WRITE, 0, 0, 0);
  assert_non_null(v);
#else
  unsigned char *v = mmap(NULL, ps, PROT_READ | PROT_WRITE, MAP_SHARED, f, 0);
  assert_true(v != MAP_FAILED);
#endif
  XT_OK(xm_external_mapping_new((uint64_t)(uintptr_t)v, ps, &r));
  v[10] = 0xAB;
  XT_OK(xm_region_msync(r, 0, ps));
  unsigned char back = 0;
  xt_pread(f, &back, 1, 10);
  assert_int_equal(back, 0xAB);
  xm_region_free(r);
#ifdef _WIN32
  UnmapViewOfFile(v);
  CloseHandle(section);
#else
  munmap(v, ps);
#endif
  xt_close(f);
}

static void null_handles(void **state) {
  (void)state;
  xm_mapping_free(NULL);
  xm_region_free(NULL);
  xm_shm_free(NULL);

  assert_null(xm_mapping_ptr(NULL));
  assert_int_equal(xm_mapping_size(NULL), 0);
  assert_null(xm_mapping_region(NULL));
  XT_STATUS(XM_E_INVALID_ARGUMENT, xm_mapping_msync(NULL));
  XT_STATUS(XM_E_INVALID_ARGUMENT, xm_mapping_flush_region(NULL, 0, 0));
  XT_STATUS(XM_E_INVALID_ARGUMENT, xm_mapping_read_obj_volatile(NULL, &state, 1, 0));
  XT_STATUS(XM_E_INVALID_ARGUMENT, xm_mapping_advise(NULL, 0, 0, XM_ADVICE_NORMAL));
  XT_STATUS(XM_E_INVALID_ARGUMENT, xm_mapping_sync_range(NULL, 0, 0, XM_SYNC_SYNC));
  xm_builder_offset(NULL, 1); /* setters ignore NULL */
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(basic_map),
      cmocka_unit_test(map_empty),
      cmocka_unit_test(write_past_end_is_clamped),
      cmocka_unit_test(obj_doc_tests),
      cmocka_unit_test(obj_bounds),
      cmocka_unit_test(volatile_access),
      cmocka_unit_test(anonymous_mapping_spans_units),
      cmocka_unit_test(region_interface),
      cmocka_unit_test(external_region_msync),
      cmocka_unit_test(null_handles),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
