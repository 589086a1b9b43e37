/* What the arena holds: files and shared memory mapped into it (one memory seen twice, data that
   outlives the arena), removals that keep their neighbours' data, and overlapping changes of
   every kind checked unit by unit against a model. */
#include "xmtest_faults.h"

#include <stdbool.h>

/* Every arena offset and rounded size is a multiple of this (64 KiB on Windows). */
#define U (xm_allocation_granularity())

/* ---- descriptors in the arena --------------------------------------------------------------- */
static void fill_units(unsigned char *p, size_t units, unsigned char first_tag) {
  for (size_t k = 0; k < units; k++)
    memset(p + k * U, first_tag + (int)k, U);
}

static void file_in_arena(void **state) {
  (void)state;
  const size_t len = 3 * U;
  unsigned char *data = malloc(len);
  assert_non_null(data);
  fill_units(data, 3, 0x31);
  xm_descriptor f = xt_temp_file(data, len, 1);
  xm_descriptor s = xt_arena_descriptor(f, 1);
  xt_snapshot before = xt_snap();

  xm_arena *a = xt_arena(6 * U);
  unsigned char *base = xt_arena_base(a);
  XT_OK(xm_arena_add_fd(a, U, 3 * U, s, 0, XM_PROT_READ));
  assert_memory_equal(base + U, data, len);
  /* a descriptor offset: the arena's unit 0 shows the file's unit 2 */
  XT_OK(xm_arena_add_fd(a, 0, U, s, 2 * U, XM_PROT_READ_WRITE));
  assert_memory_equal(base, data + 2 * U, U);
  /* writes go to the file; msync through the region */
  memset(base + 5, 0xee, 3);
  XT_OK(xm_region_msync(xm_arena_region(a), 0, U));
  unsigned char back[3];
  xt_pread(f, back, 3, 2 * U + 5);
  assert_int_equal(back[0], 0xee);
  assert_int_equal(back[2], 0xee);
  assert_int_equal(base[U + 1], 0x31); /* the read-only piece next to it still reads the file */
  /* the caller may close its descriptor: the arena's mapping stays */
  xt_release_arena_descriptor(s);
#ifndef _WIN32
  int f2 = dup(f);
  assert_true(f2 >= 0);
  XT_OK(xm_arena_add_fd(a, 4 * U, U, f2, U, XM_PROT_READ));
  close(f2);
  assert_int_equal(base[4 * U], 0x32);
#endif
  assert_int_equal(base[2 * U], 0x32);
  XT_OK(xm_arena_remove(a, 0, 6 * U));
  xm_arena_free(a);
  xt_assert_released(base, 6 * U);
  xt_assert_no_leak(before);
  xt_close(f);
  free(data);
}

static void shm_twice_in_arena(void **state) {
  (void)state;
  xm_shm *shm = NULL;
  XT_OK(xm_shm_new("arena", 2 * U, &shm));
  xm_arena *a = xt_arena(8 * U);
  unsigned char *base = xt_arena_base(a);
  xm_region *r = xm_arena_region(a);
  XT_OK(xm_region_add_fd_mapping(r, 0, 2 * U, xm_shm_descriptor(shm), 0, XM_PROT_READ_WRITE));
  XT_OK(xm_arena_add_fd(a, 4 * U, 2 * U, xm_shm_descriptor(shm), 0, XM_PROT_READ_WRITE));
  XT_OK(xm_arena_add_fd(a, 7 * U, U, xm_shm_descriptor(shm), U, XM_PROT_READ));
  base[10] = 0x77;
  base[U + 3] = 0x88;
  assert_int_equal(base[4 * U + 10], 0x77); /* one memory, seen twice */
  assert_int_equal(base[5 * U + 3], 0x88);
  assert_int_equal(base[7 * U + 3], 0x88);
  base[5 * U + 4] = 0x99;
  assert_int_equal(base[U + 4], 0x99);
  /* removing one view leaves the memory and the other view */
  XT_OK(xm_region_remove_mapping(r, 0, 2 * U));
  assert_int_equal(base[4 * U + 10], 0x77);
  xm_arena_free(a);
  /* the memory outlives the arena */
  xm_builder b = xm_builder_new(2 * U);
  xm_builder_from_shm(&b, shm);
  xm_mapping *m = NULL;
  XT_OK(xm_builder_build(&b, &m));
  assert_int_equal(((unsigned char *)xm_mapping_ptr(m))[U + 4], 0x99);
  xm_mapping_free(m);
  xm_shm_free(shm);
}

/* Removing the middle of a piece keeps its neighbours' data, a piece partly covered by a new one
   keeps the rest, and advice and msync work over mixed pieces. Windows: a removed range is
   reserved again, one section per add is shared by its remainders, and a view of a file cannot
   take MEM_RESET (said so, not tried). */
static void removal_keeps_neighbours(void **state) {
  (void)state;
  print_message("arena strategy: %s\n", xm_arena_strategy()); /* which one is checked by test_arena */
  long handles = xt_snap().handles;
  xm_arena *a = xt_arena(8 * U);
  unsigned char *base = xt_arena_base(a);
  XT_OK(xm_arena_add_anon(a, 0, 8 * U, XM_PROT_READ_WRITE));
  for (size_t k = 0; k < 8; k++)
    memset(base + k * U, (int)(0x10 + k), U);
  XT_OK(xm_arena_remove(a, 3 * U, 2 * U));
  XT_OK(xm_arena_add_anon(a, 6 * U, U, XM_PROT_NONE));
  assert_int_equal(base[2 * U + 7], 0x12);
  assert_int_equal(base[5 * U], 0x15);
  assert_int_equal(base[7 * U + 9], 0x17);
  unsigned char seen[8];
  xt_probe_readable(base, U, 8, seen);
  assert_true(seen[2] && !seen[3] && !seen[4] && seen[5] && !seen[6] && seen[7]);
#ifdef _WIN32
  assert_int_equal(xt_query(base + 3 * U).State, MEM_RESERVE);
  assert_int_equal(xt_query(base + 6 * U).Protect, PAGE_NOACCESS);
  assert_int_equal(xm__test_open_handles(), handles + 2); /* one section per add, shared by its remainders */
#endif
  xm_descriptor f = xt_pattern_file(U, 1);
  xm_descriptor d = xt_arena_descriptor(f, 1);
  XT_OK(xm_arena_add_fd(a, 3 * U, U, d, 0, XM_PROT_READ_WRITE));
  xt_release_arena_descriptor(d);
#ifdef _WIN32
  XT_STATUS(XM_E_NOT_IMPLEMENTED, xm_region_advise(xm_arena_region(a), 3 * U, U, XM_ADVICE_DONTNEED));
#else
  XT_OK(xm_region_advise(xm_arena_region(a), 3 * U, U, XM_ADVICE_DONTNEED));
#endif
  XT_OK(xm_region_advise(xm_arena_region(a), 0, U, XM_ADVICE_DONTNEED));
  /* (valgrind reports msync over the PROT_NONE unit as a bad address: it stops short there) */
  XT_OK(xm_region_msync(xm_arena_region(a), 0, (xt_under_valgrind() ? 6 : 8) * U));
  unsigned char want[8], got[8];
  xt_fill_position_pattern(want, sizeof want, 100);
  memcpy(got, base + 3 * U + 100, sizeof got);
  assert_memory_equal(got, want, sizeof got);
  xm_arena_free(a);
  xt_close(f);
  assert_int_equal(xt_snap().handles, handles);
}

/* ---- overlapping changes against a model ------------------------------------------------------ */
#define MODEL_UNITS 16
#define UNREADABLE (-1)

static void check_model(xm_arena *a, const int *model) {
  unsigned char *base = xt_arena_base(a);
  unsigned char seen[MODEL_UNITS];
  xt_probe_readable(base, U, MODEL_UNITS, seen);
  for (size_t k = 0; k < MODEL_UNITS; k++) {
    if ((model[k] == UNREADABLE) == (seen[k] != 0))
      print_message("unit %lu: model %d, readable %d\n", (unsigned long)k, model[k], seen[k]);
    assert_int_equal(model[k] == UNREADABLE, seen[k] == 0);
    if (model[k] == UNREADABLE) continue;
    if (base[k * U] != model[k] || base[k * U + U - 1] != model[k])
      print_message("unit %lu: model 0x%x, bytes 0x%x 0x%x\n", (unsigned long)k, model[k], base[k * U],
                    base[k * U + U - 1]);
    assert_int_equal(base[k * U], model[k]);
    assert_int_equal(base[k * U + U - 1], model[k]);
  }
}

static void model_set(int *model, size_t from, size_t units, int value, int step) {
  for (size_t k = from; k < from + units; k++, value += step)
    model[k] = value;
}

static void overlapping_changes_model(void **state) {
  (void)state;
  /* A shm whose unit k holds 0x10 + k everywhere, mapped at various descriptor offsets; anonymous
     adds are filled with their own tag after adding. */
  xm_shm *shm = NULL;
  XT_OK(xm_shm_new("model", MODEL_UNITS * U, &shm));
  xm_builder b = xm_builder_new(MODEL_UNITS * U);
  xm_builder_from_shm(&b, shm);
  xm_mapping *m = NULL;
  XT_OK(xm_builder_build(&b, &m));
  fill_units(xm_mapping_ptr(m), MODEL_UNITS, 0x10);
  xm_mapping_free(m);
  const xm_descriptor d = xm_shm_descriptor(shm);
  xt_snapshot before = xt_snap();

  xm_arena *a = xt_arena(MODEL_UNITS * U);
  unsigned char *base = xt_arena_base(a);
  int model[MODEL_UNITS];
  model_set(model, 0, MODEL_UNITS, UNREADABLE, 0);
  check_model(a, model);

  XT_OK(xm_arena_add_fd(a, 2 * U, 6 * U, d, 0, XM_PROT_READ_WRITE));
  model_set(model, 2, 6, 0x10, 1);
  check_model(a, model);

  XT_OK(xm_arena_add_anon(a, 4 * U, 2 * U, XM_PROT_READ_WRITE)); /* inside the fd piece */
  memset(base + 4 * U, 0xa1, 2 * U);
  model_set(model, 4, 2, 0xa1, 0);
  check_model(a, model);

  XT_OK(xm_arena_remove(a, 5 * U, 2 * U)); /* half of the anon piece, part of the fd remainder */
  model_set(model, 5, 2, UNREADABLE, 0);
  check_model(a, model);

  XT_OK(xm_arena_add_fd(a, 0, 3 * U, d, 10 * U, XM_PROT_READ)); /* over reserved and the fd front */
  model_set(model, 0, 3, 0x1a, 1);
  check_model(a, model);

  XT_OK(xm_arena_add_anon(a, 7 * U, 5 * U - 100, XM_PROT_READ_WRITE)); /* size rounded up */
  memset(base + 7 * U, 0xa5, 5 * U);
  model_set(model, 7, 5, 0xa5, 0);
  check_model(a, model);

  XT_OK(xm_arena_remove(a, U, U)); /* the middle of a descriptor piece */
  model_set(model, 1, 1, UNREADABLE, 0);
  check_model(a, model);

  XT_OK(xm_arena_add_fd(a, 9 * U, 2 * U, d, 3 * U, XM_PROT_READ)); /* inside the anon piece */
  model_set(model, 9, 2, 0x13, 1);
  check_model(a, model);

  XT_OK(xm_arena_add_anon(a, 12 * U, 4 * U, XM_PROT_NONE)); /* mapped, but not readable */
  model_set(model, 12, 4, UNREADABLE, 0);
  check_model(a, model);

  XT_OK(xm_arena_add_anon(a, 13 * U, U / 2, XM_PROT_READ)); /* fresh zeros in the PROT_NONE piece */
  model_set(model, 13, 1, 0, 0);
  check_model(a, model);

  XT_OK(xm_arena_remove(a, 3 * U, 8 * U)); /* spans fd, reserved, anon and fd pieces */
  model_set(model, 3, 8, UNREADABLE, 0);
  check_model(a, model);

  XT_OK(xm_arena_add_fd(a, 4 * U, 2 * U, d, 0, XM_PROT_READ_WRITE)); /* the shm's own bytes again */
  model_set(model, 4, 2, 0x10, 1);
  check_model(a, model);

  XT_OK(xm_arena_remove(a, 0, MODEL_UNITS * U));
  model_set(model, 0, MODEL_UNITS, UNREADABLE, 0);
  check_model(a, model);

  XT_OK(xm_arena_add_anon(a, 0, MODEL_UNITS * U, XM_PROT_READ));
  model_set(model, 0, MODEL_UNITS, 0, 0);
  check_model(a, model);

  xm_arena_free(a);
  xt_assert_released(base, MODEL_UNITS * U);
  xt_assert_no_leak(before);
  xm_shm_free(shm);
}
int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(file_in_arena),
      cmocka_unit_test(shm_twice_in_arena),
      cmocka_unit_test(removal_keeps_neighbours),
      cmocka_unit_test(overlapping_changes_model),
  };
  return XT_RUN_TESTS_AFTER_A_SNAPSHOT(tests);
}
