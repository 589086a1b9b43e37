/* The builder and the mapping: crosvm's mmap tests, the empty mapping, checked and volatile
   access, protection, alignment, bad input and leaks after failed builds. */
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

static void map_invalid_fd(void **state) {
  (void)state;
  xm_builder b = xm_builder_new(1024);
  xm_builder_from_file(&b, XT_BAD_DESCRIPTOR);
  xm_mapping *m = (xm_mapping *)&b; /* out-parameters are written only on success */
  XT_STATUS(XM_E_SYSTEM_CALL, xm_builder_build(&b, &m));
  assert_ptr_equal(m, (xm_mapping *)&b);
  assert_int_equal(xm_os_error(), XT_BAD_DESCRIPTOR_ERROR);
  xt_assert_errmsg_has("mmap related system call failed: ");
  char code[32];
  snprintf(code, sizeof code, "(os error %d)", XT_BAD_DESCRIPTOR_ERROR);
  xt_assert_errmsg_has(code);
  /* size 0 does not excuse a bad descriptor: validation comes first */
  b = xm_builder_new(0);
  xm_builder_from_descriptor(&b, XT_BAD_DESCRIPTOR);
  XT_STATUS(XM_E_SYSTEM_CALL, xm_builder_build(&b, &m));
}

static void test_write_past_end(void **state) {
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

static void from_fd_offset_invalid(void **state) {
  (void)state;
  xm_descriptor f = xt_temp_file("x", 1, 1);
  xm_builder b = xm_builder_new(4096);
  xm_builder_from_file(&b, f);
  xm_builder_offset(&b, (uint64_t)INT64_MAX + 1);
  xt_build_refused_before_os(&b, XM_E_INVALID_OFFSET);
  xt_assert_errmsg_has("requested offset is out of range of off_t");
  xm_builder_offset(&b, UINT64_MAX);
  xt_build_refused_before_os(&b, XM_E_INVALID_OFFSET);
  xt_close(f);
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

static xm_mapping *anon_with(size_t size, xm_prot prot) {
  xm_builder b = xm_builder_new(size);
  xm_builder_protection(&b, prot);
  xm_mapping *m = NULL;
  XT_OK(xm_builder_build(&b, &m));
  return m;
}

static void protection_honoured(void **state) {
  (void)state;
  uint8_t buf[8] = {0};
  size_t copied;
  xm_mapping *ro = anon_with(4096, XM_PROT_READ);
  XT_OK(xm_mapping_read_slice(ro, buf, sizeof buf, 0, &copied));
  XT_STATUS(XM_E_ACCESS, xm_mapping_write_slice(ro, buf, sizeof buf, 0, &copied));
  xt_assert_errmsg_has("write of 8 bytes at offset 0");
  XT_STATUS(XM_E_ACCESS, xm_mapping_write_obj(ro, buf, 4, 0));
  XT_STATUS(XM_E_ACCESS, xm_mapping_write_obj_volatile(ro, buf, 4, 0));
  XT_OK(xm_mapping_read_obj_volatile(ro, buf, 4, 0));
  XT_STATUS(XM_E_INVALID_ADDRESS, xm_mapping_write_slice(ro, buf, 1, 4097, &copied)); /* range first */
  xm_mapping_free(ro);

  xm_mapping *none = anon_with(4096, XM_PROT_NONE);
  XT_STATUS(XM_E_ACCESS, xm_mapping_read_slice(none, buf, sizeof buf, 0, &copied));
  XT_STATUS(XM_E_ACCESS, xm_mapping_read_obj(none, buf, 8, 100));
  XT_STATUS(XM_E_ACCESS, xm_mapping_write_slice(none, buf, 1, 4095, &copied));
  XT_OK(xm_mapping_read_slice(none, buf, sizeof buf, 4096, &copied)); /* nothing to access */
  assert_int_equal(copied, 0);
  XT_STATUS(XM_E_ACCESS, xm_mapping_flush_region(none, 0, 64));
  xm_mapping_free(none);

  xm_mapping *wo = anon_with(4096, XM_PROT_WRITE);
  XT_OK(xm_mapping_write_slice(wo, buf, sizeof buf, 0, &copied));
  XT_STATUS(XM_E_ACCESS, xm_mapping_read_slice(wo, buf, sizeof buf, 0, &copied));
  xm_mapping_free(wo);

  xm_builder b = xm_builder_new(4096);
  xm_builder_protection(&b, 8u); /* 4 is XM_PROT_EXEC */
  xm_mapping *m = NULL;
  XT_STATUS(XM_E_INVALID_ARGUMENT, xm_builder_build(&b, &m));
}

static void protect_changes(void **state) {
  (void)state;
  size_t page = xm_page_size();
  xm_mapping *m = xt_anon(4 * page);
  uint32_t v = 7;
  XT_OK(xm_mapping_protect(m, 0, 4 * page, XM_PROT_READ));
  XT_STATUS(XM_E_ACCESS, XM_WRITE_OBJ(m, 0, &v));
  XT_OK(XM_READ_OBJ(m, 0, &v));
  XT_OK(xm_mapping_protect(m, 0, 4 * page, XM_PROT_READ_WRITE)); /* raise back */
  XT_OK(XM_WRITE_OBJ(m, 0, &v));
  /* part of it: page 1 read-only; neighbours stay writable */
  XT_OK(xm_mapping_protect(m, page, page, XM_PROT_READ));
  XT_OK(XM_WRITE_OBJ(m, 0, &v));
  XT_OK(XM_WRITE_OBJ(m, 2 * page, &v));
  XT_STATUS(XM_E_ACCESS, XM_WRITE_OBJ(m, page + 8, &v));
  XT_STATUS(XM_E_ACCESS, XM_WRITE_OBJ(m, page - 2, &v)); /* straddles into page 1 */
  size_t copied = 0;
  uint8_t buf[16] = {0};
  XT_STATUS(XM_E_ACCESS, xm_mapping_write_slice(m, buf, sizeof buf, page - 8, &copied));
  XT_OK(xm_mapping_read_slice(m, buf, sizeof buf, page - 8, &copied));
  assert_int_equal(copied, sizeof buf);
  XT_OK(xm_mapping_protect(m, page, page, XM_PROT_READ_WRITE));
  XT_OK(XM_WRITE_OBJ(m, page + 8, &v));
  /* errors */
  XT_STATUS(XM_E_INVALID_RANGE, xm_mapping_protect(m, page, 4 * page, XM_PROT_READ));
  xt_assert_errmsg_has("region_size=");
  XT_STATUS(XM_E_INVALID_ARGUMENT, xm_mapping_protect(m, 0, page, 8u));
  XT_STATUS(XM_E_INVALID_ARGUMENT, xm_mapping_protect(NULL, 0, page, XM_PROT_READ));
  XT_OK(xm_mapping_protect(m, 4 * page, 0, XM_PROT_NONE));
  xm_mapping_free(m);

  xm_mapping *ro = anon_with(page, XM_PROT_READ);
  XT_STATUS(XM_E_ACCESS, xm_mapping_protect(ro, 0, page, XM_PROT_READ_WRITE)); /* above what it was built with */
  xt_assert_errmsg_has("above");
  XT_OK(xm_mapping_protect(ro, 0, page, XM_PROT_NONE));
  XT_STATUS(XM_E_ACCESS, XM_READ_OBJ(ro, 0, &v));
  xm_mapping_free(ro);
}

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

static void file_mapping_roundtrip(void **state) {
  (void)state;
  size_t gran = xm_allocation_granularity();
  size_t len = 2 * gran + 100;
  uint8_t *data = xt_pattern(len, 7, 1);
  xm_descriptor f = xt_temp_file(data, len, 1);

  /* aligned, page and unaligned offsets, read back the file's bytes */
  const uint64_t offsets[] = {0, 1, xm_page_size() - 1, xm_page_size(), gran, gran + 1};
  for (size_t i = 0; i < sizeof offsets / sizeof offsets[0]; i++) {
    xm_builder b = xm_builder_new(64);
    xm_builder_from_file(&b, f);
    xm_builder_offset(&b, offsets[i]);
    xm_mapping *m = NULL;
    XT_OK(xm_builder_build(&b, &m));
    uint8_t got[64];
    size_t copied;
    XT_OK(xm_mapping_read_slice(m, got, sizeof got, 0, &copied));
    assert_int_equal(copied, 64);
    assert_memory_equal(got, data + offsets[i], 64);
    xm_mapping_free(m);
  }

  /* write through the mapping, msync, read back through ordinary I/O */
  xm_builder b = xm_builder_new(len);
  xm_builder_from_file(&b, f);
  xm_mapping *m = NULL;
  XT_OK(xm_builder_build(&b, &m));
  const char msg[] = "written through the mapping";
  XT_OK(xm_mapping_write_slice(m, msg, sizeof msg, gran + 3, NULL));
  XT_OK(xm_mapping_msync(m));
  XT_OK(xm_mapping_sync_range(m, gran, 64, XM_SYNC_ASYNC));
  XT_OK(xm_mapping_sync_range(m, gran + 3, sizeof msg, XM_SYNC_SYNC));
  XT_OK(xm_region_msync(xm_mapping_region(m), 1, 10)); /* unaligned start is rounded down */
  XT_STATUS(XM_E_INVALID_RANGE, xm_mapping_sync_range(m, len, 1, XM_SYNC_SYNC));
  xt_assert_errmsg_has("region_size=");
  XT_STATUS(XM_E_INVALID_ARGUMENT, xm_mapping_sync_range(m, 0, 1, (xm_sync)7));
  char back[sizeof msg];
  xt_pread(f, back, sizeof back, gran + 3);
  assert_memory_equal(back, msg, sizeof msg);
  xm_mapping_free(m);

  /* a read-only descriptor maps read-only; a checked write is refused */
  xm_descriptor ro = xt_temp_file(data, len, 0);
  b = xm_builder_new(len);
  xm_builder_from_file(&b, ro);
  xm_builder_protection(&b, XM_PROT_READ);
  XT_OK(xm_builder_build(&b, &m));
  uint8_t first = 0;
  XT_OK(XM_READ_OBJ(m, 0, &first));
  assert_int_equal(first, data[0]);
  XT_STATUS(XM_E_ACCESS, XM_WRITE_OBJ(m, 0, &first));
  XT_OK(xm_mapping_msync(m)); /* nothing can be dirty; must not need write access */
  xm_mapping_free(m);
  xt_close(ro);

  /* whole-file mapping */
  b = xm_builder_new(0);
  xm_builder_from_file(&b, f);
  xm_builder_to_end_of_file(&b);
  xm_builder_offset(&b, 5);
  XT_OK(xm_builder_build(&b, &m));
  assert_int_equal(xm_mapping_size(m), len - 5);
  xm_mapping_free(m);
  xm_builder_offset(&b, len + 1);
  XT_STATUS(XM_E_INVALID_OFFSET, xm_builder_build(&b, &m));
  xm_builder_offset(&b, len); /* exactly the end: an empty mapping */
  XT_OK(xm_builder_build(&b, &m));
  assert_int_equal(xm_mapping_size(m), 0);
  xm_mapping_free(m);

  xt_close(f);
  free(data);
}

static void private_mapping(void **state) {
  (void)state;
  xm_descriptor f = xt_temp_file("original", 8, 1);
  xm_builder b = xm_builder_new(8);
  xm_builder_from_file(&b, f);
  xm_builder_private(&b);
  xm_mapping *m = NULL;
  XT_OK(xm_builder_build(&b, &m));
  XT_OK(xm_mapping_write_slice(m, "CHANGED!", 8, 0, NULL));
  char got[8];
  XT_OK(xm_mapping_read_slice(m, got, 8, 0, NULL));
  assert_memory_equal(got, "CHANGED!", 8);
  XT_OK(xm_mapping_msync(m));
  xt_pread(f, got, 8, 0);
  assert_memory_equal(got, "original", 8); /* copy-on-write never reaches the file */
  xm_mapping_free(m);
  xt_close(f);
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

/* File mappings of 64 KiB or more and any mapping of 2 MiB or more start on a 2 MiB boundary,
   so the kernel can back them with large folios; repeated create/destroy keeps that placement. */
static void large_folio_placement(void **state) {
  (void)state;
  /* POSIX: 2 MiB boundaries for large folios. Windows has no large folios: views start on the
     64 KiB allocation granularity, which is what is checked there. */
  const uintptr_t unit = xm_allocation_granularity() == xm_page_size() ? (uintptr_t)2 << 20 : xm_allocation_granularity();
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
      cmocka_unit_test(map_invalid_fd),
      cmocka_unit_test(test_write_past_end),
      cmocka_unit_test(from_fd_offset_invalid),
      cmocka_unit_test(obj_doc_tests),
      cmocka_unit_test(obj_bounds),
      cmocka_unit_test(volatile_access),
      cmocka_unit_test(protection_honoured),
      cmocka_unit_test(protect_changes),
      cmocka_unit_test(alignment),
      cmocka_unit_test(populate_and_dontdump),
      cmocka_unit_test(leak_check_sees_leaks),
      cmocka_unit_test(bad_builds_leak_nothing),
      cmocka_unit_test(injected_failures_leak_nothing),
      cmocka_unit_test(file_mapping_roundtrip),
      cmocka_unit_test(private_mapping),
      cmocka_unit_test(guard_pages_and_noreplace),
      cmocka_unit_test(large_folio_placement),
      cmocka_unit_test(region_interface),
      cmocka_unit_test(null_handles),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
