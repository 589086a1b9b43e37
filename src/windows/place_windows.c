/* The Windows back end's placement in an address range (src/os.h "placement").
 *
 * Recipe: VirtualAlloc2 with MEM_ADDRESS_REQUIREMENTS (LowestStartingAddress,
 * HighestEndingAddress, Alignment; Windows 10 1803+) where the base needs no lead, and the result
 * is checked: Wine 8 accepts the parameter but ignores the lowest-address bound, so a reservation
 * that lands outside the range is released and the walk below runs instead. The walk: VirtualQuery
 * over the range, and for each MEM_FREE region the lowest aligned base that fits is reserved at
 * that address (VirtualAlloc, or VirtualAlloc2 for a placeholder); another thread taking the place
 * meanwhile makes that call fail, and the walk goes on with the next region. */
#include <string.h>

#include "win.h"

/* The lowest base >= from with (base + lead) % align == 0; false on overflow. */
static bool aligned_base(uintptr_t from, size_t align, size_t lead, uintptr_t *base) {
  if (from > UINTPTR_MAX - lead - (align - 1)) return false;
  *base = ((from + lead + align - 1) & ~(uintptr_t)(align - 1)) - lead;
  return true;
}

static void *reserve_at(void *at, size_t size, unsigned flags) {
  if (xm__win_injected()) return NULL;
  if (flags & XM__RESERVE_PLACEHOLDER)
    return xm__win_api()->virtual_alloc2(GetCurrentProcess(), at, size, MEM_RESERVE | MEM_RESERVE_PLACEHOLDER,
                                         PAGE_NOACCESS, NULL, 0);
  return VirtualAlloc(at, size, MEM_RESERVE, PAGE_NOACCESS);
}

static bool inside(uintptr_t p, size_t size, const struct xm__os_place *w) {
  return p >= w->lo && p <= w->hi && w->hi - p >= size && (p + w->lead) % w->align == 0;
}

/* VirtualAlloc2 with address requirements; NULL when it is missing, refuses or misplaces. */
static void *reserve_by_requirements(size_t size, const struct xm__os_place *w, unsigned flags) {
  const struct xm__win_api *api = xm__win_api();
  if (w->lead != 0 || !api || !api->virtual_alloc2) return NULL;
  MEM_ADDRESS_REQUIREMENTS req;
  req.LowestStartingAddress = (void *)w->lo;
  req.HighestEndingAddress = (void *)(w->hi - 1); /* inclusive, one less than a granule boundary */
  req.Alignment = w->align;
  MEM_EXTENDED_PARAMETER param;
  memset(&param, 0, sizeof param);
  param.Type = MemExtendedParameterAddressRequirements;
  param.Pointer = &req;
  ULONG type = MEM_RESERVE | ((flags & XM__RESERVE_PLACEHOLDER) ? MEM_RESERVE_PLACEHOLDER : 0);
  /* Not a fault-injection point: any failure here only means "walk instead". */
  void *p = api->virtual_alloc2(GetCurrentProcess(), NULL, size, type, PAGE_NOACCESS, &param, 1);
  if (p && !inside((uintptr_t)p, size, w)) {
    VirtualFree(p, 0, MEM_RELEASE);
    p = NULL;
  }
  return p;
}

int xm__os_reserve_in(size_t size, const struct xm__os_place *w, unsigned flags, void **out) {
  void *p = reserve_by_requirements(size, w, flags);
  if (p) {
    *out = p;
    return XM_OK;
  }
  SYSTEM_INFO si;
  GetSystemInfo(&si);
  uintptr_t at = w->lo, top = (uintptr_t)si.lpMaximumApplicationAddress;
  if (at < (uintptr_t)si.lpMinimumApplicationAddress) at = (uintptr_t)si.lpMinimumApplicationAddress;
  while (at < w->hi && at <= top) {
    MEMORY_BASIC_INFORMATION mbi;
    if (VirtualQuery((void *)at, &mbi, sizeof mbi) != sizeof mbi) break;
    uintptr_t from = (uintptr_t)mbi.BaseAddress, end = from + mbi.RegionSize, base;
    if (end <= at) break; /* no progress: the query answered for something else */
    if (mbi.State == MEM_FREE) {
      uintptr_t lo = from > at ? from : at, hi = end < w->hi ? end : w->hi;
      if (aligned_base(lo, w->align, w->lead, &base) && base >= lo && base < hi && hi - base >= size) {
        p = reserve_at((void *)base, size, flags);
        if (p == (void *)base) {
          *out = p;
          return XM_OK;
        }
        if (p) {
          VirtualFree(p, 0, MEM_RELEASE);
        } else {
          DWORD last = GetLastError();
          if (last != ERROR_INVALID_ADDRESS) /* anything but "taken meanwhile" ends the walk */
            return xm__fail_os(XM_E_SYSTEM_CALL, (int)last, "VirtualAlloc(MEM_RESERVE) at a free address");
        }
      }
    }
    at = end;
  }
  return xm__fail(XM_E_NO_ADDRESS, "no free range of %zu bytes aligned to 0x%zx inside [%p, %p)", size, w->align,
                  (void *)w->lo, (void *)w->hi);
}
