/* The range helpers of mappings, regions and arenas: protection checks, write-back and advice
   over [offset, offset + len) of a region, each validated before the one OS call. */
#include "internal.h"
#include "plain_atomic.h"

bool xm_prot_allows(xm_prot self, xm_prot other) { return (other & ~self & XM__PROT_ALL) == 0; }

/* ---- protection checks --------------------------------------------------------------------- */
/* Whether every page of the non-empty range [offset, offset + len) allows need. */
bool xm__range_allows(const xm_mapping *m, size_t offset, size_t len, xm_prot need) {
  /* acquire: page_prot is complete before mixed is seen set */
  if (!xm__plain_acquire_load_bool(&m->mixed))
    return xm_prot_allows(XM__PLAIN_RELAXED_LOAD(unsigned char, &m->prot), need);
  size_t page = xm__page_size(), skew = xm__view_skew(m);
  size_t first = (skew + offset) / page, last = (skew + offset + len - 1) / page;
  for (size_t i = first; i <= last; i++)
    if (!xm_prot_allows(XM__PLAIN_RELAXED_LOAD(unsigned char, &m->page_prot[i]), need)) return false;
  return true;
}

int xm__fail_access(size_t offset, size_t len, xm_prot need) {
  return xm__fail(XM_E_ACCESS, "%s of %zu bytes at offset %zu", need == XM_PROT_READ ? "read" : "write", len, offset);
}

int xm__slice_check(const xm_mapping *m, size_t len, size_t offset, xm_prot need, size_t *n) {
  if (!m) return xm__fail(XM_E_INVALID_ARGUMENT, "mapping must not be NULL");
  if (offset > m->pub.size) return xm__fail_address(offset, len, m->pub.size);
  *n = m->pub.size - offset < len ? m->pub.size - offset : len;
  if (*n && !xm__range_allows(m, offset, *n, need)) return xm__fail_access(offset, *n, need);
  return XM_OK;
}

/* ---- write-back and advice --------------------------------------------------------------------- */
/* A range leaving the region: InvalidRange with its details, or crosvm's InvalidAddress. */
static int fail_outside(size_t offset, size_t len, size_t size, int range_status) {
  return range_status == XM_E_INVALID_RANGE ? xm__fail_range(offset, len, size) : xm__fail_address(offset, len, size);
}

int xm__sync_range(void *base, size_t size, size_t offset, size_t len, xm_sync mode, const struct xm__os_view *view,
                   int range_status) {
  if (!xm__range_inside(offset, len, size)) return fail_outside(offset, len, size, range_status);
  if (mode != XM_SYNC_ASYNC && mode != XM_SYNC_SYNC)
    return xm__fail(XM_E_INVALID_ARGUMENT, "unknown sync mode %d", (int)mode);
  if (len == 0) return XM_OK;
  uintptr_t start = (uintptr_t)base + offset;
  uintptr_t aligned = xm__align_down(start, xm__page_size()); /* FlushViewOfFile rounds further itself */
  return xm__os_sync(view, (void *)aligned, len + (size_t)(start - aligned), mode);
}

int xm__advise_range(void *base, size_t size, size_t offset, size_t len, xm_advice advice,
                     const struct xm__os_view *view, int range_status) {
  if ((unsigned)advice > XM_ADVICE_POPULATE_WRITE)
    return xm__fail(XM_E_INVALID_ARGUMENT, "unknown advice %d", (int)advice);
  if (!xm__range_inside(offset, len, size)) return fail_outside(offset, len, size, range_status);
  if (len == 0) return XM_OK;
  size_t page = xm__page_size();
  uintptr_t start = (uintptr_t)base + offset;
  if (advice == XM_ADVICE_DONTNEED || advice == XM_ADVICE_REMOVE) {
    /* Destructive advice acts on whole pages: never widen it onto bytes the caller did not name,
       not even at the region's end (the last page may hold bytes of the object past it). */
    if (start % page != 0 || (start + len) % page != 0)
      return xm__fail(XM_E_NOT_PAGE_ALIGNED, "MADV_%s needs a page-aligned range, got offset=%zu count=%zu",
                      xm__advice_name(advice), offset, len);
  }
  uintptr_t aligned = xm__align_down(start, page);
  return xm__os_advise(view, (void *)aligned, len + (size_t)(start - aligned), advice);
}
