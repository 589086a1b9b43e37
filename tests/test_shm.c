/* Shared memory: crosvm's shm tests (pages replaced by the allocation granularity), crosvm's
   Windows tests of mappings made from an shm descriptor, clone and adoption, seals, what Windows
   sections refuse, non-inheritance and leaks. */
#include "xmtest.h"

/* The unit of mapping offsets: the page on POSIX, 64 KiB on Windows. */
#define U (xm_allocation_granularity())

/* ---- crosvm's base/src/shm.rs ------------------------------------------------------------------ */
static void new_1024(void **state) {
  (void)state;
  xm_shm *shm = xt_shm("test", 1024);
  assert_int_equal(xm_shm_size(shm), 1024);
  xm_shm_free(shm);
}

static void new_1028(void **state) {
  (void)state;
  xm_shm *shm = xt_shm("test", 1028);
  assert_int_equal(xm_shm_size(shm), 1028);
  xm_shm_free(shm);
}

static void new_too_huge(void **state) {
  (void)state;
  xt_snapshot before = xt_snap();
  xm_shm *shm = NULL;
  int rc = xm_shm_new("test", 0x8000000000000000ull, &shm);
  assert_int_not_equal(rc, XM_OK);
  assert_null(shm); /* out-parameters are written only on success */
  assert_true(strlen(xm_errmsg()) > 0);
  print_message("0x8000000000000000: %s\n", xm_errmsg());
  xt_assert_no_leak(before);
}

/* ---- crosvm's base/src/sys/linux/shm.rs ------------------------------------------------------ */
/* new: the debug name shows in /proc/self/fd as "/memfd:<name> (deleted)". */
static void new_named(void **state) {
  (void)state;
#ifdef _WIN32
  XT_SKIP("no /proc/self/fd on Windows: a pagefile section's debug name is not visible");
#else
  const char *name = "Name McCool Person";
  xm_shm *shm = xt_shm(name, 0);
  char path[64], link[512];
  snprintf(path, sizeof path, "/proc/self/fd/%d", xm_shm_descriptor(shm));
  ssize_t n = readlink(path, link, sizeof link - 1);
  if (n < 0) {
    xm_shm_free(shm);
    XT_SKIP("readlink %s failed (no /proc here?): %s", path, strerror(errno));
  }
  link[n] = '\0';
  const char *prefix = "/memfd:", *suffix = " (deleted)";
  if (strncmp(link, prefix, strlen(prefix)) != 0) {
    xm_shm_free(shm);
    XT_SKIP("/proc/self/fd shows \"%s\", not a memfd name (shm_open fallback?)", link);
  }
  size_t len = strlen(link) - strlen(prefix);
  if (len >= strlen(suffix) && strcmp(link + strlen(link) - strlen(suffix), suffix) == 0) len -= strlen(suffix);
  assert_int_equal(len, strlen(name));
  assert_memory_equal(link + strlen(prefix), name, len);
  xm_shm_free(shm);

  /* a name memfd_create cannot take gets a clear status, not EINVAL from the kernel */
  char long_name[300];
  memset(long_name, 'x', sizeof long_name - 1);
  long_name[sizeof long_name - 1] = '\0';
  xm_shm *bad = NULL;
  XT_STATUS(XM_E_INVALID_ARGUMENT, xm_shm_new(long_name, 4096, &bad));
  assert_null(bad);
#endif
}

static void new_huge(void **state) {
  (void)state;
#ifdef _WIN32
  XT_SKIP("a pagefile-backed section commits its whole size: 0x7fffffffffffffff bytes cannot be sparse");
#elif !defined(__linux__)
  XT_SKIP("sparse 2^63-1-byte shared memory is a Linux tmpfs property");
#else
  xm_shm *shm = xt_shm("test", 0x7fffffffffffffffull);
  assert_true(xm_shm_size(shm) == 0x7fffffffffffffffull);
  xm_shm_free(shm);
#endif
}

/* The object's seals, or a skip with the reason where it has none (Windows sections, shm_open
   objects), after checking that adding them fails the same way. */
static unsigned seals_or_skip(xm_shm *shm) {
  unsigned seals = 0;
  int rc = xm_shm_get_seals(shm, &seals);
  if (rc == XM_E_NOT_IMPLEMENTED) {
    char why[320];
    snprintf(why, sizeof why, "%s", xm_errmsg());
    XT_STATUS(XM_E_NOT_IMPLEMENTED, xm_shm_add_seals(shm, XM_SEAL_SEAL));
    xm_shm_free(shm);
    XT_SKIP("no seals on this system: %s", why);
  }
  XT_OK(rc);
  return seals;
}

static void new_sealed(void **state) {
  (void)state;
#ifdef _WIN32
  xm_shm *shm = xt_shm("test", 4096); /* a pagefile section cannot be empty */
#else
  xm_shm *shm = xt_shm("test", 0);
#endif
  unsigned seals = seals_or_skip(shm);
  assert_false(seals & XM_SEAL_SEAL); /* other bits may be set (MFD_NOEXEC_SEAL) */
  XT_OK(xm_shm_add_seals(shm, XM_SEAL_SEAL));
  XT_OK(xm_shm_get_seals(shm, &seals));
  assert_true(seals & XM_SEAL_SEAL);
  XT_STATUS(XM_E_SYSTEM_CALL, xm_shm_add_seals(shm, XM_SEAL_SEAL)); /* adding again fails */
  assert_int_equal(xm_os_error(), EPERM);
  XT_STATUS(XM_E_INVALID_ARGUMENT, xm_shm_add_seals(shm, 0x100));
  xm_shm_free(shm);
}

static void mmap_page(void **state) {
  (void)state;
  xm_shm *shm = xt_shm("test", U);
  xm_mapping *m1 = xt_map_shm(shm, U, 0, XM_PROT_READ_WRITE);
  xm_mapping *m2 = xt_map_shm(shm, U, 0, XM_PROT_READ_WRITE);
  assert_ptr_not_equal(xm_mapping_ptr(m1), xm_mapping_ptr(m2));
  xm_slice s;
  XT_OK(xm_mapping_get_slice(m1, 0, U, &s));
  xm_slice_write_bytes(s, 0x45);
  xt_assert_bytes(m2, 0, U, 0x45);
  xm_mapping_free(m1);
  xm_mapping_free(m2);
  xm_shm_free(shm);
}

static void mmap_page_offset(void **state) {
  (void)state;
  xm_shm *shm = xt_shm("test", 2 * U);
#ifdef _WIN32
  /* A Windows view may not pass the end of its section: map1 is one unit (crosvm's second page
     lies past EOF and is never touched). */
  xm_mapping *m1 = xt_map_shm(shm, U, U, XM_PROT_READ_WRITE);
#else
  xm_mapping *m1 = xt_map_shm(shm, 2 * U, U, XM_PROT_READ_WRITE);
#endif
  xm_mapping *m2 = xt_map_shm(shm, 2 * U, 0, XM_PROT_READ_WRITE);
  assert_ptr_not_equal(xm_mapping_ptr(m1), xm_mapping_ptr(m2));
  xm_slice s;
  XT_OK(xm_mapping_get_slice(m1, 0, U, &s));
  xm_slice_write_bytes(s, 0x45);
  xt_assert_bytes(m2, 0, U, 0);
  xt_assert_bytes(m2, U, U, 0x45);
  xm_mapping_free(m1);
  xm_mapping_free(m2);
  xm_shm_free(shm);
}

/* ---- crosvm's Windows tests: mappings of a 1028-byte shm's descriptor --------------------------- */
static xm_mapping *map_descriptor(const xm_shm *shm, size_t size) {
  xm_builder b = xm_builder_new(size);
  xm_builder_from_descriptor(&b, xm_shm_descriptor(shm));
  xm_mapping *m = NULL;
  XT_OK(xm_builder_build(&b, &m));
  return m;
}

static void descriptor_basic_map(void **state) {
  (void)state;
  xm_shm *shm = xt_shm("test", 1028);
  xm_mapping *m = map_descriptor(shm, 1024);
  assert_int_equal(xm_mapping_size(m), 1024);
  xm_mapping_free(m);
  xm_shm_free(shm);
}

static void descriptor_write_past_end(void **state) {
  (void)state;
  xm_shm *shm = xt_shm("test", 1028);
  xm_mapping *m = map_descriptor(shm, 5);
  const uint8_t six[6] = {1, 2, 3, 4, 5, 6};
  size_t copied = 0;
  XT_OK(xm_mapping_write_slice(m, six, sizeof six, 0, &copied));
  assert_int_equal(copied, 5);
  xm_mapping_free(m);
  xm_shm_free(shm);
}

static void descriptor_slices(void **state) {
  (void)state;
  xm_shm *shm = xt_shm("test", 1028);
  xm_mapping *m = map_descriptor(shm, 5);
  xm_slice s;
  XT_OK(xm_mapping_get_slice(m, 2, 3, &s));
  assert_int_equal(s.size, 3);                                        /* slice_size */
  assert_ptr_equal(s.addr, (unsigned char *)xm_mapping_ptr(m) + 2);   /* slice_addr */
  XT_STATUS(XM_E_OVERFLOW, xm_mapping_get_slice(m, SIZE_MAX, 3, &s)); /* slice_overflow_error */
  XT_STATUS(XM_E_OUT_OF_BOUNDS, xm_mapping_get_slice(m, 3, 3, &s));   /* slice_oob_error */
  xt_assert_errmsg_has("address 0x6 is out of bounds");
  xm_mapping_free(m);
  xm_shm_free(shm);
}

/* An offset past off_t is refused before any OS call. */
static void descriptor_offset_invalid(void **state) {
  (void)state;
  xm_shm *shm = xt_shm("test", 1028);
  xm_builder b = xm_builder_new(4096);
  xm_builder_from_shm(&b, shm);
  xm_builder_offset(&b, (uint64_t)INT64_MAX + 1);
  xt_build_refused_before_os(&b, XM_E_INVALID_OFFSET);
  xm_shm_free(shm);
}

/* crosvm's arena_msync on Windows is really a mapping of a 0x40000-byte shm. */
static void descriptor_region_msync(void **state) {
  (void)state;
  const size_t size = 0x40000, ps = xm_page_size();
  xm_shm *shm = xt_shm("test", size);
  xm_mapping *m = map_descriptor(shm, size);
  xm_region *r = xm_mapping_region(m);
  XT_OK(xm_region_msync(r, 0, ps));
  XT_OK(xm_region_msync(r, 0, size));
  XT_OK(xm_region_msync(r, ps, size - ps));
  XT_STATUS(XM_E_INVALID_ADDRESS, xm_region_msync(r, ps, size));
  xm_mapping_free(m);
  xm_shm_free(shm);
}

/* ---- beyond crosvm's tests ------------------------------------------------------------------ */
static void clone_shares_memory(void **state) {
  (void)state;
  xm_shm *shm = xt_shm("clone", U), *clone = NULL;
  XT_OK(xm_shm_clone(shm, &clone));
  assert_true(xm_shm_descriptor(clone) != xm_shm_descriptor(shm));
  assert_int_equal(xm_shm_size(clone), U);
  xm_mapping *m1 = xt_map_shm(shm, U, 0, XM_PROT_READ_WRITE);
  ((unsigned char *)xm_mapping_ptr(m1))[7] = 0x3c;
  xm_shm_free(shm); /* the clone keeps the memory alive */
  xm_mapping *m2 = xt_map_shm(clone, U, 0, XM_PROT_READ);
  assert_int_equal(((unsigned char *)xm_mapping_ptr(m2))[7], 0x3c);
  ((unsigned char *)xm_mapping_ptr(m1))[8] = 0x3d;
  assert_int_equal(((unsigned char *)xm_mapping_ptr(m2))[8], 0x3d);
  xm_mapping_free(m1);
  xm_mapping_free(m2);
  xm_shm_free(clone);
  XT_STATUS(XM_E_INVALID_ARGUMENT, xm_shm_clone(NULL, &clone));
}

static void from_descriptor_adopts(void **state) {
  (void)state;
  xm_shm *shm = xt_shm("adopt", 3 * U);
  xm_mapping *m = xt_map_shm(shm, 3 * U, 0, XM_PROT_READ_WRITE);
  ((unsigned char *)xm_mapping_ptr(m))[2 * U] = 0x5e;
  xt_snapshot before = xt_snap();

  /* size 0: queried from the object */
  xm_shm *adopted = NULL;
  XT_OK(xm_shm_from_descriptor(xt_dup(xm_shm_descriptor(shm)), 0, &adopted));
  assert_int_equal(xm_shm_size(adopted), 3 * U);
  xm_mapping *m2 = xt_map_shm(adopted, U, 2 * U, XM_PROT_READ);
  assert_int_equal(((unsigned char *)xm_mapping_ptr(m2))[0], 0x5e);
  xm_mapping_free(m2);
  xm_shm_free(adopted); /* it owned the duplicate: closing it leaks nothing */
  xt_assert_no_leak(before);

  /* a given size is taken as it is */
  XT_OK(xm_shm_from_descriptor(xt_dup(xm_shm_descriptor(shm)), U, &adopted));
  assert_int_equal(xm_shm_size(adopted), U);
  xm_shm_free(adopted);
  xt_assert_no_leak(before);

  /* an invalid descriptor is an OS error */
  adopted = NULL;
  XT_STATUS(XM_E_SYSTEM_CALL, xm_shm_from_descriptor(XT_BAD_DESCRIPTOR, 0, &adopted));
  assert_null(adopted);
  assert_int_not_equal(xm_os_error(), 0);
  XT_STATUS(XM_E_INVALID_ARGUMENT, xm_shm_from_descriptor(XT_BAD_DESCRIPTOR, 0, NULL));

  xm_mapping_free(m);
  xm_shm_free(shm);
}

/* Adopting an object of 1028 bytes queries its size (whole pages on Windows); freeing the
   adopted object closes the caller's duplicate and nothing else. */
static void adopted_size_is_queried(void **state) {
  (void)state;
  xm_shm *shm = xt_shm("test", 1028);
  xt_snapshot before = xt_snap();
  xm_shm *adopted = NULL;
  XT_OK(xm_shm_from_descriptor(xt_dup(xm_shm_descriptor(shm)), 0, &adopted));
  assert_true(xm_shm_size(adopted) >= 1028 && xm_shm_size(adopted) <= 4096);
  xm_shm_free(adopted);
  assert_int_equal(xt_snap().handles, before.handles);
  xm_shm_free(shm);
}

#ifdef _WIN32
/* A pagefile-backed section has no seals, cannot be empty, and commits its whole size, so an
   impossible size is the OS's refusal; none of these leaves a handle behind. */
static void sections_refuse_seals_and_impossible_sizes(void **state) {
  (void)state;
  xm_shm *shm = xt_shm("test", 1024);
  assert_int_equal(xm_shm_size(shm), 1024);
  unsigned seals = 0;
  XT_STATUS(XM_E_NOT_IMPLEMENTED, xm_shm_get_seals(shm, &seals));
  XT_STATUS(XM_E_NOT_IMPLEMENTED, xm_shm_add_seals(shm, XM_SEAL_SEAL));
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

/* The section is PAGE_READWRITE, never executable. */
static void section_not_executable(void **state) {
  (void)state;
  xm_shm *shm = xt_shm("test", 4096);
  HANDLE exec = MapViewOfFile(xm_shm_descriptor(shm), FILE_MAP_WRITE | FILE_MAP_EXECUTE, 0, 0, 0);
  assert_null(exec);
  xm_mapping *m = map_descriptor(shm, 4096);
  assert_int_equal(xt_query(xm_mapping_ptr(m)).AllocationProtect, PAGE_READWRITE);
  xm_mapping_free(m);
  xm_shm_free(shm);
}
#endif

/* A write seal: writable mappings are refused, read-only ones work and show the data. */
static void write_seal(void **state) {
  (void)state;
  xm_shm *shm = xt_shm("sealed", 2 * U);
  unsigned seals = seals_or_skip(shm);
  xm_mapping *m = xt_map_shm(shm, 2 * U, 0, XM_PROT_READ_WRITE);
  ((unsigned char *)xm_mapping_ptr(m))[U + 1] = 0x6b;
  /* a writable shared mapping blocks the seal (EBUSY) */
  XT_STATUS(XM_E_SYSTEM_CALL, xm_shm_add_seals(shm, XM_SEAL_WRITE));
  assert_int_equal(xm_os_error(), EBUSY);
  xm_mapping_free(m);
  XT_OK(xm_shm_add_seals(shm, XM_SEAL_WRITE | XM_SEAL_SHRINK | XM_SEAL_GROW));
  XT_OK(xm_shm_get_seals(shm, &seals));
  assert_int_equal(seals & (XM_SEAL_WRITE | XM_SEAL_SHRINK | XM_SEAL_GROW),
                   XM_SEAL_WRITE | XM_SEAL_SHRINK | XM_SEAL_GROW);

  xt_snapshot before = xt_snap();
  xm_builder b = xm_builder_new(2 * U);
  xm_builder_from_shm(&b, shm);
  m = NULL;
  XT_STATUS(XM_E_SYSTEM_CALL, xm_builder_build(&b, &m)); /* read-write: refused, not made private */
  assert_null(m);
  assert_int_equal(xm_os_error(), EPERM);
  xt_assert_no_leak(before);
  m = xt_map_shm(shm, 2 * U, 0, XM_PROT_READ);
  assert_int_equal(((unsigned char *)xm_mapping_ptr(m))[U + 1], 0x6b);
  xm_mapping_free(m);
  /* the arena honours the seal the same way */
  xm_arena *a = NULL;
  XT_OK(xm_arena_new(2 * U, &a));
  XT_STATUS(XM_E_SYSTEM_CALL, xm_arena_add_fd(a, 0, 2 * U, xm_shm_descriptor(shm), 0, XM_PROT_READ_WRITE));
  XT_OK(xm_arena_add_fd(a, 0, 2 * U, xm_shm_descriptor(shm), 0, XM_PROT_READ));
  assert_int_equal(((unsigned char *)xm_region_ptr(xm_arena_region(a)))[U + 1], 0x6b);
  xm_arena_free(a);
  xm_shm_free(shm);
}

/* The descriptors and handles the library makes are close-on-exec / non-inheritable. */
static void not_inherited(void **state) {
  (void)state;
  xm_shm *shm = xt_shm("cloexec", 4096), *clone = NULL;
  xt_assert_not_inherited(xm_shm_descriptor(shm));
  XT_OK(xm_shm_clone(shm, &clone));
  assert_true(xm_shm_descriptor(clone) != xm_shm_descriptor(shm));
  xt_assert_not_inherited(xm_shm_descriptor(clone));
  xm_shm_free(clone);
  xm_shm_free(shm);
}

static int make_shm(void **out) {
  xm_shm *shm = NULL;
  int rc = xm_shm_new("inject", 4096, &shm);
  *out = shm;
  return rc;
}
static void free_shm(void *shm) { xm_shm_free(shm); }

static void no_leaks(void **state) {
  (void)state;
  xt_snapshot before = xt_snap();
  for (int round = 0; round < 3; round++) {
    xm_shm *shm = xt_shm("leak", 2 * U), *clone = NULL;
    XT_OK(xm_shm_clone(shm, &clone));
    xm_mapping *m = xt_map_shm(clone, 2 * U, 0, XM_PROT_READ_WRITE);
    xm_mapping_free(m);
    xm_shm_free(clone);
    xm_shm_free(shm);
    xt_assert_no_leak(before);
  }
  /* every OS call of xm_shm_new fails in turn: the status says so and nothing stays open */
  xt_walk_make_failures(make_shm, free_shm, before);
  /* and of xm_shm_clone */
  xm_shm *shm = xt_shm("inject", 4096);
  xt_snapshot with_shm = xt_snap();
  xm_shm *clone = NULL;
  xm__test_fail_nth(1, XT_INJECTED_ERROR);
  XT_STATUS(XM_E_SYSTEM_CALL, xm_shm_clone(shm, &clone));
  xm__test_fail_nth(0, 0);
  assert_null(clone);
  xt_assert_no_leak(with_shm);
  xm_shm_free(shm);
  xt_assert_no_leak(before);
}

static void null_handles(void **state) {
  (void)state;
  assert_int_equal(xm_shm_size(NULL), 0);
  assert_true(xm_shm_descriptor(NULL) == XT_BAD_DESCRIPTOR);
  xm_shm_free(NULL);
  unsigned seals;
  XT_STATUS(XM_E_INVALID_ARGUMENT, xm_shm_get_seals(NULL, &seals));
  XT_STATUS(XM_E_INVALID_ARGUMENT, xm_shm_add_seals(NULL, XM_SEAL_SEAL));
  XT_STATUS(XM_E_INVALID_ARGUMENT, xm_shm_new("x", 1, NULL));
  /* a NULL name is allowed: the library names the object itself */
  xm_shm *shm = NULL;
  XT_OK(xm_shm_new(NULL, 1, &shm));
  xm_shm_free(shm);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(new_1024),
      cmocka_unit_test(new_1028),
      cmocka_unit_test(new_too_huge),
      cmocka_unit_test(new_named),
      cmocka_unit_test(new_huge),
      cmocka_unit_test(new_sealed),
      cmocka_unit_test(mmap_page),
      cmocka_unit_test(mmap_page_offset),
      cmocka_unit_test(descriptor_basic_map),
      cmocka_unit_test(descriptor_write_past_end),
      cmocka_unit_test(descriptor_slices),
      cmocka_unit_test(descriptor_offset_invalid),
      cmocka_unit_test(descriptor_region_msync),
      cmocka_unit_test(clone_shares_memory),
      cmocka_unit_test(from_descriptor_adopts),
      cmocka_unit_test(adopted_size_is_queried),
#ifdef _WIN32
      cmocka_unit_test(sections_refuse_seals_and_impossible_sizes),
      cmocka_unit_test(section_not_executable),
#endif
      cmocka_unit_test(write_seal),
      cmocka_unit_test(not_inherited),
      cmocka_unit_test(no_leaks),
      cmocka_unit_test(null_handles),
  };
  return XT_RUN_TESTS_AFTER_A_SNAPSHOT(tests);
}
