/* The arena's protection changes (xm_region_protect on an arena) and their per-page bookkeeping,
   which write trackers read (arena.c keeps the pieces). */
#include <stdlib.h>
#include <string.h>

#include "arena.h"

/* A piece's protection as it was added (unmapped space has none), as memset takes it. */
static int owner_prot(const struct xm__arena_piece *p) { return xm__piece_is_mapped(p) ? (int)p->prot : 0; }

static void set_pages(xm_arena *a, const struct xm__arena_piece *p, size_t from, size_t to, const unsigned char *prot,
                      size_t first);

/* The pages of the pieces a change established get their pieces' protection. Remainders keep the
   owner's, which a back end that maps them again (Windows) gets back here; should that fail, the
   OS allows other than the bookkeeping says until the next change of those pages. */
void xm__arena_reset_page_prots(xm_arena *a, const struct xm__arena_piece *now, size_t n) {
  const size_t page = xm__page_size();
  for (size_t k = 0; k < n; k++) {
    if ((now[k].flags & XM__PIECE_NEW) || !xm__piece_is_mapped(&now[k]))
      memset(a->page_prot + now[k].offset / page, owner_prot(&now[k]), now[k].size / page);
    else
      set_pages(a, &now[k], now[k].offset, now[k].offset + now[k].size, a->page_prot, 0);
  }
}

/* ---- protection --------------------------------------------------------------------------------
   Piece by piece (Windows changes protection view by view), each never above what it was added
   with, all or nothing: every check comes before the first OS call, and a failure midway puts the
   pieces already changed back page by page. */
static unsigned char piece_prot_at(const xm_arena *a, const struct xm__arena_piece *p, size_t page_index) {
  if (!xm__piece_is_mapped(p)) return XM_PROT_NONE;
  return a->page_prot ? a->page_prot[page_index] : (unsigned char)p->prot;
}

/* Gives [from, to) of piece p the protection prot[] holds for each page from page `first` on, one
   OS call per run of equal protection. */
static void set_pages(xm_arena *a, const struct xm__arena_piece *p, size_t from, size_t to, const unsigned char *prot,
                      size_t first) {
  const size_t page = xm__page_size();
  struct xm__os_view view = xm__arena_piece_view(a, p);
  for (size_t at = from, end; at < to; at = end) {
    for (end = at + page; end < to && prot[end / page - first] == prot[at / page - first]; end += page) {}
    (void)xm__protect_tracked(&view, (unsigned char *)a->os.base + at, end - at, prot[at / page - first]);
  }
}

/* [*lo, *hi): the part of [from, to) that piece p covers. */
static void clip(const struct xm__arena_piece *p, size_t from, size_t to, size_t *lo, size_t *hi) {
  *lo = p->offset > from ? p->offset : from;
  *hi = p->offset + p->size < to ? p->offset + p->size : to;
}

/* The per-page bookkeeping, made at the first protection change. */
static int need_page_prots(xm_arena *a) {
  const size_t page = xm__page_size();
  if (a->page_prot) return XM_OK;
  a->page_prot = malloc(a->os.size / page);
  if (!a->page_prot) return xm__fail(XM_E_NO_MEMORY, "out of memory for the arena's protection bookkeeping");
  for (const struct xm__arena_piece *p = xm__pieces_first(&a->pieces); p; p = xm__pieces_next(p))
    memset(a->page_prot + p->offset / page, owner_prot(p), p->size / page);
  return XM_OK;
}

int xm__arena_region_protect(xm_region *r, size_t offset, size_t len, xm_prot prot) {
  xm_arena *a = r->owner;
  if (prot & ~XM__PROT_ALL) return xm__fail(XM_E_INVALID_ARGUMENT, "protection 0x%x has unknown bits", prot);
  if (!xm__range_inside(offset, len, a->size)) return xm__fail_address(offset, len, a->size);
  if (len == 0) return XM_OK;
  const size_t page = xm__page_size();
  const size_t first = offset / page, n = (offset + len - 1) / page - first + 1;
  const size_t from = first * page, to = from + n * page; /* inside the unit-rounded reservation */
  xm__os_mutex_lock(&a->mutex);
  int rc = XM_OK;
  for (const struct xm__arena_piece *p = xm__pieces_find(&a->pieces, from); !rc && p && p->offset < to;
       p = xm__pieces_next(p)) {
    size_t lo, hi;
    clip(p, from, to, &lo, &hi);
    if (!xm__piece_is_mapped(p))
      rc = xm__fail(XM_E_INVALID_ADDRESS, "arena offset=%zu size=%zu inside offset=%zu len=%zu is not mapped", lo,
                    hi - lo, offset, len);
    else if (!xm_prot_allows(p->prot, prot))
      rc = xm__fail(XM_E_ACCESS, "protection 0x%x is above the 0x%x the piece at arena offset %zu was added with", prot,
                    p->prot, p->offset);
  }
  if (!rc) rc = need_page_prots(a); /* the only allocation, once per arena (hooks may call this) */
  if (rc) {
    xm__os_mutex_unlock(&a->mutex);
    return rc;
  }
  const struct xm__arena_piece *p0 = xm__pieces_find(&a->pieces, from), *p = p0;
  for (; p && p->offset < to; p = xm__pieces_next(p)) {
    size_t lo, hi;
    clip(p, from, to, &lo, &hi);
    struct xm__os_view view = xm__arena_piece_view(a, p);
    rc = xm__protect_tracked(&view, (unsigned char *)a->os.base + lo, hi - lo, prot);
    if (rc) break;
  }
  if (rc) { /* the pieces before k changed: put them back, keeping the first failure's message */
    for (const struct xm__arena_piece *q = p0; q != p; q = xm__pieces_next(q)) {
      size_t lo, hi;
      clip(q, from, to, &lo, &hi);
      set_pages(a, q, lo, hi, a->page_prot, 0); /* not updated yet: the old protection */
    }
  } else {
    memset(a->page_prot + first, (int)prot, n);
  }
  xm__os_mutex_unlock(&a->mutex);
  return rc;
}

void xm__arena_page_prots(xm_region *r, size_t offset, size_t npages, unsigned char *prot,
                          const struct xm__os_view **view, void (*with_lock_held)(void *ctx), void *ctx) {
  xm_arena *a = r->owner;
  *view = NULL; /* pieces are never copy-on-write views: the address is all the OS needs */
  const size_t page = xm__page_size(), end = offset + npages * page;
  xm__os_mutex_lock(&a->mutex);
  for (const struct xm__arena_piece *p = xm__pieces_find(&a->pieces, offset); p && p->offset < end;
       p = xm__pieces_next(p)) {
    size_t lo, hi;
    clip(p, offset, end, &lo, &hi);
    for (size_t at = lo; at < hi; at += page)
      prot[(at - offset) / page] = piece_prot_at(a, p, at / page);
    if (lo == p->offset) prot[(lo - offset) / page] |= XM__PAGE_VIEW_START;
  }
  with_lock_held(ctx);
  xm__os_mutex_unlock(&a->mutex);
}
