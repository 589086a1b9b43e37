/* The Windows back end: crosvm's Windows tests, its Windows bugs fixed (spec part 3, 21-26), and
   handle accounting. On other systems this program reports one skipped test and why. */
#include "xmtest.h"

#ifdef _WIN32
#include "internal.h" /* white-box: the mapping's own file handle (view.file) */


#define GRAN ((size_t)65536)

/* ---- helpers -------------------------------------------------------------------------------- */
static xm_shm *new_shm(uint64_t size) {
  xm_shm *shm = NULL;
  XT_OK(xm_shm_new("test", size, &shm));
  return shm;
}

static void fill_pattern(unsigned char *buf, size_t len, uint64_t base) {
  for (size_t i = 0; i < len; i++) buf[i] = (unsigned char)(((base + i) * 7u + ((base + i) >> 12)) & 0xff);
}

/* A temporary file of len bytes of the position pattern, read-write or read-only; deleted on close. */
static xm_descriptor pattern_file(size_t len, int writable) {
  unsigned char *data = malloc(len);
  assert_non_null(data);
  fill_pattern(data, len, 0);
  xm_descriptor f = xt_temp_file(data, len, writable);
  free(data);
  return f;
}

static uint64_t file_size(HANDLE f) {
  LARGE_INTEGER li;
  assert_true(GetFileSizeEx(f, &li));
  return (uint64_t)li.QuadPart;
}

static void assert_not_inheritable(HANDLE h) {
  DWORD flags = 0xffffffffu;
  assert_true(GetHandleInformation(h, &flags));
  assert_int_equal(flags & HANDLE_FLAG_INHERIT, 0);
}

static MEMORY_BASIC_INFORMATION query(const void *p) {
  MEMORY_BASIC_INFORMATION mbi;
  memset(&mbi, 0, sizeof mbi);
  assert_int_equal(VirtualQuery(p, &mbi, sizeof mbi), sizeof mbi);
  return mbi;
}

/* ---- facts ---------------------------------------------------------------------------------- */
static void facts(void **state) {
  (void)state;
  assert_string_equal(xm_backend_name(), "windows");
  SYSTEM_INFO si;
  GetNativeSystemInfo(&si);
  assert_int_equal(xm_page_size(), si.dwPageSize);
  assert_int_equal(xm_allocation_granularity(), si.dwAllocationGranularity);
  size_t line = xm_cacheline_size();
  assert_true(line >= 16 && line <= 256 && (line & (line - 1)) == 0);
  assert_non_null(xm_cacheline_source());
  print_message("cache line %lu from %s\n", (unsigned long)line, xm_cacheline_source());
  /* the back end's own source: nothing (Wine may report no caches), or the L1 data line */
  const char *source = "unset";
  size_t os_line = xm__os_cacheline(&source);
  if (os_line == 0) {
    assert_null(source);
  } else {
    assert_string_equal(source, "GetLogicalProcessorInformation");
    assert_true(os_line >= 16 && os_line <= 256 && (os_line & (os_line - 1)) == 0);
  }
  char text[160];
  xm__os_error_text(ERROR_INVALID_HANDLE, text, sizeof text);
  assert_true(strlen(text) > 0);
  char last = text[strlen(text) - 1];
  assert_true(last != '.' && last != '\n' && last != '\r' && last != ' ');
  xm__os_error_text(ERROR_INVALID_HANDLE, text, 4); /* truncation still terminates */
  assert_true(strlen(text) < 4);
}

/* ---- crosvm's Windows tests (spec part 2): mappings of a 1028-byte shm ----------------------- */
static xm_mapping *map_shm_descriptor(const xm_shm *shm, size_t size) {
  xm_builder b = xm_builder_new(size);
  xm_builder_from_descriptor(&b, xm_shm_descriptor(shm));
  xm_mapping *m = NULL;
  XT_OK(xm_builder_build(&b, &m));
  return m;
}

static void crosvm_basic_map(void **state) {
  (void)state;
  xm_shm *shm = new_shm(1028);
  xm_mapping *m = map_shm_descriptor(shm, 1024);
  assert_int_equal(xm_mapping_size(m), 1024);
  xm_mapping_free(m);
  xm_shm_free(shm);
}

static void crosvm_write_past_end(void **state) {
  (void)state;
  xm_shm *shm = new_shm(1028);
  xm_mapping *m = map_shm_descriptor(shm, 5);
  const uint8_t six[6] = {1, 2, 3, 4, 5, 6};
  size_t copied = 0;
  XT_OK(xm_mapping_write_slice(m, six, sizeof six, 0, &copied));
  assert_int_equal(copied, 5);
  xm_mapping_free(m);
  xm_shm_free(shm);
}

static void crosvm_slices(void **state) {
  (void)state;
  xm_shm *shm = new_shm(1028);
  xm_mapping *m = map_shm_descriptor(shm, 5);
  xm_slice s;
  XT_OK(xm_mapping_get_slice(m, 2, 3, &s));
  assert_int_equal(s.size, 3);                                            /* slice_size */
  assert_ptr_equal(s.addr, (unsigned char *)xm_mapping_ptr(m) + 2);      /* slice_addr */
  XT_STATUS(XM_E_OVERFLOW, xm_mapping_get_slice(m, SIZE_MAX, 3, &s));    /* slice_overflow_error */
  XT_STATUS(XM_E_OUT_OF_BOUNDS, xm_mapping_get_slice(m, 3, 3, &s));      /* slice_oob_error */
  xt_assert_errmsg_has("address 0x6 is out of bounds");
  xm_mapping_free(m);
  xm_shm_free(shm);
}

/* map_invalid_fd: a File made from a NULL handle; crosvm expects ERROR_INVALID_HANDLE. Wine's
   DuplicateHandle says ERROR_ACCESS_DENIED for NULL, so the back end checks it itself. */
static void crosvm_map_invalid_fd(void **state) {
  (void)state;
  HANDLE bad[2] = {NULL, INVALID_HANDLE_VALUE};
  for (int i = 0; i < 2; i++) {
    long handles = xm__test_open_handles();
    xm_builder b = xm_builder_new(1024);
    xm_builder_from_file(&b, bad[i]);
    xm_mapping *m = NULL;
    XT_STATUS(XM_E_SYSTEM_CALL, xm_builder_build(&b, &m));
    assert_null(m);
    assert_int_equal(xm_os_error(), ERROR_INVALID_HANDLE);
    xt_assert_errmsg_has("(os error 6)");
    /* FormatMessage's text comes without its trailing period and line break */
    assert_null(strchr(xm_errmsg(), '\r'));
    assert_null(strchr(xm_errmsg(), '\n'));
    assert_null(strstr(xm_errmsg(), ". (os error"));
    assert_int_equal(xm__test_open_handles(), handles);
  }
  /* a handle that was valid once and is closed now */
  xm_shm *shm = new_shm(4096);
  HANDLE dup;
  assert_true(DuplicateHandle(GetCurrentProcess(), xm_shm_descriptor(shm), GetCurrentProcess(), &dup, 0, FALSE,
                              DUPLICATE_SAME_ACCESS));
  CloseHandle(dup);
  xm_shm_free(shm);
  xm_builder b = xm_builder_new(4096);
  xm_builder_from_descriptor(&b, dup);
  xm_mapping *m = NULL;
  XT_STATUS(XM_E_SYSTEM_CALL, xm_builder_build(&b, &m));
  assert_int_equal(xm_os_error(), ERROR_INVALID_HANDLE);
}

static void crosvm_from_descriptor_offset_invalid(void **state) {
  (void)state;
  xm_shm *shm = new_shm(1028);
  xm_builder b = xm_builder_new(4096);
  xm_builder_from_shm(&b, shm);
  xm_builder_offset(&b, (uint64_t)INT64_MAX + 1);
  xt_build_refused_before_os(&b, XM_E_INVALID_OFFSET); /* validation comes before any OS call */
  xm_shm_free(shm);
}

/* crosvm's arena_msync on Windows is really a mapping of a 0x40000 shm. */
static void crosvm_arena_msync(void **state) {
  (void)state;
  const size_t size = 0x40000, ps = xm_page_size();
  xm_shm *shm = new_shm(size);
  xm_mapping *m = map_shm_descriptor(shm, size);
  xm_region *r = xm_mapping_region(m);
  XT_OK(xm_region_msync(r, 0, ps));
  XT_OK(xm_region_msync(r, 0, size));
  XT_OK(xm_region_msync(r, ps, size - ps));
  XT_STATUS(XM_E_INVALID_ADDRESS, xm_region_msync(r, ps, size));
  xm_mapping_free(m);
  xm_shm_free(shm);
}

/* ---- crosvm's Windows bugs fixed ------------------------------------------------------------ */
/* 21: anonymous mappings work (a pagefile-backed section). */
static void anonymous_mapping(void **state) {
  (void)state;
  xm_mapping *m = xt_anon(3 * GRAN + 100);
  assert_int_equal((uintptr_t)xm_mapping_ptr(m) % GRAN, 0);
  uint64_t v = 0x1122334455667788u, r = 0;
  XT_OK(XM_WRITE_OBJ(m, 3 * GRAN + 92, &v));
  XT_OK(XM_READ_OBJ(m, 3 * GRAN + 92, &r));
  assert_true(r == v);
  MEMORY_BASIC_INFORMATION mbi = query(xm_mapping_ptr(m));
  assert_int_equal(mbi.Type, MEM_MAPPED);
  assert_int_equal(mbi.Protect, PAGE_READWRITE);
  XT_OK(xm_mapping_msync(m));
  xm_mapping_free(m);
}

/* 23: a read-only file handle maps read-only; a checked write is refused, not a crash. */
static void read_only_file(void **state) {
  (void)state;
  const size_t len = 10000;
  xm_descriptor f = pattern_file(len, 0);
  xm_builder b = xm_builder_new(len);
  xm_builder_from_file(&b, f);
  xm_builder_protection(&b, XM_PROT_READ);
  xm_mapping *m = NULL;
  XT_OK(xm_builder_build(&b, &m));
  unsigned char want[64], got[64];
  fill_pattern(want, sizeof want, 9000);
  XT_OK(xm_mapping_read_obj(m, got, sizeof got, 9000));
  assert_memory_equal(got, want, sizeof got);
  assert_int_equal(query(xm_mapping_ptr(m)).Protect, PAGE_READONLY);
  XT_STATUS(XM_E_ACCESS, xm_mapping_write_obj(m, want, 8, 0));
  XT_STATUS(XM_E_ACCESS, xm_mapping_write_slice(m, want, 8, 0, NULL));
  XT_OK(xm_mapping_msync(m)); /* FlushFileBuffers would need GENERIC_WRITE: skipped */
  XT_OK(xm_mapping_sync_range(m, 0, 100, XM_SYNC_SYNC));
  XT_STATUS(XM_E_ACCESS, xm_mapping_protect(m, 0, len, XM_PROT_READ_WRITE));
  xm_mapping_free(m);

  /* asking for write access through a read-only handle is the OS's refusal, and leaks nothing */
  long handles = xm__test_open_handles();
  xm_builder_protection(&b, XM_PROT_READ_WRITE);
  XT_STATUS(XM_E_SYSTEM_CALL, xm_builder_build(&b, &m));
  assert_int_equal(xm_os_error(), ERROR_ACCESS_DENIED);
  assert_int_equal(xm__test_open_handles(), handles);

  /* a read-only section cannot grow the file: mapping past its end fails */
  b = xm_builder_new(len + 5000);
  xm_builder_from_file(&b, f);
  xm_builder_protection(&b, XM_PROT_READ);
  XT_STATUS(XM_E_SYSTEM_CALL, xm_builder_build(&b, &m));
  assert_int_equal(xm__test_open_handles(), handles);
  assert_int_equal(file_size(f), len);
  xt_close(f);
}

/* 23: the section covers offset + size: a view at 64 KiB reads the file's bytes there, and a
   read-write section grows a short file to exactly offset + size. */
static void file_offsets(void **state) {
  (void)state;
  const size_t len = 3 * GRAN;
  xm_descriptor f = pattern_file(len, 1);
  const uint64_t offsets[] = {GRAN, 2 * GRAN, 4096, 1, GRAN + 1, GRAN - 1};
  for (size_t i = 0; i < sizeof offsets / sizeof offsets[0]; i++) {
    xm_builder b = xm_builder_new(5000);
    xm_builder_from_file(&b, f);
    xm_builder_offset(&b, offsets[i]);
    xm_builder_protection(&b, XM_PROT_READ);
    xm_mapping *m = NULL;
    XT_OK(xm_builder_build(&b, &m));
    unsigned char want[5000], got[5000];
    fill_pattern(want, sizeof want, offsets[i]);
    XT_OK(xm_mapping_read_slice(m, got, sizeof got, 0, NULL));
    assert_memory_equal(got, want, sizeof got);
    xm_mapping_free(m);
  }
  assert_int_equal(file_size(f), len);

  xm_builder b = xm_builder_new(100);
  xm_builder_from_file(&b, f);
  xm_builder_offset(&b, 3 * GRAN + 50);
  xm_mapping *m = NULL;
  XT_OK(xm_builder_build(&b, &m));
  assert_int_equal(file_size(f), 3 * GRAN + 150);
  XT_OK(xm_mapping_write_obj(m, "tail", 4, 96));
  XT_OK(xm_mapping_msync(m));
  char tail[4];
  xt_pread(f, tail, 4, 3 * GRAN + 146);
  assert_memory_equal(tail, "tail", 4);
  xm_mapping_free(m);
  xt_close(f);
}

/* 24 and 25: the mapping keeps its own non-inheritable duplicate of the file handle: the caller
   closes theirs at once, and the mapping is still usable and durable (FlushFileBuffers). */
static void caller_closes_handle(void **state) {
  (void)state;
  wchar_t path[MAX_PATH];
  xt_temp_path(path);
  SECURITY_ATTRIBUTES inherit = {sizeof inherit, NULL, TRUE};
  HANDLE f = CreateFileW(path, GENERIC_READ | GENERIC_WRITE, FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE,
                         &inherit, CREATE_ALWAYS, 0, NULL);
  assert_true(f != INVALID_HANDLE_VALUE);
  long handles = xm__test_open_handles();
  xm_builder b = xm_builder_new(2 * GRAN);
  xm_builder_from_file(&b, f);
  xm_mapping *m = NULL;
  XT_OK(xm_builder_build(&b, &m));
  assert_int_equal(file_size(f), 2 * GRAN); /* read-write: the section grew the empty file */
  assert_true(CloseHandle(f));
  assert_int_equal(xm__test_open_handles(), handles + 1); /* the retained duplicate, nothing else */
  assert_true(m->view.file != NULL && m->view.file != f);
  assert_not_inheritable(m->view.file);

  unsigned char data[256];
  fill_pattern(data, sizeof data, 77);
  XT_OK(xm_mapping_write_slice(m, data, sizeof data, GRAN + 3, NULL));
  XT_OK(xm_mapping_msync(m));
  XT_OK(xm_mapping_sync_range(m, GRAN + 3, sizeof data, XM_SYNC_ASYNC));
  XT_OK(xm_mapping_sync_range(m, GRAN + 3, sizeof data, XM_SYNC_SYNC));
  XT_OK(xm_mapping_flush_region(m, GRAN, 1000));

  HANDLE again = CreateFileW(path, GENERIC_READ, FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE, NULL,
                             OPEN_EXISTING, 0, NULL);
  assert_true(again != INVALID_HANDLE_VALUE);
  unsigned char back[256];
  xt_pread(again, back, sizeof back, GRAN + 3);
  assert_memory_equal(back, data, sizeof data);
  CloseHandle(again);
  xm_mapping_free(m);
  assert_int_equal(xm__test_open_handles(), handles);
  assert_true(DeleteFileW(path));
}

/* 25: the handles the library makes are non-inheritable. */
static void handles_not_inheritable(void **state) {
  (void)state;
  xm_shm *shm = new_shm(4096), *clone = NULL;
  assert_not_inheritable(xm_shm_descriptor(shm));
  XT_OK(xm_shm_clone(shm, &clone));
  assert_true(xm_shm_descriptor(clone) != xm_shm_descriptor(shm));
  assert_not_inheritable(xm_shm_descriptor(clone));
  xm_shm_free(clone);
  xm_shm_free(shm);
}

/* 25: the section is PAGE_READWRITE, never executable. */
static void shm_not_executable(void **state) {
  (void)state;
  xm_shm *shm = new_shm(4096);
  HANDLE exec = MapViewOfFile(xm_shm_descriptor(shm), FILE_MAP_WRITE | FILE_MAP_EXECUTE, 0, 0, 0);
  assert_null(exec);
  xm_mapping *m = map_shm_descriptor(shm, 4096);
  assert_int_equal(query(xm_mapping_ptr(m)).AllocationProtect, PAGE_READWRITE);
  xm_mapping_free(m);
  xm_shm_free(shm);
}

/* 26: align is honoured; a PROT_NONE mapping is mapped and then made inaccessible. */
static void alignment_honoured(void **state) {
  (void)state;
  const uint64_t aligns[] = {2 * GRAN, 1u << 21, 1u << 24};
  for (size_t i = 0; i < sizeof aligns / sizeof aligns[0]; i++) {
    xm_builder b = xm_builder_new(3 * GRAN);
    xm_builder_align(&b, aligns[i]);
    xm_mapping *m = NULL;
    XT_OK(xm_builder_build(&b, &m));
    assert_int_equal((uintptr_t)xm_mapping_ptr(m) % aligns[i], 0);
    XT_OK(xm_mapping_write_obj(m, &aligns[i], sizeof aligns[i], 3 * GRAN - 8));
    xm_mapping_free(m);
  }
  /* with an unaligned shm offset, align applies to the base below it */
  xm_shm *shm = new_shm(4 * GRAN);
  xm_builder b = xm_builder_new(100);
  xm_builder_from_shm(&b, shm);
  xm_builder_offset(&b, GRAN + 12);
  xm_builder_align(&b, 1u << 22);
  xm_mapping *m = NULL;
  XT_OK(xm_builder_build(&b, &m));
  assert_int_equal(((uintptr_t)xm_mapping_ptr(m) - 12) % (1u << 22), 0);
  xm_mapping_free(m);
  xm_shm_free(shm);
}

static void prot_none(void **state) {
  (void)state;
  xm_builder b = xm_builder_new(8192);
  xm_builder_protection(&b, XM_PROT_NONE);
  xm_mapping *m = NULL;
  XT_OK(xm_builder_build(&b, &m));
  assert_int_equal(query(xm_mapping_ptr(m)).Protect, PAGE_NOACCESS);
  unsigned char buf[8];
  XT_STATUS(XM_E_ACCESS, xm_mapping_read_slice(m, buf, sizeof buf, 0, NULL));
  XT_STATUS(XM_E_ACCESS, xm_mapping_write_slice(m, buf, sizeof buf, 0, NULL));
  XT_STATUS(XM_E_ACCESS, xm_mapping_read_obj(m, buf, 4, 4));
  XT_STATUS(XM_E_ACCESS, xm_mapping_protect(m, 0, 4096, XM_PROT_READ));
  xm_mapping_free(m);

  /* a file mapped PROT_NONE through a read-only handle */
  xm_descriptor f = pattern_file(5000, 0);
  b = xm_builder_new(5000);
  xm_builder_from_file(&b, f);
  xm_builder_protection(&b, XM_PROT_NONE);
  XT_OK(xm_builder_build(&b, &m));
  assert_int_equal(query(xm_mapping_ptr(m)).Protect, PAGE_NOACCESS);
  XT_STATUS(XM_E_ACCESS, xm_mapping_read_slice(m, buf, sizeof buf, 0, NULL));
  xm_mapping_free(m);
  xt_close(f);
}

/* ---- beyond crosvm on Windows --------------------------------------------------------------- */
static void protect_and_private(void **state) {
  (void)state;
  xm_descriptor f = pattern_file(3 * 4096, 1);
  xm_builder b = xm_builder_new(3 * 4096);
  xm_builder_from_file(&b, f);
  xm_builder_private(&b);
  xm_mapping *m = NULL;
  XT_OK(xm_builder_build(&b, &m));
  XT_OK(xm_mapping_write_obj(m, "COW!", 4, 4096));
  char got[4];
  XT_OK(xm_mapping_read_obj(m, got, 4, 4096));
  assert_memory_equal(got, "COW!", 4);
  XT_OK(xm_mapping_msync(m));
  unsigned char want[4], disk[4];
  fill_pattern(want, 4, 4096);
  xt_pread(f, disk, 4, 4096);
  assert_memory_equal(disk, want, 4); /* copy-on-write: the file never sees it */
  /* lower, then raise again: a copy-on-write view goes back to PAGE_WRITECOPY */
  XT_OK(xm_mapping_protect(m, 4096, 4096, XM_PROT_READ));
  XT_STATUS(XM_E_ACCESS, xm_mapping_write_obj(m, "x", 1, 4096));
  XT_OK(xm_mapping_write_obj(m, "y", 1, 0));
  XT_OK(xm_mapping_protect(m, 0, 3 * 4096, XM_PROT_READ_WRITE));
  XT_OK(xm_mapping_write_obj(m, "z", 1, 2 * 4096));
  XT_OK(xm_mapping_write_obj(m, "w", 1, 4096));
  xm_mapping_free(m);
  xt_pread(f, disk, 4, 4096);
  assert_memory_equal(disk, want, 4);

  /* private through a read-only handle works too (PAGE_WRITECOPY needs only read access) */
  xm_descriptor ro = pattern_file(4096, 0);
  b = xm_builder_new(4096);
  xm_builder_from_file(&b, ro);
  xm_builder_private(&b);
  XT_OK(xm_builder_build(&b, &m));
  XT_OK(xm_mapping_write_obj(m, "COW!", 4, 0));
  XT_OK(xm_mapping_msync(m));
  xm_mapping_free(m);
  xt_close(ro);
  xt_close(f);
}

static void guard_pages(void **state) {
  (void)state;
  const size_t page = xm_page_size();
  long handles = xm__test_open_handles();
  xm_builder b = xm_builder_new(10000);
  xm_builder_guard_pages(&b, 2);
  xm_builder_align(&b, 4 * GRAN);
  xm_mapping *m = NULL;
  XT_OK(xm_builder_build(&b, &m));
  unsigned char *p = xm_mapping_ptr(m);
  assert_int_equal((uintptr_t)p % (4 * GRAN), 0);
  MEMORY_BASIC_INFORMATION before = query(p - 2 * page), after = query(p + GRAN);
  assert_int_equal(before.State, MEM_RESERVE);
  assert_int_equal(after.State, MEM_RESERVE);
  assert_true((unsigned char *)after.AllocationBase + after.RegionSize >= p + GRAN + 2 * page);
  XT_OK(xm_mapping_write_obj(m, "edge", 4, 9996));
  xm_mapping_free(m);
  assert_int_equal(query(p - 2 * page).State, MEM_FREE);
  assert_int_equal(query(p).State, MEM_FREE);
  assert_int_equal(query(p + GRAN).State, MEM_FREE);
  assert_int_equal(xm__test_open_handles(), handles);
}

static void fixed_noreplace(void **state) {
  (void)state;
  xm_mapping *probe = xt_anon(2 * GRAN);
  void *addr = xm_mapping_ptr(probe);
  long handles = xm__test_open_handles();
  xm_builder b = xm_builder_new(2 * GRAN);
  xm_builder_fixed_noreplace(&b, addr);
  xm_mapping *m = NULL;
  XT_STATUS(XM_E_EXISTS, xm_builder_build(&b, &m)); /* occupied: refused, nothing clobbered */
  assert_int_equal(xm__test_open_handles(), handles);
  xm_mapping_free(probe);
  XT_OK(xm_builder_build(&b, &m));
  assert_ptr_equal(xm_mapping_ptr(m), addr);
  /* guard pages around a fixed address are refused when they would overlap */
  xm_builder g = xm_builder_new(GRAN);
  xm_builder_fixed_noreplace(&g, (unsigned char *)addr + 2 * GRAN);
  xm_builder_guard_pages(&g, 1);
  xm_mapping *m2 = NULL;
  XT_STATUS(XM_E_EXISTS, xm_builder_build(&g, &m2));
  assert_int_equal(xm__test_open_handles(), handles);
  xm_mapping_free(m);
}

static void huge_pages(void **state) {
  (void)state;
  long handles = xm__test_open_handles();
  xm_builder b = xm_builder_new(4096);
  xm_builder_huge_pages(&b, 0);
  xm_mapping *m = NULL;
  int rc = xm_builder_build(&b, &m);
  if (rc == XM_OK) { /* real Windows with "Lock pages in memory" granted */
    XT_OK(xm_mapping_write_obj(m, "huge", 4, 0));
    xm_mapping_free(m);
  } else {
    print_message("huge pages unavailable: %s\n", xm_errmsg());
    assert_true(rc == XM_E_SYSTEM_CALL || rc == XM_E_NOT_IMPLEMENTED);
    assert_true(strlen(xm_errmsg()) > 0);
  }
  assert_int_equal(xm__test_open_handles(), handles);
  /* a file cannot have large pages */
  xm_descriptor f = pattern_file(4096, 1);
  b = xm_builder_new(4096);
  xm_builder_from_file(&b, f);
  xm_builder_huge_pages(&b, 0);
  XT_STATUS(XM_E_NOT_IMPLEMENTED, xm_builder_build(&b, &m));
  assert_int_equal(xm__test_open_handles(), handles);
  xt_close(f);
}

static void advice_and_locking(void **state) {
  (void)state;
  xm_mapping *m = xt_anon(4 * 4096);
  XT_OK(xm_mapping_async_prefetch(m, 0, 4 * 4096)); /* PrefetchVirtualMemory */
  XT_OK(xm_mapping_write_obj(m, "data", 4, 4096));
  XT_OK(xm_mapping_drop_page_cache(m, 4096, 4096)); /* MEM_RESET on a pagefile view */
  XT_STATUS(XM_E_NOT_IMPLEMENTED, xm_mapping_advise(m, 0, 4096, XM_ADVICE_RANDOM));
  xt_assert_errmsg_has("no Windows equivalent");
  xt_assert_errmsg_has("RANDOM");
  XT_STATUS(XM_E_NOT_IMPLEMENTED, xm_mapping_remove_range(m, 0, 4096));
  XT_STATUS(XM_E_NOT_IMPLEMENTED, xm_mapping_use_dontfork(m));
  XT_STATUS(XM_E_NOT_IMPLEMENTED, xm_mapping_use_hugepages(m));
  int rc = xm_mapping_lock_on_fault(m, 0, 2 * 4096); /* VirtualLock: at once, within the quota */
  if (rc != XM_OK) {
    print_message("VirtualLock refused: %s\n", xm_errmsg());
    assert_int_equal(rc, XM_E_SYSTEM_CALL);
  }
  XT_OK(xm_mapping_unlock(m, 0, 2 * 4096));
  XT_OK(xm_mapping_unlock(m, 0, 2 * 4096)); /* unlocking unlocked pages is fine, as munlock */
  xm_mapping_free(m);

  /* MEM_RESET fails on views of files: said so rather than tried */
  xm_descriptor f = pattern_file(4096, 1);
  xm_builder b = xm_builder_new(4096);
  xm_builder_from_file(&b, f);
  XT_OK(xm_builder_build(&b, &m));
  XT_STATUS(XM_E_NOT_IMPLEMENTED, xm_mapping_drop_page_cache(m, 0, 4096));
  XT_OK(xm_mapping_async_prefetch(m, 0, 4096));
  unsigned char want[16], got[16];
  fill_pattern(want, sizeof want, 0);
  XT_OK(xm_mapping_read_obj(m, got, sizeof got, 0));
  assert_memory_equal(got, want, sizeof got);
  xm_mapping_free(m);
  xt_close(f);
}

/* ---- shared memory on Windows ---------------------------------------------------------------- */
static void shm_sizes_and_seals(void **state) {
  (void)state;
  xm_shm *shm = new_shm(1024);
  assert_int_equal(xm_shm_size(shm), 1024);
  unsigned seals = 0;
  XT_STATUS(XM_E_NOT_IMPLEMENTED, xm_shm_get_seals(shm, &seals));
  XT_STATUS(XM_E_NOT_IMPLEMENTED, xm_shm_add_seals(shm, XM_SEAL_SEAL));
  xm_shm_free(shm);
  shm = new_shm(1028);
  assert_int_equal(xm_shm_size(shm), 1028);

  /* adopting a section queries its size (whole pages on Windows) */
  HANDLE dup;
  assert_true(DuplicateHandle(GetCurrentProcess(), xm_shm_descriptor(shm), GetCurrentProcess(), &dup, 0, FALSE,
                              DUPLICATE_SAME_ACCESS));
  long before_adoption = xm__test_open_handles();
  xm_shm *adopted = NULL;
  XT_OK(xm_shm_from_descriptor(dup, 0, &adopted));
  assert_true(xm_shm_size(adopted) >= 1028 && xm_shm_size(adopted) <= 4096);
  xm_shm_free(adopted); /* closes dup, which the library did not make: the count stays */
  assert_int_equal(xm__test_open_handles(), before_adoption);
  xm_shm_free(shm);

  long handles = xm__test_open_handles();
  xm_shm *bad = NULL;
  XT_STATUS(XM_E_SYSTEM_CALL, xm_shm_new("test", 0x7fffffffffffffffu, &bad)); /* new_too_huge */
  assert_true(xm_os_error() != 0);
  XT_STATUS(XM_E_SYSTEM_CALL, xm_shm_new("test", 0, &bad)); /* Windows refuses empty sections */
  assert_null(bad);
  assert_int_equal(xm__test_open_handles(), handles);
  assert_true(xm_shm_new("test", 0x8000000000000000u, &bad) != XM_OK);
}

/* crosvm's mmap_page and mmap_page_offset, at the allocation granularity. */
static void shm_mapped_twice(void **state) {
  (void)state;
  xm_shm *shm = new_shm(2 * GRAN);
  xm_builder b = xm_builder_new(GRAN);
  xm_builder_from_shm(&b, shm);
  xm_builder_offset(&b, GRAN);
  xm_mapping *m1 = NULL, *m2 = NULL;
  XT_OK(xm_builder_build(&b, &m1));
  b = xm_builder_new(2 * GRAN);
  xm_builder_from_shm(&b, shm);
  XT_OK(xm_builder_build(&b, &m2));
  assert_ptr_not_equal(xm_mapping_ptr(m1), xm_mapping_ptr(m2));
  xm_slice s;
  XT_OK(xm_mapping_get_slice(m1, 0, GRAN, &s));
  xm_slice_write_bytes(s, 0x45);
  uint8_t v = 1;
  XT_OK(xm_mapping_read_obj(m2, &v, 1, 0));
  assert_int_equal(v, 0);
  XT_OK(xm_mapping_read_obj(m2, &v, 1, GRAN));
  assert_int_equal(v, 0x45);
  XT_OK(xm_mapping_read_obj(m2, &v, 1, 2 * GRAN - 1));
  assert_int_equal(v, 0x45);
  xm_mapping_free(m1);
  xm_mapping_free(m2);
  xm_shm_free(shm);
}

static void whole_file(void **state) {
  (void)state;
  const size_t len = 100000;
  xm_descriptor f = pattern_file(len, 0);
  xm_builder b = xm_builder_new(0);
  xm_builder_from_file(&b, f);
  xm_builder_offset(&b, GRAN + 10);
  xm_builder_protection(&b, XM_PROT_READ);
  xm_builder_to_end_of_file(&b);
  xm_mapping *m = NULL;
  XT_OK(xm_builder_build(&b, &m));
  assert_int_equal(xm_mapping_size(m), len - GRAN - 10);
  unsigned char want[8], got[8];
  fill_pattern(want, sizeof want, len - 8);
  XT_OK(xm_mapping_read_obj(m, got, 8, len - GRAN - 18));
  assert_memory_equal(got, want, 8);
  xm_mapping_free(m);
  xt_close(f);
}

/* msync of memory the caller owns: views are flushed, private memory has nothing to write. */
static void external_msync(void **state) {
  (void)state;
  void *p = VirtualAlloc(NULL, 2 * 4096, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE);
  assert_non_null(p);
  xm_region *r = NULL;
  XT_OK(xm_external_mapping_new((uint64_t)(uintptr_t)p, 2 * 4096, &r));
  XT_OK(xm_region_msync(r, 0, 2 * 4096));
  XT_STATUS(XM_E_INVALID_ADDRESS, xm_region_msync(r, 4096, 2 * 4096));
  xm_region_free(r);
  VirtualFree(p, 0, MEM_RELEASE);

  xm_descriptor f = pattern_file(4096, 1);
  HANDLE section = CreateFileMappingW(f, NULL, PAGE_READWRITE, 0, 0, NULL);
  assert_non_null(section);
  unsigned char *v = MapViewOfFile(section, FILE_MAP_WRITE, 0, 0, 0);
  assert_non_null(v);
  XT_OK(xm_external_mapping_new((uint64_t)(uintptr_t)v, 4096, &r));
  v[10] = 0xAB;
  XT_OK(xm_region_msync(r, 0, 4096));
  unsigned char back = 0;
  xt_pread(f, &back, 1, 10);
  assert_int_equal(back, 0xAB);
  xm_region_free(r);
  UnmapViewOfFile(v);
  CloseHandle(section);
  xt_close(f);
}

/* Placement releases a probe reservation before it maps there: threads racing for address space
   must retry, never fail or overlap. */
static DWORD WINAPI placement_worker(void *arg) {
  volatile LONG *failures = arg;
  for (int i = 0; i < 200; i++) {
    xm_builder b = xm_builder_new(GRAN + 4096);
    xm_builder_align(&b, (i & 1) ? 1u << 20 : 4 * GRAN);
    if (i % 3) xm_builder_guard_pages(&b, 1);
    xm_mapping *m = NULL;
    if (xm_builder_build(&b, &m) != XM_OK) {
      InterlockedIncrement(failures);
      continue;
    }
    uint64_t mark = (uint64_t)(uintptr_t)m, back = 0;
    xm_mapping_write_obj(m, &mark, sizeof mark, GRAN);
    xm_mapping_read_obj(m, &back, sizeof back, GRAN);
    if (back != mark) InterlockedIncrement(failures);
    xm_mapping_free(m);
  }
  return 0;
}

static void placement_races(void **state) {
  (void)state;
  volatile LONG failures = 0;
  HANDLE threads[8];
  long handles = xm__test_open_handles();
  for (int i = 0; i < 8; i++) {
    threads[i] = CreateThread(NULL, 0, placement_worker, (void *)&failures, 0, NULL);
    assert_non_null(threads[i]);
  }
  WaitForMultipleObjects(8, threads, TRUE, INFINITE);
  for (int i = 0; i < 8; i++) CloseHandle(threads[i]);
  assert_int_equal(failures, 0);
  assert_int_equal(xm__test_open_handles(), handles);
}

/* ---- fault-safe copies under load ------------------------------------------------------------ */
/* The vectored handler resumes each faulting copy through a rewritten context: many faults on
   many threads must leave every stack and every thread's state sound. */
static DWORD WINAPI safe_copy_worker(void *arg) {
  volatile LONG *failures = arg;
  xm_mapping *m = xt_anon(3 * 4096);
  unsigned char *p = xm_mapping_ptr(m);
  memset(p, 0x3c, 3 * 4096);
  DWORD old;
  if (!VirtualProtect(p + 4096, 4096, PAGE_NOACCESS, &old)) InterlockedIncrement(failures);
  unsigned char buf[3 * 4096];
  for (int i = 0; i < 500; i++) {
    size_t at = (size_t)(i * 37) % 4000, copied = 0;
    memset(buf, 0, sizeof buf);
    if (xm_mapping_read_slice_safe(m, buf, sizeof buf - at, at, &copied) != XM_E_FAULT) InterlockedIncrement(failures);
    if (buf[0] != 0x3c || buf[4095 - at] != 0x3c) InterlockedIncrement(failures); /* copied up to the fault */
    if (xm_mapping_write_slice_safe(m, buf, 200, 4000, &copied) != XM_E_FAULT) InterlockedIncrement(failures);
    if (xm_mapping_read_slice_safe(m, buf, 4096, 8192, &copied) != XM_OK || copied != 4096) InterlockedIncrement(failures);
  }
  xm_mapping_free(m);
  return 0;
}

static void safe_copies_under_load(void **state) {
  (void)state;
  volatile LONG failures = 0;
  HANDLE threads[4];
  for (int i = 0; i < 4; i++) {
    threads[i] = CreateThread(NULL, 0, safe_copy_worker, (void *)&failures, 0, NULL);
    assert_non_null(threads[i]);
  }
  WaitForMultipleObjects(4, threads, TRUE, INFINITE);
  for (int i = 0; i < 4; i++) CloseHandle(threads[i]);
  assert_int_equal(failures, 0);
}

/* ---- the arena on Windows --------------------------------------------------------------------- */
static void arena_strategy(void **state) {
  (void)state;
  const char *strategy = xm__os_arena_strategy();
  print_message("arena strategy: %s\n", strategy);
  assert_true(strcmp(strategy, "placeholders") == 0 || strcmp(strategy, "split reservations") == 0);
  /* a removed remainder keeps its neighbours' data; a partly covered view is mapped again */
  long handles = xm__test_open_handles();
  xm_arena *a = NULL;
  XT_OK(xm_arena_new(8 * GRAN, &a));
  unsigned char *base = xm_region_ptr(xm_arena_region(a));
  XT_OK(xm_arena_add_anon(a, 0, 8 * GRAN, XM_PROT_READ_WRITE));
  for (size_t k = 0; k < 8; k++) memset(base + k * GRAN, (int)(0x10 + k), GRAN);
  XT_OK(xm_arena_remove(a, 3 * GRAN, 2 * GRAN));
  XT_OK(xm_arena_add_anon(a, 6 * GRAN, GRAN, XM_PROT_NONE));
  assert_int_equal(base[2 * GRAN + 7], 0x12);
  assert_int_equal(base[5 * GRAN], 0x15);
  assert_int_equal(base[7 * GRAN + 9], 0x17);
  assert_int_equal(query(base + 3 * GRAN).State, MEM_RESERVE);
  assert_int_equal(query(base + 6 * GRAN).Protect, PAGE_NOACCESS);
  assert_int_equal(xm__test_open_handles(), handles + 2); /* one section per add, shared by its remainders */
  /* file-backed sections cannot take MEM_RESET: said so, not tried */
  xm_descriptor f = pattern_file(GRAN, 1);
  HANDLE section = CreateFileMappingW(f, NULL, PAGE_READWRITE, 0, 0, NULL);
  assert_non_null(section);
  XT_OK(xm_arena_add_fd(a, 3 * GRAN, GRAN, section, 0, XM_PROT_READ_WRITE));
  CloseHandle(section);
  XT_STATUS(XM_E_NOT_IMPLEMENTED, xm_region_advise(xm_arena_region(a), 3 * GRAN, GRAN, XM_ADVICE_DONTNEED));
  XT_OK(xm_region_advise(xm_arena_region(a), 0, GRAN, XM_ADVICE_DONTNEED));
  XT_OK(xm_region_msync(xm_arena_region(a), 0, 8 * GRAN));
  unsigned char want[8], got[8];
  fill_pattern(want, sizeof want, 100);
  memcpy(got, base + 3 * GRAN + 100, sizeof got);
  assert_memory_equal(got, want, sizeof got);
  xm_arena_free(a);
  assert_int_equal(xm__test_open_handles(), handles);
  xt_close(f);
}

/* Split reservations free address space for a moment: other threads' mappings (and their
   placement probes) may land there. The arena must never touch what is theirs, and must stay
   usable whatever it lost. */
struct arena_race {
  volatile LONG stop;
  volatile LONG failures;
};

static DWORD WINAPI mapping_churn(void *arg) {
  struct arena_race *race = arg;
  for (int i = 0; !race->stop; i++) {
    xm_builder b = xm_builder_new((size_t)(1 + i % 4) * GRAN);
    if (i % 2) xm_builder_align(&b, 1u << 20);
    xm_mapping *m = NULL;
    if (xm_builder_build(&b, &m) != XM_OK) {
      InterlockedIncrement(&race->failures);
      continue;
    }
    unsigned char *p = xm_mapping_ptr(m);
    p[0] = (unsigned char)i; /* faults if the arena freed this view */
    if (p[0] != (unsigned char)i) InterlockedIncrement(&race->failures);
    xm_mapping_free(m);
  }
  return 0;
}

static void arena_races_mappings(void **state) {
  (void)state;
  struct arena_race race = {0, 0};
  HANDLE threads[3];
  for (int i = 0; i < 3; i++) {
    threads[i] = CreateThread(NULL, 0, mapping_churn, &race, 0, NULL);
    assert_non_null(threads[i]);
  }
  xm_arena *a = NULL;
  XT_OK(xm_arena_new(16 * GRAN, &a));
  unsigned char *base = xm_region_ptr(xm_arena_region(a));
  int lost = 0;
  for (int round = 0; round < 300; round++) {
    size_t at = (size_t)(round % 12) * GRAN;
    int rc = xm_arena_add_anon(a, at, 4 * GRAN, XM_PROT_READ_WRITE);
    if (rc == XM_OK) {
      base[at] = 1;
      base[at + 4 * GRAN - 1] = 2;
    } else {
      assert_int_equal(rc, XM_E_SYSTEM_CALL); /* address space lost to another thread */
      lost++;
    }
    rc = xm_arena_remove(a, at + GRAN, GRAN);
    if (rc != XM_OK) {
      assert_int_equal(rc, XM_E_SYSTEM_CALL);
      lost++;
    }
  }
  race.stop = 1;
  WaitForMultipleObjects(3, threads, TRUE, INFINITE);
  for (int i = 0; i < 3; i++) CloseHandle(threads[i]);
  xm_arena_free(a);
  if (lost) print_message("%d arena changes lost address space to other threads\n", lost);
  assert_int_equal(race.failures, 0);
}

/* Another thread keeps freed arena addresses: the piece there is given up (GONE), never freed
   by the arena, and taken back by a later change once it is free again. */
static void *stolen;
static void *steal_at;
static void steal(void *addr, size_t len) {
  (void)addr;
  (void)len;
  if (!stolen) stolen = VirtualAlloc(steal_at, GRAN, MEM_RESERVE, PAGE_READWRITE);
}

static void arena_loses_address_space(void **state) {
  (void)state;
  if (strcmp(xm__os_arena_strategy(), "split reservations") != 0)
    XT_SKIP("placeholders never free the arena's addresses (strategy: %s)", xm__os_arena_strategy());
  long handles = xm__test_open_handles();
  xm_arena *a = NULL;
  XT_OK(xm_arena_new(8 * GRAN, &a));
  unsigned char *base = xm_region_ptr(xm_arena_region(a));
  XT_OK(xm_arena_add_anon(a, 0, GRAN, XM_PROT_READ_WRITE));
  base[0] = 0x42;
  steal_at = base + 3 * GRAN;
  stolen = NULL;
  xm__test_arena_freed_hook(steal);
  XT_STATUS(XM_E_SYSTEM_CALL, xm_arena_add_anon(a, 2 * GRAN, 2 * GRAN, XM_PROT_READ_WRITE));
  xm__test_arena_freed_hook(NULL);
  assert_ptr_equal(stolen, steal_at);
  assert_int_equal(xm_os_error(), ERROR_INVALID_ADDRESS);
  xt_assert_errmsg_has("another thread");
  assert_int_equal(base[0], 0x42); /* outside the window: untouched */
  /* the thief's reservation is left alone by later changes and by the arena's end */
  XT_OK(xm_arena_remove(a, 5 * GRAN, GRAN));
  MEMORY_BASIC_INFORMATION mbi = query(stolen);
  assert_int_equal(mbi.State, MEM_RESERVE);
  assert_ptr_equal(mbi.AllocationBase, stolen);
  assert_true(VirtualFree(stolen, 0, MEM_RELEASE));
  /* free again: a later change over the lost range takes it back */
  XT_OK(xm_arena_add_anon(a, 2 * GRAN, 2 * GRAN, XM_PROT_READ_WRITE));
  base[3 * GRAN + 1] = 7;
  XT_OK(xm_arena_remove(a, 0, 8 * GRAN));
  assert_int_equal(query(base + 3 * GRAN).State, MEM_RESERVE);
  xm_arena_free(a);
  assert_int_equal(query(base).State, MEM_FREE);
  assert_int_equal(query(base + 7 * GRAN).State, MEM_FREE);
  assert_int_equal(xm__test_open_handles(), handles);

  /* a thief holding it until the arena ends: the arena frees everything else */
  XT_OK(xm_arena_new(4 * GRAN, &a));
  base = xm_region_ptr(xm_arena_region(a));
  steal_at = base + GRAN;
  stolen = NULL;
  xm__test_arena_freed_hook(steal);
  XT_STATUS(XM_E_SYSTEM_CALL, xm_arena_add_anon(a, 0, 2 * GRAN, XM_PROT_READ));
  xm__test_arena_freed_hook(NULL);
  xm_arena_free(a);
  assert_int_equal(query(stolen).State, MEM_RESERVE);
  assert_int_equal(query(base + 3 * GRAN).State, MEM_FREE);
  assert_true(VirtualFree(stolen, 0, MEM_RELEASE));
  assert_int_equal(xm__test_open_handles(), handles);
}

/* ---- leaks ----------------------------------------------------------------------------------- */
/* What the back end can leave behind: views, and its PAGE_NOACCESS reservations (guards,
   placement probes). Counting only these keeps the heap and thread stacks out of the picture. */
static xt_snapshot back_end_snap(void) {
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
}

/* Every failure point of each build (the fault-injection seam fails the n-th OS call) leaves no
   handle, view or reservation behind, and reports the OS error it was given. */
struct build_case {
  const char *name;
  int source; /* 0 anon, 1 file, 2 shm */
  xm_prot prot;
  unsigned options; /* 1 align, 2 guard, 4 private, 8 populate, 16 fixed */
};

static int build_case(const struct build_case *c, HANDLE file, const xm_shm *shm, void *fixed, xm_mapping **m) {
  xm_builder b = xm_builder_new(3 * 4096);
  if (c->source == 1) xm_builder_from_file(&b, file);
  if (c->source == 2) xm_builder_from_shm(&b, shm);
  if (c->source != 0) xm_builder_offset(&b, GRAN + 4096);
  xm_builder_protection(&b, c->prot);
  if (c->options & 1) xm_builder_align(&b, 1u << 20);
  if (c->options & 2) xm_builder_guard_pages(&b, 1);
  if (c->options & 4) xm_builder_private(&b);
  if (c->options & 8) xm_builder_populate(&b);
  if (c->options & 16) xm_builder_fixed_noreplace(&b, fixed);
  return xm_builder_build(&b, m);
}

static void injected_failures_leak_nothing(void **state) {
  (void)state;
  static const struct build_case cases[] = {
      {"anon", 0, XM_PROT_READ_WRITE, 0},
      {"anon none", 0, XM_PROT_NONE, 0},
      {"anon aligned guarded", 0, XM_PROT_READ_WRITE, 1 | 2 | 8},
      {"anon fixed guarded", 0, XM_PROT_READ_WRITE, 16 | 2},
      {"file", 1, XM_PROT_READ_WRITE, 8},
      {"file read-only guarded", 1, XM_PROT_READ, 2},
      {"file private aligned", 1, XM_PROT_READ_WRITE, 4 | 1},
      {"file none", 1, XM_PROT_NONE, 0},
      {"shm aligned guarded", 2, XM_PROT_READ_WRITE, 1 | 2},
      {"shm fixed", 2, XM_PROT_READ, 16},
  };
  xm_descriptor f = pattern_file(4 * GRAN, 1);
  xm_shm *shm = new_shm(4 * GRAN);
  xm_mapping *probe = xt_anon(4 * GRAN);
  void *fixed = (unsigned char *)xm_mapping_ptr(probe) + GRAN;
  xm_mapping_free(probe);
  long points = 0;
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
      xm__test_fail_nth(n, ERROR_NOT_ENOUGH_MEMORY);
      int rc = build_case(c, f, shm, fixed, &m);
      xm__test_fail_nth(0, 0);
      if (rc != XM_E_SYSTEM_CALL || xm_os_error() != ERROR_NOT_ENOUGH_MEMORY)
        print_message("%s, failing OS call %ld of %ld: %d (%s)\n", c->name, n, calls, rc, xm_errmsg());
      assert_int_equal(rc, XM_E_SYSTEM_CALL);
      assert_int_equal(xm_os_error(), ERROR_NOT_ENOUGH_MEMORY);
      assert_null(m);
      xt_assert_same(before, back_end_snap());
      points++;
    }
  }
  print_message("%ld failure points injected\n", points);

  /* msync and advice report injected failures too */
  xm_builder b = xm_builder_new(4096);
  xm_builder_from_file(&b, f);
  xm_mapping *m = NULL;
  XT_OK(xm_builder_build(&b, &m));
  for (long n = 1; n <= 2; n++) { /* FlushViewOfFile, then FlushFileBuffers */
    xm__test_fail_nth(n, ERROR_ACCESS_DENIED);
    XT_STATUS(XM_E_SYSTEM_CALL, xm_mapping_msync(m));
    assert_int_equal(xm_os_error(), ERROR_ACCESS_DENIED);
  }
  xm__test_fail_nth(1, ERROR_INVALID_PARAMETER);
  XT_STATUS(XM_E_SYSTEM_CALL, xm_mapping_async_prefetch(m, 0, 4096));
  xm__test_fail_nth(0, 0);
  xm_mapping_free(m);

  /* shm new and clone */
  long handles = xm__test_open_handles();
  xm_shm *s2 = NULL;
  xm__test_fail_nth(1, ERROR_NOT_ENOUGH_MEMORY);
  XT_STATUS(XM_E_SYSTEM_CALL, xm_shm_new("x", 4096, &s2));
  xm__test_fail_nth(1, ERROR_NOT_ENOUGH_MEMORY);
  XT_STATUS(XM_E_SYSTEM_CALL, xm_shm_clone(shm, &s2));
  xm__test_fail_nth(0, 0);
  assert_null(s2);
  assert_int_equal(xm__test_open_handles(), handles);
  xm_shm_free(shm);
  xt_close(f);
}

/* Successful builds and frees balance too: every handle the back end makes is closed. */
static void handles_balance(void **state) {
  (void)state;
  xm_descriptor f = pattern_file(GRAN, 1);
  xm_shm *shm = new_shm(GRAN);
  long handles = xm__test_open_handles();
  xm_mapping *m[4];
  m[0] = xt_anon(4096);
  xm_builder b = xm_builder_new(4096);
  xm_builder_from_file(&b, f);
  XT_OK(xm_builder_build(&b, &m[1]));
  assert_int_equal(xm__test_open_handles(), handles + 1); /* only the retained file handle */
  b = xm_builder_new(4096);
  xm_builder_from_shm(&b, shm);
  xm_builder_guard_pages(&b, 1);
  XT_OK(xm_builder_build(&b, &m[2]));
  b = xm_builder_new(4096);
  xm_builder_from_descriptor(&b, xm_shm_descriptor(shm));
  xm_builder_align(&b, 1u << 20);
  XT_OK(xm_builder_build(&b, &m[3]));
  assert_int_equal(xm__test_open_handles(), handles + 1);
  for (int i = 0; i < 4; i++) xm_mapping_free(m[i]);
  assert_int_equal(xm__test_open_handles(), handles);
  xm_shm_free(shm);
  xt_close(f);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(facts),
      cmocka_unit_test(crosvm_basic_map),
      cmocka_unit_test(crosvm_write_past_end),
      cmocka_unit_test(crosvm_slices),
      cmocka_unit_test(crosvm_map_invalid_fd),
      cmocka_unit_test(crosvm_from_descriptor_offset_invalid),
      cmocka_unit_test(crosvm_arena_msync),
      cmocka_unit_test(anonymous_mapping),
      cmocka_unit_test(read_only_file),
      cmocka_unit_test(file_offsets),
      cmocka_unit_test(caller_closes_handle),
      cmocka_unit_test(handles_not_inheritable),
      cmocka_unit_test(shm_not_executable),
      cmocka_unit_test(alignment_honoured),
      cmocka_unit_test(prot_none),
      cmocka_unit_test(protect_and_private),
      cmocka_unit_test(guard_pages),
      cmocka_unit_test(fixed_noreplace),
      cmocka_unit_test(huge_pages),
      cmocka_unit_test(advice_and_locking),
      cmocka_unit_test(shm_sizes_and_seals),
      cmocka_unit_test(shm_mapped_twice),
      cmocka_unit_test(whole_file),
      cmocka_unit_test(external_msync),
      cmocka_unit_test(placement_races),
      cmocka_unit_test(safe_copies_under_load),
      cmocka_unit_test(arena_strategy),
      cmocka_unit_test(arena_races_mappings),
      cmocka_unit_test(arena_loses_address_space),
      cmocka_unit_test(injected_failures_leak_nothing),
      cmocka_unit_test(handles_balance),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

#else /* not Windows */

static void windows_back_end(void **state) {
  (void)state;
  XT_SKIP("the Windows back end is not built here: xm_backend_name() is \"%s\"", xm_backend_name());
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(windows_back_end)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
#endif
