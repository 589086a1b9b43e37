/* Write tracking (xm_dirty): validation, the choice of strategy, collect, and the process-wide
   registry of trackers that protection changes and arena changes consult (src/internal.h). The
   "protect" strategy's OS work is in dirty_protect.c; "uffd-wp" is xm__os_wp_* (src/os.h).
 *
 * The guarantee: every write is reported at the latest by the first collect that starts after the
 * write completed. protect: a write to a clean page faults, and the hook marks the page before it
 * lifts the protection, under the lock collect holds while it re-protects the marked pages and only
 * then clears their bits — a write that lands before collect's re-protection is in a marked page,
 * one that lands after it faults and is marked for the next collect. uffd-wp: the kernel does the
 * same in one PAGEMAP_SCAN. Replaced arena pieces are reported in full. */
#include <stdlib.h>
#include <string.h>

#include "dirty.h"

static struct xm__os_mutex registry_lock; /* guards `registry` and the list's order */
static struct xm_dirty *registry;
static atomic_int registry_once;
static int registry_status;
static atomic_int live_trackers; /* 0: protection and arena changes skip the registry */

static void registry_init(void) { registry_status = xm__os_mutex_init(&registry_lock); }

static bool overlaps(const struct xm_dirty *d, const unsigned char *addr, size_t len) {
  return d->base < addr + len && addr < xm__dirty_end(d);
}

/* The first registered tracker that ends after addr (the list is sorted and disjoint). */
static struct xm_dirty *first_from(const unsigned char *addr) {
  struct xm_dirty *d = registry;
  while (d && xm__dirty_end(d) <= addr)
    d = d->next;
  return d;
}

/* ---- notifications from protection and arena changes ---------------------------------------- */
int xm__protect_tracked(const struct xm__os_view *view, void *addr, size_t len, xm_prot prot) {
  if (atomic_load_explicit(&live_trackers, memory_order_acquire) == 0) return xm__os_protect(view, addr, len, prot);
  unsigned char *a = addr;
  xm__os_mutex_lock(&registry_lock);
  struct xm_dirty *first = NULL;
  for (struct xm_dirty *d = first_from(a); d && overlaps(d, a, len); d = d->next) {
    if (d->uffd) continue; /* the kernel's write protection is independent of mprotect */
    if (!first) first = d;
    xm__os_mutex_lock(&d->lock);
  }
  int rc = first ? xm__dirty_protect_owner_change(first, view, a, len, prot) : xm__os_protect(view, addr, len, prot);
  for (struct xm_dirty *d = first; d && overlaps(d, a, len); d = d->next)
    if (!d->uffd) xm__os_mutex_unlock(&d->lock);
  xm__os_mutex_unlock(&registry_lock);
  return rc;
}

bool xm__dirty_begin_change(void *addr, size_t len) {
  if (atomic_load_explicit(&live_trackers, memory_order_acquire) == 0) return false;
  xm__os_mutex_lock(&registry_lock);
  struct xm_dirty *first = first_from(addr);
  if (!first || !overlaps(first, addr, len)) { /* untracked: other arenas' changes need not wait */
    xm__os_mutex_unlock(&registry_lock);
    return false;
  }
  for (struct xm_dirty *d = first; d && overlaps(d, addr, len); d = d->next)
    xm__os_mutex_lock(&d->lock);
  return true;
}

/* Pieces of an arena window replaced under tracker d: the owner's protection and view starts
   follow the new pieces, every page of the window is reported at the next collect, and a new
   mapping is registered with the kernel again (uffd-wp). A "protect" tracker's new piece is not
   write-protected: it stays reported (lifted) until the next collect re-protects it. */
static void replaced(struct xm_dirty *d, unsigned char *arena_base, const struct xm__arena_piece *now, size_t n) {
  for (size_t k = 0; k < n; k++) {
    unsigned char *lo = arena_base + now[k].offset, *hi = lo + now[k].size;
    if (lo < d->base) lo = d->base;
    if (hi > xm__dirty_end(d)) hi = xm__dirty_end(d);
    if (lo >= hi) continue;
    size_t from = (size_t)(lo - d->base) / d->page, to = (size_t)(hi - d->base) / d->page;
    bool mapped = xm__piece_is_mapped(&now[k]), fresh = (now[k].flags & XM__PIECE_NEW) || !mapped;
    for (size_t i = from; i < to; i++) {
      xm_prot prot = fresh ? (mapped ? now[k].prot : XM_PROT_NONE) : xm__dirty_owner(d, i);
      d->owner[i] = (unsigned char)prot;
      xm__dirty_mark(d, i);
      d->retries[i] = 0;
    }
    if (lo == arena_base + now[k].offset) d->owner[from] |= XM__PAGE_VIEW_START;
    /* Any piece of the window may be a new kernel mapping (reserved space is mapped again too),
       and one unregistered mapping makes the whole PAGEMAP_SCAN fail. */
    if (d->uffd && now[k].kind != XM__PIECE_GONE && xm__os_wp_restart_range(&d->wp, lo, (size_t)(hi - lo)) != XM_OK)
      d->report_all = true; /* never miss a write: report everything from now on */
  }
}

void xm__dirty_end_change(bool held, void *addr, size_t len, void *arena_base, const struct xm__arena_piece *now,
                          size_t n) {
  if (!held) return;
  for (struct xm_dirty *d = first_from(addr); d && overlaps(d, addr, len); d = d->next) {
    replaced(d, arena_base, now, n);
    xm__os_mutex_unlock(&d->lock);
  }
  xm__os_mutex_unlock(&registry_lock);
}

/* Pages whose contents the OS changes or fills (commit, decommit): reported at the next collect,
   and lifted to the owner's protection first, because Linux populates for writing and removes
   only what may be written. A failed lift is harmless: the pages are marked, the hook lifts them. */
bool xm__dirty_begin_touch(void *addr, size_t len) {
  if (!xm__dirty_begin_change(addr, len)) return false;
  unsigned char *a = addr;
  for (struct xm_dirty *d = first_from(a); d && overlaps(d, a, len); d = d->next) {
    unsigned char *lo = a > d->base ? a : d->base, *hi = a + len < xm__dirty_end(d) ? a + len : xm__dirty_end(d);
    size_t from = (size_t)(lo - d->base) / d->page, to = ((size_t)(hi - d->base) + d->page - 1) / d->page;
    if (d->uffd) {
      for (size_t i = from; i < to; i++)
        xm__dirty_mark(d, i);
    } else {
      (void)xm__dirty_protect_lift(d, from, to);
    }
  }
  return true;
}

void xm__dirty_end_touch(bool held, void *addr, size_t len) { xm__dirty_end_change(held, addr, len, NULL, NULL, 0); }

/* ---- creation ------------------------------------------------------------------------------ */
enum choice { CHOOSE_PROBE, CHOOSE_PROTECT, CHOOSE_UFFD };

struct start {
  struct xm_dirty *d;
  enum choice choice;
  int rc;
};

/* With the region's changes held off (page_prots): refuses overlap, starts a strategy, registers. */
static void start_locked(void *ctx) {
  struct start *s = ctx;
  struct xm_dirty *d = s->d;
  size_t len = d->npages * d->page;
  xm__os_mutex_lock(&registry_lock);
  struct xm_dirty *other = first_from(d->base);
  if (other && overlaps(other, d->base, len)) {
    s->rc = xm__fail(XM_E_EXISTS, "a write tracker already covers %p..%p", (void *)other->base,
                     (void *)xm__dirty_end(other));
    xm__os_mutex_unlock(&registry_lock);
    return;
  }
  const char *why = NULL;
  s->rc = XM_E_NOT_IMPLEMENTED;
  if (s->choice != CHOOSE_PROTECT && xm__os_wp_available(&why)) {
    s->rc = xm__os_wp_start(d->base, len, &d->wp);
    d->uffd = s->rc == XM_OK;
  }
  if (s->rc && s->choice == CHOOSE_UFFD) {
    if (why) s->rc = xm__fail(XM_E_NOT_IMPLEMENTED, "XMMAP_DIRTY=uffd-wp, but %s", why);
  } else if (s->rc) {
    xm__os_mutex_lock(&d->lock);
    s->rc = xm__dirty_protect_start(d);
    xm__os_mutex_unlock(&d->lock);
  }
  if (s->rc == XM_OK) {
    struct xm_dirty **at = &registry;
    while (*at && (*at)->base < d->base)
      at = &(*at)->next;
    d->next = *at;
    *at = d;
    atomic_fetch_add_explicit(&live_trackers, 1, memory_order_release);
  }
  xm__os_mutex_unlock(&registry_lock);
}

static int choose(enum choice *c) {
  const char *v = getenv("XMMAP_DIRTY");
  *c = CHOOSE_PROBE;
  if (!v || !*v) return XM_OK;
  if (strcmp(v, "protect") == 0)
    *c = CHOOSE_PROTECT;
  else if (strcmp(v, "uffd-wp") == 0)
    *c = CHOOSE_UFFD;
  else
    return xm__fail(XM_E_INVALID_ARGUMENT, "XMMAP_DIRTY=%s names no strategy (uffd-wp, protect)", v);
  return XM_OK;
}

static void destroy(struct xm_dirty *d) {
  free(d->bits);
  free(d->owner);
  free(d->retries);
  free(d);
}

int xm_dirty_new(xm_region *r, size_t offset, size_t len, unsigned flags, xm_dirty **out) {
  if (!r || !out) return xm__fail(XM_E_INVALID_ARGUMENT, "region and out must not be NULL");
  if (flags != 0) return xm__fail(XM_E_INVALID_ARGUMENT, "flags 0x%x: no flag is defined yet", flags);
  if (len == 0) return xm__fail(XM_E_INVALID_ARGUMENT, "an empty range has nothing to track");
  if (!xm__range_inside(offset, len, r->size)) return xm__fail_address(offset, len, r->size);
  const size_t page = xm__page_size();
  if (((uintptr_t)r->ptr + offset) % page != 0)
    return xm__fail(XM_E_NOT_PAGE_ALIGNED, "tracking starts at offset %zu, which is not on a %zu-byte page boundary",
                    offset, page);
  enum choice choice;
  int rc = choose(&choice);
  if (rc) return rc;
  xm__once(&registry_once, registry_init);
  if (registry_status) return registry_status;
  struct xm_dirty *d = calloc(1, sizeof *d);
  size_t npages = len / page + (len % page != 0);
  if (d) {
    d->bits = calloc((npages + 31) / 32, sizeof *d->bits);
    d->owner = malloc(npages);
    d->retries = calloc(npages, 1);
  }
  if (!d || !d->bits || !d->owner || !d->retries) {
    if (d) destroy(d);
    return xm__fail(XM_E_NO_MEMORY, "out of memory for a tracker of %zu pages", npages);
  }
  d->region = r;
  d->base = (unsigned char *)r->ptr + offset;
  d->page = page;
  d->npages = npages;
  d->wp.handle = -1;
  rc = xm__os_mutex_init(&d->lock);
  if (rc) {
    destroy(d);
    return rc;
  }
  struct start s = {.d = d, .choice = choice, .rc = XM_OK};
  r->ops->page_prots(r, offset, npages, d->owner, &d->view, start_locked, &s);
  if (s.rc) {
    xm__os_mutex_destroy(&d->lock);
    destroy(d);
    return s.rc;
  }
  *out = d;
  return XM_OK;
}

/* ---- collect ----------------------------------------------------------------------------------- */
/* Set bits of one word. MSVC's __popcnt64 is x86-only and needs a CPU with POPCNT: the
   branch-free count instead (the same few instructions compilers emit without POPCNT). */
static size_t bits_in_word(uint64_t v) {
#if defined(_MSC_VER)
  v = v - ((v >> 1) & UINT64_C(0x5555555555555555));
  v = (v & UINT64_C(0x3333333333333333)) + ((v >> 2) & UINT64_C(0x3333333333333333));
  v = (v + (v >> 4)) & UINT64_C(0x0f0f0f0f0f0f0f0f);
  return (size_t)((v * UINT64_C(0x0101010101010101)) >> 56);
#else
  return (size_t)__builtin_popcountll(v);
#endif
}

static size_t bits_in(const uint64_t *bitmap, size_t npages) {
  size_t count = 0;
  for (size_t w = 0; w < npages / 64; w++)
    count += bits_in_word(bitmap[w]);
  if (npages % 64) count += bits_in_word(bitmap[npages / 64] & ((UINT64_C(1) << (npages % 64)) - 1));
  return count;
}

static void set_range(uint64_t *bitmap, size_t npages, bool value) {
  for (size_t w = 0; w < npages / 64; w++)
    bitmap[w] = value ? UINT64_MAX : 0;
  if (npages % 64) {
    uint64_t mask = (UINT64_C(1) << (npages % 64)) - 1;
    bitmap[npages / 64] = value ? bitmap[npages / 64] | mask : bitmap[npages / 64] & ~mask;
  }
}

/* Moves the marked bits into bitmap (or'ed) and clears them. */
static void take_bits(struct xm_dirty *d, uint64_t *bitmap) {
  for (size_t w = 0; w < (d->npages + 31) / 32; w++) {
    unsigned v = atomic_exchange_explicit(&d->bits[w], 0u, memory_order_relaxed);
    if (!v) continue;
    bitmap[w / 2] |= (uint64_t)v << (w % 2 * 32);
    for (size_t b = 0; b < 32; b++)
      if (v >> b & 1u) d->retries[w * 32 + b] = 0;
  }
}

int xm_dirty_collect(xm_dirty *d, uint64_t *bitmap, size_t nbits, size_t *count) {
  if (!d || !bitmap) return xm__fail(XM_E_INVALID_ARGUMENT, "tracker and bitmap must not be NULL");
  if (nbits < d->npages)
    return xm__fail(XM_E_INVALID_ARGUMENT, "the bitmap has %zu bits; the tracker needs %zu (one per page)", nbits,
                    d->npages);
  xm__os_mutex_lock(&d->lock);
  set_range(bitmap, d->npages, false);
  if (d->uffd) {
    size_t ignored = 0;
    /* A failed scan has re-armed part of the range (those pages are in bitmap) and left the rest's
       writes for the next scan: reporting everything keeps every write of before this collect. */
    if (d->report_all || xm__os_wp_collect(&d->wp, d->base, d->npages * d->page, bitmap, 0, &ignored) != XM_OK)
      set_range(bitmap, d->npages, true);
    take_bits(d, bitmap);
  } else if (xm__dirty_protect_rearm(d) == XM_OK) {
    take_bits(d, bitmap); /* after the re-protection: a later write faults and marks again */
  } else {
    set_range(bitmap, d->npages, true); /* everything is lifted and stays marked */
  }
  xm__os_mutex_unlock(&d->lock);
  if (count) *count = bits_in(bitmap, d->npages);
  return XM_OK;
}

size_t xm_dirty_page_size(const xm_dirty *d) { return d ? d->page : 0; }

const char *xm_dirty_strategy(const xm_dirty *d) { return !d ? NULL : d->uffd ? "uffd-wp" : "protect"; }

void xm_dirty_free(xm_dirty *d) {
  if (!d) return;
  xm__os_mutex_lock(&registry_lock);
  struct xm_dirty **at = &registry;
  while (*at != d)
    at = &(*at)->next;
  *at = d->next;
  atomic_fetch_sub_explicit(&live_trackers, 1, memory_order_release);
  if (!d->uffd) { /* the owner's protection back while the hook still catches racing writes */
    xm__os_mutex_lock(&d->lock);
    (void)xm__dirty_protect_lift_all(d);
    xm__os_mutex_unlock(&d->lock);
  }
  xm__os_mutex_unlock(&registry_lock);
  if (d->uffd)
    xm__os_wp_stop(&d->wp, d->base, d->npages * d->page);
  else
    xm__dirty_protect_stop(d);
  xm__os_mutex_destroy(&d->lock);
  destroy(d);
}
