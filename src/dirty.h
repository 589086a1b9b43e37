/* Write trackers (xm_dirty): the object shared by dirty.c (creation, collect, the registry and the
   notifications from protection and arena changes) and dirty_protect.c (the "protect" strategy). */
#ifndef XMMAP_DIRTY_H
#define XMMAP_DIRTY_H

#include <stdatomic.h>

#include "internal.h"

struct xm_dirty {
  xm_region *region;
  unsigned char *base; /* the first tracked byte, page-aligned */
  size_t page, npages;
  bool uffd;                /* the "uffd-wp" strategy, else "protect" */
  struct xm__os_wp wp;      /* uffd-wp: the kernel's tracker */
  xm_fault_hook *hook;      /* protect: the hook over the range */
  struct xm__os_mutex lock; /* shared by collect, the hook and the change notifications */
  /* A bit per page, 32 to a word (int-sized atomics need no libatomic anywhere). protect: the page's
     write protection is lifted (written, replaced or given up on) and it is reported at the next
     collect, which re-protects it before clearing the bit. uffd-wp: the page was replaced and is
     reported in full at the next collect. Changed only with the lock held; atomic because the
     hook reads them in a signal handler. */
  atomic_uint *bits;
  unsigned char *owner;           /* per page: the owner's protection | XM__PAGE_VIEW_START */
  unsigned char *retries;         /* protect: faults on a page already lifted, since it was last lifted */
  bool report_all;                /* uffd-wp: a replaced piece could not be tracked again */
  const struct xm__os_view *view; /* what xm__os_protect needs for this memory, or NULL */
  struct xm_dirty *next;          /* the registry, sorted by base */
};

static inline unsigned char *xm__dirty_end(const struct xm_dirty *d) { return d->base + d->npages * d->page; }
static inline bool xm__dirty_test(struct xm_dirty *d, size_t i) {
  return (atomic_load_explicit(&d->bits[i / 32], memory_order_relaxed) >> (i % 32)) & 1u;
}
static inline void xm__dirty_mark(struct xm_dirty *d, size_t i) {
  atomic_fetch_or_explicit(&d->bits[i / 32], 1u << (i % 32), memory_order_relaxed);
}
static inline xm_prot xm__dirty_owner(const struct xm_dirty *d, size_t i) { return d->owner[i] & XM__PROT_ALL; }

/* ---- the "protect" strategy (dirty_protect.c); every call but start with d->lock held ---------- */
/* Adds the hook and write-protects every page the owner lets be written. */
int xm__dirty_protect_start(struct xm_dirty *d);
/* Removes the hook (without the lock: it waits for running calls, which take it). */
void xm__dirty_protect_stop(struct xm_dirty *d);
/* Marks every page lifted and gives each its owner's protection back: the recovery when the OS
   refuses per-page protection, and the end of tracking. */
int xm__dirty_protect_lift_all(struct xm_dirty *d);
/* Marks pages [from, to) of the range and gives them their owner's protection. */
int xm__dirty_protect_lift(struct xm_dirty *d, size_t from, size_t to);
/* Re-protects the lifted pages: XM_OK, or a failure after which everything is lifted (and stays
   reported) — collect then reports the whole range. */
int xm__dirty_protect_rearm(struct xm_dirty *d);
/* The owner sets prot on [addr, addr + len), which overlaps the "protect" trackers from first on
   (sorted, all locked): clean tracked pages stay write-protected, and on failure the OS state is
   as before. */
int xm__dirty_protect_owner_change(struct xm_dirty *first, const struct xm__os_view *view, unsigned char *addr,
                                   size_t len, xm_prot prot);

#endif /* XMMAP_DIRTY_H */
