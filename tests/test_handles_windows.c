/* Windows handles: the back end counts every handle it opens and closes (GetProcessHandleCount
   is 0 under Wine), so these checks prove that invalid handles are refused before anything is
   made, that a file mapping keeps its own non-inheritable duplicate of the caller's handle, and
   that builds and frees balance. Built on Windows targets only (tests/CMakeLists.txt). */
#include "xmtest.h"

#include "internal.h" /* white-box: the mapping's own file handle (view.file) */

#define WIN_GRAN ((size_t)65536)

/* A File made from a NULL or INVALID_HANDLE_VALUE handle, or from a handle closed since, is
   ERROR_INVALID_HANDLE (crosvm's map_invalid_fd). Wine's DuplicateHandle says ERROR_ACCESS_DENIED
   for NULL, so the back end checks it itself. */
static void invalid_handles_refused(void **state) {
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
  xm_shm *shm = xt_shm("test", 4096);
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

/* The mapping keeps its own non-inheritable duplicate of the file handle: the caller closes
   theirs at once, and the mapping is still usable and durable (FlushFileBuffers). */
static void mapping_keeps_own_file_handle(void **state) {
  (void)state;
  wchar_t path[MAX_PATH];
  xt_temp_path(path);
  SECURITY_ATTRIBUTES inherit = {sizeof inherit, NULL, TRUE};
  HANDLE f = CreateFileW(path, GENERIC_READ | GENERIC_WRITE, FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE,
                         &inherit, CREATE_ALWAYS, 0, NULL);
  assert_true(f != INVALID_HANDLE_VALUE);
  long handles = xm__test_open_handles();
  xm_builder b = xm_builder_new(2 * WIN_GRAN);
  xm_builder_from_file(&b, f);
  xm_mapping *m = NULL;
  XT_OK(xm_builder_build(&b, &m));
  assert_int_equal(xt_file_size(f), 2 * WIN_GRAN); /* read-write: the section grew the empty file */
  assert_true(CloseHandle(f));
  assert_int_equal(xm__test_open_handles(), handles + 1); /* the retained duplicate, nothing else */
  assert_true(m->view.file != NULL && m->view.file != f);
  xt_assert_not_inherited(m->view.file);

  unsigned char data[256];
  xt_fill_position_pattern(data, sizeof data, 77);
  XT_OK(xm_mapping_write_slice(m, data, sizeof data, WIN_GRAN + 3, NULL));
  XT_OK(xm_mapping_msync(m));
  XT_OK(xm_mapping_sync_range(m, WIN_GRAN + 3, sizeof data, XM_SYNC_ASYNC));
  XT_OK(xm_mapping_sync_range(m, WIN_GRAN + 3, sizeof data, XM_SYNC_SYNC));
  XT_OK(xm_mapping_flush_region(m, WIN_GRAN, 1000));

  HANDLE again = CreateFileW(path, GENERIC_READ, FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE, NULL,
                             OPEN_EXISTING, 0, NULL);
  assert_true(again != INVALID_HANDLE_VALUE);
  unsigned char back[256];
  xt_pread(again, back, sizeof back, WIN_GRAN + 3);
  assert_memory_equal(back, data, sizeof data);
  CloseHandle(again);
  xm_mapping_free(m);
  assert_int_equal(xm__test_open_handles(), handles);
  assert_true(DeleteFileW(path));
}

/* Successful builds and frees balance too: every handle the back end makes is closed. */
static void handles_balance_after_builds_and_frees(void **state) {
  (void)state;
  xm_descriptor f = xt_pattern_file(WIN_GRAN, 1);
  xm_shm *shm = xt_shm("test", WIN_GRAN);
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
  for (int i = 0; i < 4; i++)
    xm_mapping_free(m[i]);
  assert_int_equal(xm__test_open_handles(), handles);
  xm_shm_free(shm);
  xt_close(f);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(invalid_handles_refused),
      cmocka_unit_test(mapping_keeps_own_file_handle),
      cmocka_unit_test(handles_balance_after_builds_and_frees),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
