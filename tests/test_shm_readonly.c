/* Read-only sharing (xm_shm_clone_readonly): nobody writes the object through the clone, the
   owner's mappings keep writing, copy-on-write mappings of the clone write nothing back, and every
   refusal leaves the object and the process as they were. */
#include "xmtest.h"

#define U (xm_allocation_granularity())

/* ---- the clone ------------------------------------------------------------------------- */
/* The clone, or a skip with the reason where the system cannot make one. */
static xm_shm *clone_readonly_or_skip(xm_shm *shm) {
  xm_shm *ro = NULL;
  int rc = xm_shm_clone_readonly(shm, &ro);
  if (rc == XM_E_NOT_IMPLEMENTED) {
    char why[320];
    snprintf(why, sizeof why, "%s", xm_errmsg());
    xm_shm_free(shm);
    XT_SKIP("no read-only sharing here: %s", why);
  }
  XT_OK(rc);
  assert_non_null(ro);
  return ro;
}

static void readonly_clone(void **state) {
  (void)state;
  xt_snapshot before = xt_snap();
  xm_shm *shm = xt_shm("ro", 2 * U);
  xm_mapping *owner = xt_map_shm(shm, 2 * U, 0, XM_PROT_READ_WRITE);
  unsigned char *w = xm_mapping_ptr(owner);
  w[3] = 0x31;
  xm_shm *ro = clone_readonly_or_skip(shm);
  assert_int_equal(xm_shm_size(ro), 2 * U);

  /* a writable shared mapping of the clone: refused before any OS call */
  xm_builder b = xm_builder_new(2 * U);
  xm_builder_from_shm(&b, ro);
  xt_build_refused_before_os(&b, XM_E_ACCESS);
  xt_assert_errmsg_has("read-only clone");
  xm_mapping *again = NULL;
  /* nor can the OS be asked directly through the clone's descriptor */
#ifdef _WIN32
  assert_null(MapViewOfFile(xm_shm_descriptor(ro), FILE_MAP_WRITE, 0, 0, 0));
  HANDLE raised = NULL;
  assert_false(DuplicateHandle(GetCurrentProcess(), xm_shm_descriptor(ro), GetCurrentProcess(), &raised, FILE_MAP_WRITE,
                               FALSE, 0));
  assert_int_equal(GetLastError(), ERROR_ACCESS_DENIED);
#else
  assert_true(mmap(NULL, U, PROT_READ | PROT_WRITE, MAP_SHARED, xm_shm_descriptor(ro), 0) == MAP_FAILED);
  char path[64];
  snprintf(path, sizeof path, "/proc/self/fd/%d", xm_shm_descriptor(ro));
  int rw = open(path, O_RDWR);
  if (rw >= 0) { /* reopening read-write works, but the seal keeps it from writing */
    assert_true(mmap(NULL, U, PROT_READ | PROT_WRITE, MAP_SHARED, rw, 0) == MAP_FAILED);
    assert_int_equal(errno, EPERM);
    assert_int_equal(pwrite(rw, "x", 1, 0), -1);
    close(rw);
  }
  unsigned seals = 0;
  XT_OK(xm_shm_get_seals(shm, &seals));
  assert_true(seals & XM_SEAL_FUTURE_WRITE);
  /* nobody, the owner included, makes a new writable shared mapping */
  xm_builder_from_shm(&b, shm);
  XT_STATUS(XM_E_SYSTEM_CALL, xm_builder_build(&b, &again));
  assert_int_equal(xm_os_error(), EPERM);
#endif
  /* the receiver adopts a duplicate of the descriptor: reads, and cannot write */
  xm_shm *adopted = NULL;
  XT_OK(xm_shm_from_descriptor(xt_dup(xm_shm_descriptor(ro)), 0, &adopted));
  xm_mapping *seen = xt_map_shm(adopted, U, 0, XM_PROT_READ);
  assert_int_equal(((unsigned char *)xm_mapping_ptr(seen))[3], 0x31);
  xm_mapping_free(seen);
  xm_builder_from_shm(&b, adopted);
  XT_STATUS(XM_E_SYSTEM_CALL, xm_builder_build(&b, &again));
  assert_null(again);
  xm_shm_free(adopted);
  /* the owner's mapping still writes; a reader of the clone sees it */
  xm_mapping *reader = xt_map_shm(ro, 2 * U, 0, XM_PROT_READ);
  unsigned char *rd = xm_mapping_ptr(reader);
  assert_int_equal(rd[3], 0x31);
  w[U + 1] = 0x32;
  assert_int_equal(rd[U + 1], 0x32);
  /* copy-on-write of the clone works and writes nothing back */
  xm_builder_from_shm(&b, ro);
  xm_builder_private(&b);
  xm_mapping *cow = NULL;
  XT_OK(xm_builder_build(&b, &cow));
  unsigned char *c = xm_mapping_ptr(cow);
  assert_int_equal(c[3], 0x31);
  c[3] = 0x77;
  assert_int_equal(rd[3], 0x31);
  assert_int_equal(w[3], 0x31);
  /* a clone of the clone stays read-only; an arena cannot map it writable either */
  xm_shm *ro2 = NULL;
  XT_OK(xm_shm_clone(ro, &ro2));
  xm_builder b2 = xm_builder_new(U);
  xm_builder_from_shm(&b2, ro2);
  xt_build_refused_before_os(&b2, XM_E_ACCESS);
  xm_arena *a = xt_arena(U);
  xm__test_fail_nth(0, 0);
  XT_STATUS(XM_E_ACCESS, xm_arena_add_fd(a, 0, U, xm_shm_descriptor(ro), 0, XM_PROT_READ_WRITE));
  xt_assert_errmsg_has("read-only clone");
  assert_int_equal(xm__test_os_calls(), 0); /* refused by the clone's policy, before the OS */
  XT_OK(xm_arena_add_fd(a, 0, U, xm_shm_descriptor(ro), 0, XM_PROT_READ));
  assert_int_equal(xt_arena_base(a)[3], 0x31);
  xm_arena_free(a);
  xm_shm_free(ro2);
  xm_mapping_free(cow);
  xm_mapping_free(reader);
  xm_shm_free(ro);
  xm_mapping_free(owner);
  xm_shm_free(shm);
  xt_assert_no_leak(before);
}

static void readonly_clone_refusals(void **state) {
  (void)state;
  xm_shm *ro = NULL;
  XT_STATUS(XM_E_INVALID_ARGUMENT, xm_shm_clone_readonly(NULL, &ro));
  xm_shm *shm = xt_shm("ro", U);
  XT_STATUS(XM_E_INVALID_ARGUMENT, xm_shm_clone_readonly(shm, NULL));
  xt_snapshot before = xt_snap();
#ifdef _WIN32
  /* an unnamed section with default security: its read-only handles can be raised */
  HANDLE plain = CreateFileMappingW(INVALID_HANDLE_VALUE, NULL, PAGE_READWRITE, 0, (DWORD)U, NULL);
  assert_non_null(plain);
  xm_shm *adopted = NULL;
  XT_OK(xm_shm_from_descriptor(plain, U, &adopted));
  XT_STATUS(XM_E_NOT_IMPLEMENTED, xm_shm_clone_readonly(adopted, &ro));
  xt_assert_errmsg_has("raised");
  assert_null(ro);
  xm_shm_free(adopted);
  xt_assert_no_leak(before);
#else
  unsigned seals = 0;
  if (xm_shm_get_seals(shm, &seals) == XM_OK) {
    /* sealed against seals without a write seal: it cannot be made read-only */
    XT_OK(xm_shm_add_seals(shm, XM_SEAL_SEAL));
    XT_STATUS(XM_E_INVALID_ARGUMENT, xm_shm_clone_readonly(shm, &ro));
    xt_assert_errmsg_has("F_SEAL_SEAL");
    assert_null(ro);
    xt_assert_no_leak(before);
    /* already write-sealed: the clone is made without another seal */
    xm_shm *sealed = xt_shm("ro", U);
    XT_OK(xm_shm_add_seals(sealed, XM_SEAL_WRITE | XM_SEAL_SEAL));
    XT_OK(xm_shm_clone_readonly(sealed, &ro));
    xm_mapping *m = xt_map_shm(ro, U, 0, XM_PROT_READ);
    xm_mapping_free(m);
    xm_shm_free(ro);
    xm_shm_free(sealed);
  }
#endif
  xm_shm_free(shm);
}

/* Each OS call of the clone fails in turn: the status says so, nothing is left open, and the
   object is not sealed. */
static void readonly_clone_failures(void **state) {
  (void)state;
  xm_shm *probe = xt_shm("ro", 4096), *ro = NULL;
  int rc = xm_shm_clone_readonly(probe, &ro);
  xm_shm_free(ro);
  xm_shm_free(probe);
  if (rc == XM_E_NOT_IMPLEMENTED) XT_SKIP("no read-only sharing here (see readonly_clone)");
  for (long n = 1;; n++) {
    xm_shm *shm = xt_shm("ro", 4096);
    xt_snapshot before = xt_snap();
    ro = NULL;
    xm__test_fail_nth(n, XT_INJECTED_ERROR);
    rc = xm_shm_clone_readonly(shm, &ro);
    long calls = xm__test_os_calls();
    xm__test_fail_nth(0, 0);
    if (rc == XM_OK) {
      assert_true(calls < n && n > 1);
      xm_shm_free(ro);
      xm_shm_free(shm);
      break;
    }
    assert_int_equal(rc, XM_E_SYSTEM_CALL);
    assert_int_equal(xm_os_error(), XT_INJECTED_ERROR);
    assert_null(ro);
    xt_assert_no_leak(before);
    /* unchanged: a writable shared mapping of the owner still works */
    xm_mapping *m = xt_map_shm(shm, 4096, 0, XM_PROT_READ_WRITE);
    xm_mapping_free(m);
    xm_shm_free(shm);
  }
}

/* Threads clone the same object read-only at once (the seal is added by whichever comes first;
   adding it again is harmless) while the owner keeps writing through its mapping. */
struct race {
  xm_shm *shm;
  int failures;
};
static XT_THREAD_RET clone_many(void *arg) {
  struct race *r = arg;
  for (int i = 0; i < xt_rounds(50); i++) {
    xm_shm *ro = NULL;
    if (xm_shm_clone_readonly(r->shm, &ro) != XM_OK) __atomic_add_fetch(&r->failures, 1, __ATOMIC_RELAXED);
    xm_shm_free(ro);
  }
  return 0;
}

static void readonly_clones_race(void **state) {
  (void)state;
  xm_shm *shm = xt_shm("race", U);
  xm_mapping *owner = xt_map_shm(shm, U, 0, XM_PROT_READ_WRITE);
  xm_shm *probe = clone_readonly_or_skip(shm);
  xm_shm_free(probe);
  xt_snapshot before = xt_snap();
  struct race r = {shm, 0};
  xt_thread t[4];
  for (int i = 0; i < 4; i++)
    xt_thread_start(&t[i], clone_many, &r);
  for (size_t i = 0; i < 1000; i++)
    ((volatile unsigned char *)xm_mapping_ptr(owner))[i % U] = (unsigned char)i;
  for (int i = 0; i < 4; i++)
    xt_thread_join(t[i]);
  assert_int_equal(r.failures, 0);
  assert_int_equal(xt_snap().handles, before.handles); /* thread stacks stay mapped (glibc's cache) */
  xm_mapping_free(owner);
  xm_shm_free(shm);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(readonly_clone),
      cmocka_unit_test(readonly_clone_refusals),
      cmocka_unit_test(readonly_clone_failures),
      cmocka_unit_test(readonly_clones_race),
  };
  return XT_RUN_TESTS_AFTER_A_SNAPSHOT(tests);
}
