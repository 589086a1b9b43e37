/* Status texts, per-thread error records, the OS's error texts, system facts as the OS states
   them, protection and the version. */
#include "xmtest.h"

#include "os.h" /* white-box: the back end's own facts and error texts */

static void status_texts(void **state) {
  (void)state;
  static const struct {
    int status;
    const char *text;
  } table[] = {
      {XM_OK, "success"},
      {XM_E_ADD_FD_MAPPING_UNSUPPORTED, "`add_fd_mapping` is unsupported"},
      {XM_E_INVALID_ADDRESS, "requested memory out of range"},
      {XM_E_INVALID_ALIGNMENT, "requested alignment is incompatible"},
      {XM_E_INVALID_ARGUMENT, "invalid argument provided when creating mapping"},
      {XM_E_INVALID_OFFSET, "requested offset is out of range of off_t"},
      {XM_E_INVALID_RANGE, "requested memory range spans past the end of the region"},
      {XM_E_NOT_IMPLEMENTED, "operation is not implemented on platform/architecture"},
      {XM_E_NOT_PAGE_ALIGNED, "requested memory is not page aligned"},
      {XM_E_READ_TO_MEMORY, "failed to read from file to memory"},
      {XM_E_REMOVE_MAPPING_UNSUPPORTED, "`remove_mapping` is unsupported"},
      {XM_E_SYSTEM_CALL, "mmap related system call failed"},
      {XM_E_WRITE_FROM_MEMORY, "failed to write from memory to file"},
  };
  for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
    assert_string_equal(xm_strerror(table[i].status), table[i].text);
  /* every status has its own non-empty text; unknown values still get one */
  for (int s = XM_E_MAP_LIMIT; s < 0; s++) {
    assert_true(strlen(xm_strerror(s)) > 0);
    for (int t = XM_E_MAP_LIMIT; t < s; t++)
      assert_string_not_equal(xm_strerror(s), xm_strerror(t));
  }
  assert_string_equal(xm_strerror(-1000), "unknown xmmap status");
  assert_string_equal(xm_strerror(5), "unknown xmmap status");
  /* the ABI values are frozen */
  assert_int_equal(XM_E_ADD_FD_MAPPING_UNSUPPORTED, -1);
  assert_int_equal(XM_E_SYSTEM_CALL, -11);
  assert_int_equal(XM_E_ACCESS, -18);
  assert_int_equal(XM_E_NO_ADDRESS, -19);
  assert_int_equal(XM_E_MAP_LIMIT, -20);
}

/* Each status's detail text, as crosvm's Display of the error carries it. */
static void detail_texts(void **state) {
  (void)state;
  xm_mapping *m = xt_anon(4096);
  uint8_t buf[16];
  XT_STATUS(XM_E_INVALID_RANGE, xm_mapping_flush_region(m, 60, 8192));
  assert_string_equal(xm_errmsg(),
                      "requested memory range spans past the end of the region: offset=60 count=8192 region_size=4096");
  assert_int_equal(xm_os_error(), 0);
  xm_slice s;
  XT_STATUS(XM_E_OUT_OF_BOUNDS, xm_mapping_get_slice(m, 4090, 16, &s));
  assert_string_equal(xm_errmsg(), "address 0x100a is out of bounds");
  XT_STATUS(XM_E_INVALID_ADDRESS, xm_mapping_read_slice(m, buf, 1, 4097, NULL));
  xt_assert_errmsg_has("requested memory out of range");
  XT_STATUS(XM_E_INVALID_ALIGNMENT, xm_mapping_read_obj_volatile(m, buf, 4, 1));
  xt_assert_errmsg_has("requested alignment is incompatible");
  XT_STATUS(XM_E_INVALID_RANGE, xm_mapping_remove_range(m, 4096, 1));
  xt_assert_errmsg_has("offset=4096 count=1 region_size=4096");
  xm_mapping_free(m);
  /* a system-call failure carries the OS text and number */
  xm_builder b = xm_builder_new(4096);
  xm_builder_from_file(&b, XT_NO_FILE);
  XT_STATUS(XM_E_SYSTEM_CALL, xm_builder_build(&b, &m));
  char want[40];
  snprintf(want, sizeof want, "(os error %d)", xm_os_error());
  assert_int_not_equal(xm_os_error(), 0);
  xt_assert_errmsg_has("mmap related system call failed: ");
  xt_assert_errmsg_has(want);
}

/* The other thread's own failure, and the message it saw for it. */
struct other_failure {
  void *addr;
  int rc;
  char msg[128];
};

static XT_THREAD_RET fail_in_thread(void *arg) {
  struct other_failure *f = arg;
  xm_slice whole = {f->addr, 10}, out;
  f->rc = xm_slice_sub(whole, 20, 1, &out);
  snprintf(f->msg, sizeof f->msg, "%s", xm_errmsg());
  return 0;
}

static void errmsg_is_per_thread(void **state) {
  (void)state;
  xm_slice whole = {&state, 4}, out;
  XT_STATUS(XM_E_OUT_OF_BOUNDS, xm_slice_sub(whole, 4, 1, &out));
  char mine[128];
  snprintf(mine, sizeof mine, "%s", xm_errmsg());
  struct other_failure other = {&state, XM_OK, ""};
  xt_thread t;
  xt_thread_start(&t, fail_in_thread, &other);
  xt_thread_join(t);
  /* the other thread did fail, with its own text */
  assert_int_equal(other.rc, XM_E_OUT_OF_BOUNDS);
  assert_string_equal(other.msg, "address 0x15 is out of bounds");
  assert_string_equal(xm_errmsg(), mine); /* the other thread's failure is not ours */
  assert_string_equal(mine, "address 0x5 is out of bounds");
}

static void system_facts(void **state) {
  (void)state;
  size_t page = xm_page_size(), gran = xm_allocation_granularity();
  assert_true(page >= 4096 && (page & (page - 1)) == 0);
  assert_true(gran >= page && gran % page == 0 && (gran & (gran - 1)) == 0);
#ifdef _WIN32
  assert_string_equal(xm_backend_name(), "windows");
  assert_int_equal(gran, 65536);
#else
  assert_string_equal(xm_backend_name(), "posix");
  assert_int_equal(gran, page);
#endif
  size_t line = xm_cacheline_size();
  assert_true(line > 0 && line <= 256 && (line & (line - 1)) == 0);
  assert_non_null(xm_cacheline_source());
  static const char *const methods[] = {"clwb", "clflushopt", "clflush", "dc cvac", "dcbst", "cbo.clean", "none"};
  const char *method = xm_flush_method();
  int known = 0;
  for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++)
    known |= strcmp(method, methods[i]) == 0;
  assert_true(known);
  print_message("page %lu, granularity %lu, line %lu (%s), flush %s, back end %s\n", (unsigned long)page,
                (unsigned long)gran, (unsigned long)line, xm_cacheline_source(), method, xm_backend_name());
}

/* The facts are the OS's: page size and allocation granularity as the OS reports them, and the
   back end's own cache-line source, which may report nothing (Wine: no cache descriptors; some
   emulators: no line size) and then says so with a NULL source. */
static void facts_match_the_os(void **state) {
  (void)state;
#ifdef _WIN32
  assert_string_equal(xm_backend_name(), "windows");
  SYSTEM_INFO si;
  GetNativeSystemInfo(&si);
  assert_int_equal(xm_page_size(), si.dwPageSize);
  assert_int_equal(xm_allocation_granularity(), si.dwAllocationGranularity);
#else
  assert_string_equal(xm_backend_name(), "posix");
  assert_int_equal(xm_page_size(), (size_t)sysconf(_SC_PAGESIZE));
  assert_int_equal(xm_allocation_granularity(), xm_page_size());
#endif
  size_t line = xm_cacheline_size();
  assert_true(line >= 16 && line <= 256 && (line & (line - 1)) == 0);
  assert_non_null(xm_cacheline_source());
  print_message("cache line %lu from %s\n", (unsigned long)line, xm_cacheline_source());
  const char *source = "unset";
  size_t os_line = xm__os_cacheline(&source);
  if (os_line == 0) {
    assert_null(source);
  } else {
#ifdef _WIN32
    assert_string_equal(source, "GetLogicalProcessorInformation");
#else
    assert_true(strcmp(source, "sysconf") == 0 || strcmp(source, "auxv") == 0);
#endif
    assert_true(os_line >= 16 && os_line <= 256 && (os_line & (os_line - 1)) == 0);
  }
}

/* The OS's text for an error comes without a trailing period, line break or space (it is put in
   the middle of xm_errmsg()), and a short buffer still gets a terminated text. */
static void os_error_text_is_trimmed(void **state) {
  (void)state;
  char text[160];
  xm__os_error_text(XT_BAD_DESCRIPTOR_ERROR, text, sizeof text);
  assert_true(strlen(text) > 0);
  char last = text[strlen(text) - 1];
  assert_true(last != '.' && last != '\n' && last != '\r' && last != ' ');
  xm__os_error_text(XT_BAD_DESCRIPTOR_ERROR, text, 4); /* truncation still terminates */
  assert_true(strlen(text) < 4);
}

static void version(void **state) {
  (void)state;
  char want[32];
  snprintf(want, sizeof want, "%d.%d.%d", XMMAP_VERSION_MAJOR, XMMAP_VERSION_MINOR, XMMAP_VERSION_PATCH);
  assert_string_equal(xm_version(), want);
}

static void prot_allows(void **state) {
  (void)state;
  const xm_prot all[] = {XM_PROT_NONE, XM_PROT_READ, XM_PROT_WRITE, XM_PROT_READ_WRITE};
  for (size_t i = 0; i < 4; i++)
    for (size_t j = 0; j < 4; j++) {
      bool want = (!(all[j] & XM_PROT_READ) || (all[i] & XM_PROT_READ)) &&
                  (!(all[j] & XM_PROT_WRITE) || (all[i] & XM_PROT_WRITE));
      assert_int_equal(xm_prot_allows(all[i], all[j]), want);
    }
  assert_int_equal(XM_PROT_READ_WRITE, XM_PROT_READ | XM_PROT_WRITE);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(status_texts), cmocka_unit_test(detail_texts),       cmocka_unit_test(errmsg_is_per_thread),
      cmocka_unit_test(system_facts), cmocka_unit_test(facts_match_the_os), cmocka_unit_test(os_error_text_is_trimmed),
      cmocka_unit_test(version),      cmocka_unit_test(prot_allows),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
