/* File mappings: bad descriptors and offsets, offsets of every alignment read back the file's
   bytes, writes reach the file, read-only descriptors, copy-on-write, whole-file mappings,
   offsets past 4 GiB on every target, and mappings past the end of the file. */
#include "xmtest_faults.h"

/* The unit of file offsets on Windows: the file offsets below are the same on every target. */
#define WIN_GRAN ((size_t)65536)

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

/* A read-only descriptor maps read-only: a checked write or a protection raise is refused, not
   a crash; write access through it is the OS's refusal and leaks nothing. */
static void read_only_file(void **state) {
  (void)state;
  const size_t len = 10000;
  xm_descriptor f = xt_pattern_file(len, 0);
  xm_builder b = xm_builder_new(len);
  xm_builder_from_file(&b, f);
  xm_builder_protection(&b, XM_PROT_READ);
  xm_mapping *m = NULL;
  XT_OK(xm_builder_build(&b, &m));
  unsigned char want[64], got[64];
  xt_fill_position_pattern(want, sizeof want, 9000);
  XT_OK(xm_mapping_read_obj(m, got, sizeof got, 9000));
  assert_memory_equal(got, want, sizeof got);
#ifdef _WIN32
  assert_int_equal(xt_query(xm_mapping_ptr(m)).Protect, PAGE_READONLY);
#endif
  XT_STATUS(XM_E_ACCESS, xm_mapping_write_obj(m, want, 8, 0));
  XT_STATUS(XM_E_ACCESS, xm_mapping_write_slice(m, want, 8, 0, NULL));
  XT_OK(xm_mapping_msync(m)); /* Windows: FlushFileBuffers would need GENERIC_WRITE: skipped */
  XT_OK(xm_mapping_sync_range(m, 0, 100, XM_SYNC_SYNC));
  XT_STATUS(XM_E_ACCESS, xm_mapping_protect(m, 0, len, XM_PROT_READ_WRITE));
  xm_mapping_free(m);

  /* asking for write access through a read-only descriptor is the OS's refusal, and leaks nothing */
  xt_snapshot before = xt_snap();
  xm_builder_protection(&b, XM_PROT_READ_WRITE);
  XT_STATUS(XM_E_SYSTEM_CALL, xm_builder_build(&b, &m));
#ifdef _WIN32
  assert_int_equal(xm_os_error(), ERROR_ACCESS_DENIED);
#else
  assert_int_equal(xm_os_error(), EACCES);
#endif
  xt_assert_no_leak(before);

  /* past the file's end: a read-only section cannot grow the file, so Windows refuses; POSIX
     maps it (the pages past the end fault, see past_end_of_file). The file never grows. */
  b = xm_builder_new(len + 5000);
  xm_builder_from_file(&b, f);
  xm_builder_protection(&b, XM_PROT_READ);
#ifdef _WIN32
  XT_STATUS(XM_E_SYSTEM_CALL, xm_builder_build(&b, &m));
  xt_assert_no_leak(before);
#else
  XT_OK(xm_builder_build(&b, &m));
  xm_mapping_free(m);
#endif
  assert_int_equal(xt_file_size(f), len);
  xt_close(f);
}

/* Offsets on, off and between allocation units read the file's bytes there; on Windows a
   read-write section grows a short file to exactly offset + size. */
static void file_offsets(void **state) {
  (void)state;
  const size_t len = 3 * WIN_GRAN;
  xm_descriptor f = xt_pattern_file(len, 1);
  const uint64_t offsets[] = {WIN_GRAN, 2 * WIN_GRAN, 4096, 1, WIN_GRAN + 1, WIN_GRAN - 1};
  for (size_t i = 0; i < sizeof offsets / sizeof offsets[0]; i++) {
    xm_builder b = xm_builder_new(5000);
    xm_builder_from_file(&b, f);
    xm_builder_offset(&b, offsets[i]);
    xm_builder_protection(&b, XM_PROT_READ);
    xm_mapping *m = NULL;
    XT_OK(xm_builder_build(&b, &m));
    unsigned char want[5000], got[5000];
    xt_fill_position_pattern(want, sizeof want, offsets[i]);
    XT_OK(xm_mapping_read_slice(m, got, sizeof got, 0, NULL));
    assert_memory_equal(got, want, sizeof got);
    xm_mapping_free(m);
  }
  assert_int_equal(xt_file_size(f), len);

#ifdef _WIN32
  xm_builder b = xm_builder_new(100);
  xm_builder_from_file(&b, f);
  xm_builder_offset(&b, 3 * WIN_GRAN + 50);
  xm_mapping *m = NULL;
  XT_OK(xm_builder_build(&b, &m));
  assert_int_equal(xt_file_size(f), 3 * WIN_GRAN + 150);
  XT_OK(xm_mapping_write_obj(m, "tail", 4, 96));
  XT_OK(xm_mapping_msync(m));
  char tail[4];
  xt_pread(f, tail, 4, 3 * WIN_GRAN + 146);
  assert_memory_equal(tail, "tail", 4);
  xm_mapping_free(m);
#endif
  xt_close(f);
}

/* Copy-on-write: writes never reach the file; protection lowered and raised again keeps
   copy-on-write (PAGE_WRITECOPY on Windows); a read-only descriptor can be mapped private and
   written (copy-on-write needs only read access). */
static void private_copy_on_write_and_protect(void **state) {
  (void)state;
  const size_t ps = xm_page_size();
  xm_descriptor f = xt_pattern_file(3 * ps, 1);
  xm_builder b = xm_builder_new(3 * ps);
  xm_builder_from_file(&b, f);
  xm_builder_private(&b);
  xm_mapping *m = NULL;
  XT_OK(xm_builder_build(&b, &m));
  XT_OK(xm_mapping_write_obj(m, "COW!", 4, ps));
  char got[4];
  XT_OK(xm_mapping_read_obj(m, got, 4, ps));
  assert_memory_equal(got, "COW!", 4);
  XT_OK(xm_mapping_msync(m));
  unsigned char want[4], disk[4];
  xt_fill_position_pattern(want, 4, ps);
  xt_pread(f, disk, 4, ps);
  assert_memory_equal(disk, want, 4); /* copy-on-write: the file never sees it */
  /* lower, then raise again: still copy-on-write */
  XT_OK(xm_mapping_protect(m, ps, ps, XM_PROT_READ));
  XT_STATUS(XM_E_ACCESS, xm_mapping_write_obj(m, "x", 1, ps));
  XT_OK(xm_mapping_write_obj(m, "y", 1, 0));
  XT_OK(xm_mapping_protect(m, 0, 3 * ps, XM_PROT_READ_WRITE));
  XT_OK(xm_mapping_write_obj(m, "z", 1, 2 * ps));
  XT_OK(xm_mapping_write_obj(m, "w", 1, ps));
  xm_mapping_free(m);
  xt_pread(f, disk, 4, ps);
  assert_memory_equal(disk, want, 4);

  /* private through a read-only descriptor works too */
  xm_descriptor ro = xt_pattern_file(ps, 0);
  b = xm_builder_new(ps);
  xm_builder_from_file(&b, ro);
  xm_builder_private(&b);
  XT_OK(xm_builder_build(&b, &m));
  XT_OK(xm_mapping_write_obj(m, "COW!", 4, 0));
  XT_OK(xm_mapping_msync(m));
  xm_mapping_free(m);
  xt_close(ro);
  xt_close(f);
}

/* A whole-file mapping from an offset that is neither page- nor unit-aligned. */
static void whole_file_from_unaligned_offset(void **state) {
  (void)state;
  const size_t len = 100000;
  xm_descriptor f = xt_pattern_file(len, 0);
  xm_builder b = xm_builder_new(0);
  xm_builder_from_file(&b, f);
  xm_builder_offset(&b, WIN_GRAN + 10);
  xm_builder_protection(&b, XM_PROT_READ);
  xm_builder_to_end_of_file(&b);
  xm_mapping *m = NULL;
  XT_OK(xm_builder_build(&b, &m));
  assert_int_equal(xm_mapping_size(m), len - WIN_GRAN - 10);
  unsigned char want[8], got[8];
  xt_fill_position_pattern(want, sizeof want, len - 8);
  XT_OK(xm_mapping_read_obj(m, got, 8, len - WIN_GRAN - 18));
  assert_memory_equal(got, want, 8);
  xm_mapping_free(m);
  xt_close(f);
}

/* A sparse file with marker bytes at 4 GiB + 1; mapped at that offset on 32-bit targets too. */
static void offsets_past_4gib(void **state) {
  (void)state;
  const uint64_t where = (UINT64_C(1) << 32) + 1;
  const char marker[] = "past four GiB";
  xm_descriptor f = xt_temp_file("", 0, 1);
#ifdef _WIN32
  OVERLAPPED ov;
  memset(&ov, 0, sizeof ov);
  ov.Offset = (DWORD)where;
  ov.OffsetHigh = (DWORD)(where >> 32);
  DWORD done = 0;
  DWORD sparse_bytes = 0;
  DeviceIoControl(f, FSCTL_SET_SPARSE, NULL, 0, NULL, 0, &sparse_bytes, NULL); /* best effort */
  if (!WriteFile(f, marker, sizeof marker, &done, &ov)) {
    DWORD error = GetLastError();
    xt_close(f);
    XT_SKIP("this filesystem cannot hold a 4 GiB file (error %lu)", (unsigned long)error);
  }
#else
  if (pwrite(f, marker, sizeof marker, (off_t)where) != (ssize_t)sizeof marker) {
    xt_close(f);
    XT_SKIP("this filesystem cannot hold a sparse 4 GiB file");
  }
  /* Probe the system itself: qemu-user before 8.1 truncates a 32-bit guest's mmap offset to 32
     bits, so raw mmap at 4 GiB shows the file's first page there. */
  long page = sysconf(_SC_PAGESIZE);
  unsigned char *raw = mmap(NULL, (size_t)page, PROT_READ, MAP_SHARED, f, (off_t)(where - 1));
  assert_true(raw != MAP_FAILED);
  int honoured = raw[1] == (unsigned char)marker[0];
  munmap(raw, (size_t)page);
  if (!honoured) {
    xt_close(f);
    XT_SKIP("this system's mmap ignores file offset bits above 32 (raw mmap at 4 GiB shows other bytes)");
  }
#endif
  const uint64_t offsets[] = {where, where - 1, (UINT64_C(1) << 32)};
  for (size_t i = 0; i < 3; i++) {
    xm_builder b = xm_builder_new((size_t)(where - offsets[i]) + sizeof marker); /* up to the file's end */
    xm_builder_from_file(&b, f);
    xm_builder_offset(&b, offsets[i]);
    xm_builder_protection(&b, XM_PROT_READ);
    xm_mapping *m = NULL;
    XT_OK(xm_builder_build(&b, &m));
    char got[sizeof marker];
    XT_OK(xm_mapping_read_slice(m, got, sizeof got, (size_t)(where - offsets[i]), NULL));
    assert_memory_equal(got, marker, sizeof marker);
    xm_mapping_free(m);
  }
  xt_close(f);
}

/* Mapping past the end of a file: POSIX maps it (pages past the end fault); Windows grows the
   file for a writable section and refuses a read-only one. */
static void past_end_of_file(void **state) {
  (void)state;
  size_t gran = xm_allocation_granularity();
  xm_descriptor f = xt_temp_file("abc", 3, 0);
  xm_builder b = xm_builder_new(2 * gran);
  xm_builder_from_file(&b, f);
  xm_builder_protection(&b, XM_PROT_READ);
  xm_mapping *m = NULL;
  int rc = xm_builder_build(&b, &m);
#ifdef _WIN32
  assert_int_equal(rc, XM_E_SYSTEM_CALL);
  xt_close(f);
#else
  XT_OK(rc);
  xt_close(f); /* the mapping keeps the file: nothing is left open if the fault check skips */
  char got[3];
  XT_OK(xm_mapping_read_slice(m, got, 3, 0, NULL));
  assert_memory_equal(got, "abc", 3);
  xt_assert_faults(m, (uint8_t *)xm_mapping_ptr(m) + gran);
  xm_mapping_free(m);
#endif
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(map_invalid_fd),
      cmocka_unit_test(from_fd_offset_invalid),
      cmocka_unit_test(file_mapping_roundtrip),
      cmocka_unit_test(private_mapping),
      cmocka_unit_test(read_only_file),
      cmocka_unit_test(file_offsets),
      cmocka_unit_test(private_copy_on_write_and_protect),
      cmocka_unit_test(whole_file_from_unaligned_offset),
      cmocka_unit_test(offsets_past_4gib),
      cmocka_unit_test(past_end_of_file),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
