/* The arena at emulator scale: tens of thousands of scattered one-unit pieces of one shared-memory
   object in a 64 GiB arena (1 GiB on 32-bit), as many as the mapping-count limit allows with
   headroom; 100,000 pieces that the kernel merges into runs; mirrors of one backing range; the
   arena's granularity and huge-page backings. Data is checked in a sample, through the arena and
   through a separate mapping of the object. Where the count cannot be known (QEMU user mode,
   Windows) or each change is slow (emulators, valgrind, Wine's split reservations) the counts are
   scaled down by a timed probe, and the test says so. */
#include <time.h>

#include "xmtest.h"

#define GIB ((uint64_t)1 << 30)
#define MIB ((uint64_t)1 << 20)
#define SCATTERED_WANTED 30000u
#define MERGED_WANTED 100000u
#define MAP_COUNT_HEADROOM 5000u
#define PROBE_CHANGES 256u
#define TIME_BUDGET 8.0 /* seconds of adds and removes per test, where changes are slow */

/* valgrind's own address-space manager refuses a 64 GiB reservation (EINVAL): 1 GiB there. */
static size_t arena_size(void) {
  return sizeof(void *) == 8 && !xt_under_valgrind() ? (size_t)(64 * GIB) : (size_t)(1 * GIB);
}
static uint64_t shm_size(void) { return sizeof(void *) == 8 ? 1 * GIB : 256 * MIB; }

static double seconds_now(void) { return (double)clock() / CLOCKS_PER_SEC; }

/* How many pieces fit the mapping count with headroom, each costing per_piece kernel mappings
   (wanted where the count cannot be known). */
static size_t fit_map_count(size_t wanted, size_t per_piece) {
  size_t used = 0, limit = 0;
  if (xm_map_count(&used, &limit) != XM_OK) {
#ifdef _WIN32
    return wanted; /* no such limit */
#else
    /* QEMU user mode: the host kernel still counts the emulator's own mappings and the guest's */
    const size_t cap = 20000u / per_piece;
    print_message("mapping count not known here (%s): at most %lu pieces\n", xm_errmsg(), (unsigned long)cap);
    return cap < wanted ? cap : wanted;
#endif
  }
  size_t room = limit > used + MAP_COUNT_HEADROOM ? (limit - used - MAP_COUNT_HEADROOM) / per_piece : 0;
  if (room < wanted)
    print_message("vm.max_map_count=%lu, %lu used: %lu pieces instead of %lu\n", (unsigned long)limit,
                  (unsigned long)used, (unsigned long)room, (unsigned long)wanted);
  return room < wanted ? room : wanted;
}

/* valgrind tracks every mapping in a table of a few thousand segments (VG_N_SEGMENTS). */
#define VALGRIND_PIECES 1500u

/* Fewer pieces where the first PROBE_CHANGES adds show that all of them would take too long. */
static size_t fit_time(size_t n, double probe_seconds) {
  if (xt_under_valgrind() && n > VALGRIND_PIECES) {
    print_message("under valgrind (its segment table is small): %u pieces instead of %lu\n", VALGRIND_PIECES,
                  (unsigned long)n);
    n = VALGRIND_PIECES;
  }
  double per_change = probe_seconds / PROBE_CHANGES;
  if (per_change <= 0 || per_change * 2.0 * (double)n <= TIME_BUDGET) return n;
  size_t fit = (size_t)(TIME_BUDGET / (2.0 * per_change));
  if (fit < PROBE_CHANGES) fit = PROBE_CHANGES;
  if (fit < n)
    print_message("%.1f us per change here (an emulator, valgrind or Wine): %lu pieces instead of %lu\n",
                  per_change * 1e6, (unsigned long)fit, (unsigned long)n);
  return fit < n ? fit : n;
}

/* A tag for piece k, written through one view and read through the other. */
static uint64_t tag_of(size_t k) { return 0x5ca1e00000000000ull ^ ((uint64_t)k * 0x9e3779b97f4a7c15ull); }

/* Writes piece k's tag at both ends of the unit through the arena (at arena offset off) and reads
   them through a separate mapping of the object's unit at obj_off; then the other way round. */
static void check_through_both(xm_arena *a, const xm_shm *shm, size_t unit, size_t off, uint64_t obj_off, size_t k) {
  unsigned char *p = xt_arena_base(a) + off;
  xm_mapping *m = xt_map_shm(shm, unit, obj_off, XM_PROT_READ_WRITE);
  unsigned char *q = xm_mapping_ptr(m);
  uint64_t t = tag_of(k), got = 0;
  memcpy(p, &t, sizeof t);
  memcpy(p + unit - sizeof t, &t, sizeof t);
  memcpy(&got, q, sizeof got);
  assert_true(got == t);
  memcpy(&got, q + unit - sizeof t, sizeof got);
  assert_true(got == t);
  t = ~t;
  memcpy(q + unit / 2, &t, sizeof t);
  memcpy(&got, p + unit / 2, sizeof got);
  assert_true(got == t);
  xm_mapping_free(m);
}

/* A removed piece faults: a safe copy from it says XM_E_FAULT. */
static void assert_removed(xm_arena *a, size_t offset) {
#ifndef _WIN32
  xt_own_fault_signals(); /* cmocka put its own handlers in front for this test */
#endif
  /* valgrind reports a copy from reserved space as an invalid read: the check is left out there */
  if (xt_under_valgrind()) return;
  uint64_t v = 0;
  size_t copied = 0;
  XT_STATUS(XM_E_FAULT, xm_region_read_safe(xm_arena_region(a), &v, sizeof v, offset, &copied));
  assert_int_equal(copied, 0);
}

static size_t used_count(void) {
  size_t used = 0, limit = 0;
  return xm_map_count(&used, &limit) == XM_OK ? used : 0;
}

/* ---- scattered pieces --------------------------------------------------------------------- */
static void scattered_pieces(void **state) {
  (void)state;
  const size_t before = used_count();
  xm_arena *a = xt_arena(arena_size());
  const size_t unit = xm_arena_granularity(a);
  xm_shm *shm = xt_shm("arena-scale", shm_size());
  const xm_descriptor d = xm_shm_descriptor(shm);
  const size_t shm_units = (size_t)(shm_size() / unit);
  /* Each piece apart from the others: its own kernel mapping and a split of the reserved space. */
  size_t n = fit_map_count(SCATTERED_WANTED, 2);
  if (n < PROBE_CHANGES) {
    xm_arena_free(a);
    xm_shm_free(shm);
    XT_SKIP("the mapping-count limit leaves room for %lu scattered pieces only", (unsigned long)n);
  }
  const size_t stride = (arena_size() / n) & ~(unit - 1);
  assert_true(stride >= 2 * unit);
#define OBJ_OFFSET(k) ((uint64_t)(((k)*7919u) % shm_units) * unit)
  double t0 = seconds_now();
  size_t added = 0;
  for (; added < n; added++) {
    if (added == PROBE_CHANGES) n = fit_time(n, seconds_now() - t0);
    if (added == n) break;
    XT_OK(xm_arena_add_fd(a, added * stride, unit, d, OBJ_OFFSET(added), XM_PROT_READ_WRITE));
  }
  print_message("%lu scattered pieces of %lu bytes in a %lu MiB arena\n", (unsigned long)n, (unsigned long)unit,
                (unsigned long)(arena_size() >> 20));
  const size_t sample = n / 64 ? n / 64 : 1;
  for (size_t k = 0; k < n; k += sample)
    check_through_both(a, shm, unit, k * stride, OBJ_OFFSET(k), k);
  /* Removed in another order than they were added: every other piece, then the rest. */
  for (size_t pass = 0; pass < 2; pass++)
    for (size_t k = pass; k < n; k += 2)
      XT_OK(xm_arena_remove(a, k * stride, unit));
  assert_removed(a, (n / 2) * stride);
  /* Everything removed: the arena is one reservation again, as many mappings as when it was new. */
  if (before && xt_mappings_comparable()) {
    xm_arena *empty = xt_arena(unit);
    size_t with_two = used_count();
    xm_arena_free(empty);
    assert_true(with_two <= before + 3); /* the scale arena, the shm's, one more */
  }
  xm_arena_free(a);
  xm_shm_free(shm);
#undef OBJ_OFFSET
}

/* ---- merged runs -------------------------------------------------------------------------- */
/* Contiguous offsets of one object at contiguous arena offsets: the kernel merges them into one
   mapping (Linux), so 100,000 pieces fit any mapping-count limit. Removed from the front (each
   removal merges with the reserved space before it, the run only shrinks) and then half of them
   in one call across tens of thousands of pieces. */
static void merged_runs(void **state) {
  (void)state;
  xm_arena *a = xt_arena(arena_size());
  const size_t unit = xm_arena_granularity(a);
  xm_shm *shm = xt_shm("arena-scale-runs", shm_size());
  const xm_descriptor d = xm_shm_descriptor(shm);
  size_t n = MERGED_WANTED;
  if ((uint64_t)n * unit > shm_size()) {
    n = (size_t)(shm_size() / unit);
    print_message("%lu-byte units: %lu pieces fill the %lu MiB object\n", (unsigned long)unit, (unsigned long)n,
                  (unsigned long)(shm_size() >> 20));
  }
  const size_t base = arena_size() / 4 & ~(unit - 1);
  const size_t before = used_count();
  double t0 = seconds_now();
  for (size_t k = 0; k < n; k++) {
    if (k == PROBE_CHANGES) n = fit_time(n, seconds_now() - t0);
    if (k == n) break;
    XT_OK(xm_arena_add_fd(a, base + k * unit, unit, d, (uint64_t)k * unit, XM_PROT_READ_WRITE));
  }
  const size_t with = used_count();
  print_message("%lu contiguous pieces: %lu kernel mappings before, %lu with them\n", (unsigned long)n,
                (unsigned long)before, (unsigned long)with);
#if defined(__linux__)
  if (before && with && xt_mappings_comparable()) assert_true(with <= before + 4); /* one run, its split reservation */
#endif
  const size_t sample = n / 64 ? n / 64 : 1;
  for (size_t k = 0; k < n; k += sample)
    check_through_both(a, shm, unit, base + k * unit, (uint64_t)k * unit, k);
  /* The whole run reads as one: the bytes of consecutive pieces are consecutive in the object. */
  xm_mapping *m = xt_map_shm(shm, 2 * unit, 0, XM_PROT_READ_WRITE);
  unsigned char *obj = xm_mapping_ptr(m);
  memset(obj + unit - 4, 0xa5, 8);
  assert_memory_equal(xt_arena_base(a) + base + unit - 4, obj + unit - 4, 8);
  xm_mapping_free(m);

  const size_t half = n / 2;
  for (size_t k = 0; k < half; k++)
    XT_OK(xm_arena_remove(a, base + k * unit, unit));
  XT_OK(xm_arena_remove(a, base + half * unit, (n - half) * unit)); /* one change across many pieces */
  assert_removed(a, base + (n - 1) * unit);
  if (before && xt_mappings_comparable()) assert_true(used_count() <= before);
  xm_arena_free(a);
  xm_shm_free(shm);
}

/* ---- mirrors ------------------------------------------------------------------------------ */
static void mirrors_see_each_other(void **state) {
  (void)state;
  xm_arena *a = xt_arena(arena_size());
  const size_t unit = xm_arena_granularity(a);
  xm_shm *shm = xt_shm("arena-scale-mirrors", 64 * unit);
  const size_t len = 4 * unit;
  const size_t at[] = {0, arena_size() / 3 & ~(unit - 1), arena_size() / 2 & ~(unit - 1), arena_size() - len};
  enum { MIRRORS = sizeof at / sizeof at[0] };
  for (size_t i = 0; i < MIRRORS; i++)
    XT_OK(xm_arena_add_fd(a, at[i], len, xm_shm_descriptor(shm), 8 * unit, XM_PROT_READ_WRITE));
  unsigned char *base = xt_arena_base(a);
  for (size_t i = 0; i < MIRRORS; i++) {
    const size_t where = (i * 997 + 13) % len;
    base[at[i] + where] = (unsigned char)(0x40 + i);
    for (size_t j = 0; j < MIRRORS; j++)
      assert_int_equal(base[at[j] + where], 0x40 + i);
  }
  xm_mapping *m = xt_map_shm(shm, len, 8 * unit, XM_PROT_READ);
  assert_int_equal(((unsigned char *)xm_mapping_ptr(m))[(3 * 997 + 13) % len], 0x43);
  xm_mapping_free(m);
  /* One mirror removed in the middle of its range: the others keep every byte. */
  XT_OK(xm_arena_remove(a, at[1] + unit, unit));
  base[at[2] + unit + 5] = 0x77;
  assert_int_equal(base[at[0] + unit + 5], 0x77);
  assert_int_equal(base[at[1] + 2 * unit + 5], base[at[3] + 2 * unit + 5]);
  xm_arena_free(a);
  xm_shm_free(shm);
}

/* ---- the unit ----------------------------------------------------------------------------- */
static void granularity_is_the_unit(void **state) {
  (void)state;
  assert_int_equal(xm_arena_granularity(NULL), 0);
  xm_arena *a = xt_arena(64 * xm_allocation_granularity());
  const size_t unit = xm_arena_granularity(a);
#ifdef _WIN32
  /* the page where placeholders lift the 64 KiB rule; split reservations (Wine) keep it */
  const bool placeholders = strcmp(xm_arena_strategy(), "placeholders") == 0;
  assert_int_equal(unit, placeholders ? xm_page_size() : xm_allocation_granularity());
#else
  assert_int_equal(unit, xm_page_size());
#endif
  XT_OK(xm_arena_add_anon(a, unit, 1, XM_PROT_READ_WRITE)); /* rounded up to one unit */
  xt_arena_base(a)[2 * unit - 1] = 1;
  if (unit > 1) {
    XT_STATUS(XM_E_NOT_PAGE_ALIGNED, xm_arena_add_anon(a, unit / 2, unit, XM_PROT_READ_WRITE));
    xt_assert_errmsg_has("multiple");
  }
  xm_shm *shm = xt_shm("arena-unit", 8 * unit);
  XT_STATUS(XM_E_NOT_PAGE_ALIGNED,
            xm_arena_add_fd(a, 0, unit, xm_shm_descriptor(shm), unit / 2 ? unit / 2 : 1, XM_PROT_READ));
  XT_OK(xm_arena_add_fd(a, 3 * unit, unit, xm_shm_descriptor(shm), 5 * unit, XM_PROT_READ));
  xm_shm_free(shm);
  xm_arena_free(a);
}

/* A backing with huge pages maps only in whole huge pages: offsets and sizes in units that are not
   multiples of the huge page are refused with XM_E_NOT_PAGE_ALIGNED naming its size. */
static void huge_page_backing_needs_whole_pages(void **state) {
  (void)state;
  xm_shm *shm = NULL;
  int rc = xm_shm_new_ex("arena-huge", 4 * MIB, XM_SHM_HUGE, 0, &shm);
  if (rc != XM_OK) XT_SKIP("no huge-page shared memory here: %s", xm_errmsg());
#ifdef _WIN32
  xm_shm_free(shm);
  XT_SKIP("Windows large-page sections are not told apart by the arena yet");
#else
  xm_arena *a = xt_arena(16 * MIB);
  const size_t unit = xm_arena_granularity(a);
  const xm_descriptor d = xm_shm_descriptor(shm);
  XT_STATUS(XM_E_NOT_PAGE_ALIGNED, xm_arena_add_fd(a, unit, 2 * MIB, d, 0, XM_PROT_READ_WRITE));
  xt_assert_errmsg_has("huge pages");
  XT_STATUS(XM_E_NOT_PAGE_ALIGNED, xm_arena_add_fd(a, 0, unit, d, 0, XM_PROT_READ_WRITE));
  XT_STATUS(XM_E_NOT_PAGE_ALIGNED, xm_arena_add_fd(a, 0, 2 * MIB, d, unit, XM_PROT_READ_WRITE));
  size_t huge = 0;
  for (size_t h = 2 * MIB; h <= 4 * MIB && !huge; h *= 2)
    if (xm_arena_add_fd(a, 2 * MIB, h, d, 0, XM_PROT_READ_WRITE) == XM_OK) huge = h;
  if (!huge)
    print_message("huge pages larger than 4 MiB: %s\n", xm_errmsg());
  else
    xt_arena_base(a)[2 * MIB] = 1;
  xm_arena_free(a);
  xm_shm_free(shm);
#endif
}

/* ---- one kernel mapping per piece -------------------------------------------------------- */
#ifndef _WIN32
/* Kernel mappings that overlap [base, base + size) in /proc/self/maps. */
static size_t kernel_mappings_in(const unsigned char *base, size_t size) {
  FILE *f = fopen("/proc/self/maps", "r");
  assert_non_null(f);
  size_t n = 0;
  unsigned long lo, hi;
  char line[512];
  while (fgets(line, sizeof line, f))
    if (sscanf(line, "%lx-%lx", &lo, &hi) == 2 && lo < (uintptr_t)base + size && hi > (uintptr_t)base) n++;
  fclose(f);
  return n;
}
#endif

/* Reserved ranges made by separate removals become one kernel mapping, and stay apart from the
   mapped pieces: after each change the arena's range holds exactly one kernel mapping per piece
   (the mapped pieces map separate parts of the object, so the kernel cannot merge them; reserved
   space carries the arena's name where the kernel names mappings, and merges by it). */
static void one_kernel_mapping_per_piece(void **state) {
  (void)state;
#ifdef _WIN32
  XT_SKIP("Windows has no list of kernel mappings to count");
#else
  size_t used = 0, limit = 0;
  if (xm_map_count(&used, &limit) != XM_OK)
    XT_SKIP("the kernel's mapping list is not known here: %s", xm_errmsg()); /* QEMU user mode */
  xm_arena *a = xt_arena(8 * xm_allocation_granularity());
  const size_t unit = xm_arena_granularity(a);
  xm_shm *shm = xt_shm("arena-kernel-mappings", 16 * unit);
  unsigned char *base = xt_arena_base(a);
  for (size_t k = 1; k <= 6; k++)
    XT_OK(xm_arena_add_fd(a, k * unit, unit, xm_shm_descriptor(shm), 2 * k * unit, XM_PROT_READ_WRITE));
  assert_int_equal(kernel_mappings_in(base, 8 * unit), 8);
  static const size_t removals[] = {3, 4, 1, 6, 2, 5};
  static const size_t expected[] = {8, 7, 6, 5, 3, 1}; /* reserved runs merge with their neighbours */
  for (size_t k = 0; k < 6; k++) {
    XT_OK(xm_arena_remove(a, removals[k] * unit, unit));
    assert_int_equal(kernel_mappings_in(base, 8 * unit), expected[k]);
  }
  xm_arena_free(a);
  xm_shm_free(shm);
#endif
}

/* ---- many objects -------------------------------------------------------------------------- */
/* More live objects than the first chunk of the table of known objects holds (src/shm_known.c):
   each is still known, so its policies hold before any OS call, and its pieces map its own bytes.
   Freed in an interleaved order and made again, the slots are reused. */
#define MANY_OBJECTS 150u
static void many_library_objects(void **state) {
  (void)state;
  xm_arena *a = xt_arena(MANY_OBJECTS * xm_allocation_granularity());
  const size_t unit = xm_arena_granularity(a);
  unsigned char *base = xt_arena_base(a);
  xm_shm *objects[MANY_OBJECTS] = {0};
  for (size_t round = 0; round < 2; round++) {
    for (size_t k = 0; k < MANY_OBJECTS; k++) {
      if (objects[k]) continue;
      XT_OK(xm_shm_new_ex("arena-many", unit, k % 3 == 0 ? XM_SHM_EXEC : 0, 0, &objects[k]));
      xm_mapping *m = xt_map_shm(objects[k], unit, 0, XM_PROT_READ_WRITE);
      memset(xm_mapping_ptr(m), (int)(k + 1), 16);
      xm_mapping_free(m);
    }
    for (size_t k = 0; k < MANY_OBJECTS; k++) {
      const xm_descriptor d = xm_shm_descriptor(objects[k]);
      if (k % 3 != 0) { /* refused by the object's policy, not by the OS */
        xm__test_fail_nth(0, 0);
        XT_STATUS(XM_E_ACCESS, xm_arena_add_fd(a, k * unit, unit, d, 0, XM_PROT_READ | XM_PROT_EXEC));
        xt_assert_errmsg_has("without XM_SHM_EXEC");
        assert_int_equal(xm__test_os_calls(), 0);
      }
      XT_OK(xm_arena_add_fd(a, k * unit, unit, d, 0, k % 3 == 0 ? XM_PROT_READ | XM_PROT_EXEC : XM_PROT_READ));
      assert_int_equal(base[k * unit + 15], (unsigned char)(k + 1));
    }
    /* read-only clones of objects far into the table refuse writable pieces before the OS */
    xm_shm *ro = NULL;
    const int rc = xm_shm_clone_readonly(objects[MANY_OBJECTS - 1], &ro);
    if (rc == XM_E_NOT_IMPLEMENTED) { /* the probe's answer (Wine 8): test_shm_readonly says why */
      print_message("no read-only clones here: %s\n", xm_errmsg());
    } else {
      XT_OK(rc);
      xm__test_fail_nth(0, 0);
      XT_STATUS(XM_E_ACCESS, xm_arena_add_fd(a, 0, unit, xm_shm_descriptor(ro), 0, XM_PROT_READ_WRITE));
      xt_assert_errmsg_has("read-only clone");
      assert_int_equal(xm__test_os_calls(), 0);
      assert_int_equal(base[15], 1); /* the piece refused over it is still the old one */
      xm_shm_free(ro);
    }
    XT_OK(xm_arena_remove(a, 0, MANY_OBJECTS * unit));
    for (size_t k = round; k < MANY_OBJECTS; k += 2) { /* every other one, made again next round */
      xm_shm_free(objects[k]);
      objects[k] = NULL;
    }
  }
  for (size_t k = 0; k < MANY_OBJECTS; k++)
    xm_shm_free(objects[k]);
  xm_arena_free(a);
}

int main(void) {
#ifndef _WIN32
  if (xt_capture_library_handler() != XM_OK) return 1;
#endif
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(granularity_is_the_unit),
      cmocka_unit_test(huge_page_backing_needs_whole_pages),
      cmocka_unit_test(mirrors_see_each_other),
      cmocka_unit_test(scattered_pieces),
      cmocka_unit_test(merged_runs),
      cmocka_unit_test(one_kernel_mapping_per_piece),
      cmocka_unit_test(many_library_objects),
  };
  return XT_RUN_TESTS_AFTER_A_SNAPSHOT(tests);
}
