/* What in a split-reservations arena's range is whose (arena_split_record_windows.c), for its
   changes (arena_split_windows.c): the arena does not tell its own reservations by their looks
   (another arena's block looks the same), but by where they are. During a change its holes are
   exact: what it freed and has not taken again, so that whatever is found in one is an intruder;
   for the arena's life it records the ranges intruders took (struct xm__win_lost). Everything else
   in a piece that is not GONE is the arena's own. */
#ifndef XMMAP_ARENA_SPLIT_H
#define XMMAP_ARENA_SPLIT_H

#include "win.h"

/* How many lost ranges an arena records. A piece with an intruder beyond that becomes GONE whole
   (its own reservations there are then never freed either: address space, not memory). */
#define XM__ARENA_LOST 32

struct xm__split_range {
  uintptr_t from, to;
};

/* The ranges of an arena that intruders took (xm__os_arena.os_record). */
struct xm__win_lost {
  size_t n;
  struct xm__split_range range[XM__ARENA_LOST];
};

/* The holes of a change are few: its new views and freed old views (adjacent ones merge), cut by
   the intruders and lost ranges among them, and by the remainders of a reservation that could not
   be reserved again at once. */
#define XM__ARENA_HOLES (8 * XM__ARENA_MAX_PIECES + 2 * XM__ARENA_LOST)

struct xm__split_change {
  uintptr_t base, end;
  struct xm__win_lost *lost;
  struct xm__split_range holes[XM__ARENA_HOLES]; /* freed by this change and not taken again: exact */
  size_t n_holes;
  int status;
  bool lost_full; /* an intruder could not be recorded: its piece becomes GONE */
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

/* [from, to) was freed by the change (merged with the last hole where adjacent). */
void xm__split_add_hole(struct xm__split_change *c, uintptr_t from, uintptr_t to);
/* [from, to) is no longer free by the change's doing: the arena's again, or an intruder's. */
void xm__split_take_hole(struct xm__split_change *c, uintptr_t from, uintptr_t to);
/* The arena took [from, to) whole again (reserved, or a view): lost ranges within it are its own
   again. */
void xm__split_forget_lost(struct xm__split_change *c, uintptr_t from, uintptr_t to);
/* Records [from, to) of the arena as lost (an intruder's, or a unit that stays refused); no longer
   a hole. Sets lost_full when the record has no room. */
void xm__split_record_lost(struct xm__split_change *c, uintptr_t from, uintptr_t to);
/* Records (as the change's first failure) that [addr, ...) could not be had because of the
   allocation intruder, named (VirtualQuery) in the message; the error is ERROR_INVALID_ADDRESS. */
void xm__split_note_intruder(struct xm__split_change *c, uintptr_t addr, const struct xm__split_allocation *intruder,
                             const char *call);
/* Ends a change: what is still a hole (only after failures) is free space of the arena that it
   does not hold, recorded as lost so that whatever takes it later is never taken for the arena's
   own. Returns status. */
int xm__split_settle(struct xm__split_change *c, int status);

#endif /* XMMAP_ARENA_SPLIT_H */
