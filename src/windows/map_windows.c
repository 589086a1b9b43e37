/* The Windows back end's mappings: sections and views with placement (alignment, guards, fixed
   addresses), the large-page privilege, FlushViewOfFile + FlushFileBuffers, protection, advice
   and locking. */
#include <string.h>

#include "win.h"

/* How many times a placement is retried when another thread takes the address range that was
   released between finding it and mapping there. */
#define XM__PLACEMENT_TRIES 64

static void *map_view(HANDLE section, DWORD access, uint64_t offset, size_t size, void *at) {
  if (xm__win_injected()) return NULL;
  return MapViewOfFileEx(section, access, (DWORD)(offset >> 32), (DWORD)offset, size, at);
}

void *xm__win_reserve(void *at, size_t size) {
  if (xm__win_injected()) return NULL;
  return VirtualAlloc(at, size, MEM_RESERVE, PAGE_NOACCESS);
}

static void release(void *p) {
  if (p) VirtualFree(p, 0, MEM_RELEASE);
}

/* The guard reservations of a view, from what xm__os_view records. */
static void release_guards(const struct xm__os_view *view, size_t gran) {
  if (!(view->flags & XM__WV_GUARDS)) return;
  uintptr_t start = (uintptr_t)view->reservation, end = start + view->reservation_size;
  uintptr_t after = (uintptr_t)view->base + xm__win_round_up(view->size, gran);
  if (start < (uintptr_t)view->base) release((void *)start);
  if (after < end) release((void *)after);
}

struct placement {
  HANDLE section;
  DWORD access;
  const char *map_call; /* what a failed MapViewOfFileEx is recorded as */
  uint64_t offset;
  size_t size;  /* bytes to map */
  size_t span;  /* the address space the view takes: size rounded up to the granularity */
  size_t guard; /* bytes reserved on each side (a granularity multiple), or 0 */
  size_t align; /* the base's alignment (>= the granularity) */
  bool fixed;   /* XM__OPT_FIXED_NOREPLACE: the base is at, never elsewhere, whatever at is */
  uintptr_t at;
  bool ranged; /* XM__OPT_ADDRESS_RANGE: guards and view inside [lo, hi) */
  uintptr_t lo, hi;
};

/* Maps the view with its guards at base; on failure nothing is left, the OS error is returned
   (ERROR_INVALID_ADDRESS when some of the range was taken) and *call names the call that failed. */
static DWORD map_at(const struct placement *pl, uintptr_t base, void **view, const char **call) {
  void *before = NULL, *after = NULL;
  *call = "VirtualAlloc(MEM_RESERVE) of a guard";
  if (pl->guard) {
    before = xm__win_reserve((void *)(base - pl->guard), pl->guard);
    if (!before) return GetLastError();
  }
  void *p = map_view(pl->section, pl->access, pl->offset, pl->size, (void *)base);
  if (!p) {
    DWORD e = GetLastError();
    release(before);
    *call = pl->map_call;
    return e;
  }
  if (pl->guard) {
    after = xm__win_reserve((void *)(base + pl->span), pl->guard);
    if (!after) {
      DWORD e = GetLastError();
      UnmapViewOfFile(p);
      release(before);
      return e;
    }
  }
  *view = p;
  return ERROR_SUCCESS;
}

/* Like place below, with the probe reservation found inside the range (xm__os_reserve_in). */
static int place_in_range(const struct placement *pl, void **view) {
  if (pl->span > SIZE_MAX - 2 * pl->guard) return xm__fail_overflow(pl->span, 2 * pl->guard);
  const size_t total = pl->span + 2 * pl->guard;
  struct xm__os_place where = {pl->lo, pl->hi, pl->align, pl->guard};
  DWORD e = ERROR_INVALID_ADDRESS;
  const char *call = pl->map_call;
  for (int attempt = 0; attempt < XM__PLACEMENT_TRIES; attempt++) {
    void *probe = NULL;
    int rc = xm__os_reserve_in(total, &where, 0, &probe);
    if (rc) return rc;
    release(probe);
    e = map_at(pl, (uintptr_t)probe + pl->guard, view, &call);
    if (e == ERROR_SUCCESS) return XM_OK;
    if (e != ERROR_INVALID_ADDRESS) break; /* a real failure, not a race */
  }
  return xm__fail_os(XM_E_SYSTEM_CALL, (int)e, call);
}

/* Finds room for guard + span + guard with the base aligned, maps there, and retries when another
   thread takes the range between the probe reservation's release and the mapping. */
static int place(const struct placement *pl, void **view) {
  const size_t gran = xm__granularity();
  if (pl->fixed) {
    /* Windows guards take whole granules (more than the front end's pages), and an address of 0
       would read as "anywhere" to MapViewOfFileEx and VirtualAlloc. */
    if (pl->at <= pl->guard || UINTPTR_MAX - pl->at < pl->span + pl->guard)
      return xm__fail(XM_E_INVALID_ADDRESS, "no room for %zu guard bytes around the fixed address %p", pl->guard,
                      (void *)pl->at);
    const char *call;
    DWORD e = map_at(pl, pl->at, view, &call);
    if (e == ERROR_SUCCESS) return XM_OK;
    if (e == ERROR_INVALID_ADDRESS) return xm__fail_os(XM_E_EXISTS, (int)e, "MapViewOfFileEx at a fixed address");
    return xm__fail_os(XM_E_SYSTEM_CALL, (int)e, call);
  }
  if (pl->ranged) return place_in_range(pl, view);
  if (pl->guard == 0 && pl->align <= gran) {
    void *p = map_view(pl->section, pl->access, pl->offset, pl->size, NULL);
    if (!p) return xm__win_fail_last(pl->map_call);
    *view = p;
    return XM_OK;
  }
  size_t slack = pl->align - gran, total = pl->span;
  if (total > SIZE_MAX - slack || total + slack > SIZE_MAX - 2 * pl->guard)
    return xm__fail_overflow(pl->span, slack + 2 * pl->guard);
  total += slack + 2 * pl->guard;
  DWORD e = ERROR_INVALID_ADDRESS;
  const char *call = pl->map_call;
  for (int attempt = 0; attempt < XM__PLACEMENT_TRIES; attempt++) {
    void *probe = xm__win_reserve(NULL, total);
    if (!probe) return xm__win_fail_last("VirtualAlloc");
    uintptr_t base = ((uintptr_t)probe + pl->guard + pl->align - 1) & ~(uintptr_t)(pl->align - 1);
    release(probe);
    e = map_at(pl, base, view, &call);
    if (e == ERROR_SUCCESS) return XM_OK;
    if (e != ERROR_INVALID_ADDRESS) break; /* a real failure, not a race */
  }
  return xm__fail_os(XM_E_SYSTEM_CALL, (int)e, call);
}

/* SeLockMemoryPrivilege must be held and enabled for SEC_LARGE_PAGES. */
int xm__win_enable_lock_memory_privilege(void) {
  const struct xm__win_api *api = xm__win_api();
  if (!api) return xm__win_fail_last("LoadLibraryExW(advapi32.dll)");
  if (!api->open_process_token || !api->adjust_token_privileges)
    return xm__fail(XM_E_NOT_IMPLEMENTED, "large pages need advapi32's token functions, which are missing");
  HANDLE token;
  if (xm__win_injected() ||
      !api->open_process_token(GetCurrentProcess(), TOKEN_ADJUST_PRIVILEGES | TOKEN_QUERY, &token))
    return xm__win_fail_last("OpenProcessToken");
  xm__test_handle_opened(token);
  TOKEN_PRIVILEGES tp;
  tp.PrivilegeCount = 1;
  tp.Privileges[0].Luid.LowPart = 4; /* SE_LOCK_MEMORY_PRIVILEGE, a fixed well-known LUID */
  tp.Privileges[0].Luid.HighPart = 0;
  tp.Privileges[0].Attributes = SE_PRIVILEGE_ENABLED;
  BOOL ok = xm__win_injected() ? FALSE : api->adjust_token_privileges(token, FALSE, &tp, 0, NULL, NULL);
  DWORD e = GetLastError(); /* ERROR_NOT_ALL_ASSIGNED with ok == TRUE: the account lacks it */
  xm__win_close(token);
  if (!ok) return xm__fail_os(XM_E_SYSTEM_CALL, (int)e, "AdjustTokenPrivileges(SeLockMemoryPrivilege)");
  if (e == ERROR_NOT_ALL_ASSIGNED)
    return xm__fail_os(XM_E_SYSTEM_CALL, ERROR_PRIVILEGE_NOT_HELD,
                       "AdjustTokenPrivileges: large pages need SeLockMemoryPrivilege (\"Lock pages in memory\")");
  return XM_OK;
}

/* Best effort: PrefetchVirtualMemory reads the range in where the system has it (Windows 8+). */
static void prefetch(void *addr, size_t len) {
  const struct xm__win_api *api = xm__win_api();
  if (!api || !api->prefetch_virtual_memory) return;
  xm__win_range_entry r = {addr, len};
  (void)api->prefetch_virtual_memory(GetCurrentProcess(), 1, &r, 0);
}

int xm__os_map(const struct xm__map_request *req, struct xm__os_view *view) {
  const size_t page = xm__page_size(), gran = xm__granularity();
  const bool write = (req->prot & XM_PROT_WRITE) != 0;
  const bool copy = (req->flags & XM__OPT_PRIVATE) && write;
  /* What the view (and a section of our own) is made with; the pages then get req->prot. */
  const xm_prot view_prot = xm__win_view_prot(req->prot, (req->flags & XM__OPT_EXEC_LATER) != 0);
  const bool exec = (view_prot & XM_PROT_EXEC) != 0;
  const bool own_section = req->source == XM__SOURCE_ANON || req->source == XM__SOURCE_FILE;
  /* Bytes to map: exactly what was asked (the OS maps whole pages), so that a file section does
     not reach past offset + size and grow the file further than asked. */
  size_t size = req->size;
  DWORD section_flags = SEC_COMMIT; /* for our pagefile sections: every view usable as it is */
  size_t large_page = 0;

  if (size > SIZE_MAX - 2 * gran) return xm__fail_overflow(size, gran);
  if (req->flags & XM__OPT_HUGE_PAGES) {
    if (req->source != XM__SOURCE_ANON)
      return xm__fail(XM_E_NOT_IMPLEMENTED, "%s",
                      req->source == XM__SOURCE_FILE ? "large pages need a pagefile-backed section, not a file"
                                                     : "large pages need a section created with SEC_LARGE_PAGES");
    size_t large = xm__win_large_page_minimum();
    if (large == 0) return xm__fail(XM_E_NOT_IMPLEMENTED, "this system has no large pages");
    if (req->huge_page_size != 0 && req->huge_page_size != large)
      return xm__fail(XM_E_NOT_IMPLEMENTED, "large pages here are %zu bytes, not %zu", large, req->huge_page_size);
    if (size > SIZE_MAX - 2 * large) return xm__fail_overflow(size, large);
    int rc = xm__win_enable_lock_memory_privilege();
    if (rc) return rc;
    if ((req->flags & XM__OPT_FIXED_NOREPLACE) && (uintptr_t)req->fixed_addr % large != 0)
      return xm__fail(XM_E_NOT_PAGE_ALIGNED, "a large-page view's address must be a multiple of %zu bytes", large);
    size = xm__win_round_up(size, large); /* a large-page section and its views are whole large pages */
    large_page = large;
    section_flags |= SEC_LARGE_PAGES;
  }

  struct placement pl;
  memset(&pl, 0, sizeof pl);
  pl.offset = req->offset;
  pl.size = size;
  pl.span = xm__win_round_up(size, gran);
  pl.align = req->align > gran ? req->align : gran;
  if (pl.align < large_page) pl.align = large_page; /* a large-page view starts on a large page */
  pl.fixed = (req->flags & XM__OPT_FIXED_NOREPLACE) != 0;
  pl.at = (uintptr_t)req->fixed_addr;
  pl.ranged = (req->flags & XM__OPT_ADDRESS_RANGE) != 0;
  pl.lo = req->range_lo;
  pl.hi = req->range_hi;
  if (req->guard_size > SIZE_MAX / 4) return xm__fail_overflow(size, req->guard_size);
  /* Reservations start on granularity boundaries, so each guard takes whole granules. */
  pl.guard = req->guard_size ? xm__win_round_up(req->guard_size, gran) : 0;
  /* A PROT_NONE view is mapped readable, then made PAGE_NOACCESS; Windows has no write-only
     pages, so a write-only view is read-write (the checked accessors still refuse reads). */
  pl.access = xm__win_view_access(view_prot, copy);
  pl.map_call = exec ? "MapViewOfFileEx(FILE_MAP_EXECUTE)" XM__WIN_EXEC_RIGHTS : "MapViewOfFileEx";
  if (section_flags & SEC_LARGE_PAGES) pl.access |= 0x20000000; /* FILE_MAP_LARGE_PAGES */

  HANDLE file = NULL;
  unsigned view_flags = copy ? XM__WV_COPY : 0;
  if (req->source == XM__SOURCE_FILE) {
    /* The section covers offset + size: a read-write section grows a short file, a read-only or
       copy-on-write one fails on it (the OS decides). */
    if ((uint64_t)size > (uint64_t)INT64_MAX - req->offset)
      return xm__fail(XM_E_INVALID_OFFSET, "offset %llu + size %zu is past the largest file offset",
                      (unsigned long long)req->offset, size);
    int rc = xm__win_duplicate(req->descriptor, &file); /* ours for the mapping's life: the caller may close theirs */
    if (rc) return rc;
    pl.section = xm__win_create_section(file, xm__win_page_protection(view_prot, copy), req->offset + size);
    if (!pl.section) {
      DWORD e = GetLastError();
      xm__win_close(file);
      return xm__fail_os(XM_E_SYSTEM_CALL, (int)e,
                         exec ? "CreateFileMappingW(PAGE_EXECUTE_*), which needs a file handle with FILE_EXECUTE"
                              : "CreateFileMappingW");
    }
    view_flags |= XM__WV_FILE | ((write && !copy) ? XM__WV_FLUSH_FILE : 0);
  } else if (req->source == XM__SOURCE_ANON) {
    /* Pagefile-backed, with the builder's protection (a read-only one stays zeros); executable
       (PAGE_EXECUTE_READWRITE when writable) when asked or when it may be made executable later. */
    pl.section =
        xm__win_create_section(INVALID_HANDLE_VALUE, xm__win_page_protection(view_prot, false) | section_flags, size);
    if (!pl.section) return xm__win_fail_last("CreateFileMappingW");
  } else {
    pl.section = req->descriptor; /* the caller's (or the xm_shm's) section: never closed here */
  }

  void *p = NULL;
  int rc = place(&pl, &p);
  if (own_section) xm__win_close(pl.section); /* the view keeps the section alive */
  if (rc) {
    xm__win_close(file);
    return rc;
  }

  struct xm__os_view v;
  v.base = p;
  v.size = xm__win_round_up(size, page);
  v.file = file;
  v.section = NULL;
  v.flags = view_flags;
  if (pl.guard) {
    v.reservation = (unsigned char *)p - pl.guard;
    v.reservation_size = pl.guard + pl.span + pl.guard;
    v.flags |= XM__WV_GUARDS;
  } else {
    v.reservation = p;
    v.reservation_size = v.size;
  }

  const DWORD want = xm__win_page_protection(req->prot, copy);
  if (want != xm__win_page_protection(view_prot, copy)) { /* PROT_NONE, execute-only, exec later */
    DWORD old;
    if (xm__win_injected() || !VirtualProtect(p, v.size, want, &old)) {
      int status = xm__win_fail_last("VirtualProtect");
      xm__os_unmap(&v);
      return status;
    }
  }
  if (req->prot != XM_PROT_NONE && (req->flags & XM__OPT_POPULATE)) prefetch(p, v.size);
  /* XM__OPT_DONTDUMP has no Windows equivalent for a view (minidumps leave mapped views out
     unless asked for full memory); the option is accepted and changes nothing. */
  *view = v;
  return XM_OK;
}

void xm__os_unmap(struct xm__os_view *view) {
  if (view->base) UnmapViewOfFile(view->base);
  release_guards(view, xm__granularity());
  xm__win_close(view->section);
  xm__win_close(view->file);
  view->base = view->reservation = view->section = NULL;
  view->file = NULL;
  view->size = view->reservation_size = 0;
  view->flags = 0;
}

/* External memory (no view of ours) may be any mix of views and private memory: only views
   have a file to write back to, as msync of private memory succeeds on POSIX. */
static int flush_external(void *addr, size_t len) {
  uintptr_t p = (uintptr_t)addr, end = p + len;
  while (p < end) {
    MEMORY_BASIC_INFORMATION mbi;
    if (VirtualQuery((void *)p, &mbi, sizeof mbi) != sizeof mbi) return xm__win_fail_last("VirtualQuery");
    uintptr_t region_end = (uintptr_t)mbi.BaseAddress + mbi.RegionSize;
    size_t n = (size_t)((region_end < end ? region_end : end) - p);
    if (mbi.Type == MEM_MAPPED && (xm__win_injected() || !FlushViewOfFile((void *)p, n)))
      return xm__win_fail_last("FlushViewOfFile");
    p += n;
  }
  return XM_OK;
}

int xm__os_sync(const struct xm__os_view *view, void *addr, size_t len, xm_sync mode) {
  if (len == 0) return XM_OK; /* FlushViewOfFile would take 0 as "to the end of the view" */
  if (!view) return flush_external(addr, len);
  if (xm__win_injected() || !FlushViewOfFile(addr, len)) return xm__win_fail_last("FlushViewOfFile");
  /* FlushViewOfFile only starts the write-back; the file's own flush makes it durable. It needs
     write access, and a read-only or copy-on-write mapping has nothing of its own to write. */
  if (mode == XM_SYNC_SYNC && (view->flags & XM__WV_FLUSH_FILE)) {
    if (xm__win_injected() || !FlushFileBuffers(view->file)) return xm__win_fail_last("FlushFileBuffers");
  }
  return XM_OK;
}

DWORD xm__win_page_protection(xm_prot prot, bool copy) {
  DWORD p = (prot & XM_PROT_WRITE)  ? (copy ? PAGE_WRITECOPY : PAGE_READWRITE)
            : (prot & XM_PROT_READ) ? PAGE_READONLY
                                    : PAGE_NOACCESS;
  /* PAGE_EXECUTE, _READ, _READWRITE and _WRITECOPY are the four above shifted by 4 bits */
  return (prot & XM_PROT_EXEC) ? p << 4 : p;
}

xm_prot xm__win_view_prot(xm_prot prot, bool exec_later) {
  xm_prot p = (prot & XM_PROT_WRITE) ? XM_PROT_READ_WRITE : XM_PROT_READ;
  return (exec_later || (prot & XM_PROT_EXEC)) ? p | XM_PROT_EXEC : p;
}

DWORD xm__win_view_access(xm_prot view_prot, bool copy) {
  DWORD a = (view_prot & XM_PROT_WRITE) ? (copy ? FILE_MAP_COPY : FILE_MAP_WRITE) : FILE_MAP_READ;
  return (view_prot & XM_PROT_EXEC) ? a | FILE_MAP_EXECUTE : a;
}

/* Execute needs a view mapped with execute rights: the front end never raises a protection above
   the one built, and a view built executable or exec-later has them. */
int xm__os_protect(const struct xm__os_view *view, void *addr, size_t len, xm_prot prot) {
  DWORD old;
  const bool copy = view && (view->flags & XM__WV_COPY);
  if (xm__win_injected() || !VirtualProtect(addr, len, xm__win_page_protection(prot, copy), &old))
    return xm__win_fail_last("VirtualProtect");
  return XM_OK;
}

int xm__os_advise(const struct xm__os_view *view, void *addr, size_t len, xm_advice advice) {
  switch (advice) {
  case XM_ADVICE_WILLNEED: {
    const struct xm__win_api *api = xm__win_api();
    if (!api) return xm__win_fail_last("LoadLibraryExW(advapi32.dll)");
    if (!api->prefetch_virtual_memory)
      return xm__fail(XM_E_NOT_IMPLEMENTED, "MADV_WILLNEED needs PrefetchVirtualMemory (Windows 8 or later)");
    xm__win_range_entry r = {addr, len};
    if (xm__win_injected() || !api->prefetch_virtual_memory(GetCurrentProcess(), 1, &r, 0))
      return xm__win_fail_last("PrefetchVirtualMemory");
    return XM_OK;
  }
  case XM_ADVICE_DONTNEED:
    /* MEM_RESET works on private and pagefile-backed memory only; it fails on views of files. */
    if (view && (view->flags & XM__WV_FILE))
      return xm__fail(XM_E_NOT_IMPLEMENTED, "MADV_DONTNEED on a file mapping: VirtualAlloc(MEM_RESET) works only "
                                            "on pagefile-backed memory");
    if (xm__win_injected() || !VirtualAlloc(addr, len, MEM_RESET, PAGE_NOACCESS))
      return xm__win_fail_last("VirtualAlloc(MEM_RESET)");
    return XM_OK;
  default: return xm__fail(XM_E_NOT_IMPLEMENTED, "MADV_%s has no Windows equivalent", xm__advice_name(advice));
  }
}

/* VirtualLock locks at once (there is no lock-on-fault), bounded by the working-set quota. */
int xm__os_lock(void *addr, size_t len) {
  if (xm__win_injected() || !VirtualLock(addr, len)) return xm__win_fail_last("VirtualLock");
  return XM_OK;
}

int xm__os_unlock(void *addr, size_t len) {
  /* munlock of unlocked pages succeeds; VirtualUnlock says ERROR_NOT_LOCKED: the same outcome. */
  if (xm__win_injected() || !VirtualUnlock(addr, len)) {
    if (GetLastError() == ERROR_NOT_LOCKED) return XM_OK;
    return xm__win_fail_last("VirtualUnlock");
  }
  return XM_OK;
}
