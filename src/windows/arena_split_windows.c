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
 * placement probe; Wine's own blocks, which the kernel places in the highest free gap): an
 * intruder. The arena's own reservations are recognised (private, reserved, never committed,
 * PAGE_NOACCESS: struct allocation's ours), so an intruder is waited for a few rounds and then
 * never freed: the arena reserves around it, the message names it (VirtualQuery: its allocation
 * base, size, state and type), and a piece that could not be mapped because of it becomes
 * RESERVED with the intruder inside. Only the intruder's own range is then not the arena's (the
 * GONE part of the piece, which nothing here ever frees); a change that only met one in reserved
 * space succeeds. Limit: an intruder that is itself a PAGE_NOACCESS reservation of nothing but
 * reserved pages cannot be told from the arena's own. */
#include <stdio.h>

#include "win.h"

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

struct hole {
  uintptr_t from, to;
};

struct change {
  uintptr_t base;
  struct hole holes[4 * XM__ARENA_MAX_PIECES];
  size_t n_holes;
  int status;
  bool intruded; /* an intruder was met (and named in status, when status was still XM_OK) */
};

/* One allocation: [from, to) with its first region's facts. */
struct allocation {
  uintptr_t from, to;
  MEMORY_BASIC_INFORMATION first;
  bool ours; /* one of the arena's reservations */
};

static bool query(uintptr_t p, MEMORY_BASIC_INFORMATION *m) {
  return VirtualQuery((void *)p, m, sizeof *m) == sizeof *m;
}

/* The allocation that holds p (false when p is free or cannot be queried; *free_to: where the free
   region ends). */
static bool allocation_at(uintptr_t p, struct allocation *out, uintptr_t *free_to) {
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

/* Records (as the change's first failure) that [addr, ...) could not be had because of the
   allocation at intruder; the error is ERROR_INVALID_ADDRESS. */
static void note_intruder(struct change *c, uintptr_t addr, const struct allocation *intruder, const char *call) {
  c->intruded = true;
  if (c->status != XM_OK) return;
  char text[320];
  snprintf(text, sizeof text,
           "%s at %p: the arena's freed addresses were taken by an allocation that is not the arena's (base %p, "
           "%zu bytes, %s, %s); its range is left to its owner",
           call, (void *)addr, (void *)intruder->from, (size_t)(intruder->to - intruder->from),
           state_name(intruder->first.State), type_name(intruder->first.Type));
  c->status = xm__fail_os(XM_E_SYSTEM_CALL, ERROR_INVALID_ADDRESS, text);
}

static void wait_round(int round) {
  if (round < 8)
    SwitchToThread();
  else
    Sleep(1);
}

static void add_hole(struct change *c, uintptr_t from, uintptr_t to) {
  if (from >= to) return;
  if (c->n_holes > 0 && c->holes[c->n_holes - 1].to == from) {
    c->holes[c->n_holes - 1].to = to;
    return;
  }
  if (c->n_holes < sizeof c->holes / sizeof c->holes[0]) c->holes[c->n_holes++] = (struct hole){from, to};
}

/* Reserves what is free in [from, to), each free stretch within one XM__ARENA_BLOCK of the address
   grid as one reservation (a removed view of several blocks leaves reservations of a block at most
   behind, as the arena started with), around anything else
   there: the arena's own reservations, or an intruder, which is waited for a few rounds (another
   thread's placement probe lets go soon) and then noted and left. ERROR_SUCCESS or the error of a
   reservation that failed for another reason than taken addresses. */
static DWORD fill(struct change *c, uintptr_t from, uintptr_t to) {
  uintptr_t p = from;
  int round = 0;
  while (p < to) {
    struct allocation a;
    uintptr_t free_to;
    if (allocation_at(p, &a, &free_to)) {
      if (!a.ours && round < XM__ARENA_ROUNDS) {
        wait_round(round++);
        continue;
      }
      if (!a.ours) note_intruder(c, p, &a, "VirtualAlloc(MEM_RESERVE)");
      p = a.to;
      round = 0;
      continue;
    }
    const uintptr_t block_end = (p | (XM__ARENA_BLOCK - 1)) + 1;
    uintptr_t end = free_to < to ? free_to : to;
    if (block_end > p && block_end < end) end = block_end;
    if (xm__win_reserve((void *)p, end - p)) {
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
    if (!xm__win_reserve((void *)p, xm__granularity())) {
      if (GetLastError() != ERROR_INVALID_ADDRESS) return GetLastError();
      xm__win_arena_note_failure(&c->status, ERROR_INVALID_ADDRESS,
                                 "VirtualAlloc(MEM_RESERVE): a freed unit of the arena stays refused");
      c->intruded = true;
    }
    p += xm__granularity();
    round = 0;
  }
  return ERROR_SUCCESS;
}

/* Fills the holes' part of [from, to). */
static DWORD fill_holes(struct change *c, uintptr_t from, uintptr_t to) {
  for (size_t h = 0; h < c->n_holes; h++) {
    uintptr_t f = c->holes[h].from > from ? c->holes[h].from : from, t = c->holes[h].to < to ? c->holes[h].to : to;
    if (f < t) {
      DWORD e = fill(c, f, t);
      if (e != ERROR_SUCCESS) return e;
    }
  }
  return ERROR_SUCCESS;
}

/* One reservation, tried once: what fails stays a hole for fill_holes(). */
static void reserve_now(uintptr_t from, uintptr_t to) {
  if (from < to) xm__win_reserve((void *)from, to - from);
}

/* Frees the arena's reservations that overlap [a, b) (part of a RESERVED piece), reserving again
   at once what they held outside it; the freed extent becomes a hole. */
static void open_in_reserved(struct change *c, uintptr_t a, uintptr_t b) {
  uintptr_t p = a;
  while (p < b) {
    struct allocation al;
    uintptr_t free_to;
    if (!allocation_at(p, &al, &free_to)) {
      add_hole(c, p, free_to < b ? free_to : b);
      p = free_to;
      continue;
    }
    if (al.ours) {
      VirtualFree((void *)al.from, 0, MEM_RELEASE);
      add_hole(c, al.from, al.to);
      xm__test_arena_freed((void *)al.from, al.to - al.from); /* a test may play the intruder here */
      /* The outer parts are not part of the change: reserved again now (fill_holes() retries
         later), the part within a chunk of the view apart, so that the next change nearby
         frees no more than that. */
      if (al.from < a) {
        uintptr_t cut = a & ~(uintptr_t)(XM__ARENA_CHUNK - 1);
        if (cut > al.from) reserve_now(cut, a);
        reserve_now(al.from, cut > al.from ? cut : a);
      }
      if (al.to > b) {
        uintptr_t cut = (b + XM__ARENA_CHUNK - 1) & ~(uintptr_t)(XM__ARENA_CHUNK - 1);
        if (cut < al.to && cut > b) reserve_now(cut, al.to);
        reserve_now(b, cut < al.to && cut > b ? cut : al.to);
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
static DWORD map(struct change *c, const struct xm__arena_piece *q, const char **call) {
  const uintptr_t addr = c->base + q->offset;
  DWORD e = ERROR_SUCCESS;
  for (int round = 0; round < XM__ARENA_ROUNDS; round++) {
    if (round > 0) wait_round(round);
    e = xm__win_arena_map_piece(false, addr, q, call);
    if (e != ERROR_INVALID_ADDRESS) return e;
  }
  return e;
}

/* Finds and names what holds [addr, addr + size) when a view could not be mapped there. */
static void name_intruder(struct change *c, uintptr_t addr, size_t size, const char *call) {
  for (uintptr_t p = addr; p < addr + size;) {
    struct allocation a;
    uintptr_t free_to;
    if (allocation_at(p, &a, &free_to)) {
      note_intruder(c, p, &a, call);
      return;
    }
    p = free_to;
  }
  xm__win_arena_note_failure(&c->status, ERROR_INVALID_ADDRESS, call);
}

/* Frees what make_piece made of q. */
static void unmake_piece(struct change *c, const struct xm__arena_piece *q) {
  const uintptr_t from = c->base + q->offset, to = from + q->size;
  if (xm__piece_is_mapped(q)) {
    UnmapViewOfFile((void *)from);
    return;
  }
  for (size_t h = 0; h < c->n_holes; h++) { /* only the holes: the rest was never freed */
    uintptr_t f = c->holes[h].from > from ? c->holes[h].from : from, t = c->holes[h].to < to ? c->holes[h].to : to;
    for (uintptr_t p = f; p < t;) {
      struct allocation a;
      uintptr_t free_to;
      if (!allocation_at(p, &a, &free_to)) {
        p = free_to;
        continue;
      }
      if (a.ours) VirtualFree((void *)a.from, 0, MEM_RELEASE);
      p = a.to;
    }
  }
}

enum { SKIPPED, PENDING, MADE };

/* Makes q (mapped: its view; RESERVED: its holes filled). ERROR_SUCCESS, or the error with *call. */
static DWORD make_piece(struct change *c, const struct xm__arena_piece *q, const char **call) {
  if (xm__piece_is_mapped(q)) return map(c, q, call);
  *call = "VirtualAlloc(MEM_RESERVE)";
  return fill_holes(c, c->base + q->offset, c->base + q->offset + q->size);
}

/* Makes the pieces of the run. strict: stops at the first failure that is not a taken address
   (false; state[] says what was made). Otherwise, and for taken addresses always, a mapped piece
   that cannot be made becomes RESERVED (around the intruder) and the failure is noted. */
static bool make_all(struct change *c, struct xm__arena_piece *pieces, size_t n, size_t r0, size_t r1, bool strict,
                     unsigned char *state) {
  for (size_t k = 0; k < n; k++)
    state[k] = !in_run(&pieces[k], r0, r1) || pieces[k].kind == XM__PIECE_GONE ? SKIPPED : PENDING;
  for (size_t k = 0; k < n; k++) {
    struct xm__arena_piece *q = &pieces[k];
    if (state[k] != PENDING) continue;
    const char *call;
    DWORD e = make_piece(c, q, &call);
    if (e == ERROR_SUCCESS) {
      if (xm__piece_is_mapped(q) && (q->flags & XM__PIECE_NEW)) q->os_flags = xm__win_arena_view_flags(q);
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
    if (xm__piece_is_mapped(q)) { /* its addresses are a hole: reserved around what holds them */
      add_hole(c, c->base + q->offset, c->base + q->offset + q->size);
      q->kind = XM__PIECE_RESERVED;
    }
    e = make_piece(c, q, &call);
    if (e != ERROR_SUCCESS) {
      xm__win_arena_note_failure(&c->status, e, call);
      q->kind = XM__PIECE_GONE; /* not even reservable: not the arena's any more */
    }
    state[k] = MADE;
  }
  return true;
}

int xm__win_arena_change_split(uintptr_t base, const struct xm__arena_piece *old, size_t n_old,
                               struct xm__arena_piece *now, size_t n_now, size_t r0, size_t r1, bool *kept) {
  struct change c = {.base = base, .status = XM_OK};
  prewarm();
  /* Open the holes: old views go whole; reserved space only where a new view will be. */
  for (size_t o = 0; o < n_old; o++) {
    const struct xm__arena_piece *q = &old[o];
    if (!in_run(q, r0, r1) || q->kind == XM__PIECE_GONE) continue;
    const size_t q_end = q->offset + q->size;
    if (xm__piece_is_mapped(q)) {
      UnmapViewOfFile((void *)(base + q->offset));
      add_hole(&c, base + q->offset, base + q_end);
      xm__test_arena_freed((void *)(base + q->offset), q->size);
      continue;
    }
    for (size_t k = 0; k < n_now; k++) {
      const struct xm__arena_piece *p = &now[k];
      if (!xm__piece_is_mapped(p)) continue;
      size_t f = p->offset > q->offset ? p->offset : q->offset,
             t = p->offset + p->size < q_end ? p->offset + p->size : q_end;
      if (f < t) open_in_reserved(&c, base + f, base + t);
    }
  }
  enum xm__piece_kind asked[XM__ARENA_MAX_PIECES];
  for (size_t k = 0; k < n_now; k++)
    asked[k] = now[k].kind;
  unsigned char state[XM__ARENA_MAX_PIECES];
  if (make_all(&c, now, n_now, r0, r1, true, state)) {
    *kept = c.status == XM_OK;
    for (size_t k = 0; k < n_now; k++)
      if (now[k].kind != asked[k]) return c.status; /* a piece could not be made as asked */
    /* Every piece is as asked; at most reserved space met an intruder, which is left to its owner
       (a failure of the change only where it cost a piece). */
    return XM_OK;
  }
  /* Undone: what was made goes, the old pieces come back (their data lives in their sections). */
  for (size_t k = 0; k < n_now; k++)
    if (state[k] == MADE) unmake_piece(&c, &now[k]);
  struct xm__arena_piece again[XM__ARENA_MAX_PIECES];
  bool restored = n_old <= XM__ARENA_MAX_PIECES;
  for (size_t o = 0; o < n_old && restored; o++) {
    again[o] = old[o];
    again[o].flags = 0;
  }
  const int failure = c.status;
  unsigned char old_state[XM__ARENA_MAX_PIECES];
  if (restored) {
    c.status = XM_OK;
    make_all(&c, again, n_old, r0, r1, false, old_state);
    for (size_t o = 0; o < n_old; o++)
      if (again[o].kind != old[o].kind) restored = false;
  }
  if (restored) {
    c.status = failure;
    *kept = true;
    return failure;
  }
  /* Something else took addresses of an old piece in between: the new pieces as far as they go. */
  for (size_t o = 0; o < n_old; o++)
    if (in_run(&again[o], r0, r1) && again[o].kind != XM__PIECE_GONE && old_state[o] == MADE)
      unmake_piece(&c, &again[o]);
  c.status = failure;
  *kept = false;
  make_all(&c, now, n_now, r0, r1, false, state);
  return c.status;
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

/* The arena's end (split reservations): each mapped piece is one view at its start; a RESERVED
   piece's allocations are freed when they are the arena's own, never an intruder's. */
void xm__win_arena_release_split(uintptr_t base, const struct xm__arena_piece *pieces, size_t n) {
  for (size_t k = 0; k < n; k++) {
    const struct xm__arena_piece *q = &pieces[k];
    if (q->kind == XM__PIECE_GONE) continue;
    if (xm__piece_is_mapped(q)) {
      UnmapViewOfFile((void *)(base + q->offset));
      continue;
    }
    for (uintptr_t p = base + q->offset, to = p + q->size; p < to;) {
      struct allocation a;
      uintptr_t free_to;
      if (!allocation_at(p, &a, &free_to)) {
        p = free_to;
        continue;
      }
      if (a.ours) VirtualFree((void *)a.from, 0, MEM_RELEASE);
      p = a.to;
    }
  }
}
