/* The write-tracking workloads' raw baselines on Windows, in plain Win32 calls: protect only (a
   pagefile-backed section's view made read-only; a vectored exception handler records a written
   page and makes it writable again; a collect sets the recorded pages' bits and makes each
   read-only again). Windows has no uffd-wp. bench_dirty_posix.c has the same functions. */
#define WIN32_LEAN_AND_MEAN
#include <windows.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

struct bench_raw_tracker {
  unsigned char *base;
  size_t len, page;
  HANDLE section;
  size_t *written, capacity; /* the pages the handler recorded */
  volatile size_t n_written;
  void *handler; /* between enter and leave */
};

static struct bench_raw_tracker *catching;

static LONG CALLBACK on_write_fault(EXCEPTION_POINTERS *info) {
  struct bench_raw_tracker *t = catching;
  const EXCEPTION_RECORD *r = info->ExceptionRecord;
  if (!t || r->ExceptionCode != EXCEPTION_ACCESS_VIOLATION || r->NumberParameters < 2 ||
      r->ExceptionInformation[0] != 1 /* a write */)
    return EXCEPTION_CONTINUE_SEARCH;
  uintptr_t at = (uintptr_t)r->ExceptionInformation[1];
  if (at - (uintptr_t)t->base >= t->len || t->n_written >= t->capacity) return EXCEPTION_CONTINUE_SEARCH;
  uintptr_t page = at & ~(uintptr_t)(t->page - 1);
  DWORD old;
  if (!VirtualProtect((void *)page, t->page, PAGE_READWRITE, &old)) return EXCEPTION_CONTINUE_SEARCH;
  t->written[t->n_written++] = (page - (uintptr_t)t->base) / t->page;
  return EXCEPTION_CONTINUE_EXECUTION;
}

void bench_raw_tracker_free(struct bench_raw_tracker *t) {
  if (t->base) UnmapViewOfFile(t->base);
  if (t->section) CloseHandle(t->section);
  free(t->written);
  free(t);
}

int bench_raw_tracker_new(struct bench *b, int strategy, size_t len, struct bench_raw_tracker **out,
                          unsigned char **base) {
  if (strategy == DIRTY_UFFD_WP) return bench_fail(b, XM_E_NOT_IMPLEMENTED, "Windows has no userfaultfd");
  struct bench_raw_tracker *t = calloc(1, sizeof *t);
  if (!t) return bench_fail(b, XM_E_NO_MEMORY, "out of memory");
  SYSTEM_INFO si;
  GetSystemInfo(&si);
  t->len = len;
  t->page = si.dwPageSize;
  t->capacity = len / t->page;
  t->written = malloc(t->capacity * sizeof *t->written);
  int rc = t->written ? 0 : bench_fail(b, XM_E_NO_MEMORY, "out of memory");
  if (!rc) {
    t->section =
        CreateFileMappingW(INVALID_HANDLE_VALUE, NULL, PAGE_READWRITE, (DWORD)((uint64_t)len >> 32), (DWORD)len, NULL);
    if (!t->section) rc = bench_raw_failed(b, "CreateFileMapping");
  }
  if (!rc) {
    t->base = MapViewOfFile(t->section, FILE_MAP_WRITE, 0, 0, len);
    if (!t->base) rc = bench_raw_failed(b, "MapViewOfFile");
  }
  DWORD old;
  if (!rc) {
    memset(t->base, 0x5a, len);
    if (!VirtualProtect(t->base, len, PAGE_READONLY, &old)) rc = bench_raw_failed(b, "VirtualProtect");
  }
  if (rc) {
    bench_raw_tracker_free(t);
    return rc;
  }
  *out = t;
  *base = t->base;
  return 0;
}

int bench_raw_tracker_enter(struct bench *b, struct bench_raw_tracker *t) {
  catching = t;
  t->handler = AddVectoredExceptionHandler(1, on_write_fault);
  if (!t->handler) {
    catching = NULL;
    return bench_raw_failed(b, "AddVectoredExceptionHandler");
  }
  return 0;
}

void bench_raw_tracker_leave(struct bench_raw_tracker *t) {
  RemoveVectoredExceptionHandler(t->handler);
  t->handler = NULL;
  catching = NULL;
}

int bench_raw_tracker_collect(struct bench *b, struct bench_raw_tracker *t, uint64_t *bitmap, size_t *count) {
  size_t n = t->n_written;
  DWORD old;
  for (size_t i = 0; i < n; i++) {
    size_t p = t->written[i];
    bitmap[p / 64] |= (uint64_t)1 << (p % 64);
    if (!VirtualProtect(t->base + p * t->page, t->page, PAGE_READONLY, &old))
      return bench_raw_failed(b, "VirtualProtect");
  }
  t->n_written = 0;
  *count += n;
  return 0;
}
