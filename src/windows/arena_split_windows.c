/* The split-reservations strategy of the Windows arena (the recipe is at the top of
   arena_windows.c): a change frees the run's views and reservations, then maps and reserves the new
   pieces at their addresses, round after round while another thread holds some of them; a change
   that fails otherwise frees what it made and makes the old pieces again. */
#include "win.h"

/* How many rounds a piece is tried while another thread holds its freed addresses for a while
   (e.g. a placement probe of xm__os_map). */
#define XM__ARENA_ROUNDS 64

/* Maps or reserves one piece at its address: ERROR_SUCCESS or the OS error (ERROR_INVALID_ADDRESS:
   something else holds some of the addresses) with *call naming the call that failed. */
static DWORD make(uintptr_t base, const struct xm__arena_piece *q, const char **call) {
  uintptr_t addr = base + q->offset;
  if (xm__piece_is_mapped(q)) return xm__win_arena_map_piece(false, addr, q, call);
  *call = "VirtualAlloc(MEM_RESERVE)";
  return xm__win_reserve((void *)addr, q->size) ? ERROR_SUCCESS : GetLastError();
}

/* Frees a piece that make() made. */
static void unmake(uintptr_t base, const struct xm__arena_piece *q) {
  void *addr = (void *)(base + q->offset);
  if (xm__piece_is_mapped(q))
    UnmapViewOfFile(addr);
  else
    VirtualFree(addr, 0, MEM_RELEASE);
}

static void wait_round(int round) {
  if (round < 8)
    SwitchToThread();
  else
    Sleep(1);
}

static bool in_run(const struct xm__arena_piece *q, size_t r0, size_t r1) { return q->offset >= r0 && q->offset < r1; }

enum { SKIPPED, PENDING, MADE };

/* Makes now[]'s pieces of the run. strict: stops at the first failure that is not a taken address
   (false; state[] says what was made). Otherwise a mapped piece that cannot be made becomes reserved
   space (a remainder after three tries). Either way a piece whose addresses stay taken becomes
   GONE, and every failure is noted in *status. */
static bool make_now(uintptr_t base, struct xm__arena_piece *now, size_t n_now, size_t r0, size_t r1, bool strict,
                     unsigned char *state, int *status) {
  int failures[XM__ARENA_MAX_PIECES];
  DWORD last_error[XM__ARENA_MAX_PIECES];
  for (size_t k = 0; k < n_now; k++) {
    state[k] = !in_run(&now[k], r0, r1) || now[k].kind == XM__PIECE_GONE ? SKIPPED : PENDING;
    failures[k] = 0;
    last_error[k] = ERROR_SUCCESS;
  }
  for (int round = 0; round < XM__ARENA_ROUNDS; round++) {
    bool pending = false;
    for (size_t k = 0; k < n_now; k++) {
      struct xm__arena_piece *q = &now[k];
      if (state[k] != PENDING) continue;
      const char *call;
      DWORD e = make(base, q, &call);
      if (e == ERROR_SUCCESS) {
        if (q->flags & XM__PIECE_NEW) q->os_flags = xm__win_arena_view_flags(q);
        state[k] = MADE;
        continue;
      }
      if (e != ERROR_INVALID_ADDRESS && strict) {
        xm__win_arena_note_failure(status, e, call);
        return false;
      }
      if (e != ERROR_INVALID_ADDRESS && xm__piece_is_mapped(q) && ((q->flags & XM__PIECE_NEW) || ++failures[k] >= 3)) {
        xm__win_arena_note_failure(status, e, call);
        q->kind = XM__PIECE_RESERVED; /* reserved in the next round */
      }
      last_error[k] = e;
      pending = true;
    }
    if (!pending) return true;
    wait_round(round);
  }
  for (size_t k = 0; k < n_now; k++) {
    if (state[k] != PENDING) continue;
    xm__win_arena_note_failure(status, last_error[k],
                               last_error[k] == ERROR_INVALID_ADDRESS
                                   ? "VirtualAlloc: another thread holds the arena's freed addresses"
                                   : "VirtualAlloc(MEM_RESERVE)");
    now[k].kind = XM__PIECE_GONE; /* neither mapped nor reserved: not the arena's any more */
  }
  return true;
}

/* Makes the old pieces of the run again, in order; false when one cannot be made, after *made of
   them were. */
static bool make_old(uintptr_t base, const struct xm__arena_piece *old, size_t n_old, size_t r0, size_t r1,
                     size_t *made) {
  for (*made = 0; *made < n_old; ++*made) {
    const struct xm__arena_piece *q = &old[*made];
    if (!in_run(q, r0, r1) || q->kind == XM__PIECE_GONE) continue;
    DWORD e = ERROR_INVALID_ADDRESS;
    const char *call;
    for (int round = 0; round < XM__ARENA_ROUNDS && e == ERROR_INVALID_ADDRESS; round++) {
      if (round > 0) wait_round(round);
      e = make(base, q, &call);
    }
    if (e != ERROR_SUCCESS) return false;
  }
  return true;
}

int xm__win_arena_change_split(uintptr_t base, const struct xm__arena_piece *old, size_t n_old,
                               struct xm__arena_piece *now, size_t n_now, size_t r0, size_t r1, bool *kept) {
  for (size_t o = 0; o < n_old; o++) {
    const struct xm__arena_piece *q = &old[o];
    if (in_run(q, r0, r1) && q->kind != XM__PIECE_GONE)
      xm__win_arena_free(base + q->offset, base + q->offset + q->size);
  }
  xm__test_arena_freed((void *)(base + r0), r1 - r0);
  int status = XM_OK;
  unsigned char state[XM__ARENA_MAX_PIECES];
  if (make_now(base, now, n_now, r0, r1, true, state, &status)) {
    *kept = status == XM_OK; /* else addresses another thread kept: GONE pieces */
    return status;
  }
  /* Undone: what was made goes, the old pieces come back (their data lives in their sections). */
  for (size_t k = 0; k < n_now; k++)
    if (state[k] == MADE) unmake(base, &now[k]);
  size_t made;
  if (make_old(base, old, n_old, r0, r1, &made)) {
    *kept = true;
    return status;
  }
  /* Another thread took addresses of an old piece in between: the new pieces as far as they go. */
  for (size_t o = 0; o < made; o++)
    if (in_run(&old[o], r0, r1) && old[o].kind != XM__PIECE_GONE) unmake(base, &old[o]);
  *kept = false;
  make_now(base, now, n_now, r0, r1, false, state, &status);
  return status;
}
