/* The placeholders strategy's plan for one window (arena_placeholders_windows.c): which
   placeholders to split and where views go, as a sequence of steps. Pure (no OS call), so that
   tests/test_placeholder_plan.c checks it on every target against a fake address space; the
   Windows back end carries each step out with one OS call.
 *
 * The window [r0, r1) is one placeholder when the plan starts (the views in it unmapped to their
 * placeholders and coalesced). Then, left to right, every piece inside the window but the last is
 * split off the front of what remains (VirtualFree(MEM_RELEASE | MEM_PRESERVE_PLACEHOLDER)), and
 * every mapped piece is mapped over its whole placeholder at its backing_offset
 * (MapViewOfFile3(MEM_REPLACE_PLACEHOLDER)). MEM_REPLACE_PLACEHOLDER lifts the 64 KiB rule for
 * the view's address and section offset: the page is the unit (xm__ph_plan_fits). */
#ifndef XMMAP_PLACEHOLDER_PLAN_H
#define XMMAP_PLACEHOLDER_PLAN_H

#include "os.h"

enum xm__ph_op {
  XM__PH_SPLIT, /* [offset, offset + size) becomes a placeholder of its own */
  XM__PH_MAP,   /* piece is mapped over the placeholder [offset, offset + size) */
};

struct xm__ph_step {
  enum xm__ph_op op;
  size_t offset, size; /* from the arena base */
  const struct xm__arena_piece *piece;
};

struct xm__ph_plan {
  const struct xm__arena_piece *pieces;
  size_t n, r0, r1;
  size_t k;  /* the next piece to look at */
  int phase; /* 0: splits, 1: views, 2: done */
};

static inline struct xm__ph_plan xm__ph_plan_start(const struct xm__arena_piece *pieces, size_t n, size_t r0,
                                                   size_t r1) {
  struct xm__ph_plan p = {pieces, n, r0, r1, 0, 0};
  return p;
}

/* Whether piece q lies in the window: pieces outside (unchanged neighbours) are left alone. */
static inline bool xm__ph_inside(const struct xm__ph_plan *p, const struct xm__arena_piece *q) {
  return q->offset >= p->r0 && q->offset < p->r1;
}

/* The next step into *s, or false when the plan is done. */
static inline bool xm__ph_plan_next(struct xm__ph_plan *p, struct xm__ph_step *s) {
  for (; p->phase < 2; p->phase++, p->k = 0) {
    while (p->k < p->n) {
      const struct xm__arena_piece *q = &p->pieces[p->k++];
      if (!xm__ph_inside(p, q)) continue;
      if (p->phase == 0 && q->offset + q->size >= p->r1) continue; /* the last piece needs no cut */
      if (p->phase == 1 && !xm__piece_is_mapped(q)) continue;
      s->op = p->phase == 0 ? XM__PH_SPLIT : XM__PH_MAP;
      s->offset = q->offset;
      s->size = q->size;
      s->piece = q;
      return true;
    }
  }
  return false;
}

/* Whether every piece of the window can be planned at unit (the page where the OS has
   placeholders): offsets, sizes and the section offsets of mapped pieces multiples of it. */
static inline bool xm__ph_plan_fits(const struct xm__arena_piece *pieces, size_t n, size_t r0, size_t r1, size_t unit) {
  struct xm__ph_plan p = xm__ph_plan_start(pieces, n, r0, r1);
  if (r0 % unit != 0 || r1 % unit != 0) return false;
  for (size_t k = 0; k < n; k++) {
    const struct xm__arena_piece *q = &pieces[k];
    if (!xm__ph_inside(&p, q)) continue;
    if (q->offset % unit != 0 || q->size % unit != 0 || q->size == 0) return false;
    if (xm__piece_is_mapped(q) && q->backing_offset % unit != 0) return false;
  }
  return true;
}

#endif /* XMMAP_PLACEHOLDER_PLAN_H */
