/* The arena's piece bookkeeping (src/arena_pieces.c) against a model under thousands of random
   adds and removes: after each, the list is sorted, contiguous, covers the arena, has no two
   adjacent reserved pieces, agrees with the tree's lookup at every unit, and every unit holds
   what the model says (its tag where mapped, a fault where removed). */
#include "xmtest.h"

#include "arena.h"

#define UNITS 256u
#define OPS 3000

enum { RES, ANON, FD };

static uint32_t rng = 12345u;
static uint32_t next_random(void) {
  rng ^= rng << 13;
  rng ^= rng >> 17;
  rng ^= rng << 5;
  return rng;
}

static void check_list(const xm_arena *a, size_t unit, const uint8_t *kind) {
  size_t at = 0, count = 0;
  const struct xm__arena_piece *prev = NULL;
  for (const struct xm__arena_piece *p = xm__pieces_first(&a->pieces); p; p = xm__pieces_next(p), count++) {
    assert_int_equal(p->offset, at);
    assert_true(p->size > 0 && p->size % unit == 0);
    assert_false(prev && prev->kind == XM__PIECE_RESERVED && p->kind == XM__PIECE_RESERVED);
    assert_ptr_equal(xm__pieces_prev(p), prev);
    for (size_t u = p->offset / unit; u < (p->offset + p->size) / unit; u++) {
      assert_int_equal(kind[u] == RES, p->kind == XM__PIECE_RESERVED);
      assert_ptr_equal(xm__pieces_find(&a->pieces, u * unit), p);
    }
    at += p->size;
    prev = p;
  }
  assert_int_equal(at, UNITS * unit);
  assert_int_equal(count, a->pieces.count);
}

static void random_changes_match_the_model(void **state) {
  (void)state;
#ifndef _WIN32
  xt_own_fault_signals(); /* safe copies from removed units fault */
#endif
  xm_arena *a = xt_arena(UNITS * xm_allocation_granularity());
  const size_t unit = xm_arena_granularity(a);
  a = (xm_arena_free(a), xt_arena(UNITS * unit));
  xm_shm *shm = xt_shm("arena-bookkeeping", 2 * UNITS * unit);
  uint8_t kind[UNITS] = {0}, tag[UNITS] = {0}, object[UNITS] = {0}; /* object: unit u's byte in the shm */
  unsigned char *base = xt_arena_base(a);
  const int ops = xt_rounds(OPS);
  for (int op = 0; op < ops; op++) {
    size_t first = next_random() % UNITS, n = 1 + next_random() % 8;
    if (first + n > UNITS) n = UNITS - first;
    const uint32_t what = next_random() % 3;
    if (what == RES) {
      XT_OK(xm_arena_remove(a, first * unit, n * unit));
    } else if (what == ANON) {
      XT_OK(xm_arena_add_anon(a, first * unit, n * unit, XM_PROT_READ_WRITE));
    } else {
      XT_OK(xm_arena_add_fd(a, first * unit, n * unit, xm_shm_descriptor(shm), (uint64_t)first * unit,
                            XM_PROT_READ_WRITE));
    }
    for (size_t u = first; u < first + n; u++) {
      kind[u] = (uint8_t)what;
      tag[u] = (uint8_t)(op + (int)u);
      if (what == FD) assert_int_equal(base[u * unit], object[u]); /* the object kept its bytes */
      if (what != RES) base[u * unit] = tag[u];
      if (what == FD) object[u] = tag[u];
    }
    check_list(a, unit, kind);
    if (op % 100 == 0 || op == ops - 1) {
      for (size_t u = 0; u < UNITS; u++) {
        uint8_t v = 0;
        size_t copied = 0;
        /* (valgrind reports a copy from reserved space as an invalid read: holes are not read there) */
        if (kind[u] == RES && xt_under_valgrind()) continue;
        int rc = xm_region_read_safe(xm_arena_region(a), &v, 1, u * unit, &copied);
        if (kind[u] == RES) {
          assert_int_equal(rc, XM_E_FAULT);
        } else {
          XT_OK(rc);
          assert_int_equal(v, tag[u]);
        }
      }
    }
  }
  xm_arena_free(a);
  xm_shm_free(shm);
}

int main(void) {
#ifndef _WIN32
  if (xt_capture_library_handler() != XM_OK) return 1;
#endif
  const struct CMUnitTest tests[] = {cmocka_unit_test(random_changes_match_the_model)};
  return XT_RUN_TESTS_AFTER_A_SNAPSHOT(tests);
}
