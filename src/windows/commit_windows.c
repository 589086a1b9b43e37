/* The Windows back end's commit and decommit. Pages of a SEC_RESERVE section's views are committed
   with VirtualAlloc(MEM_COMMIT); a section's committed pages can never be decommitted (VirtualFree
   refuses views), so decommit discards their contents with MEM_RESET and the commit charge stays. */
#include "win.h"

int xm__os_commit(const struct xm__os_view *view, void *addr, size_t len, xm_prot prot) {
  const bool copy = view && (view->flags & XM__WV_COPY);
  if (xm__win_injected() || !VirtualAlloc(addr, len, MEM_COMMIT, xm__win_page_protection(prot, copy)))
    return xm__win_fail_last("VirtualAlloc(MEM_COMMIT)");
  return XM_OK;
}

/* MEM_RESET over the committed parts of [addr, addr + len): reserved pages of a lazily committed
   section hold nothing to discard, and MEM_RESET refuses ranges that include them. */
int xm__os_decommit(const struct xm__os_view *view, void *addr, size_t len) {
  if (view && (view->flags & XM__WV_FILE))
    return xm__fail(XM_E_NOT_IMPLEMENTED, "decommit of a file mapping: VirtualAlloc(MEM_RESET) works only on "
                                          "pagefile-backed memory");
  uintptr_t p = (uintptr_t)addr, end = p + len;
  while (p < end) {
    MEMORY_BASIC_INFORMATION mbi;
    if (VirtualQuery((void *)p, &mbi, sizeof mbi) != sizeof mbi) return xm__win_fail_last("VirtualQuery");
    uintptr_t region_end = (uintptr_t)mbi.BaseAddress + mbi.RegionSize;
    size_t n = (size_t)((region_end < end ? region_end : end) - p);
    if (mbi.State == MEM_FREE) return xm__fail(XM_E_INVALID_ADDRESS, "decommit: %p is not mapped", (void *)p);
    if (mbi.State == MEM_COMMIT && (xm__win_injected() || !VirtualAlloc((void *)p, n, MEM_RESET, PAGE_NOACCESS)))
      return xm__win_fail_last("VirtualAlloc(MEM_RESET)");
    p += n;
  }
  return XM_OK;
}
