/* The Windows back end of src/os.h: sections, views, DuplicateHandle, FlushViewOfFile + FlushFileBuffers. */
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <windows.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* Back-end bits of xm__os_view.flags. */
enum {
  XM__WV_FILE = 1u << 0,       /* a view of a file the caller gave (view->file is our duplicate) */
  XM__WV_FLUSH_FILE = 1u << 1, /* shared and writable: msync must also FlushFileBuffers(view->file) */
  XM__WV_COPY = 1u << 2,       /* copy-on-write view (FILE_MAP_COPY): writable pages are PAGE_WRITECOPY */
  XM__WV_GUARDS = 1u << 3,     /* view->reservation holds PAGE_NOACCESS reservations around the view */
};

/* How many times a placement is retried when another thread takes the address range that was
   released between finding it and mapping there. */
#define XM__PLACEMENT_TRIES 64

/* ---- handle accounting (test builds) -------------------------------------------------------- */
/* GetProcessHandleCount returns 0 under Wine 8, so leak tests count the handles this back end
   creates and has not closed yet. Only handles it made are counted: closing an adopted handle
   (xm_shm_from_descriptor) does not change the count. */
#ifdef XMMAP_TEST_HOOKS
static SRWLOCK made_lock = SRWLOCK_INIT;
static HANDLE *made;
static size_t made_count, made_cap;

XM_API long xm__test_open_handles(void);
XM_API long xm__test_open_handles(void) {
  AcquireSRWLockShared(&made_lock);
  long n = (long)made_count;
  ReleaseSRWLockShared(&made_lock);
  return n;
}
static void count_open(HANDLE h) {
  AcquireSRWLockExclusive(&made_lock);
  if (made_count == made_cap) {
    size_t cap = made_cap ? 2 * made_cap : 64;
    HANDLE *grown = realloc(made, cap * sizeof *grown);
    if (grown) {
      made = grown;
      made_cap = cap;
    }
  }
  if (made_count < made_cap) made[made_count++] = h;
  ReleaseSRWLockExclusive(&made_lock);
}
static void count_close(HANDLE h) {
  AcquireSRWLockExclusive(&made_lock);
  for (size_t i = 0; i < made_count; i++) {
    if (made[i] == h) {
      made[i] = made[--made_count];
      break;
    }
  }
  ReleaseSRWLockExclusive(&made_lock);
}
#else
static void count_open(HANDLE h) { (void)h; }
static void count_close(HANDLE h) { (void)h; }
#endif

static bool is_invalid_handle(HANDLE h) { return h == NULL || h == INVALID_HANDLE_VALUE; }

static void close_handle(HANDLE h) {
  if (is_invalid_handle(h)) return;
  if (CloseHandle(h)) count_close(h);
}

/* The test build's fault-injection seam: act as if the next OS call failed. */
static bool injected(void) {
  int e;
  if (!xm__os_inject_failure(&e)) return false;
  SetLastError((DWORD)e);
  return true;
}

static int fail_last(const char *call) { return xm__fail_os(XM_E_SYSTEM_CALL, (int)GetLastError(), call); }

static int fail_not_implemented(const char *what) {
  return xm__fail(XM_E_NOT_IMPLEMENTED, "%s: %s", xm_strerror(XM_E_NOT_IMPLEMENTED), what);
}

static size_t round_up(size_t v, size_t unit) { return (v + unit - 1) & ~(unit - 1); }

/* ---- optional APIs, resolved once at run time ------------------------------------------------ */
/* Resolved with GetProcAddress so that the library loads where they are missing (Windows 7, Wine)
   and so that mingw-w64's import libraries need not know them. */
typedef struct {
  void *VirtualAddress;
  SIZE_T NumberOfBytes;
} xm__range_entry; /* WIN32_MEMORY_RANGE_ENTRY */
typedef BOOL(WINAPI *prefetch_fn)(HANDLE, ULONG_PTR, xm__range_entry *, ULONG);
typedef struct {
  void *BaseAddress;
  ULONG AllocationAttributes;
  LARGE_INTEGER MaximumSize;
} xm__section_basic_information; /* SECTION_BASIC_INFORMATION */
typedef LONG(NTAPI *query_section_fn)(HANDLE, int, void *, SIZE_T, SIZE_T *);
typedef BOOL(WINAPI *open_token_fn)(HANDLE, DWORD, HANDLE *);
typedef BOOL(WINAPI *adjust_privileges_fn)(HANDLE, BOOL, TOKEN_PRIVILEGES *, DWORD, TOKEN_PRIVILEGES *, DWORD *);

static struct {
  prefetch_fn prefetch;
  query_section_fn query_section;
  open_token_fn open_token;
  adjust_privileges_fn adjust_privileges;
} api;
static INIT_ONCE api_once = INIT_ONCE_STATIC_INIT;

/* GetProcAddress returns a generic function pointer; going through void (*)(void) keeps
   -Wcast-function-type quiet, and the caller's type is the documented prototype. */
typedef void (*generic_fn)(void);
static generic_fn lookup(HMODULE module, const char *name) {
  return module ? (generic_fn)GetProcAddress(module, name) : NULL;
}

static BOOL CALLBACK resolve_api(INIT_ONCE *once, void *param, void **context) {
  (void)once;
  (void)param;
  (void)context;
  HMODULE kernel32 = GetModuleHandleW(L"kernel32.dll");
  HMODULE kernelbase = GetModuleHandleW(L"kernelbase.dll");
  HMODULE ntdll = GetModuleHandleW(L"ntdll.dll");
  generic_fn f = lookup(kernel32, "PrefetchVirtualMemory");
  if (!f) f = lookup(kernelbase, "PrefetchVirtualMemory");
  api.prefetch = (prefetch_fn)f;
  api.query_section = (query_section_fn)lookup(ntdll, "NtQuerySection");
  return TRUE;
}

static void resolve(void) { InitOnceExecuteOnce(&api_once, resolve_api, NULL, NULL); }

/* Token functions live in advapi32, which not every program links: loaded (from System32 only)
   the first time large pages are asked for, never before. */
static INIT_ONCE token_api_once = INIT_ONCE_STATIC_INIT;
static BOOL CALLBACK resolve_token_api(INIT_ONCE *once, void *param, void **context) {
  (void)once;
  (void)param;
  (void)context;
  HMODULE advapi32 = GetModuleHandleW(L"advapi32.dll");
  if (!advapi32) advapi32 = LoadLibraryExW(L"advapi32.dll", NULL, 0x00000800 /* LOAD_LIBRARY_SEARCH_SYSTEM32 */);
  api.open_token = (open_token_fn)lookup(advapi32, "OpenProcessToken");
  api.adjust_privileges = (adjust_privileges_fn)lookup(advapi32, "AdjustTokenPrivileges");
  return TRUE;
}

/* ---- facts ---------------------------------------------------------------------------------- */
size_t xm__os_page_size(void) {
  SYSTEM_INFO si;
  GetNativeSystemInfo(&si);
  return si.dwPageSize ? (size_t)si.dwPageSize : 4096;
}

size_t xm__os_granularity(void) {
  SYSTEM_INFO si;
  GetNativeSystemInfo(&si);
  return si.dwAllocationGranularity ? (size_t)si.dwAllocationGranularity : 65536;
}

const char *xm__os_backend_name(void) { return "windows"; }
xm_descriptor xm__os_no_descriptor(void) { return NULL; }
int xm__os_last_error(void) { return (int)GetLastError(); }

size_t xm__os_cacheline(const char **source) {
  *source = NULL;
  DWORD len = 0;
  if (GetLogicalProcessorInformation(NULL, &len) || GetLastError() != ERROR_INSUFFICIENT_BUFFER || len == 0)
    return 0;
  SYSTEM_LOGICAL_PROCESSOR_INFORMATION *info = malloc(len);
  if (!info) return 0;
  size_t line = 0;
  if (GetLogicalProcessorInformation(info, &len)) {
    for (size_t i = 0; i < len / sizeof *info && line == 0; i++) {
      const CACHE_DESCRIPTOR *c = &info[i].Cache;
      if (info[i].Relationship == RelationCache && c->Level == 1 && (c->Type == CacheData || c->Type == CacheUnified))
        line = c->LineSize;
    }
  }
  free(info);
  if (line) *source = "GetLogicalProcessorInformation";
  return line;
}

void xm__os_error_text(int os_error, char *buf, size_t len) {
  if (len == 0) return;
  DWORD n = FormatMessageA(FORMAT_MESSAGE_FROM_SYSTEM | FORMAT_MESSAGE_IGNORE_INSERTS, NULL, (DWORD)os_error,
                           0, buf, len > 0xffff ? 0xffff : (DWORD)len, NULL);
  if (n == 0) {
    snprintf(buf, len, "Windows error %d", os_error);
    return;
  }
  size_t end = strnlen(buf, len);
  while (end > 0 && (buf[end - 1] == '\r' || buf[end - 1] == '\n' || buf[end - 1] == '.' || buf[end - 1] == ' '))
    end--;
  buf[end] = '\0';
}

size_t xm__os_thp_size(void) { return 0; }

/* ---- handles -------------------------------------------------------------------------------- */
/* A non-inheritable duplicate with the same access rights. */
static int duplicate(HANDLE h, HANDLE *out) {
  HANDLE self = GetCurrentProcess();
  if (is_invalid_handle(h)) /* INVALID_HANDLE_VALUE would duplicate the current-process pseudo-handle */
    return xm__fail_os(XM_E_SYSTEM_CALL, ERROR_INVALID_HANDLE, "DuplicateHandle");
  if (injected() || !DuplicateHandle(self, h, self, out, 0, FALSE, DUPLICATE_SAME_ACCESS))
    return fail_last("DuplicateHandle");
  count_open(*out);
  return XM_OK;
}

int xm__os_check_descriptor(enum xm__source source, xm_descriptor d) {
  if (source == XM__SOURCE_ANON) return XM_OK;
  /* Validated on the handle itself: Wine's CreateFileMapping accepts a NULL file handle. */
  HANDLE dup;
  int rc = duplicate(d, &dup);
  if (rc) return rc;
  close_handle(dup);
  return XM_OK;
}

/* The size of a section: NtQuerySection (needs SECTION_QUERY access), else the size of a view of
   all of it (page-rounded). */
static int section_size(HANDLE section, uint64_t *size) {
  resolve();
  if (api.query_section) {
    /* Not a fault-injection point: its failure is not an error, the fallback below takes over. */
    xm__section_basic_information info;
    if (api.query_section(section, 0 /* SectionBasicInformation */, &info, sizeof info, NULL) >= 0) {
      *size = (uint64_t)info.MaximumSize.QuadPart;
      return XM_OK;
    }
  }
  void *p = injected() ? NULL : MapViewOfFile(section, FILE_MAP_READ, 0, 0, 0);
  if (!p) return fail_last("MapViewOfFile");
  MEMORY_BASIC_INFORMATION mbi;
  SIZE_T got = VirtualQuery(p, &mbi, sizeof mbi);
  DWORD e = GetLastError();
  UnmapViewOfFile(p);
  if (!got) return xm__fail_os(XM_E_SYSTEM_CALL, (int)e, "VirtualQuery");
  *size = (uint64_t)mbi.RegionSize;
  return XM_OK;
}

int xm__os_descriptor_size(enum xm__source source, xm_descriptor d, uint64_t *size) {
  if (is_invalid_handle(d)) return xm__fail_os(XM_E_SYSTEM_CALL, ERROR_INVALID_HANDLE, "GetFileSizeEx");
  if (source == XM__SOURCE_FILE) {
    LARGE_INTEGER li;
    if (injected() || !GetFileSizeEx(d, &li)) return fail_last("GetFileSizeEx");
    *size = li.QuadPart > 0 ? (uint64_t)li.QuadPart : 0;
    return XM_OK;
  }
  return section_size(d, size);
}

int xm__os_dup(xm_descriptor d, xm_descriptor *out) { return duplicate(d, out); }

void xm__os_close(xm_descriptor d) { close_handle(d); }

/* ---- mappings ------------------------------------------------------------------------------- */
/* A new section, never inheritable (NULL security attributes). */
static HANDLE create_section(HANDLE file, DWORD protect, uint64_t max_size) {
  if (injected()) return NULL;
  HANDLE h = CreateFileMappingW(file, NULL, protect, (DWORD)(max_size >> 32), (DWORD)max_size, NULL);
  if (h) count_open(h);
  return h;
}

static void *map_view(HANDLE section, DWORD access, uint64_t offset, size_t size, void *at) {
  if (injected()) return NULL;
  return MapViewOfFileEx(section, access, (DWORD)(offset >> 32), (DWORD)offset, size, at);
}

static void *reserve(void *at, size_t size) {
  if (injected()) return NULL;
  return VirtualAlloc(at, size, MEM_RESERVE, PAGE_NOACCESS);
}

static void release(void *p) {
  if (p) VirtualFree(p, 0, MEM_RELEASE);
}

/* The guard reservations of a view, from what xm__os_view records. */
static void release_guards(const struct xm__os_view *view, size_t gran) {
  if (!(view->flags & XM__WV_GUARDS)) return;
  uintptr_t start = (uintptr_t)view->reservation, end = start + view->reservation_size;
  uintptr_t after = (uintptr_t)view->base + round_up(view->size, gran);
  if (start < (uintptr_t)view->base) release((void *)start);
  if (after < end) release((void *)after);
}

struct placement {
  HANDLE section;
  DWORD access;
  uint64_t offset;
  size_t size;     /* bytes to map */
  size_t span;     /* the address space the view takes: size rounded up to the granularity */
  size_t guard;    /* bytes reserved on each side (a granularity multiple), or 0 */
  size_t align;    /* the base's alignment (>= the granularity) */
  void *fixed;     /* exact base, or NULL */
};

/* Maps the view with its guards at base; on failure nothing is left and the OS error is returned
   (ERROR_INVALID_ADDRESS when some of the range was taken). */
static DWORD map_at(const struct placement *pl, uintptr_t base, void **view) {
  void *before = NULL, *after = NULL;
  if (pl->guard) {
    before = reserve((void *)(base - pl->guard), pl->guard);
    if (!before) return GetLastError();
  }
  void *p = map_view(pl->section, pl->access, pl->offset, pl->size, (void *)base);
  if (!p) {
    DWORD e = GetLastError();
    release(before);
    return e;
  }
  if (pl->guard) {
    after = reserve((void *)(base + pl->span), pl->guard);
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

/* Finds room for guard + span + guard with the base aligned, maps there, and retries when another
   thread takes the range between the probe reservation's release and the mapping. */
static int place(const struct placement *pl, void **view) {
  const size_t gran = xm__granularity();
  if (pl->fixed) {
    if ((uintptr_t)pl->fixed < pl->guard || UINTPTR_MAX - (uintptr_t)pl->fixed < pl->span + pl->guard)
      return xm__fail(XM_E_INVALID_ADDRESS, "%s: no room for the guard pages around %p",
                      xm_strerror(XM_E_INVALID_ADDRESS), pl->fixed);
    DWORD e = map_at(pl, (uintptr_t)pl->fixed, view);
    if (e == ERROR_SUCCESS) return XM_OK;
    if (e == ERROR_INVALID_ADDRESS) return xm__fail_os(XM_E_EXISTS, (int)e, "MapViewOfFileEx at a fixed address");
    return xm__fail_os(XM_E_SYSTEM_CALL, (int)e, pl->guard ? "MapViewOfFileEx / VirtualAlloc" : "MapViewOfFileEx");
  }
  if (pl->guard == 0 && pl->align <= gran) {
    void *p = map_view(pl->section, pl->access, pl->offset, pl->size, NULL);
    if (!p) return fail_last("MapViewOfFileEx");
    *view = p;
    return XM_OK;
  }
  size_t slack = pl->align - gran, total = pl->span;
  if (total > SIZE_MAX - slack || total + slack > SIZE_MAX - 2 * pl->guard)
    return xm__fail(XM_E_OVERFLOW, "address 0x%zx offset by 0x%zx would overflow", pl->span, slack + 2 * pl->guard);
  total += slack + 2 * pl->guard;
  DWORD e = ERROR_INVALID_ADDRESS;
  for (int attempt = 0; attempt < XM__PLACEMENT_TRIES; attempt++) {
    void *probe = reserve(NULL, total);
    if (!probe) return fail_last("VirtualAlloc");
    uintptr_t base = ((uintptr_t)probe + pl->guard + pl->align - 1) & ~(uintptr_t)(pl->align - 1);
    release(probe);
    e = map_at(pl, base, view);
    if (e == ERROR_SUCCESS) return XM_OK;
    if (e != ERROR_INVALID_ADDRESS) break; /* a real failure, not a race */
  }
  return xm__fail_os(XM_E_SYSTEM_CALL, (int)e, pl->guard ? "MapViewOfFileEx / VirtualAlloc" : "MapViewOfFileEx");
}

/* SeLockMemoryPrivilege must be held and enabled for SEC_LARGE_PAGES. */
static int enable_lock_memory_privilege(void) {
  InitOnceExecuteOnce(&token_api_once, resolve_token_api, NULL, NULL);
  if (!api.open_token || !api.adjust_privileges)
    return fail_not_implemented("large pages need advapi32's token functions, which are missing");
  HANDLE token;
  if (injected() || !api.open_token(GetCurrentProcess(), TOKEN_ADJUST_PRIVILEGES | TOKEN_QUERY, &token))
    return fail_last("OpenProcessToken");
  count_open(token);
  TOKEN_PRIVILEGES tp;
  tp.PrivilegeCount = 1;
  tp.Privileges[0].Luid.LowPart = 4; /* SE_LOCK_MEMORY_PRIVILEGE, a fixed well-known LUID */
  tp.Privileges[0].Luid.HighPart = 0;
  tp.Privileges[0].Attributes = SE_PRIVILEGE_ENABLED;
  BOOL ok = injected() ? FALSE : api.adjust_privileges(token, FALSE, &tp, 0, NULL, NULL);
  DWORD e = GetLastError(); /* ERROR_NOT_ALL_ASSIGNED with ok == TRUE: the account lacks it */
  close_handle(token);
  if (!ok) return xm__fail_os(XM_E_SYSTEM_CALL, (int)e, "AdjustTokenPrivileges(SeLockMemoryPrivilege)");
  if (e == ERROR_NOT_ALL_ASSIGNED)
    return xm__fail_os(XM_E_SYSTEM_CALL, ERROR_PRIVILEGE_NOT_HELD,
                       "AdjustTokenPrivileges: large pages need SeLockMemoryPrivilege (\"Lock pages in memory\")");
  return XM_OK;
}

/* Best effort: PrefetchVirtualMemory reads the range in where the system has it (Windows 8+). */
static void prefetch(void *addr, size_t len) {
  resolve();
  if (!api.prefetch) return;
  xm__range_entry r = {addr, len};
  (void)api.prefetch(GetCurrentProcess(), 1, &r, 0);
}

int xm__os_map(const struct xm__map_request *req, struct xm__os_view *view) {
  const size_t page = xm__page_size(), gran = xm__granularity();
  const bool write = (req->prot & XM_PROT_WRITE) != 0;
  const bool copy = (req->flags & XM__OPT_PRIVATE) && write;
  const bool own_section = req->source == XM__SOURCE_ANON || req->source == XM__SOURCE_FILE;
  /* Bytes to map: exactly what was asked (the OS maps whole pages), so that a file section does
     not reach past offset + size and grow the file further than asked. */
  size_t size = req->size;
  DWORD section_flags = SEC_COMMIT; /* for our pagefile sections: every view usable as it is */
  size_t large_page = 0;

  if (size > SIZE_MAX - 2 * gran) return xm__fail(XM_E_OVERFLOW, "address 0x%zx offset by 0x%zx would overflow", size, gran);
  if (req->flags & XM__OPT_HUGE_PAGES) {
    if (req->source != XM__SOURCE_ANON)
      return fail_not_implemented(req->source == XM__SOURCE_FILE
                                      ? "large pages need a pagefile-backed section, not a file"
                                      : "large pages need a section created with SEC_LARGE_PAGES");
    size_t large = GetLargePageMinimum();
    if (large == 0) return fail_not_implemented("this system has no large pages");
    if (req->huge_page_size != 0 && req->huge_page_size != large)
      return xm__fail(XM_E_NOT_IMPLEMENTED, "%s: large pages here are %zu bytes, not %zu",
                      xm_strerror(XM_E_NOT_IMPLEMENTED), large, req->huge_page_size);
    if (size > SIZE_MAX - 2 * large) return xm__fail(XM_E_OVERFLOW, "address 0x%zx offset by 0x%zx would overflow", size, large);
    int rc = enable_lock_memory_privilege();
    if (rc) return rc;
    if ((req->flags & XM__OPT_FIXED_NOREPLACE) && (uintptr_t)req->fixed_addr % large != 0)
      return xm__fail(XM_E_NOT_PAGE_ALIGNED, "%s: a large-page view's address must be a multiple of %zu bytes",
                      xm_strerror(XM_E_NOT_PAGE_ALIGNED), large);
    size = round_up(size, large); /* a large-page section and its views are whole large pages */
    large_page = large;
    section_flags |= SEC_LARGE_PAGES;
  }

  struct placement pl;
  memset(&pl, 0, sizeof pl);
  pl.offset = req->offset;
  pl.size = size;
  pl.span = round_up(size, gran);
  pl.align = req->align > gran ? req->align : gran;
  if (pl.align < large_page) pl.align = large_page; /* a large-page view starts on a large page */
  pl.fixed = (req->flags & XM__OPT_FIXED_NOREPLACE) ? req->fixed_addr : NULL;
  if (req->guard_size > SIZE_MAX / 4)
    return xm__fail(XM_E_OVERFLOW, "address 0x%zx offset by 0x%zx would overflow", size, req->guard_size);
  /* Reservations start on granularity boundaries, so each guard takes whole granules. */
  pl.guard = req->guard_size ? round_up(req->guard_size, gran) : 0;
  /* A PROT_NONE view is mapped readable, then made PAGE_NOACCESS; Windows has no write-only
     pages, so a write-only view is read-write (the checked accessors still refuse reads). */
  pl.access = copy ? FILE_MAP_COPY : write ? FILE_MAP_WRITE : FILE_MAP_READ;
  if (section_flags & SEC_LARGE_PAGES) pl.access |= 0x20000000; /* FILE_MAP_LARGE_PAGES */

  HANDLE file = NULL;
  unsigned view_flags = copy ? XM__WV_COPY : 0;
  if (req->source == XM__SOURCE_FILE) {
    /* The section covers offset + size: a read-write section grows a short file, a read-only or
       copy-on-write one fails on it (the OS decides). */
    if ((uint64_t)size > (uint64_t)INT64_MAX - req->offset)
      return xm__fail(XM_E_INVALID_OFFSET, "%s: offset %llu + size %zu is past the largest file offset",
                      xm_strerror(XM_E_INVALID_OFFSET), (unsigned long long)req->offset, size);
    int rc = duplicate(req->descriptor, &file); /* ours for the mapping's life: the caller may close theirs */
    if (rc) return rc;
    DWORD protect = copy ? PAGE_WRITECOPY : write ? PAGE_READWRITE : PAGE_READONLY;
    pl.section = create_section(file, protect, req->offset + size);
    if (!pl.section) {
      DWORD e = GetLastError();
      close_handle(file);
      return xm__fail_os(XM_E_SYSTEM_CALL, (int)e, "CreateFileMappingW");
    }
    view_flags |= XM__WV_FILE | ((write && !copy) ? XM__WV_FLUSH_FILE : 0);
  } else if (req->source == XM__SOURCE_ANON) {
    /* Pagefile-backed, with the builder's protection (a read-only one stays zeros). */
    pl.section = create_section(INVALID_HANDLE_VALUE, (write ? PAGE_READWRITE : PAGE_READONLY) | section_flags, size);
    if (!pl.section) return fail_last("CreateFileMappingW");
  } else {
    pl.section = req->descriptor; /* the caller's (or the xm_shm's) section: never closed here */
  }

  void *p = NULL;
  int rc = place(&pl, &p);
  if (own_section) close_handle(pl.section); /* the view keeps the section alive */
  if (rc) {
    close_handle(file);
    return rc;
  }

  struct xm__os_view v;
  v.base = p;
  v.size = round_up(size, page);
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

  if (req->prot == XM_PROT_NONE) {
    DWORD old;
    if (injected() || !VirtualProtect(p, v.size, PAGE_NOACCESS, &old)) {
      int status = fail_last("VirtualProtect");
      xm__os_unmap(&v);
      return status;
    }
  } else if (req->flags & XM__OPT_POPULATE) {
    prefetch(p, v.size);
  }
  /* XM__OPT_DONTDUMP has no Windows equivalent for a view (minidumps leave mapped views out
     unless asked for full memory); the option is accepted and changes nothing. */
  *view = v;
  return XM_OK;
}

void xm__os_unmap(struct xm__os_view *view) {
  if (view->base) UnmapViewOfFile(view->base);
  release_guards(view, xm__granularity());
  close_handle(view->section);
  close_handle(view->file);
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
    if (VirtualQuery((void *)p, &mbi, sizeof mbi) != sizeof mbi) return fail_last("VirtualQuery");
    uintptr_t region_end = (uintptr_t)mbi.BaseAddress + mbi.RegionSize;
    size_t n = (size_t)((region_end < end ? region_end : end) - p);
    if (mbi.Type == MEM_MAPPED && (injected() || !FlushViewOfFile((void *)p, n))) return fail_last("FlushViewOfFile");
    p += n;
  }
  return XM_OK;
}

int xm__os_sync(const struct xm__os_view *view, void *addr, size_t len, xm_sync mode) {
  if (len == 0) return XM_OK; /* FlushViewOfFile would take 0 as "to the end of the view" */
  if (!view) return flush_external(addr, len);
  if (injected() || !FlushViewOfFile(addr, len)) return fail_last("FlushViewOfFile");
  /* FlushViewOfFile only starts the write-back; the file's own flush makes it durable. It needs
     write access, and a read-only or copy-on-write mapping has nothing of its own to write. */
  if (mode == XM_SYNC_SYNC && (view->flags & XM__WV_FLUSH_FILE)) {
    if (injected() || !FlushFileBuffers(view->file)) return fail_last("FlushFileBuffers");
  }
  return XM_OK;
}

static DWORD page_protection(const struct xm__os_view *view, xm_prot prot) {
  if (prot & XM_PROT_WRITE) return (view && (view->flags & XM__WV_COPY)) ? PAGE_WRITECOPY : PAGE_READWRITE;
  return (prot & XM_PROT_READ) ? PAGE_READONLY : PAGE_NOACCESS;
}

int xm__os_protect(const struct xm__os_view *view, void *addr, size_t len, xm_prot prot) {
  DWORD old;
  if (injected() || !VirtualProtect(addr, len, page_protection(view, prot), &old)) return fail_last("VirtualProtect");
  return XM_OK;
}

int xm__os_advise(const struct xm__os_view *view, void *addr, size_t len, xm_advice advice) {
  switch (advice) {
  case XM_ADVICE_WILLNEED: {
    resolve();
    if (!api.prefetch) return fail_not_implemented("MADV_WILLNEED needs PrefetchVirtualMemory (Windows 8 or later)");
    xm__range_entry r = {addr, len};
    if (injected() || !api.prefetch(GetCurrentProcess(), 1, &r, 0)) return fail_last("PrefetchVirtualMemory");
    return XM_OK;
  }
  case XM_ADVICE_DONTNEED:
    /* MEM_RESET works on private and pagefile-backed memory only; it fails on views of files. */
    if (view && (view->flags & XM__WV_FILE))
      return fail_not_implemented("MADV_DONTNEED on a file mapping: VirtualAlloc(MEM_RESET) works only on "
                                  "pagefile-backed memory");
    if (injected() || !VirtualAlloc(addr, len, MEM_RESET, PAGE_NOACCESS)) return fail_last("VirtualAlloc(MEM_RESET)");
    return XM_OK;
  default:
    return xm__fail(XM_E_NOT_IMPLEMENTED, "%s: MADV_%s has no Windows equivalent", xm_strerror(XM_E_NOT_IMPLEMENTED),
                    xm__advice_name(advice));
  }
}

/* VirtualLock locks at once (there is no lock-on-fault), bounded by the working-set quota. */
int xm__os_lock(void *addr, size_t len) {
  if (injected() || !VirtualLock(addr, len)) return fail_last("VirtualLock");
  return XM_OK;
}

int xm__os_unlock(void *addr, size_t len) {
  /* munlock of unlocked pages succeeds; VirtualUnlock says ERROR_NOT_LOCKED: the same outcome. */
  if (injected() || !VirtualUnlock(addr, len)) {
    if (GetLastError() == ERROR_NOT_LOCKED) return XM_OK;
    return fail_last("VirtualUnlock");
  }
  return XM_OK;
}

/* ---- shared memory -------------------------------------------------------------------------- */
int xm__os_shm_create(const char *name, uint64_t size, xm_descriptor *out) {
  /* Unnamed: a name would put the section in a session-wide namespace where others can open it. */
  (void)name;
  /* PAGE_READWRITE (never execute), committed so every holder's views are usable as they are;
     size 0 is refused by the OS. */
  HANDLE h = create_section(INVALID_HANDLE_VALUE, PAGE_READWRITE | SEC_COMMIT, size);
  if (!h) return fail_last("CreateFileMappingW");
  *out = h;
  return XM_OK;
}

int xm__os_shm_get_seals(xm_descriptor d, unsigned *seals) {
  (void)d;
  (void)seals;
  return fail_not_implemented("seals need memfd; Windows sections have none");
}

int xm__os_shm_add_seals(xm_descriptor d, unsigned seals) {
  (void)d;
  (void)seals;
  return fail_not_implemented("seals need memfd; Windows sections have none");
}

/* ---- fault-safe copies ---------------------------------------------------------------------- */
/* A vectored exception handler (MinGW has no __try) recovers faults inside the guarded range of
   this thread's innermost safe copy: it rewrites the faulting thread's context to call
   safe_resume, which __builtin_longjmp's back into xm__os_safe_copy. By then the exception
   dispatch is over (the handler returned EXCEPTION_CONTINUE_EXECUTION), so nothing is unwound
   through the system's frames. Every other exception goes on to the next handler untouched. */
struct safe_copy_ctx {
  void *jmp[5]; /* __builtin_setjmp's buffer */
  uintptr_t lo;
  size_t len;
};
static DWORD safe_tls = TLS_OUT_OF_INDEXES;
static DWORD safe_install_error;
static INIT_ONCE safe_once = INIT_ONCE_STATIC_INIT;

/* Entered through a rewritten context, so it takes no arguments: the copy is in this thread's slot. */
__attribute__((noreturn, noinline)) static void safe_resume(void) {
  struct safe_copy_ctx *ctx = TlsGetValue(safe_tls);
  __builtin_longjmp(ctx->jmp, 1);
}

static LONG CALLBACK safe_copy_handler(EXCEPTION_POINTERS *info) {
  const EXCEPTION_RECORD *rec = info->ExceptionRecord;
  if ((rec->ExceptionCode != EXCEPTION_ACCESS_VIOLATION && rec->ExceptionCode != EXCEPTION_IN_PAGE_ERROR) ||
      rec->NumberParameters < 2)
    return EXCEPTION_CONTINUE_SEARCH;
  struct safe_copy_ctx *ctx = safe_tls == TLS_OUT_OF_INDEXES ? NULL : TlsGetValue(safe_tls);
  uintptr_t addr = (uintptr_t)rec->ExceptionInformation[1];
  if (!ctx || addr - ctx->lo >= ctx->len) return EXCEPTION_CONTINUE_SEARCH;
  CONTEXT *c = info->ContextRecord;
  /* Continue in safe_resume() on this thread's stack, below the faulting frame, with the stack
     aligned as at a call. Only registers change: the dispatcher still uses the memory below. */
#if defined(__x86_64__)
  uintptr_t sp = ((uintptr_t)c->Rsp - 256) & ~(uintptr_t)15;
  c->Rsp = (DWORD64)(sp - 8); /* the return-address slot; the 32-byte home area lies above it */
  c->Rip = (DWORD64)(uintptr_t)safe_resume;
#elif defined(__i386__)
  uintptr_t sp = ((uintptr_t)c->Esp - 256) & ~(uintptr_t)15;
  c->Esp = (DWORD)(sp - 4);
  c->Eip = (DWORD)(uintptr_t)safe_resume;
#elif defined(__aarch64__)
  c->Sp = (((uintptr_t)c->Sp - 256) & ~(uintptr_t)15);
  c->Pc = (DWORD64)(uintptr_t)safe_resume;
#else
  return EXCEPTION_CONTINUE_SEARCH;
#endif
  return EXCEPTION_CONTINUE_EXECUTION;
}

static BOOL CALLBACK install_safe_copy(INIT_ONCE *once, void *param, void **context) {
  (void)once;
  (void)param;
  (void)context;
  DWORD index = TlsAlloc();
  if (index == TLS_OUT_OF_INDEXES) {
    safe_install_error = GetLastError();
    return TRUE;
  }
  safe_tls = index;
  /* First in the chain: only faults of an active safe copy are taken, all others pass on. */
  if (!AddVectoredExceptionHandler(1, safe_copy_handler)) safe_install_error = GetLastError() ? GetLastError() : ERROR_OUTOFMEMORY;
  return TRUE;
}

int xm__os_safe_copy(void *dst, const void *src, size_t len, enum xm__safe_side guarded, size_t *done) {
#if !defined(__x86_64__) && !defined(__i386__) && !defined(__aarch64__)
  (void)dst, (void)src, (void)len, (void)guarded, (void)done;
  return fail_not_implemented("fault-safe copies: no context rewrite for this CPU");
#else
  InitOnceExecuteOnce(&safe_once, install_safe_copy, NULL, NULL);
  if (safe_install_error)
    return xm__fail_os(XM_E_SYSTEM_CALL, (int)safe_install_error, "AddVectoredExceptionHandler");
  const size_t page = xm__page_size();
  struct safe_copy_ctx ctx;
  ctx.lo = (uintptr_t)(guarded == XM__SAFE_SRC ? src : dst);
  ctx.len = len;
  void *volatile prev = TlsGetValue(safe_tls);
  volatile size_t progress = 0; /* volatile: read after the long jump */
  if (__builtin_setjmp(ctx.jmp)) {
    TlsSetValue(safe_tls, prev);
    *done = progress;
    return XM_E_FAULT;
  }
  TlsSetValue(safe_tls, &ctx);
  /* Page by page on the guarded side, so that progress always ends on the faulting page. */
  while (progress < len) {
    size_t at = progress;
    size_t chunk = page - (size_t)((ctx.lo + at) % page);
    if (chunk > len - at) chunk = len - at;
    memcpy((unsigned char *)dst + at, (const unsigned char *)src + at, chunk);
    progress = at + chunk;
  }
  TlsSetValue(safe_tls, prev);
  *done = len;
  return XM_OK;
#endif
}

/* ---- arena ---------------------------------------------------------------------------------- */
/* Two strategies (src/os.h explains both): placeholders where the system has them (Windows 10
   1803+), else split reservations (Wine 8 refuses MEM_RESERVE_PLACEHOLDER). XMMAP_ARENA=split
   forces the second, so that a native Windows run can test it too. */
#ifndef MEM_RESERVE_PLACEHOLDER
#define MEM_RESERVE_PLACEHOLDER 0x00040000
#endif
#ifndef MEM_REPLACE_PLACEHOLDER
#define MEM_REPLACE_PLACEHOLDER 0x00004000
#endif
#ifndef MEM_PRESERVE_PLACEHOLDER
#define MEM_PRESERVE_PLACEHOLDER 0x00000002
#endif
#ifndef MEM_COALESCE_PLACEHOLDERS
#define MEM_COALESCE_PLACEHOLDERS 0x00000001
#endif
#define XM__SEC_FILE 0x800000 /* SECTION_BASIC_INFORMATION.AllocationAttributes: a file-backed section */

enum { XM__ARENA_PLACEHOLDERS = 1u << 0 }; /* xm__os_arena.flags */

/* How often a piece is tried again when another thread holds its freed addresses for a while
   (e.g. a placement probe of xm__os_map) or a remainder's mapping fails. */
#define XM__ARENA_ROUNDS 64

typedef void *(WINAPI *virtual_alloc2_fn)(HANDLE, void *, SIZE_T, ULONG, ULONG, void *, ULONG);
typedef void *(WINAPI *map_view3_fn)(HANDLE, HANDLE, void *, ULONG64, SIZE_T, ULONG, ULONG, void *, ULONG);
typedef BOOL(WINAPI *unmap_view2_fn)(HANDLE, void *, ULONG);

static struct {
  virtual_alloc2_fn virtual_alloc2;
  map_view3_fn map_view3;
  unmap_view2_fn unmap_view2;
  bool placeholders;
} arena_api;
static INIT_ONCE arena_once = INIT_ONCE_STATIC_INIT;

static BOOL CALLBACK probe_arena_strategy(INIT_ONCE *once, void *param, void **context) {
  (void)once;
  (void)param;
  (void)context;
  HMODULE kernelbase = GetModuleHandleW(L"kernelbase.dll");
  arena_api.virtual_alloc2 = (virtual_alloc2_fn)lookup(kernelbase, "VirtualAlloc2");
  arena_api.map_view3 = (map_view3_fn)lookup(kernelbase, "MapViewOfFile3");
  arena_api.unmap_view2 = (unmap_view2_fn)lookup(kernelbase, "UnmapViewOfFile2");
  const char *force = getenv("XMMAP_ARENA");
  if (force && strcmp(force, "split") == 0) return TRUE;
  if (!arena_api.virtual_alloc2 || !arena_api.map_view3 || !arena_api.unmap_view2) return TRUE;
  /* Present is not enough (Wine exports them and refuses the flags): try one. Not a
     fault-injection point, or a test could switch the strategy for the whole process. */
  void *p = arena_api.virtual_alloc2(GetCurrentProcess(), NULL, xm__granularity(), MEM_RESERVE | MEM_RESERVE_PLACEHOLDER,
                                     PAGE_NOACCESS, NULL, 0);
  if (p) {
    VirtualFree(p, 0, MEM_RELEASE);
    arena_api.placeholders = true;
  }
  return TRUE;
}

static bool use_placeholders(void) {
  InitOnceExecuteOnce(&arena_once, probe_arena_strategy, NULL, NULL);
  return arena_api.placeholders;
}

const char *xm__os_arena_strategy(void) { return use_placeholders() ? "placeholders" : "split reservations"; }

int xm__os_arena_reserve(size_t size, struct xm__os_arena *out) {
  const bool placeholders = use_placeholders();
  void *p = NULL;
  if (placeholders) {
    p = injected() ? NULL
                   : arena_api.virtual_alloc2(GetCurrentProcess(), NULL, size, MEM_RESERVE | MEM_RESERVE_PLACEHOLDER,
                                              PAGE_NOACCESS, NULL, 0);
    if (!p) return fail_last("VirtualAlloc2(MEM_RESERVE_PLACEHOLDER)");
  } else {
    p = reserve(NULL, size);
    if (!p) return fail_last("VirtualAlloc(MEM_RESERVE)");
  }
  out->base = p;
  out->size = size;
  out->flags = placeholders ? XM__ARENA_PLACEHOLDERS : 0;
  return XM_OK;
}

/* Frees every view and reservation (or placeholder) in [from, to): the arena's invariants say
   that none crosses a piece boundary and that nothing else lives there. Each allocation's extent
   is found before it is freed and the walk goes on past it: what was freed may belong to another
   thread a moment later, so it is never looked at again. */
static void free_allocations(uintptr_t from, uintptr_t to) {
  uintptr_t p = from;
  while (p < to) {
    MEMORY_BASIC_INFORMATION mbi;
    if (VirtualQuery((void *)p, &mbi, sizeof mbi) != sizeof mbi) return;
    uintptr_t end = (uintptr_t)mbi.BaseAddress + mbi.RegionSize;
    if (mbi.State != MEM_FREE) {
      void *allocation = mbi.AllocationBase;
      while (end < to) { /* a view made partly inaccessible has several regions */
        MEMORY_BASIC_INFORMATION more;
        if (VirtualQuery((void *)end, &more, sizeof more) != sizeof more || more.State == MEM_FREE ||
            more.AllocationBase != allocation)
          break;
        end = (uintptr_t)more.BaseAddress + more.RegionSize;
      }
      if (mbi.Type == MEM_MAPPED)
        UnmapViewOfFile(allocation);
      else
        VirtualFree(allocation, 0, MEM_RELEASE);
    }
    p = end;
  }
}

void xm__os_arena_release(struct xm__os_arena *arena, const struct xm__arena_piece *pieces, size_t n) {
  uintptr_t base = (uintptr_t)arena->base;
  for (size_t k = 0; k < n; k++)
    if (pieces[k].kind != XM__PIECE_GONE) free_allocations(base + pieces[k].offset, base + pieces[k].offset + pieces[k].size);
  arena->base = NULL;
  arena->size = 0;
}

int xm__os_arena_backing_new(enum xm__piece_kind kind, xm_descriptor d, size_t size, xm_prot prot,
                             xm_descriptor *handle) {
  (void)prot; /* views may be mapped with less than the section allows */
  if (kind == XM__PIECE_DESCRIPTOR) return duplicate(d, handle); /* remainders are mapped again from it */
  /* Anonymous arena memory is a section, so that a remainder can be mapped again with its data. */
  HANDLE h = create_section(INVALID_HANDLE_VALUE, PAGE_READWRITE | SEC_COMMIT, size);
  if (!h) return fail_last("CreateFileMappingW");
  *handle = h;
  return XM_OK;
}

void xm__os_arena_backing_close(xm_descriptor handle) { close_handle(handle); }

/* The view flags of a piece's backing: views of file-backed sections cannot take MEM_RESET. */
static unsigned backing_view_flags(const struct xm__arena_piece *q) {
  if (q->kind != XM__PIECE_DESCRIPTOR) return 0;
  resolve();
  xm__section_basic_information info;
  if (api.query_section &&
      api.query_section(q->backing->handle, 0 /* SectionBasicInformation */, &info, sizeof info, NULL) >= 0 &&
      (info.AllocationAttributes & XM__SEC_FILE))
    return XM__WV_FILE;
  return 0;
}

static bool same_piece(const struct xm__arena_piece *a, const struct xm__arena_piece *b) {
  return a->offset == b->offset && a->size == b->size && a->kind == b->kind && a->backing == b->backing &&
         a->backing_offset == b->backing_offset;
}

/* Records the first failure of an arena change only. */
static void note_failure(int *status, DWORD e, const char *call) {
  if (*status == XM_OK) *status = xm__fail_os(XM_E_SYSTEM_CALL, (int)e, call);
}

/* Maps a piece's view at its address (placeholders: replacing the placeholder that is exactly
   there). Returns ERROR_SUCCESS or the OS error; on failure the address range is as before. */
static DWORD arena_map_piece(bool placeholders, uintptr_t addr, const struct xm__arena_piece *q) {
  const bool write = (q->prot & XM_PROT_WRITE) != 0;
  void *p;
  if (injected()) {
    p = NULL;
  } else if (placeholders) {
    p = arena_api.map_view3(q->backing->handle, GetCurrentProcess(), (void *)addr, q->backing_offset, q->size,
                            MEM_REPLACE_PLACEHOLDER, write ? PAGE_READWRITE : PAGE_READONLY, NULL, 0);
  } else {
    p = MapViewOfFileEx(q->backing->handle, write ? FILE_MAP_WRITE : FILE_MAP_READ, (DWORD)(q->backing_offset >> 32),
                        (DWORD)q->backing_offset, q->size, (void *)addr);
  }
  if (!p) return GetLastError();
  if (q->prot == XM_PROT_NONE) { /* mapped readable, then made inaccessible, as xm__os_map does */
    DWORD old;
    if (injected() || !VirtualProtect(p, q->size, PAGE_NOACCESS, &old)) {
      DWORD e = GetLastError();
      if (placeholders)
        arena_api.unmap_view2(GetCurrentProcess(), p, MEM_PRESERVE_PLACEHOLDER);
      else
        UnmapViewOfFile(p);
      return e;
    }
  }
  return ERROR_SUCCESS;
}

/* Placeholders: nothing is ever unreserved, so no other thread can take the range. */
static int arena_change_placeholders(uintptr_t base, const struct xm__arena_piece *old, size_t n_old,
                                     struct xm__arena_piece *now, size_t n_now, size_t r0, size_t r1) {
  int status = XM_OK;
  HANDLE self = GetCurrentProcess();
  /* 1. every old view in the run goes back to being the placeholder it replaced */
  for (size_t k = 0; k < n_old; k++) {
    if (old[k].offset < r0 || old[k].offset >= r1 || !xm__piece_is_mapped(&old[k])) continue;
    if (!arena_api.unmap_view2(self, (void *)(base + old[k].offset), MEM_PRESERVE_PLACEHOLDER))
      note_failure(&status, GetLastError(), "UnmapViewOfFile2(MEM_PRESERVE_PLACEHOLDER)");
  }
  /* 2. one placeholder for the run (unless it is one already), 3. cut into the new pieces */
  bool shaped = status == XM_OK;
  MEMORY_BASIC_INFORMATION mbi;
  bool single = VirtualQuery((void *)(base + r0), &mbi, sizeof mbi) == sizeof mbi &&
                (uintptr_t)mbi.AllocationBase == base + r0 && mbi.RegionSize >= r1 - r0;
  if (shaped && !single) {
    if (injected() || !VirtualFree((void *)(base + r0), r1 - r0, MEM_RELEASE | MEM_COALESCE_PLACEHOLDERS)) {
      note_failure(&status, GetLastError(), "VirtualFree(MEM_COALESCE_PLACEHOLDERS)");
      shaped = false;
    }
  }
  for (size_t k = 0; shaped && k < n_now; k++) {
    if (now[k].offset < r0 || now[k].offset + now[k].size >= r1) continue; /* the last piece needs no cut */
    if (injected() ||
        !VirtualFree((void *)(base + now[k].offset), now[k].size, MEM_RELEASE | MEM_PRESERVE_PLACEHOLDER)) {
      note_failure(&status, GetLastError(), "VirtualFree(MEM_PRESERVE_PLACEHOLDER)");
      shaped = false;
    }
  }
  /* 4. map the new piece and the remainders; a remainder is tried again (its data depends on it) */
  for (size_t k = 0; k < n_now; k++) {
    struct xm__arena_piece *q = &now[k];
    if (q->offset < r0 || q->offset >= r1 || !xm__piece_is_mapped(q)) continue;
    DWORD e = ERROR_INVALID_PARAMETER;
    int tries = (q->flags & XM__PIECE_NEW) ? 1 : 3;
    for (int t = 0; shaped && t < tries; t++)
      if ((e = arena_map_piece(true, base + q->offset, q)) == ERROR_SUCCESS) break;
    if (shaped && e == ERROR_SUCCESS) {
      if (q->flags & XM__PIECE_NEW) q->os_flags = backing_view_flags(q);
      continue;
    }
    if (shaped) note_failure(&status, e, "MapViewOfFile3(MEM_REPLACE_PLACEHOLDER)");
    q->kind = XM__PIECE_RESERVED; /* the placeholder stays: inaccessible and the arena's */
  }
  return status;
}

#ifdef XMMAP_TEST_HOOKS
/* Test builds: called with the range a split-reservation change has just freed, so that a test
   can play the other thread that takes it. */
static void (*volatile arena_freed_hook)(void *addr, size_t len);
XM_API void xm__test_arena_freed_hook(void (*hook)(void *addr, size_t len));
XM_API void xm__test_arena_freed_hook(void (*hook)(void *addr, size_t len)) { arena_freed_hook = hook; }
#endif

/* Split reservations: free the run's views and reservations, then map and reserve the new
   pieces at their addresses. Freed addresses can be taken by another thread in between: such a
   piece is tried again for a while, and given up as GONE if it stays taken. */
static int arena_change_split(uintptr_t base, const struct xm__arena_piece *old, size_t n_old,
                              struct xm__arena_piece *now, size_t n_now, size_t r0, size_t r1) {
  int status = XM_OK;
  for (size_t k = 0; k < n_old; k++) {
    if (old[k].offset < r0 || old[k].offset >= r1 || old[k].kind == XM__PIECE_GONE) continue;
    free_allocations(base + old[k].offset, base + old[k].offset + old[k].size);
  }
#ifdef XMMAP_TEST_HOOKS
  if (arena_freed_hook) arena_freed_hook((void *)(base + r0), r1 - r0);
#endif
  enum { PENDING, DONE };
  unsigned char state[8];
  int failures[8];
  DWORD last_error[8];
  for (size_t k = 0; k < n_now; k++) {
    state[k] = (now[k].offset < r0 || now[k].offset >= r1 || now[k].kind == XM__PIECE_GONE) ? DONE : PENDING;
    failures[k] = 0;
    last_error[k] = ERROR_SUCCESS;
  }
  for (int round = 0; round < XM__ARENA_ROUNDS; round++) {
    bool pending = false;
    for (size_t k = 0; k < n_now; k++) {
      struct xm__arena_piece *q = &now[k];
      if (state[k] == DONE) continue;
      uintptr_t addr = base + q->offset;
      DWORD e;
      if (xm__piece_is_mapped(q)) {
        e = arena_map_piece(false, addr, q);
        if (e == ERROR_SUCCESS) {
          if (q->flags & XM__PIECE_NEW) q->os_flags = backing_view_flags(q);
          state[k] = DONE;
          continue;
        }
        /* The new piece's own failure is the change's failure; a remainder is tried again a few
           times before its range falls back to reserved space. */
        if (e != ERROR_INVALID_ADDRESS && ((q->flags & XM__PIECE_NEW) || ++failures[k] >= 3)) {
          note_failure(&status, e, "MapViewOfFileEx");
          q->kind = XM__PIECE_RESERVED;
        }
      } else {
        e = reserve((void *)addr, q->size) ? ERROR_SUCCESS : GetLastError();
        if (e == ERROR_SUCCESS) {
          state[k] = DONE;
          continue;
        }
      }
      last_error[k] = e;
      pending = true;
    }
    if (!pending) return status;
    if (round < 8)
      SwitchToThread();
    else
      Sleep(1);
  }
  for (size_t k = 0; k < n_now; k++) {
    if (state[k] == DONE) continue;
    note_failure(&status, last_error[k], last_error[k] == ERROR_INVALID_ADDRESS
                                             ? "VirtualAlloc: another thread holds the arena's freed addresses"
                                             : "VirtualAlloc(MEM_RESERVE)");
    now[k].kind = XM__PIECE_GONE; /* neither mapped nor reserved: not the arena's any more */
  }
  return status;
}

int xm__os_arena_change(struct xm__os_arena *arena, const struct xm__arena_piece *old, size_t n_old,
                        struct xm__arena_piece *now, size_t n_now, xm_descriptor d) {
  (void)d; /* the new piece is mapped from its backing's own handle (a duplicate of d) */
  const uintptr_t base = (uintptr_t)arena->base;
  const bool placeholders = (arena->flags & XM__ARENA_PLACEHOLDERS) != 0;
  if (n_now > 8) return xm__fail(XM_E_INVALID_ARGUMENT, "an arena change of %zu pieces is more than 8", n_now);
  /* Pieces equal in old[] and now[] (reserved neighbours) stay as they are; the rest is changed
     in runs of adjacent pieces. In practice there is one run. */
  int status = XM_OK;
  size_t k = 0;
  while (k < n_now) {
    bool unchanged = false;
    for (size_t o = 0; o < n_old && !unchanged; o++) unchanged = same_piece(&now[k], &old[o]);
    if (unchanged) {
      k++;
      continue;
    }
    size_t r0 = now[k].offset, end = k;
    for (; end < n_now; end++) {
      bool same = false;
      for (size_t o = 0; o < n_old && !same; o++) same = same_piece(&now[end], &old[o]);
      if (same) break;
    }
    size_t r1 = now[end - 1].offset + now[end - 1].size;
    int rc = placeholders ? arena_change_placeholders(base, old, n_old, now, n_now, r0, r1)
                          : arena_change_split(base, old, n_old, now, n_now, r0, r1);
    if (status == XM_OK) status = rc;
    k = end;
  }
  return status;
}

/* ---- arena serialization -------------------------------------------------------------------- */
/* An SRWLOCK is one pointer, initialised statically to zero and needing no destruction: it lives
   in place in the opaque word. */
_Static_assert(sizeof(SRWLOCK) == sizeof(void *), "an SRWLOCK fits xm__os_mutex");
static SRWLOCK *srw(struct xm__os_mutex *m) { return (SRWLOCK *)(void *)&m->opaque; }

int xm__os_mutex_init(struct xm__os_mutex *m) {
  InitializeSRWLock(srw(m));
  return XM_OK;
}
void xm__os_mutex_lock(struct xm__os_mutex *m) { AcquireSRWLockExclusive(srw(m)); }
void xm__os_mutex_unlock(struct xm__os_mutex *m) { ReleaseSRWLockExclusive(srw(m)); }
void xm__os_mutex_destroy(struct xm__os_mutex *m) { m->opaque = NULL; }
