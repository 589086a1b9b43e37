/* The "protect" write-tracking strategy: the tracked pages the owner lets be written are
   write-protected; the first write to one faults into a library hook that marks the page and lifts
   the protection back to the owner's; collect re-protects the marked pages, one OS call per run,
   before it clears and reports them (src/dirty.c has the guarantee this gives).
 *
 * The hook runs in the faulting thread's signal handler (Windows: vectored handler). It allocates
 * nothing (every array is made by xm_dirty_new) and takes only the tracker's lock, which no thread
 * holds while touching tracked memory, so the faulting thread never holds it.
 *
 * Running out of kernel mappings: Linux splits a mapping at every change of protection, so
 * per-page protection can hit vm.max_map_count (mprotect fails with ENOMEM). Whenever a per-page
 * change fails — lifting one page in the hook, re-protecting in collect, the first protection —
 * the tracker recovers by marking every page and giving the whole range its owner's protection
 * back, run by run, which merges the split mappings again: the guest's write goes through, and
 * the whole range is reported by the next collect and by every collect after it for as long as
 * re-protecting keeps failing (each collect tries again). No write is failed or missed. */
#include "dirty.h"

/* A page whose bit is set faults again: another thread's fault lifted it first (the normal race:
   retry), or the fault is not about protection (a SIGBUS on a truncated file): after this many,
   the fault is passed on instead of retried forever. */
enum { RETRY_LIMIT = 64 };

/* Gives runs of pages the owner lets be written the owner's protection (writable) or the owner's
   without write, each run one OS call that never crosses a view start; only marked pages when
   only_marked; pages [from, to) of the range. */
static int apply_runs(struct xm_dirty *d, size_t from, size_t to, bool only_marked, bool writable) {
  for (size_t i = from; i < to;) {
    if (only_marked && i % 32 == 0 && atomic_load_explicit(&d->bits[i / 32], memory_order_relaxed) == 0) {
      i += 32;
      continue;
    }
    xm_prot owner = xm__dirty_owner(d, i);
    if (!(owner & XM_PROT_WRITE) || (only_marked && !xm__dirty_test(d, i))) {
      i++;
      continue;
    }
    size_t j = i + 1;
    while (j < to && !(d->owner[j] & XM__PAGE_VIEW_START) && xm__dirty_owner(d, j) == owner &&
           (!only_marked || xm__dirty_test(d, j)))
      j++;
    int rc = xm__os_protect(d->view, d->base + i * d->page, (j - i) * d->page,
                            writable ? owner : owner & ~(xm_prot)XM_PROT_WRITE);
    if (rc) return rc;
    i = j;
  }
  return XM_OK;
}

int xm__dirty_protect_lift_all(struct xm_dirty *d) {
  for (size_t i = 0; i < d->npages; i++)
    xm__dirty_mark(d, i);
  return apply_runs(d, 0, d->npages, false, true);
}

int xm__dirty_protect_lift(struct xm_dirty *d, size_t from, size_t to) {
  for (size_t i = from; i < to; i++)
    xm__dirty_mark(d, i);
  return apply_runs(d, from, to, false, true);
}

int xm__dirty_protect_rearm(struct xm_dirty *d) {
  int rc = apply_runs(d, 0, d->npages, true, false);
  if (rc) (void)xm__dirty_protect_lift_all(d);
  return rc;
}

static xm_fault_action on_fault(const xm_fault *f, void *user) {
  struct xm_dirty *d = user;
  uintptr_t at = (uintptr_t)f->addr;
  if (at < (uintptr_t)d->base || at >= (uintptr_t)xm__dirty_end(d)) return XM_FAULT_PASS;
  size_t i = (at - (uintptr_t)d->base) / d->page;
  xm_fault_action action = XM_FAULT_PASS;
  xm__os_mutex_lock(&d->lock);
  xm_prot owner = xm__dirty_owner(d, i);
  /* Only writes the owner allows are the tracker's (it leaves reading and executing alone). */
  bool ours = (owner & XM_PROT_WRITE) && (f->access == 0 || f->access == XM_PROT_WRITE);
  if (ours && xm__dirty_test(d, i) && d->retries[i]++ >= RETRY_LIMIT) ours = false;
  if (ours) {
    if (!xm__dirty_test(d, i)) d->retries[i] = 0;
    xm__dirty_mark(d, i); /* before the write can land */
    if (xm__os_protect(d->view, d->base + i * d->page, d->page, owner) != XM_OK) (void)xm__dirty_protect_lift_all(d);
    action = XM_FAULT_RETRY;
  }
  xm__os_mutex_unlock(&d->lock);
  return action;
}

int xm__dirty_protect_start(struct xm_dirty *d) {
  int rc = xm_fault_hook_add(d->base, d->npages * d->page, on_fault, d, &d->hook);
  if (rc) return rc;
  if (apply_runs(d, 0, d->npages, false, false) == XM_OK) return XM_OK;
  rc = xm__dirty_protect_lift_all(d); /* the range starts lifted and reported, as after a failed collect */
  if (rc) {
    xm_fault_hook_remove(d->hook);
    d->hook = NULL;
  }
  return rc;
}

/* ---- the owner's protection changes --------------------------------------------------------- */
/* The "protect" tracker holding page p, moving *cursor along the sorted list. */
static struct xm_dirty *tracker_at(struct xm_dirty **cursor, const unsigned char *p) {
  while (*cursor && (xm__dirty_end(*cursor) <= p || (*cursor)->uffd))
    *cursor = (*cursor)->next;
  return *cursor && (*cursor)->base <= p ? *cursor : NULL;
}

static bool clean_tracked(struct xm_dirty **cursor, const unsigned char *p) {
  struct xm_dirty *t = tracker_at(cursor, p);
  return t && !xm__dirty_test(t, (size_t)(p - t->base) / t->page);
}

int xm__dirty_protect_owner_change(struct xm_dirty *first, const struct xm__os_view *view, unsigned char *addr,
                                   size_t len, xm_prot prot) {
  const size_t page = first->page;
  struct xm_dirty *cursor = first;
  bool any_clean = false;
  for (size_t at = 0; (prot & XM_PROT_WRITE) && !any_clean && at < len; at += page)
    any_clean = clean_tracked(&cursor, addr + at);
  /* Without write, or with every tracked page lifted, the owner's protection is the OS's: one call.
     Else first everything without write (one call: all or nothing, and no clean page is writable
     for a moment), then the pages that may be written get it, run by run. */
  int rc = xm__os_protect(view, addr, len, any_clean ? prot & ~(xm_prot)XM_PROT_WRITE : prot);
  if (rc) return rc;
  for (size_t at = 0; any_clean && rc == XM_OK && at < len;) {
    cursor = first;
    if (clean_tracked(&cursor, addr + at)) {
      at += page;
      continue;
    }
    size_t end = at + page;
    while (end < len && !clean_tracked(&cursor, addr + end))
      end += page;
    rc = xm__os_protect(view, addr + at, end - at, prot);
    at = end;
  }
  if (rc) { /* per-page protection refused: everything tracked here is lifted and reported */
    cursor = first;
    for (size_t at = 0; at < len; at += page) {
      struct xm_dirty *t = tracker_at(&cursor, addr + at);
      if (t) xm__dirty_mark(t, (size_t)(addr + at - t->base) / page);
    }
    rc = xm__os_protect(view, addr, len, prot);
  }
  if (rc) return rc;
  cursor = first;
  for (size_t at = 0; at < len; at += page) {
    struct xm_dirty *t = tracker_at(&cursor, addr + at);
    if (!t) continue;
    size_t i = (size_t)(addr + at - t->base) / page;
    t->owner[i] = (unsigned char)((t->owner[i] & XM__PAGE_VIEW_START) | prot);
  }
  return XM_OK;
}

void xm__dirty_protect_stop(struct xm_dirty *d) { xm_fault_hook_remove(d->hook); }
