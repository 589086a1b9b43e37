/* Arena failures and leaks: every OS call of a change failed in turn leaves the arena consistent
   and usable with nothing leaked, arenas release everything they hold, and (Windows, split
   reservations) address space lost to another thread is given up, never freed, and taken back. */
#include "xmtest_faults.h"

#include <stdbool.h>

/* Every arena offset and rounded size is a multiple of this (64 KiB on Windows). */
#define U (xm_allocation_granularity())

/* ---- failures: everything released, the arena stays consistent ------------------------------- */
static int make_arena(void **out) {
  xm_arena *a = NULL;
  int rc = xm_arena_new(4 * U, &a);
  *out = a;
  return rc;
}
static void free_arena(void *a) { xm_arena_free(a); }

static void failures_leave_arena_consistent(void **state) {
  (void)state;
  xt_snapshot before = xt_snap();
  /* every OS call of xm_arena_new fails in turn */
  xt_walk_make_failures(make_arena, free_arena, before);

  /* every OS call of an add that cuts into two pieces fails in turn */
  xm_shm *shm = NULL;
  XT_OK(xm_shm_new("failures", 8 * U, &shm));
  const xm_descriptor d = xm_shm_descriptor(shm);
  xt_snapshot with_shm = xt_snap();
  for (int variant = 0; variant < 3; variant++) {
    long failed = 0; /* failure points that failed the change: the walk must find some */
    for (long n = 1;; n++) {
      xm_arena *a = xt_arena(8 * U);
      unsigned char *base = xt_arena_base(a);
      XT_OK(xm_arena_add_anon(a, 0, 3 * U, XM_PROT_READ_WRITE));
      XT_OK(xm_arena_add_fd(a, 3 * U, 3 * U, d, 0, XM_PROT_READ_WRITE));
      memset(base, 0x61, 3 * U);
      memset(base + 3 * U, 0x62, 3 * U);
      xm__test_fail_nth(n, XT_INJECTED_ERROR);
      int rc;
      size_t from = 2 * U, units = 2; /* the changed units: [2, 4) */
      if (variant == 0)
        rc = xm_arena_add_anon(a, from, units * U, XM_PROT_READ_WRITE);
      else if (variant == 1)
        rc = xm_arena_add_fd(a, from, units * U, d, 6 * U, XM_PROT_READ);
      else
        rc = xm_arena_remove(a, from, units * U);
      long calls = xm__test_os_calls();
      xm__test_fail_nth(0, 0);
      unsigned char seen[8];
      xt_probe_readable(base, U, 8, seen);
      if (rc == XM_OK) {
        assert_true(seen[0] && seen[1] && seen[4] && seen[5] && !seen[6] && !seen[7]);
        assert_int_equal(base[0], 0x61);
        assert_int_equal(base[5 * U], 0x62);
        xm_arena_free(a);
        if (calls < n) break; /* every failure point has been walked */
        continue;
      }
      /* Either the failure came before any change (the descriptor check) and nothing changed,
         or the changed range is inaccessible; what lies outside the window is untouched. */
      bool unchanged = seen[2] && seen[3] && base[2 * U] == 0x61 && base[3 * U] == 0x62;
      if (rc != XM_E_SYSTEM_CALL || !(unchanged || (!seen[2] && !seen[3])) || !seen[0] || !seen[5])
        print_message("variant %d, failing OS call %ld: %s; readable units %d%d%d%d%d%d\n", variant, n, xm_errmsg(),
                      seen[0], seen[1], seen[2], seen[3], seen[4], seen[5]);
      assert_int_equal(rc, XM_E_SYSTEM_CALL);
      assert_int_equal(xm_os_error(), XT_INJECTED_ERROR);
      assert_true(unchanged || (!seen[2] && !seen[3]));
      assert_true(seen[0] && seen[5]);
      assert_int_equal(base[0], 0x61);
      assert_int_equal(base[5 * U], 0x62);
      /* and the arena still works there */
      XT_OK(xm_arena_add_anon(a, 0, 8 * U, XM_PROT_READ_WRITE));
      assert_int_equal(base[3 * U], 0);
      xm_arena_free(a);
      xt_assert_released(base, 8 * U);
      xt_assert_no_leak(with_shm);
      failed++;
    }
#ifdef _WIN32
    /* a Windows remove gives up what it cannot reserve again and succeeds (measured under Wine's
       split reservations): no failure point to walk there */
    if (variant != 2)
#endif
      assert_true(failed > 0);
  }
  xm_shm_free(shm);
  xt_assert_no_leak(before);
}

/* Arenas leak nothing: reservations, views and handles all go with xm_arena_free. */
static void no_leaks(void **state) {
  (void)state;
  unsigned char *data = malloc(U); /* a whole unit: a Windows view may not pass the section's end */
  assert_non_null(data);
  for (size_t i = 0; i < U; i++)
    data[i] = (unsigned char)('0' + i % 10);
  xm_descriptor f = xt_temp_file(data, U, 1);
  free(data);
  xm_descriptor s = xt_arena_descriptor(f, 1);
  xt_snapshot before = xt_snap();
  for (int round = 0; round < 3; round++) {
    xm_arena *a = xt_arena(8 * U);
    XT_OK(xm_arena_add_anon(a, 0, 4 * U, XM_PROT_READ_WRITE));
    XT_OK(xm_arena_add_fd(a, 2 * U, U, s, 0, XM_PROT_READ_WRITE));
    XT_OK(xm_arena_remove(a, 3 * U, U));
    XT_OK(xm_arena_add_anon(a, 5 * U, 3 * U, XM_PROT_READ));
    unsigned char *base = xt_arena_base(a);
    assert_int_equal(base[2 * U + 1], '1');
    xm_arena_free(a);
    xt_assert_released(base, 8 * U);
    xt_assert_no_leak(before);
  }
  xt_release_arena_descriptor(s);
  xt_close(f);
}

#ifdef _WIN32
/* Another allocation takes freed arena addresses (an intruder): the message names it, the arena
   reserves around it and never frees it, and a later change takes the range back once it is free
   again. */
static void *stolen;
static void *steal_at;
static void steal(void *addr, size_t len) {
  (void)addr;
  (void)len;
  if (!stolen) stolen = VirtualAlloc(steal_at, U, MEM_RESERVE, PAGE_READWRITE);
}

static void split_reservations_lose_address_space(void **state) {
  (void)state;
  if (strcmp(xm_arena_strategy(), "split reservations") != 0)
    XT_SKIP("placeholders never free the arena's addresses (strategy: %s)", xm_arena_strategy());
  long handles = xm__test_open_handles();
  xm_arena *a = NULL;
  XT_OK(xm_arena_new(8 * U, &a));
  unsigned char *base = xm_region_ptr(xm_arena_region(a));
  XT_OK(xm_arena_add_anon(a, 0, U, XM_PROT_READ_WRITE));
  base[0] = 0x42;
  steal_at = base + 3 * U;
  stolen = NULL;
  xm__test_arena_freed_hook(steal);
  XT_STATUS(XM_E_SYSTEM_CALL, xm_arena_add_anon(a, 2 * U, 2 * U, XM_PROT_READ_WRITE));
  xm__test_arena_freed_hook(NULL);
  assert_ptr_equal(stolen, steal_at);
  assert_int_equal(xm_os_error(), ERROR_INVALID_ADDRESS);
  /* the message names what took the address (VirtualQuery) */
  xt_assert_errmsg_has("not the arena's");
  char where[64];
  snprintf(where, sizeof where, "base %p, %d bytes, MEM_RESERVE, MEM_PRIVATE", stolen, (int)U);
  xt_assert_errmsg_has(where);
  assert_int_equal(base[0], 0x42); /* outside the window: untouched */
  /* the thief's reservation is left alone by later changes and by the arena's end */
  XT_OK(xm_arena_remove(a, 5 * U, U));
  MEMORY_BASIC_INFORMATION mbi = xt_query(stolen);
  assert_int_equal(mbi.State, MEM_RESERVE);
  assert_ptr_equal(mbi.AllocationBase, stolen);
  assert_true(VirtualFree(stolen, 0, MEM_RELEASE));
  /* free again: a later change over the lost range takes it back */
  XT_OK(xm_arena_add_anon(a, 2 * U, 2 * U, XM_PROT_READ_WRITE));
  base[3 * U + 1] = 7;
  XT_OK(xm_arena_remove(a, 0, 8 * U));
  assert_int_equal(xt_query(base + 3 * U).State, MEM_RESERVE);
  xm_arena_free(a);
  assert_int_equal(xt_query(base).State, MEM_FREE);
  assert_int_equal(xt_query(base + 7 * U).State, MEM_FREE);
  assert_int_equal(xm__test_open_handles(), handles);

  /* a thief holding it until the arena ends: the arena frees everything else */
  XT_OK(xm_arena_new(4 * U, &a));
  base = xm_region_ptr(xm_arena_region(a));
  steal_at = base + U;
  stolen = NULL;
  xm__test_arena_freed_hook(steal);
  XT_STATUS(XM_E_SYSTEM_CALL, xm_arena_add_anon(a, 0, 2 * U, XM_PROT_READ));
  xm__test_arena_freed_hook(NULL);
  xm_arena_free(a);
  assert_int_equal(xt_query(stolen).State, MEM_RESERVE);
  assert_int_equal(xt_query(base + 3 * U).State, MEM_FREE);
  assert_true(VirtualFree(stolen, 0, MEM_RELEASE));
  assert_int_equal(xm__test_open_handles(), handles);
}
#endif

/* ---- out of memory: removals still work ------------------------------------------------------ */
#ifndef _WIN32
#include <sys/resource.h>
#include <sys/wait.h>

#include "arena.h"

#ifndef XT_SANITIZER /* (the test is skipped there) */
#define OOM_UNITS 40000u
enum { OOM_PASSED = 0, OOM_NOT_REACHED = 77 };

/* VmData of this process in bytes (/proc/self/status), or 0. */
static size_t data_size(void) {
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  size_t kib = 0;
  while (f && fgets(line, sizeof line, f))
    if (sscanf(line, "VmData: %zu kB", &kib) == 1) break;
  if (f) fclose(f);
  return kib * 1024;
}

/* In a child whose data segment may grow by 1 MiB only: adds until the bookkeeping is out of
   memory, then every piece removed (a removal gives memory back and must not need any). Exit
   status: OOM_PASSED, OOM_NOT_REACHED, or the line that failed. */
static int oom_child(void) {
  xm_arena *a = NULL;
  xm_shm *shm = NULL;
  if (xm_arena_new(OOM_UNITS * U, &a) || xm_shm_new("oom", OOM_UNITS * U, &shm)) return __LINE__;
  const size_t limit = data_size() + (1u << 20);
  if (setrlimit(RLIMIT_DATA, &(struct rlimit){limit, limit}) != 0) return __LINE__;
  size_t k = 0;
  int rc = XM_OK;
  for (; k < OOM_UNITS && rc == XM_OK; k += 2)
    rc = xm_arena_add_fd(a, k * U, U, xm_shm_descriptor(shm), (uint64_t)k * U, XM_PROT_READ_WRITE);
  if (rc == XM_OK) return OOM_NOT_REACHED;
  if (rc != XM_E_NO_MEMORY || !xm__pieces_valid(&a->pieces)) return __LINE__;
  for (size_t r = 0; r < k; r += 2)
    if (xm_arena_remove(a, r * U, U) != XM_OK || !xm__pieces_valid(&a->pieces)) return __LINE__;
  if (a->pieces.count != 1) return __LINE__;
  return OOM_PASSED;
}
#endif

static void removals_work_out_of_memory(void **state) {
  (void)state;
#ifdef XT_SANITIZER
  XT_SKIP("a sanitizer's allocator does not honour RLIMIT_DATA as malloc does");
#else
  if (xt_under_valgrind()) XT_SKIP("valgrind's allocator does not honour RLIMIT_DATA as malloc does");
  size_t used = 0, limit = 0;
  if (xm_map_count(&used, &limit) != XM_OK || data_size() == 0)
    XT_SKIP("the process's own data size is not known here: %s", xm_errmsg()); /* QEMU user mode */
  fflush(NULL);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) _exit(oom_child());
  int status = 0;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFEXITED(status));
  if (WEXITSTATUS(status) == OOM_NOT_REACHED) XT_SKIP("1 MiB more data segment did not run malloc out here");
  assert_int_equal(WEXITSTATUS(status), OOM_PASSED); /* else: the line in oom_child that failed */
#endif
}
#endif

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(failures_leave_arena_consistent),
      cmocka_unit_test(no_leaks),
#ifndef _WIN32
      cmocka_unit_test(removals_work_out_of_memory),
#endif
#ifdef _WIN32
      cmocka_unit_test(split_reservations_lose_address_space),
#endif
  };
  return XT_RUN_TESTS_AFTER_A_SNAPSHOT(tests);
}
