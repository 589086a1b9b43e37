/* The arena's piece bookkeeping (src/arena_pieces.c) against a model under thousands of random
   adds and removes: after each, the list is sorted, contiguous, covers the arena, has no two
   adjacent reserved pieces, agrees with the tree's lookup at every unit, and every unit holds
   what the model says (its tag where mapped, a fault where removed). And the tree alone, without
   the OS, through tens of thousands of pieces: its shape and every lookup. */
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
  assert_true(xm__pieces_valid(&a->pieces));
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

/* The tree alone: pieces split into up to XM__ARENA_MAX_PIECES and runs of them joined into one,
   at random places, growing to TREE_PIECES and shrinking back to one; the shape is checked after
   every change (the nodes fill, split, lend, merge and the tree grows and shrinks), lookups at
   random offsets against the list. */
#define TREE_UNITS 60000u
#define TREE_PIECES 20000u

static const struct xm__arena_piece *piece_by_walk(const struct xm__arena_pieces *s, size_t offset) {
  for (const struct xm__arena_piece *p = xm__pieces_first(s); p; p = xm__pieces_next(p))
    if (offset - p->offset < p->size) return p;
  return NULL;
}

static void tree_through_growth_and_shrinking(void **state) {
  (void)state;
  struct xm__arena_pieces s;
  XT_OK(xm__pieces_init(&s, TREE_UNITS));
  /* No system calls here, only the tree: slow legs (XMMAP_TEST_ROUNDS set) take a quarter, which
     still grows the tree to thousands of pieces and several levels. */
  const size_t rounds = getenv("XMMAP_TEST_ROUNDS") ? TREE_PIECES : 4 * TREE_PIECES;
  size_t peak = 0, checks = 0;
  for (size_t round = 0; round < rounds; round++) {
    XT_OK(xm__pieces_refill(&s, false, false));
    const bool grow = round < rounds / 2;
    const size_t at = next_random() % TREE_UNITS;
    const struct xm__arena_piece *p = xm__pieces_find(&s, at);
    assert_non_null(p);
    struct xm__arena_piece now[XM__ARENA_MAX_PIECES];
    size_t n_old = 1, n_now = 0;
    if (grow && p->size > 1) { /* split p into up to 3 mapped and reserved parts */
      size_t parts = 2 + next_random() % 2, from = p->offset;
      if (parts > p->size) parts = p->size;
      for (size_t k = 0; k < parts; k++) {
        size_t to = k + 1 == parts ? p->offset + p->size
                                   : from + 1 + next_random() % (p->offset + p->size - from - (parts - k - 1));
        now[n_now++] = (struct xm__arena_piece){
            .offset = from, .size = to - from, .kind = next_random() % 2 ? XM__PIECE_ANON : XM__PIECE_RESERVED};
        from = to;
      }
    } else if (!grow) { /* p and up to 3 of its successors become one piece */
      size_t end = p->offset + p->size;
      for (const struct xm__arena_piece *q = xm__pieces_next(p); q && n_old < 4; q = xm__pieces_next(q), n_old++)
        end = q->offset + q->size;
      now[n_now++] = (struct xm__arena_piece){.offset = p->offset,
                                              .size = end - p->offset,
                                              .kind = next_random() % 4 ? XM__PIECE_RESERVED : XM__PIECE_ANON};
    } else {
      continue;
    }
    xm__pieces_replace(&s, p, n_old, now, n_now);
    if (s.count > peak) peak = s.count;
    if (round % 97 == 0 || s.count < 64) {
      assert_true(xm__pieces_valid(&s));
      checks++;
    }
    for (int k = 0; round % 512 == 0 && k < 4; k++) {
      const size_t off = next_random() % (TREE_UNITS + 8); /* a few past the end: NULL */
      assert_ptr_equal(xm__pieces_find(&s, off), piece_by_walk(&s, off));
    }
  }
  assert_true(xm__pieces_valid(&s));
  print_message("tree: %lu rounds, peak %lu pieces, height %lu at the end with %lu pieces, %lu shape checks\n",
                (unsigned long)rounds, (unsigned long)peak, (unsigned long)s.height, (unsigned long)s.count,
                (unsigned long)checks);
  assert_true(peak > 1000); /* it did grow past a few levels */
  xm__pieces_destroy(&s);
}

int main(void) {
#ifndef _WIN32
  if (xt_capture_library_handler() != XM_OK) return 1;
#endif
  const struct CMUnitTest tests[] = {cmocka_unit_test(random_changes_match_the_model),
                                     cmocka_unit_test(tree_through_growth_and_shrinking)};
  return XT_RUN_TESTS_AFTER_A_SNAPSHOT(tests);
}
