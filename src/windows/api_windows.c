/* The Windows back end's optional APIs: every function that not every Windows has, resolved at run
   time in one place, once, so that the library loads where they are missing (Windows 7, Wine) and
   mingw-w64's import libraries need not know them. */
#include "win.h"

static struct xm__win_api api;
static INIT_ONCE api_once = INIT_ONCE_STATIC_INIT;

/* GetProcAddress returns a generic function pointer; going through void (*)(void) keeps
   -Wcast-function-type quiet, and the member's type is the documented prototype. */
typedef void (*generic_fn)(void);
static generic_fn lookup(HMODULE module, const char *name) {
  return module ? (generic_fn)GetProcAddress(module, name) : NULL;
}

/* Windows 8 and later (and Wine) export the token functions from kernelbase, which every process
   has loaded. Older systems have them in advapi32 only, which not every program links: it is then
   loaded from System32 only. A failure to load it that does not mean "absent" is not cached. */
static bool resolve_token_api(HMODULE kernelbase, DWORD *error) {
  generic_fn open = lookup(kernelbase, "OpenProcessToken"), adjust = lookup(kernelbase, "AdjustTokenPrivileges");
  if (!open || !adjust) {
    HMODULE advapi32 = GetModuleHandleW(L"advapi32.dll");
    if (!advapi32) advapi32 = LoadLibraryExW(L"advapi32.dll", NULL, 0x00000800 /* LOAD_LIBRARY_SEARCH_SYSTEM32 */);
    if (!advapi32) {
      DWORD e = GetLastError();
      /* Absent, or a Windows 7 without KB2533623 that does not know the search flag: no large pages. */
      if (e == ERROR_MOD_NOT_FOUND || e == ERROR_INVALID_PARAMETER) return true;
      *error = e;
      return false;
    }
    open = lookup(advapi32, "OpenProcessToken");
    adjust = lookup(advapi32, "AdjustTokenPrivileges");
  }
  api.open_process_token = (xm__win_open_token_fn)open;
  api.adjust_token_privileges = (xm__win_adjust_privileges_fn)adjust;
  return true;
}

static BOOL CALLBACK resolve_api(INIT_ONCE *once, void *param, void **context) {
  (void)once;
  (void)context;
  HMODULE kernel32 = GetModuleHandleW(L"kernel32.dll");
  HMODULE kernelbase = GetModuleHandleW(L"kernelbase.dll");
  HMODULE ntdll = GetModuleHandleW(L"ntdll.dll");
  if (!resolve_token_api(kernelbase, param)) return FALSE; /* InitOnce runs this again next time */
  generic_fn f = lookup(kernel32, "PrefetchVirtualMemory");
  if (!f) f = lookup(kernelbase, "PrefetchVirtualMemory");
  api.prefetch_virtual_memory = (xm__win_prefetch_fn)f;
  api.nt_query_section = (xm__win_query_section_fn)lookup(ntdll, "NtQuerySection");
  api.virtual_alloc2 = (xm__win_virtual_alloc2_fn)lookup(kernelbase, "VirtualAlloc2");
  api.map_view_of_file3 = (xm__win_map_view3_fn)lookup(kernelbase, "MapViewOfFile3");
  api.unmap_view_of_file2 = (xm__win_unmap_view2_fn)lookup(kernelbase, "UnmapViewOfFile2");
  f = lookup(kernel32, "K32QueryWorkingSetEx");
  if (!f) f = lookup(kernelbase, "QueryWorkingSetEx");
  api.query_working_set_ex = (xm__win_query_working_set_ex_fn)f;
  api.compare_object_handles = (xm__win_compare_handles_fn)lookup(kernelbase, "CompareObjectHandles");
  api.nt_query_object = (xm__win_query_object_fn)lookup(ntdll, "NtQueryObject");
  f = lookup(kernel32, "GetLargePageMinimum");
  if (!f) f = lookup(kernelbase, "GetLargePageMinimum");
  api.large_page_minimum = (xm__win_large_page_minimum_fn)f;
  return TRUE;
}

const struct xm__win_api *xm__win_api(void) {
  DWORD error = ERROR_SUCCESS;
  if (InitOnceExecuteOnce(&api_once, resolve_api, &error, NULL)) return &api;
  SetLastError(error != ERROR_SUCCESS ? error : ERROR_DLL_INIT_FAILED);
  return NULL;
}

size_t xm__win_large_page_minimum(void) {
  const struct xm__win_api *a = xm__win_api();
  return a && a->large_page_minimum ? a->large_page_minimum() : 0;
}
