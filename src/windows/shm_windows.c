/* The Windows back end's handles and shared memory: duplicates, sections and their sizes, and
   pagefile-backed sections as shared-memory objects (which have no seals; executable only when
   made so). */
#include <stdio.h>
#include <string.h>

#include "win.h"

int xm__win_duplicate(HANDLE h, HANDLE *out) {
  HANDLE self = GetCurrentProcess();
  if (xm__win_invalid_handle(h)) /* INVALID_HANDLE_VALUE would duplicate the current-process pseudo-handle */
    return xm__fail_os(XM_E_SYSTEM_CALL, ERROR_INVALID_HANDLE, "DuplicateHandle");
  if (xm__win_injected() || !DuplicateHandle(self, h, self, out, 0, FALSE, DUPLICATE_SAME_ACCESS))
    return xm__win_fail_last("DuplicateHandle");
  xm__test_handle_opened(*out);
  return XM_OK;
}

HANDLE xm__win_create_section(HANDLE file, DWORD protect, uint64_t max_size) {
  if (xm__win_injected()) return NULL;
  /* NULL security attributes: never inheritable. */
  HANDLE h = CreateFileMappingW(file, NULL, protect, (DWORD)(max_size >> 32), (DWORD)max_size, NULL);
  if (h) xm__test_handle_opened(h);
  return h;
}

HANDLE xm__win_create_memory_section(uint64_t size, bool exec) {
  return xm__win_create_section(INVALID_HANDLE_VALUE, (exec ? PAGE_EXECUTE_READWRITE : PAGE_READWRITE) | SEC_COMMIT,
                                size);
}

int xm__os_check_descriptor(enum xm__source source, xm_descriptor d) {
  if (source == XM__SOURCE_ANON) return XM_OK;
  /* Validated on the handle itself: Wine's CreateFileMapping accepts a NULL file handle. */
  HANDLE dup;
  int rc = xm__win_duplicate(d, &dup);
  if (rc) return rc;
  xm__win_close(dup);
  return XM_OK;
}

/* The size of a section: NtQuerySection (needs SECTION_QUERY access), else the size of a view of
   all of it (page-rounded). */
static int section_size(HANDLE section, uint64_t *size) {
  const struct xm__win_api *api = xm__win_api();
  if (api && api->nt_query_section) {
    /* Not a fault-injection point: its failure is not an error, the fallback below takes over. */
    xm__win_section_info info;
    if (api->nt_query_section(section, 0 /* SectionBasicInformation */, &info, sizeof info, NULL) >= 0) {
      *size = (uint64_t)info.MaximumSize.QuadPart;
      return XM_OK;
    }
  }
  void *p = xm__win_injected() ? NULL : MapViewOfFile(section, FILE_MAP_READ, 0, 0, 0);
  if (!p) return xm__win_fail_last("MapViewOfFile");
  MEMORY_BASIC_INFORMATION mbi;
  SIZE_T got = VirtualQuery(p, &mbi, sizeof mbi);
  DWORD e = GetLastError();
  UnmapViewOfFile(p);
  if (!got) return xm__fail_os(XM_E_SYSTEM_CALL, (int)e, "VirtualQuery");
  *size = (uint64_t)mbi.RegionSize;
  return XM_OK;
}

int xm__os_descriptor_size(enum xm__source source, xm_descriptor d, uint64_t *size) {
  if (xm__win_invalid_handle(d)) return xm__fail_os(XM_E_SYSTEM_CALL, ERROR_INVALID_HANDLE, "GetFileSizeEx");
  if (source == XM__SOURCE_FILE) {
    LARGE_INTEGER li;
    if (xm__win_injected() || !GetFileSizeEx(d, &li)) return xm__win_fail_last("GetFileSizeEx");
    *size = li.QuadPart > 0 ? (uint64_t)li.QuadPart : 0;
    return XM_OK;
  }
  return section_size(d, size);
}

int xm__os_dup(xm_descriptor d, xm_descriptor *out) { return xm__win_duplicate(d, out); }

void xm__os_close(xm_descriptor d) { xm__win_close(d); }

/* ---- shared-memory sections ----------------------------------------------------------------------
 * A section made by xm_shm_new carries a security descriptor whose DACL grants nothing, except
 * READ_CONTROL to OWNER RIGHTS (which takes away the owner's implicit WRITE_DAC): no handle to it
 * can be raised with DuplicateHandle, and nobody can open it by name. Only the creator's handle has
 * rights, those it was created with; the library duplicates it with the same access only. Windows
 * checks the DACL of named objects only (Chromium's read-only regions rely on this), so the section
 * gets a name nobody needs to know; one that exists already (a squatter's) is never used. */
#define XM__SHM_NAME_TRIES 16

/* The self-relative parts of that security descriptor, built by hand: kernel32 alone suffices. */
struct secure_sd {
  SECURITY_DESCRIPTOR sd;
  union {
    ACL acl;
    unsigned char bytes[sizeof(ACL) + sizeof(ACCESS_ALLOWED_ACE) + 8];
  } dacl;
};

static void build_secure_sd(struct secure_sd *s) {
  memset(s, 0, sizeof *s);
  /* OWNER RIGHTS, S-1-3-4, in an ACCESS_ALLOWED_ACE whose SidStart is the SID's first DWORD. */
  ACCESS_ALLOWED_ACE *ace = (ACCESS_ALLOWED_ACE *)(void *)(s->dacl.bytes + sizeof(ACL));
  unsigned char *sid = (unsigned char *)&ace->SidStart;
  const unsigned char owner_rights[12] = {1, 1, 0, 0, 0, 0, 0, 3, 4, 0, 0, 0};
  memcpy(sid, owner_rights, sizeof owner_rights);
  ace->Header.AceType = ACCESS_ALLOWED_ACE_TYPE;
  ace->Header.AceSize = (WORD)(sizeof(ACCESS_ALLOWED_ACE) - sizeof(DWORD) + sizeof owner_rights);
  ace->Mask = READ_CONTROL;
  s->dacl.acl.AclRevision = ACL_REVISION;
  s->dacl.acl.AclSize = (WORD)(sizeof(ACL) + ace->Header.AceSize);
  s->dacl.acl.AceCount = 1;
  s->sd.Revision = SECURITY_DESCRIPTOR_REVISION;
  s->sd.Control = SE_DACL_PRESENT;
  s->sd.Dacl = &s->dacl.acl;
}

/* A new pagefile-backed section with the secure descriptor, or NULL with GetLastError() set. */
static HANDLE create_secure_section(DWORD protect, uint64_t size) {
  static volatile LONG counter;
  struct secure_sd sd;
  build_secure_sd(&sd);
  SECURITY_ATTRIBUTES sa = {sizeof sa, &sd.sd, FALSE};
  for (int attempt = 0; attempt < XM__SHM_NAME_TRIES; attempt++) {
    LARGE_INTEGER now;
    QueryPerformanceCounter(&now);
    char name[96];
    snprintf(name, sizeof name, "Local\\xmmap-%lu-%ld-%llx", (unsigned long)GetCurrentProcessId(),
             (long)InterlockedIncrement(&counter), (unsigned long long)now.QuadPart);
    if (xm__win_injected()) return NULL;
    HANDLE h = CreateFileMappingA(INVALID_HANDLE_VALUE, &sa, protect, (DWORD)(size >> 32), (DWORD)size, name);
    if (!h) return NULL;
    if (GetLastError() != ERROR_ALREADY_EXISTS) {
      xm__test_handle_opened(h);
      return h;
    }
    CloseHandle(h); /* someone else's section: never ours to use */
  }
  SetLastError(ERROR_ALREADY_EXISTS);
  return NULL;
}

/* Whether the section's memory is in large pages: a view of it, read once, asked with
   QueryWorkingSetEx. Wine accepts SEC_LARGE_PAGES and gives small pages. */
static int check_large_pages(HANDLE section, bool *large) {
  const struct xm__win_api *api = xm__win_api();
  if (!api) return xm__win_fail_last("LoadLibraryExW(advapi32.dll)");
  if (!api->query_working_set_ex)
    return xm__fail(XM_E_NOT_IMPLEMENTED, "large pages cannot be confirmed without QueryWorkingSetEx");
  /* FILE_MAP_LARGE_PAGES (Windows 10 1703) asks for them in the view; older systems refuse it. */
  void *p = NULL;
  if (!xm__win_injected()) {
    p = MapViewOfFile(section, FILE_MAP_READ | 0x20000000, 0, 0, 0);
    if (!p) p = MapViewOfFile(section, FILE_MAP_READ, 0, 0, 0);
  }
  if (!p) return xm__win_fail_last("MapViewOfFile of a large-page section");
  (void)*(volatile unsigned char *)p;
  xm__win_working_set_ex_info info = {p, 0};
  BOOL ok = api->query_working_set_ex(GetCurrentProcess(), &info, sizeof info);
  DWORD e = GetLastError();
  UnmapViewOfFile(p);
  if (!ok) return xm__fail_os(XM_E_SYSTEM_CALL, (int)e, "QueryWorkingSetEx");
  *large = (info.VirtualAttributes & 1) && ((info.VirtualAttributes >> 23) & 1);
  return XM_OK;
}

/* A SEC_LARGE_PAGES section: the privilege first (its failure is reported only if the section is
   then refused, or if what the system gave is not large pages). */
static int create_large_page_section(DWORD protect, uint64_t size, size_t *huge_page_size, HANDLE *out) {
  size_t large = xm__win_large_page_minimum();
  if (large == 0) return xm__fail(XM_E_NOT_IMPLEMENTED, "this system has no large pages (GetLargePageMinimum is 0)");
  if (*huge_page_size != 0 && *huge_page_size != large)
    return xm__fail(XM_E_NOT_IMPLEMENTED, "large pages here are %zu bytes, not %zu", large, *huge_page_size);
  if (size % large != 0)
    return xm__fail(XM_E_NOT_PAGE_ALIGNED, "size %llu is not a multiple of the %zu-byte large page",
                    (unsigned long long)size, large);
  int privilege = xm__win_enable_lock_memory_privilege();
  char why[200];
  snprintf(why, sizeof why, "%s", privilege ? xm_errmsg() : "");
  HANDLE h = create_secure_section(protect | SEC_COMMIT | SEC_LARGE_PAGES, size);
  if (!h) return privilege ? privilege : xm__win_fail_last("CreateFileMappingW(SEC_LARGE_PAGES)");
  bool large_pages = false;
  int rc = check_large_pages(h, &large_pages);
  if (!rc && !large_pages)
    rc = xm__fail(XM_E_NOT_IMPLEMENTED, "the system accepted SEC_LARGE_PAGES but gave small pages (as Wine does)%s%s",
                  privilege ? "; " : "", why);
  if (rc) {
    xm__win_close(h);
    return rc;
  }
  *huge_page_size = large;
  *out = h;
  return XM_OK;
}

int xm__os_shm_create(const char *name, uint64_t size, unsigned flags, size_t *huge_page_size, xm_descriptor *out) {
  (void)name; /* the section's name is a secret of the library's (see above), not the debug name */
  /* Executable only with XM_SHM_EXEC: a view with FILE_MAP_EXECUTE of a section without execute
     rights is refused by the OS (ERROR_ACCESS_DENIED). Size 0 is refused by the OS too. */
  const DWORD protect = (flags & XM_SHM_EXEC) ? PAGE_EXECUTE_READWRITE : PAGE_READWRITE;
  if (flags & XM_SHM_HUGE) return create_large_page_section(protect, size, huge_page_size, out);
  /* XM_SHM_LAZY_COMMIT: views start reserved, and VirtualAlloc(MEM_COMMIT) commits pages of the
     section (for every view of it). */
  HANDLE h = create_secure_section(protect | ((flags & XM_SHM_LAZY_COMMIT) ? SEC_RESERVE : SEC_COMMIT), size);
  if (!h) return xm__win_fail_last("CreateFileMappingW");
  *out = h;
  return XM_OK;
}

/* A handle raised from ro with access, closed again at once: whether the section's security let
   that happen. */
static bool can_raise(HANDLE ro, DWORD access) {
  HANDLE self = GetCurrentProcess(), raised = NULL;
  if (!DuplicateHandle(self, ro, self, &raised, access, FALSE, 0)) return false;
  CloseHandle(raised);
  return true;
}

int xm__os_shm_clone_readonly(xm_descriptor d, xm_descriptor *out) {
  HANDLE self = GetCurrentProcess(), ro = NULL;
  if (xm__win_invalid_handle(d)) return xm__fail_os(XM_E_SYSTEM_CALL, ERROR_INVALID_HANDLE, "DuplicateHandle");
  if (xm__win_injected() || !DuplicateHandle(self, d, self, &ro, FILE_MAP_READ | SECTION_QUERY, FALSE, 0))
    return xm__win_fail_last("DuplicateHandle(FILE_MAP_READ)");
  xm__test_handle_opened(ro);
  /* Checked, not assumed: a section made elsewhere (adopted) may let anyone raise the handle. */
  if (can_raise(ro, FILE_MAP_WRITE)) {
    xm__win_close(ro);
    return xm__fail(XM_E_NOT_IMPLEMENTED, "this section's security lets a read-only handle be raised to write "
                                          "(DuplicateHandle): only sections made by xm_shm_new can be shared "
                                          "read-only");
  }
  /* WRITE_DAC would let the holder rewrite the DACL and then raise the handle. */
  if (can_raise(ro, WRITE_DAC)) {
    xm__win_close(ro);
    return xm__fail(XM_E_NOT_IMPLEMENTED, "a read-only handle can be raised to WRITE_DAC (DuplicateHandle): this "
                                          "system gives the section's owner that right despite the OWNER RIGHTS "
                                          "entry (as Wine 8 does), so the holder could rewrite the section's "
                                          "security and then write");
  }
  *out = ro;
  return XM_OK;
}

int xm__os_shm_get_seals(xm_descriptor d, unsigned *seals) {
  (void)d;
  (void)seals;
  return xm__fail(XM_E_NOT_IMPLEMENTED, "seals need memfd; Windows sections have none");
}

int xm__os_shm_add_seals(xm_descriptor d, unsigned seals) {
  (void)d;
  (void)seals;
  return xm__fail(XM_E_NOT_IMPLEMENTED, "seals need memfd; Windows sections have none");
}
