/* Shared-memory options (xm_shm_new_ex: lazy commit, huge pages, exec) and xm_region_commit /
   decommit on mappings, arenas and external memory (read-only sharing: test_shm_readonly.c). */
#include "xmtest.h"

#define U (xm_allocation_granularity())
#define PAGE (xm_page_size())

#ifdef _WIN32
/* Wine keeps the commit state of a SEC_RESERVE section's views as bookkeeping only: their
   reserved pages can be written without a fault there. */
static int under_wine(void) {
#ifdef _WIN32
  HMODULE ntdll = GetModuleHandleA("ntdll.dll");
  return ntdll && GetProcAddress(ntdll, "wine_get_version") != NULL;
#else
  return 0;
#endif
}

/* A write to a page of a lazily committed section that is not committed: XM_E_FAULT (Wine: it
   works, see under_wine). */
static void assert_uncommitted_write_faults(const xm_mapping *m, size_t offset) {
  const uint8_t b = 1;
  size_t copied = 99;
  int rc = xm_mapping_write_slice_safe(m, &b, 1, offset, &copied);
  if (rc == XM_OK && under_wine()) {
    print_message("Wine: a reserved page of a SEC_RESERVE view took a write without a fault\n");
    return;
  }
  XT_STATUS(XM_E_FAULT, rc);
  assert_int_equal(copied, 0);
}
#endif

#ifndef _WIN32
/* Whether decommit really punches a hole here: qemu-user accepts MADV_REMOVE and ignores it, so a
   shared page keeps its data there (probed on a scratch mapping, as test_advice does). */
static int decommit_is_honoured(void) {
  xm_mapping *m = xt_anon(PAGE);
  memset(xm_mapping_ptr(m), 0x77, PAGE);
  XT_OK(xm_region_decommit(xm_mapping_region(m), 0, PAGE));
  int honoured = ((unsigned char *)xm_mapping_ptr(m))[0] == 0;
  xm_mapping_free(m);
  return honoured;
}
#define XT_DECOMMIT_IGNORED "MADV_REMOVE was accepted but the data stayed: this system (qemu-user) ignores it"
#endif

static xm_shm *shm_ex(uint64_t size, unsigned flags) {
  xm_shm *shm = NULL;
  XT_OK(xm_shm_new_ex("options", size, flags, 0, &shm));
  assert_non_null(shm);
  return shm;
}

/* ---- flags ------------------------------------------------------------------------------------ */
static void bad_flags_are_refused_before_any_os_call(void **state) {
  (void)state;
  static const struct {
    unsigned flags;
    size_t huge;
    const char *says;
  } bad[] = {
      {XM_SHM_LAZY_COMMIT | XM_SHM_HUGE, 0, "exclude each other"},
      {0, (size_t)2 << 20, "needs XM_SHM_HUGE"},
      {XM_SHM_LAZY_COMMIT, 4096, "needs XM_SHM_HUGE"},
      {XM_SHM_HUGE, 3u << 20, "not a power of two"},
      {0x100, 0, "unknown shared-memory flags"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    xm_shm *shm = NULL;
    xm__test_fail_nth(0, 0);
    XT_STATUS(XM_E_INVALID_ARGUMENT, xm_shm_new_ex("bad", (uint64_t)4 << 20, bad[i].flags, bad[i].huge, &shm));
    assert_int_equal(xm__test_os_calls(), 0);
    assert_null(shm);
    xt_assert_errmsg_has(bad[i].says);
  }
  XT_STATUS(XM_E_INVALID_ARGUMENT, xm_shm_new_ex("bad", 4096, 0, 0, NULL));
}

/* XM_SHM_EXEC with the others: the exec policy follows the flag. */
static void exec_flag_with_lazy_commit(void **state) {
  (void)state;
  xm_shm *shm = shm_ex(U, XM_SHM_EXEC | XM_SHM_LAZY_COMMIT);
  xm_builder b = xm_builder_new(U);
  xm_builder_from_shm(&b, shm);
  xm_builder_protection(&b, XM_PROT_READ | XM_PROT_EXEC);
  xm_mapping *m = NULL;
  XT_OK(xm_builder_build(&b, &m));
  xm_mapping_free(m);
  xm_shm_free(shm);
}

/* ---- lazy commit ------------------------------------------------------------------------------ */
static void lazy_commit_on_a_mapping(void **state) {
  (void)state;
  xt_snapshot before = xt_snap();
  xm_shm *shm = shm_ex(4 * U, XM_SHM_LAZY_COMMIT);
  xm_mapping *m = xt_map_shm(shm, 4 * U, 0, XM_PROT_READ_WRITE);
  xm_region *r = xm_mapping_region(m);
  const uint8_t bytes[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  size_t copied = 99;
#ifdef _WIN32
  /* SEC_RESERVE: nothing is usable before it is committed, and a fault-safe copy says so. */
  assert_int_equal(xt_query(xm_mapping_ptr(m)).State, MEM_RESERVE);
  assert_uncommitted_write_faults(m, U);
#endif
  XT_OK(xm_region_commit(r, U, U, XM_PROT_READ_WRITE));
  XT_OK(xm_mapping_write_slice_safe(m, bytes, sizeof bytes, U, &copied));
  assert_int_equal(copied, sizeof bytes);
  XT_OK(xm_region_commit(r, U, U, XM_PROT_READ_WRITE)); /* again: nothing changes */
  /* A committed page of the section is committed for every view of it. */
  xm_mapping *other = xt_map_shm(shm, U, U, XM_PROT_READ);
  uint8_t got[8] = {0};
  XT_OK(xm_mapping_read_slice_safe(other, got, sizeof got, 0, &copied));
  assert_memory_equal(got, bytes, sizeof bytes);
#ifdef _WIN32
  assert_uncommitted_write_faults(m, 2 * U);
  /* decommit discards the contents (MEM_RESET): still committed and usable */
  XT_OK(xm_region_decommit(r, 0, 2 * U)); /* the uncommitted first unit is skipped */
  assert_int_equal(xt_query((unsigned char *)xm_mapping_ptr(m) + U).State, MEM_COMMIT);
  XT_OK(xm_mapping_write_slice_safe(m, bytes, sizeof bytes, U, &copied));
  XT_OK(xm_mapping_read_slice_safe(other, got, sizeof got, 0, &copied));
  assert_memory_equal(got, bytes, sizeof bytes);
#else
  /* Linux: the flag changes nothing, and decommit punches a hole: zeros for every mapping */
  XT_OK(xm_mapping_write_slice_safe(m, bytes, sizeof bytes, 2 * U, &copied));
  XT_OK(xm_region_decommit(r, U, U));
  if (!decommit_is_honoured()) {
    xm_mapping_free(other);
    xm_mapping_free(m);
    xm_shm_free(shm);
    XT_SKIP(XT_DECOMMIT_IGNORED);
  }
  xt_assert_bytes(other, 0, U, 0);
  xt_assert_bytes(m, U, U, 0);
  assert_int_equal(((unsigned char *)xm_mapping_ptr(m))[2 * U], 1); /* outside the range: kept */
#endif
  xm_mapping_free(other);
  xm_mapping_free(m);
  xm_shm_free(shm);
  xt_assert_no_leak(before);
}

static void commit_checks_its_arguments(void **state) {
  (void)state;
  xm_shm *shm = shm_ex(2 * U, XM_SHM_LAZY_COMMIT);
  xm_mapping *m = xt_map_shm(shm, 2 * U, 0, XM_PROT_READ_WRITE);
  xm_region *r = xm_mapping_region(m);
  xm__test_fail_nth(0, 0);
  XT_STATUS(XM_E_INVALID_ARGUMENT, xm_region_commit(NULL, 0, PAGE, XM_PROT_READ));
  XT_STATUS(XM_E_INVALID_ARGUMENT, xm_region_decommit(NULL, 0, PAGE));
  XT_STATUS(XM_E_NOT_PAGE_ALIGNED, xm_region_commit(r, 1, PAGE, XM_PROT_READ_WRITE));
  XT_STATUS(XM_E_NOT_PAGE_ALIGNED, xm_region_commit(r, 0, PAGE + 1, XM_PROT_READ_WRITE));
  XT_STATUS(XM_E_NOT_PAGE_ALIGNED, xm_region_decommit(r, PAGE / 2, PAGE));
  XT_STATUS(XM_E_INVALID_ADDRESS, xm_region_commit(r, PAGE, 2 * U, XM_PROT_READ_WRITE));
  XT_STATUS(XM_E_INVALID_ADDRESS, xm_region_decommit(r, 2 * U, PAGE));
  XT_STATUS(XM_E_INVALID_ARGUMENT, xm_region_commit(r, 0, PAGE, 0x10));
  /* the protection the pages have, not another: Windows would give them that one */
  XT_STATUS(XM_E_ACCESS, xm_region_commit(r, 0, PAGE, XM_PROT_READ));
  XT_STATUS(XM_E_ACCESS, xm_region_commit(r, 0, PAGE, XM_PROT_READ_WRITE | XM_PROT_EXEC));
  assert_int_equal(xm__test_os_calls(), 0);
  XT_OK(xm_region_commit(r, 0, 0, XM_PROT_READ_WRITE)); /* empty: nothing to do */
  XT_OK(xm_region_decommit(r, 2 * U, 0));
  /* after a protection change, commit follows it (Windows changes committed pages only) */
  XT_OK(xm_region_commit(r, 0, 2 * U, XM_PROT_READ_WRITE));
  XT_OK(xm_mapping_protect(m, 0, U, XM_PROT_READ));
  XT_OK(xm_region_commit(r, 0, U, XM_PROT_READ));
  XT_STATUS(XM_E_ACCESS, xm_region_commit(r, 0, 2 * U, XM_PROT_READ));
  xm_mapping_free(m);
  xm_shm_free(shm);
  /* an object committed from the start takes commits too (nothing changes) */
  shm = xt_shm("committed", U);
  m = xt_map_shm(shm, U, 0, XM_PROT_READ_WRITE);
  ((unsigned char *)xm_mapping_ptr(m))[9] = 9;
  XT_OK(xm_region_commit(xm_mapping_region(m), 0, U, XM_PROT_READ_WRITE));
  assert_int_equal(((unsigned char *)xm_mapping_ptr(m))[9], 9);
  xm_mapping_free(m);
  xm_shm_free(shm);
}

static void commit_and_decommit_in_an_arena(void **state) {
  (void)state;
  xt_snapshot before = xt_snap();
  xm_shm *shm = shm_ex(2 * U, XM_SHM_LAZY_COMMIT);
  xm_arena *a = xt_arena(4 * U);
  xm_region *r = xm_arena_region(a);
  XT_OK(xm_arena_add_fd(a, U, 2 * U, xm_shm_descriptor(shm), 0, XM_PROT_READ_WRITE));
  xm__test_fail_nth(0, 0);
  XT_STATUS(XM_E_INVALID_ADDRESS, xm_region_commit(r, 0, 2 * U, XM_PROT_READ_WRITE)); /* [0, U) is reserved */
  xt_assert_errmsg_has("offset 0 of the arena is not mapped");
  XT_STATUS(XM_E_INVALID_ADDRESS, xm_region_decommit(r, 2 * U, 2 * U));
  XT_STATUS(XM_E_ACCESS, xm_region_commit(r, U, U, XM_PROT_READ_WRITE | XM_PROT_EXEC));
  assert_int_equal(xm__test_os_calls(), 0); /* refused before anything changed */
  XT_OK(xm_region_commit(r, U, 2 * U, XM_PROT_READ_WRITE));
  unsigned char *base = xt_arena_base(a);
  base[U + 5] = 0x5a;
  base[2 * U + 5] = 0x5b;
  xm_mapping *m = xt_map_shm(shm, 2 * U, 0, XM_PROT_READ);
  assert_int_equal(((unsigned char *)xm_mapping_ptr(m))[5], 0x5a);
  XT_OK(xm_region_decommit(r, U, U));
#ifdef _WIN32
  base[U + 6] = 0x5c; /* still committed */
  assert_int_equal(((unsigned char *)xm_mapping_ptr(m))[6], 0x5c);
#else
  if (decommit_is_honoured()) {
    xt_assert_bytes(m, 0, U, 0);
    assert_int_equal(base[U + 5], 0);
  } else {
    print_message("%s\n", XT_DECOMMIT_IGNORED);
  }
#endif
  assert_int_equal(((unsigned char *)xm_mapping_ptr(m))[U + 5], 0x5b);
  xm_mapping_free(m);
  xm_arena_free(a);
  xm_shm_free(shm);
  xt_assert_no_leak(before);
}

/* Memory the caller owns, as the OS allows. */
static void commit_external_memory(void **state) {
  (void)state;
#ifdef _WIN32
  unsigned char *p = VirtualAlloc(NULL, 2 * U, MEM_RESERVE, PAGE_NOACCESS);
  assert_non_null(p);
  xm_region *r = NULL;
  XT_OK(xm_external_mapping_new((uint64_t)(uintptr_t)p, 2 * U, &r));
  XT_OK(xm_region_commit(r, U, U, XM_PROT_READ_WRITE));
  p[U] = 7;
  assert_int_equal(xt_query(p + U).State, MEM_COMMIT);
  assert_int_equal(xt_query(p).State, MEM_RESERVE);
  XT_OK(xm_region_decommit(r, 0, 2 * U));
  xm_region_free(r);
  VirtualFree(p, 0, MEM_RELEASE);
#else
  unsigned char *shared = mmap(NULL, 2 * U, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  unsigned char *private = mmap(NULL, U, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  assert_true(shared != MAP_FAILED && private != MAP_FAILED);
  xm_region *r = NULL, *rp = NULL;
  XT_OK(xm_external_mapping_new((uint64_t)(uintptr_t)shared, 2 * U, &r));
  XT_OK(xm_external_mapping_new((uint64_t)(uintptr_t) private, U, &rp));
  XT_OK(xm_region_commit(r, 0, 2 * U, XM_PROT_READ_WRITE));
  memset(shared, 0x11, 2 * U);
  XT_OK(xm_region_decommit(r, U, U));
  const int honoured = decommit_is_honoured();
  if (honoured) assert_int_equal(shared[U], 0);
  assert_int_equal(shared[U - 1], 0x11);
  XT_OK(xm_region_commit(rp, 0, U, XM_PROT_READ));
  private[0] = 1;
  /* private memory has no object to punch a hole in */
  if (honoured) {
    XT_STATUS(XM_E_NOT_IMPLEMENTED, xm_region_decommit(rp, 0, U));
    xt_assert_errmsg_has("MADV_REMOVE");
  } else {
    print_message("%s\n", XT_DECOMMIT_IGNORED);
  }
  assert_int_equal(private[0], 1);
  xm_region_free(r);
  xm_region_free(rp);
  munmap(shared, 2 * U);
  munmap(private, U);
#endif
}

/* A private mapping of an shm: on Linux its pages are the mapping's own. */
static void decommit_private_mapping(void **state) {
  (void)state;
  xm_shm *shm = xt_shm("private", U);
  xm_builder b = xm_builder_new(U);
  xm_builder_from_shm(&b, shm);
  xm_builder_private(&b);
  xm_mapping *m = NULL;
  XT_OK(xm_builder_build(&b, &m));
  ((unsigned char *)xm_mapping_ptr(m))[0] = 3;
  XT_OK(xm_region_commit(xm_mapping_region(m), 0, U, XM_PROT_READ_WRITE));
#ifdef _WIN32
  XT_OK(xm_region_decommit(xm_mapping_region(m), 0, U));
#else
  if (decommit_is_honoured())
    XT_STATUS(XM_E_NOT_IMPLEMENTED, xm_region_decommit(xm_mapping_region(m), 0, U));
  else
    print_message("%s\n", XT_DECOMMIT_IGNORED);
  assert_int_equal(((unsigned char *)xm_mapping_ptr(m))[0], 3);
#endif
  xm_mapping_free(m);
  xm_shm_free(shm);
}

/* ---- huge pages -------------------------------------------------------------------------------- */
static void huge_pages(void **state) {
  (void)state;
  const size_t two_mib = (size_t)2 << 20;
  xt_snapshot before = xt_snap();
  xm_shm *shm = NULL;
  int rc = xm_shm_new_ex("huge", two_mib, XM_SHM_HUGE, 0, &shm);
  if (rc == XM_OK) {
    /* mappings are whole huge pages */
    xm_builder b = xm_builder_new(4096);
    xm_builder_from_shm(&b, shm);
    xt_build_refused_before_os(&b, XM_E_NOT_PAGE_ALIGNED);
    xt_assert_errmsg_has("huge page");
    b = xm_builder_new(two_mib);
    xm_builder_from_shm(&b, shm);
    xm_mapping *m = NULL;
    rc = xm_builder_build(&b, &m);
    if (rc == XM_OK) {
      ((unsigned char *)xm_mapping_ptr(m))[two_mib - 1] = 9;
      xm_mapping_free(m);
    } else {
      print_message("mapping the huge-page object: %s (too few free huge pages?)\n", xm_errmsg());
      assert_int_equal(rc, XM_E_SYSTEM_CALL);
    }
    xm_shm_free(shm);
    xt_assert_no_leak(before);
    return;
  }
  /* No pool, no such pages, or pages the system only pretends to give: a clear status, nothing made. */
  char why[400];
  snprintf(why, sizeof why, "%s", xm_errmsg());
  assert_null(shm);
  xt_assert_no_leak(before);
  if (rc == XM_E_NOT_PAGE_ALIGNED) { /* the default huge page is larger than 2 MiB (ppc64le: 16 MiB) */
    XT_SKIP("the default huge page is not 2 MiB: %s", why);
  }
  XT_STATUS(XM_E_NOT_IMPLEMENTED, rc);
#ifdef _WIN32
  assert_true(strstr(why, "small pages") || strstr(why, "no large pages") || strstr(why, "QueryWorkingSetEx"));
#else
  assert_true(strstr(why, "huge pages"));
  FILE *f = fopen("/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages", "r");
  long pool = -1;
  if (f) {
    if (fscanf(f, "%ld", &pool) != 1) pool = -1;
    fclose(f);
  }
  if (pool == 0) xt_assert_errmsg_has("nr_hugepages");
#endif
  /* a size that is not a multiple of the huge page, where huge pages exist at all */
  rc = xm_shm_new_ex("huge", 4096, XM_SHM_HUGE, 0, &shm);
  assert_true(rc == XM_E_NOT_PAGE_ALIGNED || rc == XM_E_NOT_IMPLEMENTED);
  assert_null(shm);
  /* a page size the system does not have */
  XT_STATUS(XM_E_NOT_IMPLEMENTED, xm_shm_new_ex("huge", (uint64_t)1 << 30, XM_SHM_HUGE, 8192, &shm));
  xt_assert_no_leak(before);
  XT_SKIP("no huge-page shared memory here: %s", why);
}

/* Every OS call of a lazily committed object's creation fails in turn: nothing is left open. */
static int make_lazy(void **out) {
  xm_shm *shm = NULL;
  int rc = xm_shm_new_ex("inject", 4 * U, XM_SHM_LAZY_COMMIT, 0, &shm);
  *out = shm;
  return rc;
}
static void free_shm(void *shm) { xm_shm_free(shm); }
static void lazy_commit_failures(void **state) {
  (void)state;
  xt_walk_make_failures(make_lazy, free_shm, xt_snap());
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(bad_flags_are_refused_before_any_os_call),
      cmocka_unit_test(exec_flag_with_lazy_commit),
      cmocka_unit_test(lazy_commit_on_a_mapping),
      cmocka_unit_test(commit_checks_its_arguments),
      cmocka_unit_test(commit_and_decommit_in_an_arena),
      cmocka_unit_test(commit_external_memory),
      cmocka_unit_test(decommit_private_mapping),
      cmocka_unit_test(lazy_commit_failures),
      cmocka_unit_test(huge_pages),
  };
  return XT_RUN_TESTS_AFTER_A_SNAPSHOT(tests);
}
