/* What in a split-reservations arena's range is whose (arena_split.h), and the arena's end. */
#include <stdio.h>
#include <stdlib.h>

#include "arena_split.h"

static bool overlaps(const struct xm__split_range *r, uintptr_t from, uintptr_t to) {
  return r->from < to && from < r->to;
}

static bool query(uintptr_t p, MEMORY_BASIC_INFORMATION *m) {
  return VirtualQuery((void *)p, m, sizeof *m) == sizeof *m;
}

/* Whether an allocation that is a plain reservation is the arena's: within its range, in no hole
   of the change and in no lost range. */
static bool is_ours(const struct xm__split_change *c, uintptr_t from, uintptr_t to) {
  if (from < c->base || to > c->end) return false;
  for (size_t h = 0; h < c->holes.n; h++)
    if (overlaps(&c->holes.at[h], from, to)) return false;
  for (size_t k = 0; c->lost && k < c->lost->ranges.n; k++)
    if (overlaps(&c->lost->ranges.at[k], from, to)) return false;
  return true;
}

bool xm__split_allocation_at(const struct xm__split_change *c, uintptr_t p, struct xm__split_allocation *out,
                             uintptr_t *free_to) {
  MEMORY_BASIC_INFORMATION m;
  if (!query(p, &m)) {
    *free_to = p + xm__granularity();
    return false;
  }
  if (m.State == MEM_FREE) {
    *free_to = (uintptr_t)m.BaseAddress + m.RegionSize;
    return false;
  }
  const uintptr_t start = (uintptr_t)m.AllocationBase;
  if (start != (uintptr_t)m.BaseAddress && !query(start, &m)) {
    *free_to = p + xm__granularity();
    return false;
  }
  out->from = start;
  out->first = m;
  out->ours = m.Type == MEM_PRIVATE && m.State == MEM_RESERVE && m.AllocationProtect == PAGE_NOACCESS;
  uintptr_t end = (uintptr_t)m.BaseAddress + m.RegionSize;
  MEMORY_BASIC_INFORMATION more;
  while (query(end, &more) && more.State != MEM_FREE && (uintptr_t)more.AllocationBase == start) {
    if (more.State != MEM_RESERVE) out->ours = false; /* committed: not a reservation of the arena */
    end = (uintptr_t)more.BaseAddress + more.RegionSize;
  }
  out->to = end;
  out->ours = out->ours && is_ours(c, start, end);
  return true;
}

static const char *state_name(DWORD s) {
  return s == MEM_COMMIT ? "MEM_COMMIT" : s == MEM_RESERVE ? "MEM_RESERVE" : "MEM_FREE";
}
static const char *type_name(DWORD t) {
  return t == MEM_MAPPED    ? "MEM_MAPPED"
         : t == MEM_IMAGE   ? "MEM_IMAGE"
         : t == MEM_PRIVATE ? "MEM_PRIVATE"
                            : "unknown type";
}

/* Room for one more range (doubling; false without memory). */
static bool ranges_grow(struct xm__split_ranges *l) {
  if (l->n < l->cap) return true;
  const size_t cap = l->cap ? 2 * l->cap : 16;
  struct xm__split_range *at = realloc(l->at, cap * sizeof *at);
  if (!at) return false;
  l->at = at;
  l->cap = cap;
  return true;
}

static bool ranges_push(struct xm__split_ranges *l, uintptr_t from, uintptr_t to) {
  if (!ranges_grow(l)) return false;
  l->at[l->n++] = (struct xm__split_range){from, to};
  return true;
}

/* Takes [from, to) out of every range. A range split in two that finds no memory for its second
   part is kept whole (false). */
static bool ranges_subtract(struct xm__split_ranges *l, uintptr_t from, uintptr_t to) {
  bool whole = true;
  for (size_t k = 0; k < l->n; k++) {
    struct xm__split_range *r = &l->at[k];
    if (!overlaps(r, from, to)) continue;
    if (r->from < from && r->to > to) { /* the middle */
      if (!ranges_grow(l)) {
        whole = false;
        continue;
      }
      r = &l->at[k];
      l->at[l->n++] = (struct xm__split_range){to, r->to};
      r->to = from;
    } else if (r->from < from) {
      r->to = from;
    } else if (r->to > to) {
      r->from = to;
    } else {
      l->at[k--] = l->at[--l->n];
    }
  }
  return whole;
}

void xm__split_add_hole(struct xm__split_change *c, uintptr_t from, uintptr_t to) {
  struct xm__split_ranges *h = &c->holes;
  if (from >= to) return;
  if (h->n > 0 && h->at[h->n - 1].to == from) {
    h->at[h->n - 1].to = to;
  } else if (!ranges_push(h, from, to) && h->n > 0) {
    /* No memory (the change made room for what it expects): the last hole grows over this one,
       which makes what lies between an intruder's, never lost to others. */
    struct xm__split_range *last = &h->at[h->n - 1];
    last->from = from < last->from ? from : last->from;
    last->to = to > last->to ? to : last->to;
  }
}

void xm__split_take_hole(struct xm__split_change *c, uintptr_t from, uintptr_t to) {
  (void)ranges_subtract(&c->holes, from, to); /* a hole kept whole: its rest an intruder's, never lost */
}

void xm__split_forget_lost(struct xm__split_change *c, uintptr_t from, uintptr_t to) {
  if (c->lost) (void)ranges_subtract(&c->lost->ranges, from, to); /* kept whole: the rest never freed */
}

void xm__split_record_lost(struct xm__split_change *c, uintptr_t from, uintptr_t to) {
  xm__split_take_hole(c, from, to);
  if (!c->lost) {
    c->lost_full = true;
    return;
  }
  const struct xm__split_ranges *l = &c->lost->ranges;
  for (size_t k = 0; k < l->n; k++)
    if (l->at[k].from <= from && l->at[k].to >= to) return; /* known */
  if (!ranges_push(&c->lost->ranges, from, to)) c->lost_full = true;
}

bool xm__split_change_init(struct xm__split_change *c, size_t expected_holes) {
  c->holes = (struct xm__split_ranges){0};
  c->holes.at = malloc(expected_holes * sizeof *c->holes.at);
  c->holes.cap = c->holes.at ? expected_holes : 0;
  return c->holes.at != NULL;
}

void xm__split_note_intruder(struct xm__split_change *c, uintptr_t addr, const struct xm__split_allocation *intruder,
                             const char *call) {
  if (c->status != XM_OK) return;
  char text[320];
  snprintf(text, sizeof text,
           "%s at %p: the arena's freed addresses were taken by an allocation that is not the arena's (base %p, "
           "%zu bytes, %s, %s); its range is left to its owner",
           call, (void *)addr, (void *)intruder->from, (size_t)(intruder->to - intruder->from),
           state_name(intruder->first.State), type_name(intruder->first.Type));
  c->status = xm__fail_os(XM_E_SYSTEM_CALL, ERROR_INVALID_ADDRESS, text);
}

int xm__split_settle(struct xm__split_change *c, int status) {
  while (c->holes.n > 0) { /* each one taken out whole by xm__split_record_lost */
    const struct xm__split_range r = c->holes.at[c->holes.n - 1];
    xm__split_record_lost(c, r.from, r.to);
  }
  free(c->holes.at);
  c->holes = (struct xm__split_ranges){0};
  return status;
}

void *xm__win_arena_record_new(void) { return calloc(1, sizeof(struct xm__win_lost)); }

void xm__win_arena_record_free(void *record) {
  struct xm__win_lost *lost = record;
  if (lost) free(lost->ranges.at);
  free(lost);
}

/* The arena's end (split reservations): each mapped piece is one view at its start; a RESERVED
   piece's allocations are freed when they are the arena's own, never an intruder's. */
void xm__win_arena_release_split(struct xm__os_arena *arena, const struct xm__arena_piece *pieces, size_t n) {
  const uintptr_t base = (uintptr_t)arena->base;
  const struct xm__split_change c = {.base = base, .end = base + arena->size, .lost = arena->os_record};
  for (size_t k = 0; k < n; k++) {
    const struct xm__arena_piece *q = &pieces[k];
    if (q->kind == XM__PIECE_GONE) continue;
    if (xm__piece_is_mapped(q)) {
      UnmapViewOfFile((void *)(base + q->offset));
      continue;
    }
    for (uintptr_t p = base + q->offset, to = p + q->size; p < to;) {
      struct xm__split_allocation a;
      uintptr_t free_to;
      if (!xm__split_allocation_at(&c, p, &a, &free_to)) {
        p = free_to;
        continue;
      }
      if (a.ours) VirtualFree((void *)a.from, 0, MEM_RELEASE);
      p = a.to;
    }
  }
}
