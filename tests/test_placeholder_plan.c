/* The Windows placeholders strategy's plan (src/windows/placeholder_plan.h), run on every target
   against a fake address space that enforces what Windows does: a split cuts a page-aligned range
   off one placeholder, a view replaces exactly one whole placeholder at a page-aligned address and
   section offset (MEM_REPLACE_PLACEHOLDER lifts the 64 KiB rule for both). After the plan, every
   piece of the window is one placeholder or one view of its backing at its offset, with 4 KiB
   pieces and section offsets that are no multiples of 64 KiB. */
#include "xmtest.h"

#include "windows/placeholder_plan.h"

#define FAKE_PAGE 4096u
#define MAX_REGIONS 64

struct region {
  size_t start, end;
  bool view;
  const struct xm__arena_backing *backing;
  uint64_t section_offset;
};

/* The window's address space: placeholders and views, sorted. */
struct fake {
  struct region r[MAX_REGIONS];
  size_t n;
};

static struct fake fake_window(size_t r0, size_t r1) {
  struct fake f = {.n = 1};
  f.r[0] = (struct region){.start = r0, .end = r1};
  return f;
}

static size_t region_at(const struct fake *f, size_t offset) {
  for (size_t i = 0; i < f->n; i++)
    if (f->r[i].start <= offset && offset < f->r[i].end) return i;
  fail_msg("offset 0x%lx is outside the window", (unsigned long)offset);
  return 0;
}

/* VirtualFree(MEM_RELEASE | MEM_PRESERVE_PLACEHOLDER): the range lies inside one placeholder. */
static void fake_split(struct fake *f, size_t offset, size_t size) {
  assert_int_equal(offset % FAKE_PAGE, 0);
  assert_int_equal(size % FAKE_PAGE, 0);
  assert_true(size > 0);
  size_t i = region_at(f, offset);
  struct region p = f->r[i];
  assert_false(p.view);
  assert_true(offset + size <= p.end);
  struct region parts[3];
  size_t np = 0;
  if (p.start < offset) parts[np++] = (struct region){.start = p.start, .end = offset};
  parts[np++] = (struct region){.start = offset, .end = offset + size};
  if (offset + size < p.end) parts[np++] = (struct region){.start = offset + size, .end = p.end};
  assert_true(f->n + np - 1 <= MAX_REGIONS);
  memmove(&f->r[i + np], &f->r[i + 1], (f->n - i - 1) * sizeof f->r[0]);
  memcpy(&f->r[i], parts, np * sizeof parts[0]);
  f->n += np - 1;
}

/* MapViewOfFile3(MEM_REPLACE_PLACEHOLDER): exactly one whole placeholder. */
static void fake_map(struct fake *f, size_t offset, size_t size, const struct xm__arena_piece *q) {
  assert_int_equal(offset % FAKE_PAGE, 0);
  assert_int_equal(q->backing_offset % FAKE_PAGE, 0);
  size_t i = region_at(f, offset);
  assert_false(f->r[i].view);
  assert_int_equal(f->r[i].start, offset);
  assert_int_equal(f->r[i].end, offset + size);
  f->r[i].view = true;
  f->r[i].backing = q->backing;
  f->r[i].section_offset = q->backing_offset;
}

/* Runs the plan and checks that the window is exactly the pieces inside it. */
static void run_plan(const struct xm__arena_piece *pieces, size_t n, size_t r0, size_t r1) {
  assert_true(xm__ph_plan_fits(pieces, n, r0, r1, FAKE_PAGE));
  struct fake f = fake_window(r0, r1);
  struct xm__ph_plan plan = xm__ph_plan_start(pieces, n, r0, r1);
  size_t steps = 0;
  for (struct xm__ph_step s; xm__ph_plan_next(&plan, &s); steps++) {
    assert_true(steps < 2 * n);
    if (s.op == XM__PH_SPLIT)
      fake_split(&f, s.offset, s.size);
    else
      fake_map(&f, s.offset, s.size, s.piece);
  }
  size_t inside = 0;
  for (size_t k = 0; k < n; k++) {
    const struct xm__arena_piece *q = &pieces[k];
    if (q->offset < r0 || q->offset >= r1) continue;
    assert_true(inside < f.n);
    const struct region *r = &f.r[inside++];
    assert_int_equal(r->start, q->offset);
    assert_int_equal(r->end, q->offset + q->size);
    assert_int_equal(r->view, xm__piece_is_mapped(q));
    if (r->view) {
      assert_ptr_equal(r->backing, q->backing);
      assert_true(r->section_offset == q->backing_offset);
    }
  }
  assert_int_equal(inside, f.n);
}

static struct xm__arena_backing section_a, section_b;

static struct xm__arena_piece reserved(size_t offset, size_t size) {
  return (struct xm__arena_piece){.offset = offset, .size = size, .kind = XM__PIECE_RESERVED};
}

static struct xm__arena_piece view(size_t offset, size_t size, struct xm__arena_backing *b, uint64_t at) {
  return (struct xm__arena_piece){.offset = offset,
                                  .size = size,
                                  .kind = XM__PIECE_DESCRIPTOR,
                                  .prot = XM_PROT_READ_WRITE,
                                  .backing = b,
                                  .backing_offset = at};
}

/* An add of one 4 KiB page in the middle of reserved space, at a section offset of 5 pages. */
static void one_page_in_reserved_space(void **state) {
  (void)state;
  const struct xm__arena_piece now[] = {reserved(0x10000, 0x3000), view(0x13000, 0x1000, &section_a, 0x5000),
                                        reserved(0x14000, 0xc000)};
  run_plan(now, 3, 0x10000, 0x20000);
}

/* Remainders of a partly covered view keep their section offsets, page-exact. */
static void remainders_at_page_offsets(void **state) {
  (void)state;
  const struct xm__arena_piece now[] = {view(0x20000, 0x1000, &section_a, 0x3000),
                                        view(0x21000, 0x2000, &section_b, 0x7000),
                                        view(0x23000, 0x5000, &section_a, 0x6000)};
  run_plan(now, 3, 0x20000, 0x28000);
}

/* Unchanged neighbours passed along with the window are left alone; a window of one piece needs
   no split. */
static void neighbours_outside_the_window(void **state) {
  (void)state;
  const struct xm__arena_piece now[] = {view(0x0, 0x1000, &section_a, 0), reserved(0x1000, 0x1000),
                                        view(0x2000, 0x1000, &section_b, 0x11000)};
  run_plan(now, 3, 0x1000, 0x2000);
  run_plan(now + 2, 1, 0x2000, 0x3000);
  struct xm__ph_plan plan = xm__ph_plan_start(now, 3, 0x2000, 0x3000);
  struct xm__ph_step s;
  assert_true(xm__ph_plan_next(&plan, &s));
  assert_int_equal(s.op, XM__PH_MAP);
  assert_false(xm__ph_plan_next(&plan, &s));
}

/* Splits come first, left to right, then the views: a view never lands on a placeholder that a
   later split would have to cut. */
static void splits_before_views(void **state) {
  (void)state;
  const struct xm__arena_piece now[] = {view(0x0, 0x1000, &section_a, 0x1000), view(0x1000, 0x1000, &section_b, 0),
                                        reserved(0x2000, 0x1000), view(0x3000, 0x1000, &section_a, 0x9000),
                                        reserved(0x4000, 0x1000)};
  struct xm__ph_plan plan = xm__ph_plan_start(now, 5, 0, 0x5000);
  struct xm__ph_step s;
  size_t last_split = 0;
  bool seen_view = false;
  for (size_t i = 0; xm__ph_plan_next(&plan, &s); i++) {
    if (s.op == XM__PH_SPLIT) {
      assert_false(seen_view);
      assert_true(s.offset >= last_split);
      last_split = s.offset;
    } else {
      seen_view = true;
    }
  }
  run_plan(now, 5, 0, 0x5000);
}

/* What the plan cannot place: offsets, sizes or section offsets off the page. */
static void refuses_what_is_off_the_page(void **state) {
  (void)state;
  const struct xm__arena_piece off_section[] = {view(0x0, 0x1000, &section_a, 0x800)};
  assert_false(xm__ph_plan_fits(off_section, 1, 0, 0x1000, FAKE_PAGE));
  const struct xm__arena_piece off_size[] = {view(0x0, 0x1800, &section_a, 0), reserved(0x1800, 0x800)};
  assert_false(xm__ph_plan_fits(off_size, 2, 0, 0x2000, FAKE_PAGE));
  /* With 64 KiB units (split reservations) page offsets do not fit. */
  const struct xm__arena_piece page_section[] = {view(0x0, 0x10000, &section_a, 0x1000)};
  assert_true(xm__ph_plan_fits(page_section, 1, 0, 0x10000, FAKE_PAGE));
  assert_false(xm__ph_plan_fits(page_section, 1, 0, 0x10000, 0x10000));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(one_page_in_reserved_space),    cmocka_unit_test(remainders_at_page_offsets),
      cmocka_unit_test(neighbours_outside_the_window), cmocka_unit_test(splits_before_views),
      cmocka_unit_test(refuses_what_is_off_the_page),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
