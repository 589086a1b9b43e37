/* The placeholders strategy of the Windows arena (the recipe is at the top of arena_windows.c): a
   change unmaps the run's views back to placeholders, cuts the placeholders to the new pieces and
   maps them; a change that fails is undone the same way with the old pieces. */
#include "placeholder_plan.h"
#include "win.h"

struct unmapping {
  int *status;
  bool ok;
};

static void unmap_to_placeholder(void *allocation, DWORD type, void *ctx) {
  struct unmapping *u = ctx;
  if (type != MEM_MAPPED) return;
  if (xm__win_injected() ||
      !xm__win_api()->unmap_view_of_file2(GetCurrentProcess(), allocation, MEM_PRESERVE_PLACEHOLDER)) {
    xm__win_arena_note_failure(u->status, GetLastError(), "UnmapViewOfFile2(MEM_PRESERVE_PLACEHOLDER)");
    u->ok = false;
  }
}

/* Makes [base + r0, base + r1) exactly what pieces[] say there: every view unmapped to its
   placeholder, the placeholders coalesced, then the plan (placeholder_plan.h): cut into one per
   piece, the mapped pieces mapped.
   false at the first failure, noted in *status (unless a failure is there already). The data of
   mapped pieces lives in their backings' sections, so nothing is lost in between. */
static bool shape(uintptr_t base, const struct xm__arena_piece *pieces, size_t n, size_t r0, size_t r1, int *status) {
  struct unmapping u = {status, true};
  xm__win_arena_walk(base + r0, base + r1, unmap_to_placeholder, &u);
  if (!u.ok) return false;
  MEMORY_BASIC_INFORMATION mbi;
  bool single = VirtualQuery((void *)(base + r0), &mbi, sizeof mbi) == sizeof mbi &&
                (uintptr_t)mbi.AllocationBase == base + r0 && mbi.RegionSize >= r1 - r0;
  if (!single &&
      (xm__win_injected() || !VirtualFree((void *)(base + r0), r1 - r0, MEM_RELEASE | MEM_COALESCE_PLACEHOLDERS))) {
    xm__win_arena_note_failure(status, GetLastError(), "VirtualFree(MEM_COALESCE_PLACEHOLDERS)");
    return false;
  }
  struct xm__ph_plan plan = xm__ph_plan_start(pieces, n, r0, r1);
  for (struct xm__ph_step s; xm__ph_plan_next(&plan, &s);) {
    if (s.op == XM__PH_SPLIT) {
      if (xm__win_injected() ||
          !VirtualFree((void *)(base + s.offset), s.size, MEM_RELEASE | MEM_PRESERVE_PLACEHOLDER)) {
        xm__win_arena_note_failure(status, GetLastError(), "VirtualFree(MEM_PRESERVE_PLACEHOLDER)");
        return false;
      }
    } else {
      const char *call;
      DWORD e = xm__win_arena_map_piece(true, base + s.offset, s.piece, &call);
      if (e != ERROR_SUCCESS) {
        xm__win_arena_note_failure(status, e, call);
        return false;
      }
    }
  }
  return true;
}

/* Nothing is ever unreserved, so no other thread can take the range, and a failed change can be
   undone: only a failure of the undoing itself leaves the run changed, as reserved space. */
int xm__win_arena_change_placeholders(uintptr_t base, const struct xm__arena_piece *old, size_t n_old,
                                      struct xm__arena_piece *now, size_t n_now, size_t r0, size_t r1, bool *kept) {
  int status = XM_OK;
  if (shape(base, now, n_now, r0, r1, &status)) {
    for (size_t k = 0; k < n_now; k++)
      if (now[k].flags & XM__PIECE_NEW) now[k].os_flags = xm__win_arena_view_flags(&now[k]);
    return XM_OK;
  }
  if (shape(base, old, n_old, r0, r1, &status)) return status; /* undone: *kept stays true */
  struct unmapping u = {&status, true};
  xm__win_arena_walk(base + r0, base + r1, unmap_to_placeholder, &u);
  for (size_t k = 0; k < n_now; k++)
    if (now[k].offset >= r0 && now[k].offset < r1) now[k].kind = XM__PIECE_RESERVED;
  *kept = false;
  return status;
}
