/* The Windows back end's facts: page size, allocation granularity, cache line, error texts, and the
   instruction-cache call. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "win.h"

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
  if (GetLogicalProcessorInformation(NULL, &len) || GetLastError() != ERROR_INSUFFICIENT_BUFFER || len == 0) return 0;
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
  DWORD n = FormatMessageA(FORMAT_MESSAGE_FROM_SYSTEM | FORMAT_MESSAGE_IGNORE_INSERTS, NULL, (DWORD)os_error, 0, buf,
                           len > 0xffff ? 0xffff : (DWORD)len, NULL);
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

/* ---- instruction cache ------------------------------------------------------------------------ */
/* FlushInstructionCache on every CPU Windows runs on: on x86 it does nothing but stays the
   documented way, and on arm64 it is what reaches the other cores. */
const char *xm__os_icache_method(void) { return "FlushInstructionCache"; }

int xm__os_icache_sync(const void *addr, size_t len) {
  if (xm__win_injected() || !FlushInstructionCache(GetCurrentProcess(), addr, len))
    return xm__win_fail_last("FlushInstructionCache");
  return XM_OK;
}

/* Windows has no limit on the number of mappings like vm.max_map_count: views and reservations
   are bounded by address space and commit charge only. */
int xm__os_map_count(size_t *used, size_t *limit) {
  (void)used, (void)limit;
  return xm__fail(XM_E_NOT_IMPLEMENTED, "Windows has no limit on the number of mappings to report");
}
