/* Placement in an address range: xm_arena_new_in and xm_builder_address_range put the reservation
   or mapping inside [lo, hi) with the alignment asked, XM_E_NO_ADDRESS when no such range is free,
   XM_E_INVALID_ARGUMENT for bad ranges; large arenas keep working. */
#include <stdatomic.h>

#include "xmtest.h"

#ifndef _WIN32
#include <sched.h>
#endif

#define GIB ((uint64_t)1 << 30)

/* Whether raw OS calls can take any of 64 evenly spaced places of size bytes inside [lo, hi):
   the probe that tells "the library failed" from "this range is not available here" (QEMU user
   mode confines the guest's address space; Windows' user space ends at 128 TiB). */
static bool range_available(uintptr_t lo, uintptr_t hi, size_t size) {
  const size_t unit = xm_allocation_granularity();
  uintptr_t step = ((hi - lo) / 64) & ~(uintptr_t)(unit - 1);
  if (step < unit) step = unit;
  for (uintptr_t at = lo; at < hi && hi - at >= size; at += step) {
#ifdef _WIN32
    void *p = VirtualAlloc((void *)at, size, MEM_RESERVE, PAGE_NOACCESS);
    if (p) VirtualFree(p, 0, MEM_RELEASE);
#else
    void *p = mmap((void *)at, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | 0x100000, -1, 0);
    if (p != MAP_FAILED) munmap(p, size);
#endif
    if (p == (void *)at) return true;
    if (at > UINTPTR_MAX - step) break;
  }
  return false;
}

/* A free range of size bytes away from where the system puts memory of its own (allocators,
   thread stacks, sanitizer runtimes): Linux maps top-down from below the stack, so low addresses
   stay untouched; Windows allocates bottom-up, so high ones do. 0 when there is none. */
static uintptr_t quiet_range(size_t size) {
#ifdef _WIN32
  const uintptr_t lo = (uintptr_t)((uint64_t)1 << 36), hi = (uintptr_t)((uint64_t)1 << 40);
#else
  const uintptr_t lo = (uintptr_t)256 << 20, hi = (uintptr_t)1 << 30;
#endif
  xm_arena *holder = NULL;
  if (xm_arena_new_in(size, lo, hi, 0, &holder) != XM_OK) return 0;
  uintptr_t at = (uintptr_t)xt_arena_base(holder);
  xm_arena_free(holder);
  return at;
}

/* An arena of size bytes inside [lo, hi) aligned to align (0: the granularity): checked, written,
   read back and freed; false (with the reason printed) when the range is not available here. */
static bool arena_in(size_t size, uintptr_t lo, uintptr_t hi, uint64_t align) {
  xm_arena *a = NULL;
  int rc = xm_arena_new_in(size, lo, hi, align, &a);
  if (rc == XM_E_NO_ADDRESS && !range_available(lo, hi, size)) {
    print_message("[  SKIP    ] [%p, %p) is not available here (raw OS calls cannot take it either): %s\n", (void *)lo,
                  (void *)hi, xm_errmsg());
    return false;
  }
  XT_OK(rc);
  uintptr_t base = (uintptr_t)xt_arena_base(a);
  const uint64_t want = align ? align : xm_allocation_granularity();
  if (base < lo || base > hi || hi - base < size || base % want != 0)
    print_message("arena at %p, size 0x%llx, asked [%p, %p) aligned 0x%llx\n", (void *)base, (unsigned long long)size,
                  (void *)lo, (void *)hi, (unsigned long long)want);
  assert_true(base >= lo && base <= hi && hi - base >= size);
  assert_int_equal(base % want, 0);
  const size_t g = xm_allocation_granularity();
  XT_OK(xm_arena_add_anon(a, size - g, g, XM_PROT_READ_WRITE));
  unsigned char *last = xt_arena_base(a) + size - g;
  last[0] = 0x5a;
  last[g - 1] = 0xa5;
  assert_int_equal(last[0] + last[g - 1], 0xff);
  xm_arena_free(a);
  return true;
}

static void arena_below_4g(void **state) {
  (void)state;
  /* On a 32-bit address space everything is below 4 GiB: the range is then its middle part. */
  uintptr_t lo = (uintptr_t)256 << 20, hi = sizeof(void *) >= 8 ? (uintptr_t)(4 * GIB) : (uintptr_t)3 << 30;
  if (!arena_in((size_t)64 << 20, lo, hi, (uint64_t)2 << 20)) skip();
}

static void arena_above_2_36(void **state) {
  (void)state;
  if (sizeof(void *) < 8) XT_SKIP("2^36 is past a 32-bit address space");
  const uintptr_t lo = (uintptr_t)((uint64_t)1 << 36), hi = (uintptr_t)((uint64_t)1 << 46);
  if (!arena_in((size_t)GIB, lo, hi, GIB)) skip();
}

static void alignment_honoured(void **state) {
  (void)state;
  const size_t g = xm_allocation_granularity();
  const uint64_t aligns[] = {0, g, (uint64_t)g * 4, (uint64_t)1 << 20, (uint64_t)16 << 20};
  const uintptr_t lo = (uintptr_t)64 << 20, hi = sizeof(void *) >= 8 ? (uintptr_t)((uint64_t)1 << 46) : UINTPTR_MAX;
  for (size_t i = 0; i < sizeof aligns / sizeof aligns[0]; i++)
    if (!arena_in(4 * g, lo, hi, aligns[i])) skip();
}

/* A range fully occupied by a mapping of ours: nothing fits, and the message says what was asked. */
static void occupied_range(void **state) {
  (void)state;
  const size_t g = xm_allocation_granularity();
  xm_mapping *m = xt_anon(16 * g);
  uintptr_t lo = (uintptr_t)xm_mapping_ptr(m), hi = lo + 16 * g;
  xm_arena *a = NULL;
  XT_STATUS(XM_E_NO_ADDRESS, xm_arena_new_in(4 * g, lo, hi, 0, &a));
  assert_null(a);
  xt_assert_errmsg_has("no free range");
  char size_text[32];
  snprintf(size_text, sizeof size_text, "%zu bytes", 4 * g);
  xt_assert_errmsg_has(size_text);
  xm_builder b = xm_builder_new(g);
  xm_builder_address_range(&b, lo, hi);
  xm_mapping *n = NULL;
  XT_STATUS(XM_E_NO_ADDRESS, xm_builder_build(&b, &n));
  assert_null(n);
#ifndef _WIN32
  /* The same answer without /proc/self/maps: candidates probed across the range. */
  setenv("XMMAP_PLACE", "probe", 1);
  XT_STATUS(XM_E_NO_ADDRESS, xm_arena_new_in(4 * g, lo, hi, 0, &a));
  xt_assert_errmsg_has("probed");
  unsetenv("XMMAP_PLACE");
#endif
  xm_mapping_free(m);
}

/* A free hole in the middle of an occupied range is found exactly, by both searches. */
static void hole_found(void **state) {
  (void)state;
  const size_t g = xm_allocation_granularity();
  uintptr_t lo = quiet_range(16 * g), hi = lo + 16 * g;
  if (!lo) XT_SKIP("no free range away from the system's own allocations: %s", xm_errmsg());
  /* Two mappings at the ends, a 4-unit hole between them. */
  for (int round = 0; round < 2; round++) {
    xm_builder b = xm_builder_new(6 * g);
    xm_builder_fixed_noreplace(&b, (void *)lo);
    xm_mapping *left = NULL, *right = NULL;
    if (xm_builder_build(&b, &left) != XM_OK) XT_SKIP("another thread took the freed range: %s", xm_errmsg());
    b = xm_builder_new(6 * g);
    xm_builder_fixed_noreplace(&b, (void *)(lo + 10 * g));
    XT_OK(xm_builder_build(&b, &right));
#ifndef _WIN32
    if (round == 1) setenv("XMMAP_PLACE", "probe", 1);
#else
    if (round == 1) break;
#endif
    xm_arena *a = NULL;
    XT_OK(xm_arena_new_in(4 * g, lo, hi, 0, &a));
    assert_ptr_equal(xt_arena_base(a), (void *)(lo + 6 * g));
    xm_arena *b2 = NULL;
    XT_STATUS(XM_E_NO_ADDRESS, xm_arena_new_in(g, lo, hi, 0, &b2));
    xm_arena_free(a);
#ifndef _WIN32
    unsetenv("XMMAP_PLACE");
#endif
    xm_mapping_free(left);
    xm_mapping_free(right);
  }
}

static void bad_arguments(void **state) {
  (void)state;
  const size_t g = xm_allocation_granularity();
  const uintptr_t lo = (uintptr_t)1 << 28;
  xm_arena *a = NULL;
  XT_STATUS(XM_E_INVALID_ARGUMENT, xm_arena_new_in(g, lo, lo, 0, &a));
  XT_STATUS(XM_E_INVALID_ARGUMENT, xm_arena_new_in(g, lo + g, lo, 0, &a));
  XT_STATUS(XM_E_INVALID_ARGUMENT, xm_arena_new_in(4 * g, lo, lo + 3 * g, 0, &a));
  XT_STATUS(XM_E_INVALID_ARGUMENT, xm_arena_new_in(2 * g, lo, lo + 2 * g - 1, 0, &a)); /* one whole unit */
  XT_STATUS(XM_E_INVALID_ARGUMENT, xm_arena_new_in(2 * g, lo + 1, lo + 2 * g, 0, &a)); /* one whole unit */
  XT_STATUS(XM_E_INVALID_ARGUMENT, xm_arena_new_in(g, lo, lo + 16 * g, 3 * g, &a));
  xt_assert_errmsg_has("power of two");
  XT_STATUS(XM_E_INVALID_ARGUMENT, xm_arena_new_in(g, lo, lo + 16 * g, (uint64_t)1 << 63, &a));
  XT_STATUS(XM_E_INVALID_ARGUMENT, xm_arena_new_in(SIZE_MAX, lo, UINTPTR_MAX, 0, &a));
  XT_STATUS(XM_E_INVALID_ARGUMENT, xm_arena_new_in(g, UINTPTR_MAX - 1, UINTPTR_MAX, 0, &a));
  XT_STATUS(XM_E_INVALID_ARGUMENT, xm_arena_new_in(g, lo, lo + 16 * g, 0, NULL));
  assert_null(a);

  /* The builder: checked before any OS call. */
  xm_builder b = xm_builder_new(g);
  xm_builder_address_range(&b, lo, lo);
  xt_build_refused_before_os(&b, XM_E_INVALID_ARGUMENT);
  b = xm_builder_new(4 * g);
  xm_builder_address_range(&b, lo, lo + 3 * g);
  xt_build_refused_before_os(&b, XM_E_INVALID_ARGUMENT);
  b = xm_builder_new(2 * g);
  xm_builder_guard_pages(&b, 1);
  xm_builder_address_range(&b, lo, lo + 2 * g); /* no room for the guards */
  xt_build_refused_before_os(&b, XM_E_INVALID_ARGUMENT);
  b = xm_builder_new(g);
  xm_builder_address_range(&b, lo, lo + 16 * g);
  xm_builder_fixed_noreplace(&b, (void *)lo);
  xt_build_refused_before_os(&b, XM_E_INVALID_ARGUMENT);
  xt_assert_errmsg_has("exclude each other");
  xm_builder_address_range(NULL, lo, lo + g); /* ignored, like every setter */
}

/* Size 0: the range is checked, and the arena takes no address space. */
static void empty_arena_in_range(void **state) {
  (void)state;
  const size_t g = xm_allocation_granularity();
  xm_arena *a = NULL;
  XT_OK(xm_arena_new_in(0, (uintptr_t)1 << 28, ((uintptr_t)1 << 28) + 4 * g, 0, &a));
  assert_null(xt_arena_base(a));
  XT_STATUS(XM_E_INVALID_ADDRESS, xm_arena_add_anon(a, 0, g, XM_PROT_READ_WRITE));
  xm_arena_free(a);
  XT_STATUS(XM_E_INVALID_ARGUMENT, xm_arena_new_in(0, 4 * g, 4 * g, 0, &a));
}

/* Mappings in a range: guards included, aligned, from every source, contents usable. */
static void builder_in_range(void **state) {
  (void)state;
  const size_t g = xm_allocation_granularity(), page = xm_page_size();
  const uintptr_t lo = quiet_range(64 * g), hi = lo + 64 * g;
  if (!lo) XT_SKIP("no free range away from the system's own allocations: %s", xm_errmsg());
  xm_shm *shm = xt_shm("placement", 8 * g);
  for (int source = 0; source < 2; source++) {
    xm_builder b = xm_builder_new(3 * g);
    if (source) xm_builder_from_shm(&b, shm);
    xm_builder_guard_pages(&b, 2);
    xm_builder_align(&b, 4 * g);
    xm_builder_address_range(&b, lo, hi);
    xm_mapping *m = NULL;
    int rc = xm_builder_build(&b, &m);
    if (rc == XM_E_NO_ADDRESS) XT_SKIP("another thread took the freed range: %s", xm_errmsg());
    XT_OK(rc);
    uintptr_t p = (uintptr_t)xm_mapping_ptr(m);
    assert_int_equal(p % (4 * g), 0);
    assert_true(p - 2 * page >= lo && p + 3 * g + 2 * page <= hi);
    uint64_t v = 0x1122334455667788ull, r = 0;
    XT_OK(XM_WRITE_OBJ(m, 3 * g - 8, &v));
    XT_OK(XM_READ_OBJ(m, 3 * g - 8, &r));
    assert_true(r == v);
    xm_mapping_free(m);
  }
  xm_shm_free(shm);
}

/* Threads race for a range that holds four arenas: at most four win, none overlaps another,
   the others get XM_E_NO_ADDRESS. */
enum { RACERS = 6 };
struct racer {
  uintptr_t lo, hi;
  size_t size;
  xm_arena *arena;
  int rc;
  atomic_int *go;
};
static XT_THREAD_RET race_for_range(void *arg) {
  struct racer *r = arg;
  while (!atomic_load_explicit(
      r->go, memory_order_acquire)) { /* yielding: under QEMU a bare spin can starve the main thread */
#ifdef _WIN32
    SwitchToThread();
#else
    sched_yield();
#endif
  }
  r->rc = xm_arena_new_in(r->size, r->lo, r->hi, 0, &r->arena);
  return 0;
}

static void racing_for_a_range(void **state) {
  (void)state;
  const size_t g = xm_allocation_granularity();
  struct racer racers[RACERS];
  xt_thread threads[RACERS];
  atomic_int go = 0;
  /* The threads (and their stacks) first: the range is freed only when nothing else maps. */
  for (int i = 0; i < RACERS; i++) {
    racers[i] = (struct racer){0, 0, 4 * g, NULL, 0, &go};
    xt_thread_start(&threads[i], race_for_range, &racers[i]);
  }
  const uintptr_t lo = quiet_range(16 * g), hi = lo + 16 * g;
  if (!lo) {
    atomic_store_explicit(&go, 1, memory_order_release);
    for (int i = 0; i < RACERS; i++) {
      xt_thread_join(threads[i]); /* they search [0, 0): invalid */
      xm_arena_free(racers[i].arena);
    }
    XT_SKIP("no free range away from the system's own allocations");
  }
  for (int i = 0; i < RACERS; i++) {
    racers[i].lo = lo;
    racers[i].hi = hi;
  }
  atomic_store_explicit(&go, 1, memory_order_release);
  int won = 0;
  for (int i = 0; i < RACERS; i++) {
    xt_thread_join(threads[i]);
    if (racers[i].rc == XM_OK) {
      won++;
      uintptr_t base = (uintptr_t)xt_arena_base(racers[i].arena);
      assert_true(base >= lo && base + 4 * g <= hi);
      for (int j = 0; j < i; j++)
        if (racers[j].rc == XM_OK) {
          uintptr_t other = (uintptr_t)xt_arena_base(racers[j].arena);
          assert_true(other + 4 * g <= base || base + 4 * g <= other);
        }
    } else {
      assert_int_equal(racers[i].rc, XM_E_NO_ADDRESS);
    }
  }
  if (won < 1 || won > 4)
    for (int i = 0; i < RACERS; i++)
      print_message("racer %d: %d\n", i, racers[i].rc);
  assert_true(won >= 1 && won <= 4);
  for (int i = 0; i < RACERS; i++)
    xm_arena_free(racers[i].arena);
}

/* Every OS call of a placement failed in turn with an error that is no "taken" answer: the
   failure is reported as it is, nothing is left behind, and the next try works. */
#ifdef _WIN32
#define PLACEMENT_ERROR 5 /* ERROR_ACCESS_DENIED */
#else
#define PLACEMENT_ERROR EACCES
#endif
static void failures_reported(void **state) {
  (void)state;
  const size_t g = xm_allocation_granularity();
  const uintptr_t lo = (uintptr_t)64 << 20, hi = sizeof(void *) >= 8 ? (uintptr_t)((uint64_t)1 << 40) : UINTPTR_MAX;
  xt_snapshot before = xt_snap();
  for (int what = 0; what < 2; what++) {
    long n = 1;
    for (;; n++) {
      xm_arena *a = NULL;
      xm_mapping *m = NULL;
      xm_builder b = xm_builder_new(2 * g);
      xm_builder_address_range(&b, lo, hi);
      xm_builder_guard_pages(&b, 1);
      xm__test_fail_nth(n, PLACEMENT_ERROR);
      int rc = what ? xm_builder_build(&b, &m) : xm_arena_new_in(4 * g, lo, hi, 0, &a);
      long calls = xm__test_os_calls();
      xm__test_fail_nth(0, 0);
      xm_arena_free(a);
      xm_mapping_free(m);
      if (rc == XM_OK) {
        assert_true(calls < n);
        break;
      }
      XT_STATUS(XM_E_SYSTEM_CALL, rc);
      assert_int_equal(xm_os_error(), PLACEMENT_ERROR);
      xt_assert_no_leak(before);
    }
    assert_true(n > 1);
  }
}

/* Large arenas keep working: 64 GiB (and 512 GiB where the address space allows). */
static void large_arenas(void **state) {
  (void)state;
  if (sizeof(void *) < 8) XT_SKIP("a 64 GiB arena does not fit a 32-bit address space");
#ifndef _WIN32
  /* Probe: whether this address space takes a 64 GiB reservation at all (valgrind's does not). */
  void *probe = mmap(NULL, (size_t)(64 * GIB), PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (probe == MAP_FAILED) XT_SKIP("a raw 64 GiB PROT_NONE reservation fails here too: %s", strerror(errno));
  munmap(probe, (size_t)(64 * GIB));
#endif
  const size_t g = xm_allocation_granularity();
  xm_arena *a = NULL;
  XT_OK(xm_arena_new((size_t)(64 * GIB), &a));
  XT_OK(xm_arena_add_anon(a, (size_t)(63 * GIB), g, XM_PROT_READ_WRITE));
  xt_arena_base(a)[(size_t)(63 * GIB)] = 7;
  XT_OK(xm_arena_remove(a, (size_t)(63 * GIB), g));
  xm_arena_free(a);
#ifndef _WIN32
  size_t used, limit;
  if (xm_map_count(&used, &limit) == XM_E_NOT_IMPLEMENTED) {
    /* QEMU user mode keeps flags for every guest page of a reservation: 512 GiB takes long. */
    print_message("512 GiB arena left out: %s\n", xm_errmsg());
    return;
  }
#endif
  int rc = xm_arena_new((size_t)(512 * GIB), &a);
  if (rc != XM_OK) {
    print_message("512 GiB arena not available here: %s\n", xm_errmsg());
    return;
  }
  XT_OK(xm_arena_add_anon(a, (size_t)(511 * GIB), g, XM_PROT_READ_WRITE));
  xm_arena_free(a);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(arena_below_4g),       cmocka_unit_test(arena_above_2_36), cmocka_unit_test(alignment_honoured),
      cmocka_unit_test(occupied_range),       cmocka_unit_test(hole_found),       cmocka_unit_test(bad_arguments),
      cmocka_unit_test(empty_arena_in_range), cmocka_unit_test(builder_in_range), cmocka_unit_test(racing_for_a_range),
      cmocka_unit_test(failures_reported),    cmocka_unit_test(large_arenas),
  };
  return XT_RUN_TESTS_AFTER_A_SNAPSHOT(tests);
}
