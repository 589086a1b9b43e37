/* The Windows back end's handles and shared memory: duplicates, sections and their sizes, and
   pagefile-backed sections as shared-memory objects (which have no seals; executable only when
   made so). */
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

int xm__os_shm_create(const char *name, uint64_t size, unsigned flags, xm_descriptor *out) {
  /* Unnamed: a name would put the section in a session-wide namespace where others can open it. */
  (void)name;
  /* Executable only with XM_SHM_EXEC: a view with FILE_MAP_EXECUTE of a section without execute
     rights is refused by the OS (ERROR_ACCESS_DENIED). Size 0 is refused by the OS too. */
  HANDLE h = xm__win_create_memory_section(size, (flags & XM_SHM_EXEC) != 0);
  if (!h) return xm__win_fail_last("CreateFileMappingW");
  *out = h;
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
