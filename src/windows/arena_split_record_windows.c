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
  for (size_t h = 0; h < c->n_holes; h++)
    if (overlaps(&c->holes[h], from, to)) return false;
  for (size_t k = 0; c->lost && k < c->lost->n; k++)
    if (overlaps(&c->lost->range[k], from, to)) return false;
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

void xm__split_add_hole(struct xm__split_change *c, uintptr_t from, uintptr_t to) {
  if (from >= to) return;
  if (c->n_holes > 0 && c->holes[c->n_holes - 1].to == from) {
    c->holes[c->n_holes - 1].to = to;
    return;
  }
  if (c->n_holes == XM__ARENA_HOLES) { /* not expected (see XM__ARENA_HOLES): coarser, never lost */
    struct xm__split_range *last = &c->holes[c->n_holes - 1];
    last->from = from < last->from ? from : last->from;
    last->to = to > last->to ? to : last->to;
    return;
  }
  c->holes[c->n_holes++] = (struct xm__split_range){from, to};
}

void xm__split_take_hole(struct xm__split_change *c, uintptr_t from, uintptr_t to) {
  for (size_t h = 0; h < c->n_holes; h++) {
    struct xm__split_range *r = &c->holes[h];
    if (!overlaps(r, from, to)) continue;
    if (r->from < from && r->to > to) {            /* the middle: split */
      if (c->n_holes == XM__ARENA_HOLES) continue; /* kept whole: coarser, never lost */
      c->holes[c->n_holes++] = (struct xm__split_range){to, r->to};
      r->to = from;
    } else if (r->from < from) {
      r->to = from;
    } else if (r->to > to) {
      r->from = to;
    } else {
      c->holes[h--] = c->holes[--c->n_holes];
    }
  }
}

void xm__split_forget_lost(struct xm__split_change *c, uintptr_t from, uintptr_t to) {
  for (size_t k = 0; c->lost && k < c->lost->n; k++)
    if (c->lost->range[k].from >= from && c->lost->range[k].to <= to)
      c->lost->range[k--] = c->lost->range[--c->lost->n];
}

void xm__split_record_lost(struct xm__split_change *c, uintptr_t from, uintptr_t to) {
  xm__split_take_hole(c, from, to);
  for (size_t k = 0; c->lost && k < c->lost->n; k++)
    if (c->lost->range[k].from <= from && c->lost->range[k].to >= to) return; /* known */
  if (c->lost && c->lost->n < XM__ARENA_LOST)
    c->lost->range[c->lost->n++] = (struct xm__split_range){from, to};
  else
    c->lost_full = true;
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
  while (c->n_holes > 0)
    xm__split_record_lost(c, c->holes[c->n_holes - 1].from, c->holes[c->n_holes - 1].to);
  return status;
}

void *xm__win_arena_record_new(void) { return calloc(1, sizeof(struct xm__win_lost)); }

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
