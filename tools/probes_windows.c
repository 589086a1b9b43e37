/* The Windows side of the probe table: how this OS does what the probes try, and the probe for
   placeholders, which only Windows has (probes_posix.c has the same names). */
#define WIN32_LEAN_AND_MEAN
#include <windows.h>
#include <string.h>

#include "probes.h"

const struct tool_os_words tool_os_words = {
    .shm_with_seals = "pagefile-backed section",
    .shm_without_seals = "pagefile-backed section",
    .no_thp = "Windows has no transparent huge pages",
    .prefetch = "PrefetchVirtualMemory",
    .lock = "VirtualLock (locks at once)",
    .lazy_commit = "SEC_RESERVE section; commit = VirtualAlloc(MEM_COMMIT), decommit = MEM_RESET (stays "
                   "committed)",
    .huge_shm = "SEC_LARGE_PAGES section, large pages confirmed with QueryWorkingSetEx",
    .read_only = "FILE_MAP_READ handle of a section whose DACL grants nobody write, checked",
};

void tool_probe_placeholders(struct tool_finding *f) {
  /* VirtualAlloc2 with MEM_RESERVE_PLACEHOLDER (Windows 10 1803+; Wine 8 refuses it). */
  typedef PVOID(WINAPI * virtual_alloc2_fn)(HANDLE, PVOID, SIZE_T, ULONG, ULONG, void *, ULONG);
  HMODULE kb = GetModuleHandleA("kernelbase.dll");
  FARPROC p = kb ? GetProcAddress(kb, "VirtualAlloc2") : NULL;
  if (!p) {
    tool_found(f, TOOL_PROBE_ABSENT, "kernelbase.dll has no VirtualAlloc2");
    return;
  }
  virtual_alloc2_fn va2;
  memcpy(&va2, &p, sizeof va2);
  const ULONG reserve_placeholder = 0x00040000; /* MEM_RESERVE_PLACEHOLDER */
  void *r = va2(NULL, NULL, xm_allocation_granularity(), MEM_RESERVE | reserve_placeholder, PAGE_NOACCESS, NULL, 0);
  if (r) {
    VirtualFree(r, 0, MEM_RELEASE);
    tool_found(f, TOOL_PROBE_YES, "VirtualAlloc2(MEM_RESERVE_PLACEHOLDER)");
  } else {
    char d[96];
    tool_format(d, sizeof d, "VirtualAlloc2(MEM_RESERVE_PLACEHOLDER) failed (error %lu)",
                (unsigned long)GetLastError());
    tool_found(f, TOOL_PROBE_ABSENT, d);
  }
}
