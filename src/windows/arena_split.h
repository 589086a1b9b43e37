/* What in a split-reservations arena's range is whose (arena_split_record_windows.c), for its
   changes (arena_split_windows.c): the arena does not tell its own reservations by their looks
   (another arena's block looks the same), but by where they are. During a change its holes are
   exact: what it freed and has not taken again, so that whatever is found in one is an intruder;
   for the arena's life it records the ranges intruders took (struct xm__win_lost). Everything else
   in a piece that is not GONE is the arena's own. */
#ifndef XMMAP_ARENA_SPLIT_H
#define XMMAP_ARENA_SPLIT_H

#include "win.h"

struct xm__split_range {
  uintptr_t from, to;
};

/* A growable list of ranges, in no order. */
struct xm__split_ranges {
  struct xm__split_range *at;
  size_t n, cap;
};

/* The ranges of an arena that intruders took (xm__os_arena.os_record), for the arena's life; a
   range the arena reserves or maps again is taken out. */
struct xm__win_lost {
  struct xm__split_ranges ranges;
};

struct xm__split_change {
  uintptr_t base, end;
  struct xm__win_lost *lost;
  struct xm__split_ranges holes; /* freed by this change and not taken again: exact */
  int status;
  bool lost_full; /* an intruder could not be recorded (no memory): its piece becomes GONE */
};

/* One allocation: [from, to) with its first region's facts. */
struct xm__split_allocation {
  uintptr_t from, to;
  MEMORY_BASIC_INFORMATION first;
  bool ours; /* one of the arena's reservations */
};

/* The allocation that holds p (false when p is free or cannot be queried; *free_to: where the free
   region ends). ours: a plain reservation (private, reserved, PAGE_NOACCESS) within the arena, in
   no hole of c and in no lost range. */
bool xm__split_allocation_at(const struct xm__split_change *c, uintptr_t p, struct xm__split_allocation *out,
                             uintptr_t *free_to);

/* Makes room for about expected_holes holes in c (false without memory); xm__split_settle frees
   it. */
bool xm__split_change_init(struct xm__split_change *c, size_t expected_holes);
/* [from, to) was freed by the change (merged with the last hole where adjacent). */
void xm__split_add_hole(struct xm__split_change *c, uintptr_t from, uintptr_t to);
/* [from, to) is no longer free by the change's doing: the arena's again, or an intruder's. */
void xm__split_take_hole(struct xm__split_change *c, uintptr_t from, uintptr_t to);
/* The arena took [from, to) whole again (reserved, or a view): lost ranges within it are its own
   again. */
void xm__split_forget_lost(struct xm__split_change *c, uintptr_t from, uintptr_t to);
/* Records [from, to) of the arena as lost (an intruder's, or a unit that stays refused); no longer
   a hole. Sets lost_full when the record finds no memory. */
void xm__split_record_lost(struct xm__split_change *c, uintptr_t from, uintptr_t to);
/* Records (as the change's first failure) that [addr, ...) could not be had because of the
   allocation intruder, named (VirtualQuery) in the message; the error is ERROR_INVALID_ADDRESS. */
void xm__split_note_intruder(struct xm__split_change *c, uintptr_t addr, const struct xm__split_allocation *intruder,
                             const char *call);
/* Ends a change: what is still a hole (only after failures) is free space of the arena that it
   does not hold, recorded as lost so that whatever takes it later is never taken for the arena's
   own; frees the holes. Returns status. */
int xm__split_settle(struct xm__split_change *c, int status);

#endif /* XMMAP_ARENA_SPLIT_H */
