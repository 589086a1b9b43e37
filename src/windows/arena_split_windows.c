/* The split-reservations strategy of the Windows arena (the recipe is at the top of
   arena_windows.c).
 *
 * Reserved space is kept as reservations that never cross a piece boundary. A change frees only
 * what it must: the views of the old mapped pieces it changes, and the reservations that overlap
 * its new views; the rest of each such reservation is reserved again at once, the part within
 * XM__ARENA_CHUNK of the new view apart from the rest. So a change costs about the size of the
 * reservations it touches, not the arena's: the arena is reserved in blocks of XM__ARENA_BLOCK
 * (Wine's VirtualAlloc and VirtualFree cost about the size they cover: one 512 GiB reservation
 * made every first change in a fresh region cost 100 ms), the first change in a block frees that
 * block, and later changes nearby find reservations of a few MiB. The
 * freed ranges ("holes") are all a change ever exposes to other allocations, and Wine's records
 * for the views it makes are allocated before any hole opens (prewarm()).
 *
 * An allocation that is not the arena's may still take a hole in between (another thread's
 * placement probe or new arena; Wine's own blocks, which the kernel places in the highest free
 * gap): an intruder. It may look exactly like the arena's own reservations (another arena's block
 * is one), so the arena does not go by looks: a change keeps its holes exactly (what it freed and
 * has not taken again), so anything found in a hole is an intruder, and the arena keeps a record
 * of the ranges it lost that way (arena_split.h). Everything else in a piece
 * that is not GONE is the arena's own. An intruder is waited for a few rounds and then never
 * freed: the arena reserves around it, the message names it (VirtualQuery: its allocation base,
 * size, state and type), and a piece that could not be mapped because of it becomes RESERVED with
 * the intruder inside. Only the intruder's own range is then not the arena's (the GONE part of the
 * piece, which nothing here ever frees); a change that only met one in reserved space succeeds.
 * What the arena reserves or maps again of a lost range is taken out of the record. */
#include <stdlib.h>

#include "arena_split.h"

/* How many rounds a view is tried while something else holds its addresses (a placement probe of
   another thread lets go soon; Wine's own blocks never do). */
#define XM__ARENA_ROUNDS 16

/* Reserved space next to a new view is kept apart from the rest at this grid, so that the next
   change nearby frees at most about this much (Wine's VirtualFree costs about the size freed). */
#define XM__ARENA_CHUNK ((uintptr_t)4 << 20)

/* The arena's space is reserved in blocks of at most this size (xm__win_arena_reserve_blocks), so
   that no change frees or reserves more than this much at once. */
#define XM__ARENA_BLOCK ((uintptr_t)256 << 20)

/* How many view records a change may make at most (a view, its remainders, the reservations
   around it). Wine keeps them in blocks that it maps wherever the kernel puts them, and the
   kernel puts them into the highest free gap: a hole the change just opened, unless the records
   were made before (prewarm()). */
#define XM__ARENA_PREWARM 8

static void wait_round(int round) {
  if (round < 8)
    SwitchToThread();
  else
    Sleep(1);
}

/* Reserves [from, to), part of a hole, each free stretch within one XM__ARENA_BLOCK of the
   address grid as one reservation (a removed view of several blocks leaves reservations of a block
   at most behind, as the arena started with), around anything else there: an intruder, which is
   waited for a few rounds (another thread's placement probe lets go soon) and then named, recorded
   as lost and left. ERROR_SUCCESS or the error of a reservation that failed for another reason
   than taken addresses. */
static DWORD fill(struct xm__split_change *c, uintptr_t from, uintptr_t to) {
  xm__split_forget_lost(c, from, to); /* free now (a hole): what was lost there is taken back or lost anew */
  uintptr_t p = from;
  int round = 0;
  while (p < to) {
    struct xm__split_allocation a;
    uintptr_t free_to;
    if (xm__split_allocation_at(c, p, &a, &free_to)) {
      if (!a.ours && round < XM__ARENA_ROUNDS) {
        wait_round(round++);
        continue;
      }
      if (!a.ours) {
        xm__split_note_intruder(c, p, &a, "VirtualAlloc(MEM_RESERVE)");
        xm__split_record_lost(c, a.from > c->base ? a.from : c->base, a.to < c->end ? a.to : c->end);
      }
      p = a.to;
      round = 0;
      continue;
    }
    const uintptr_t block_end = (p | (XM__ARENA_BLOCK - 1)) + 1;
    uintptr_t end = free_to < to ? free_to : to;
    if (block_end > p && block_end < end) end = block_end;
    if (xm__win_reserve((void *)p, end - p)) {
      xm__split_take_hole(c, p, end);
      p = end;
      round = 0;
      continue;
    }
    const DWORD e = GetLastError();
    if (e != ERROR_INVALID_ADDRESS) return e;
    if (round < XM__ARENA_ROUNDS) {
      wait_round(round++); /* taken between the query and the reservation: look again */
      continue;
    }
    /* Still refused where the query sees nothing (held where VirtualQuery cannot see, or taken
       and let go over and over): one unit at a time, leaving a unit that stays refused. */
    const uintptr_t unit_end = p + xm__granularity();
    if (xm__win_reserve((void *)p, xm__granularity())) {
      xm__split_take_hole(c, p, unit_end);
    } else {
      if (GetLastError() != ERROR_INVALID_ADDRESS) return GetLastError();
      xm__win_arena_note_failure(&c->status, ERROR_INVALID_ADDRESS,
                                 "VirtualAlloc(MEM_RESERVE): a freed unit of the arena stays refused");
      xm__split_record_lost(c, p, unit_end);
    }
    p = unit_end;
    round = 0;
  }
  return ERROR_SUCCESS;
}

/* Fills the holes' part of [from, to) (the holes as they are now: fill() changes them). */
static DWORD fill_holes(struct xm__split_change *c, uintptr_t from, uintptr_t to) {
  for (uintptr_t p = from; p < to;) { /* the lowest hole part at or after p, each once */
    uintptr_t f = to, t = to;
    for (size_t h = 0; h < c->holes.n; h++) {
      const struct xm__split_range *r = &c->holes.at[h];
      const uintptr_t rf = r->from > p ? r->from : p;
      if (rf < (r->to < to ? r->to : to) && rf < f) {
        f = rf;
        t = r->to < to ? r->to : to;
      }
    }
    if (f == to) break;
    DWORD e = fill(c, f, t);
    if (e != ERROR_SUCCESS) return e;
    p = t;
  }
  return ERROR_SUCCESS;
}

/* One reservation, tried once: what fails becomes a hole, for fill_holes(). */
static void reserve_now(struct xm__split_change *c, uintptr_t from, uintptr_t to) {
  if (from < to && !xm__win_reserve((void *)from, to - from)) xm__split_add_hole(c, from, to);
}

/* Frees the arena's reservations that overlap [a, b) (part of a RESERVED piece), reserving again
   at once what they held outside it; what is free in [a, b) then is a hole. */
static void open_in_reserved(struct xm__split_change *c, uintptr_t a, uintptr_t b) {
  uintptr_t p = a;
  while (p < b) {
    struct xm__split_allocation al;
    uintptr_t free_to;
    if (!xm__split_allocation_at(c, p, &al, &free_to)) {
      xm__split_add_hole(c, p, free_to < b ? free_to : b);
      p = free_to;
      continue;
    }
    if (al.ours) {
      VirtualFree((void *)al.from, 0, MEM_RELEASE);
      xm__test_arena_freed((void *)al.from, al.to - al.from); /* a test may play the intruder here */
      xm__split_add_hole(c, al.from > a ? al.from : a, al.to < b ? al.to : b);
      /* The outer parts are not part of the change: reserved again now (fill_holes() retries
         later), the part within a chunk of the view apart, so that the next change nearby
         frees no more than that. */
      if (al.from < a) {
        uintptr_t cut = a & ~(uintptr_t)(XM__ARENA_CHUNK - 1);
        if (cut > al.from) reserve_now(c, cut, a);
        reserve_now(c, al.from, cut > al.from ? cut : a);
      }
      if (al.to > b) {
        uintptr_t cut = (b + XM__ARENA_CHUNK - 1) & ~(uintptr_t)(XM__ARENA_CHUNK - 1);
        if (cut < al.to && cut > b) reserve_now(c, cut, al.to);
        reserve_now(c, b, cut < al.to && cut > b ? cut : al.to);
      }
    }
    p = al.to;
  }
}

/* Makes Wine (or Windows) allocate the records for the views this change will make now, while no
   hole is open: XM__ARENA_PREWARM reservations anywhere, released again, leave that many free
   records behind. Best effort: a failure here costs nothing but the protection. */
static void prewarm(void) {
  void *p[XM__ARENA_PREWARM];
  for (int k = 0; k < XM__ARENA_PREWARM; k++)
    p[k] = VirtualAlloc(NULL, xm__granularity(), MEM_RESERVE, PAGE_NOACCESS);
  for (int k = 0; k < XM__ARENA_PREWARM; k++)
    if (p[k]) VirtualFree(p[k], 0, MEM_RELEASE);
}

static bool in_run(const struct xm__arena_piece *q, size_t r0, size_t r1) { return q->offset >= r0 && q->offset < r1; }

/* Maps a piece into its hole, a few rounds while something else holds the addresses. */
static DWORD map(struct xm__split_change *c, const struct xm__arena_piece *q, const char **call) {
  const uintptr_t addr = c->base + q->offset;
  DWORD e = ERROR_SUCCESS;
  for (int round = 0; round < XM__ARENA_ROUNDS; round++) {
    if (round > 0) wait_round(round);
    e = xm__win_arena_map_piece(false, addr, q, call);
    if (e == ERROR_SUCCESS) {
      xm__split_take_hole(c, addr, addr + q->size);
      xm__split_forget_lost(c, addr, addr + q->size);
    }
    if (e != ERROR_INVALID_ADDRESS) return e;
  }
  return e;
}

/* Finds and names what holds [addr, addr + size) when a view could not be mapped there. */
static void name_intruder(struct xm__split_change *c, uintptr_t addr, size_t size, const char *call) {
  for (uintptr_t p = addr; p < addr + size;) {
    struct xm__split_allocation a;
    uintptr_t free_to;
    if (xm__split_allocation_at(c, p, &a, &free_to)) {
      xm__split_note_intruder(c, p, &a, call);
      return;
    }
    p = free_to;
  }
  xm__win_arena_note_failure(&c->status, ERROR_INVALID_ADDRESS, call);
}

/* Frees what make_piece made of q: its view, or every reservation of the arena in it (those from
   before the change too: the old pieces are made again from holes). */
static void unmake_piece(struct xm__split_change *c, const struct xm__arena_piece *q) {
  const uintptr_t from = c->base + q->offset, to = from + q->size;
  if (xm__piece_is_mapped(q)) {
    UnmapViewOfFile((void *)from);
    xm__split_add_hole(c, from, to);
    return;
  }
  for (uintptr_t p = from; p < to;) {
    struct xm__split_allocation a;
    uintptr_t free_to;
    if (!xm__split_allocation_at(c, p, &a, &free_to)) {
      p = free_to;
      continue;
    }
    if (a.ours) {
      VirtualFree((void *)a.from, 0, MEM_RELEASE);
      xm__split_add_hole(c, a.from, a.to);
    }
    p = a.to;
  }
}

enum { SKIPPED, PENDING, MADE };

/* Makes q (mapped: its view; RESERVED: its holes filled). ERROR_SUCCESS, or the error with *call. */
static DWORD make_piece(struct xm__split_change *c, const struct xm__arena_piece *q, const char **call) {
  if (xm__piece_is_mapped(q)) return map(c, q, call);
  *call = "VirtualAlloc(MEM_RESERVE)";
  return fill_holes(c, c->base + q->offset, c->base + q->offset + q->size);
}

/* Makes the pieces of the run. strict: stops at the first failure that is not a taken address
   (false; state[] says what was made). Otherwise, and for taken addresses always, a mapped piece
   that cannot be made becomes RESERVED (around the intruder) and the failure is noted. */
static bool make_all(struct xm__split_change *c, struct xm__arena_piece *pieces, size_t n, size_t r0, size_t r1,
                     bool strict, unsigned char *state) {
  for (size_t k = 0; k < n; k++)
    state[k] = !in_run(&pieces[k], r0, r1) || pieces[k].kind == XM__PIECE_GONE ? SKIPPED : PENDING;
  for (size_t k = 0; k < n; k++) {
    struct xm__arena_piece *q = &pieces[k];
    if (state[k] != PENDING) continue;
    const char *call;
    c->lost_full = false;
    DWORD e = make_piece(c, q, &call);
    if (e == ERROR_SUCCESS) {
      if (xm__piece_is_mapped(q) && (q->flags & XM__PIECE_NEW)) q->os_flags = xm__win_arena_view_flags(q);
      if (c->lost_full) q->kind = XM__PIECE_GONE; /* an intruder the record has no room for */
      state[k] = MADE;
      continue;
    }
    if (strict && e != ERROR_INVALID_ADDRESS) {
      xm__win_arena_note_failure(&c->status, e, call);
      if (!xm__piece_is_mapped(q)) state[k] = MADE; /* filled in part: undone with the rest */
      return false;
    }
    if (e == ERROR_INVALID_ADDRESS && xm__piece_is_mapped(q))
      name_intruder(c, c->base + q->offset, q->size, call);
    else
      xm__win_arena_note_failure(&c->status, e, call);
    if (xm__piece_is_mapped(q)) q->kind = XM__PIECE_RESERVED; /* a hole still: reserved around what holds it */
    e = make_piece(c, q, &call);
    if (e != ERROR_SUCCESS) xm__win_arena_note_failure(&c->status, e, call);
    if (e != ERROR_SUCCESS || c->lost_full) q->kind = XM__PIECE_GONE; /* not even reservable, or not recordable */
    state[k] = MADE;
  }
  return true;
}

/* The change; again[] and old_state[] have room for n_old each (the undo). */
static int change_split(struct xm__split_change *c, const struct xm__arena_piece *old, size_t n_old,
                        struct xm__arena_piece *now, size_t n_now, size_t r0, size_t r1, bool *kept,
                        struct xm__arena_piece *again, unsigned char *old_state) {
  const uintptr_t base = c->base;
  /* A GONE old piece (lost when its addresses could not even be reserved, or with intruders the
     record had no memory for) is lost whole: whatever is in it stays someone else's, also where a
     new piece calls it RESERVED. */
  for (size_t o = 0; o < n_old; o++)
    if (in_run(&old[o], r0, r1) && old[o].kind == XM__PIECE_GONE)
      xm__split_record_lost(c, base + old[o].offset, base + old[o].offset + old[o].size);
  if (c->lost_full) return xm__fail(XM_E_NO_MEMORY, "out of memory for the arena's record of lost ranges");
  prewarm();
  /* Open the holes: old views go whole; reserved space only where a new view will be. */
  for (size_t o = 0; o < n_old; o++) {
    const struct xm__arena_piece *q = &old[o];
    if (!in_run(q, r0, r1) || q->kind == XM__PIECE_GONE) continue;
    const size_t q_end = q->offset + q->size;
    if (xm__piece_is_mapped(q)) {
      UnmapViewOfFile((void *)(base + q->offset));
      xm__split_add_hole(c, base + q->offset, base + q_end);
      xm__test_arena_freed((void *)(base + q->offset), q->size);
      continue;
    }
    for (size_t k = 0; k < n_now; k++) {
      const struct xm__arena_piece *p = &now[k];
      if (!xm__piece_is_mapped(p)) continue;
      size_t f = p->offset > q->offset ? p->offset : q->offset,
             t = p->offset + p->size < q_end ? p->offset + p->size : q_end;
      if (f < t) open_in_reserved(c, base + f, base + t);
    }
  }
  enum xm__piece_kind asked[XM__ARENA_MAX_PIECES];
  for (size_t k = 0; k < n_now; k++)
    asked[k] = now[k].kind;
  unsigned char state[XM__ARENA_MAX_PIECES];
  if (make_all(c, now, n_now, r0, r1, true, state)) {
    *kept = c->status == XM_OK;
    for (size_t k = 0; k < n_now; k++)
      if (now[k].kind != asked[k]) return c->status; /* a piece could not be made as asked */
    /* Every piece is as asked; at most reserved space met an intruder, which is left to its owner
       (a failure of the change only where it cost a piece). */
    return XM_OK;
  }
  /* Undone: what was made goes, the old pieces come back (their data lives in their sections). */
  for (size_t k = 0; k < n_now; k++)
    if (state[k] == MADE && now[k].kind != XM__PIECE_GONE) unmake_piece(c, &now[k]);
  for (size_t o = 0; o < n_old; o++) {
    again[o] = old[o];
    again[o].flags = 0;
  }
  const int failure = c->status;
  c->status = XM_OK;
  make_all(c, again, n_old, r0, r1, false, old_state);
  bool restored = true;
  for (size_t o = 0; o < n_old; o++)
    if (again[o].kind != old[o].kind) restored = false;
  if (restored) {
    c->status = failure;
    *kept = true;
    return failure;
  }
  /* Something else took addresses of an old piece in between: the new pieces as far as they go. */
  for (size_t o = 0; o < n_old; o++)
    if (in_run(&again[o], r0, r1) && again[o].kind != XM__PIECE_GONE && old_state[o] == MADE)
      unmake_piece(c, &again[o]);
  c->status = failure;
  *kept = false;
  make_all(c, now, n_now, r0, r1, false, state);
  return c->status;
}

int xm__win_arena_change_split(struct xm__os_arena *arena, const struct xm__arena_piece *old, size_t n_old,
                               struct xm__arena_piece *now, size_t n_now, size_t r0, size_t r1, bool *kept) {
  const uintptr_t base = (uintptr_t)arena->base;
  struct xm__split_change c = {.base = base, .end = base + arena->size, .lost = arena->os_record, .status = XM_OK};
  /* Room for what the change can foresee, before any OS call: a hole per old piece and a few per
     new one (their views, the rest of the reservations they free), the undo's copy of old[]. */
  struct xm__arena_piece *again = malloc(n_old * sizeof *again);
  unsigned char *old_state = malloc(n_old);
  int rc = XM_OK;
  if (!again || !old_state || !xm__split_change_init(&c, 2 * n_old + 8 * n_now + 16))
    rc = xm__fail(XM_E_NO_MEMORY, "out of memory for an arena change");
  else
    rc = change_split(&c, old, n_old, now, n_now, r0, r1, kept, again, old_state);
  free(again);
  free(old_state);
  return xm__split_settle(&c, rc);
}

/* Frees the one reservation and reserves its range again block by block. A block refused (taken in
   between) undoes the blocks made and reserves the range as one again; only when that stays
   refused is the range left free for the caller to start over (win.h). */
bool xm__win_arena_reserve_blocks(uintptr_t base, size_t size) {
  if (size <= XM__ARENA_BLOCK) return true;
  VirtualFree((void *)base, 0, MEM_RELEASE);
  const uintptr_t end = base + size;
  for (uintptr_t p = base; p < end; p += XM__ARENA_BLOCK) {
    const size_t len = end - p < XM__ARENA_BLOCK ? (size_t)(end - p) : (size_t)XM__ARENA_BLOCK;
    if (!VirtualAlloc((void *)p, len, MEM_RESERVE, PAGE_NOACCESS)) { /* something took part of it */
      for (uintptr_t q = base; q < p; q += XM__ARENA_BLOCK)
        VirtualFree((void *)q, 0, MEM_RELEASE);
      /* The range as one reservation again, as it was (another thread's probe lets go soon): the
         arena keeps its place, only its first changes cost more. */
      for (int round = 0; round < XM__ARENA_ROUNDS; round++) {
        if (VirtualAlloc((void *)base, size, MEM_RESERVE, PAGE_NOACCESS)) return true;
        wait_round(round);
      }
      return false;
    }
  }
  return true;
}
