/* `xmmap bench`'s raw baselines on Windows: the same work as the xmmap side in plain
   CreateFileMapping, MapViewOfFile, FlushViewOfFile and UnmapViewOfFile calls (bench_posix.c has
   the same functions). */
#define WIN32_LEAN_AND_MEAN
#include <windows.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

const char *const bench_raw_note =
    "note: on Windows the file baseline is a plain MapViewOfFile view (64 KiB-aligned; Windows has no\n"
    "transparent huge pages for files).";

int bench_raw_failed(struct bench *b, const char *call) {
  return bench_fail(b, XM_E_SYSTEM_CALL, "%s failed (error %lu)", call, (unsigned long)GetLastError());
}

/* A read-write view of a new section of file (NULL: the pagefile); nothing left open when either
   call fails (message in b->error). */
static int raw_map(struct bench *b, HANDLE file, size_t size, struct raw_view *v) {
  memset(v, 0, sizeof *v);
  HANDLE section = CreateFileMappingW(file ? file : INVALID_HANDLE_VALUE, NULL, PAGE_READWRITE,
                                      (DWORD)((uint64_t)size >> 32), (DWORD)size, NULL);
  if (!section) return bench_raw_failed(b, "CreateFileMapping");
  void *p = MapViewOfFile(section, FILE_MAP_READ | FILE_MAP_WRITE, 0, 0, size);
  if (!p) {
    int rc = bench_raw_failed(b, "MapViewOfFile");
    CloseHandle(section);
    return rc;
  }
  v->addr = p;
  v->release_addr = p;
  v->release_len = size;
  v->section = section;
  return 0;
}

void bench_raw_unmap(struct raw_view *v) {
  UnmapViewOfFile(v->release_addr);
  CloseHandle(v->section);
  memset(v, 0, sizeof *v);
}

int bench_raw_anon_cycle(struct bench *b, uint64_t iters, double *seconds) {
  double t0 = tool_now();
  for (uint64_t i = 0; i < iters; i++) {
    struct raw_view v;
    int rc = raw_map(b, NULL, b->param, &v);
    if (rc) return rc;
    bench_raw_unmap(&v);
  }
  *seconds = tool_now() - t0;
  return 0;
}

/* A pagefile-backed section is Windows' shared memory. */
int bench_raw_shm_cycle(struct bench *b, uint64_t iters, double *seconds) {
  return bench_raw_anon_cycle(b, iters, seconds);
}

/* Windows places file views on 64 KiB and backs them with small pages: huge_aligned changes
   nothing. */
int bench_raw_map_file(struct bench *b, bool huge_aligned, struct raw_view *v) {
  (void)huge_aligned;
  return raw_map(b, b->file.d, FILE_SIZE, v);
}

int bench_raw_sync(struct bench *b, const struct raw_view *v) {
  if (FlushViewOfFile(v->addr, FILE_SIZE) && FlushFileBuffers(b->file.d)) return 0;
  return bench_raw_failed(b, "FlushViewOfFile/FlushFileBuffers");
}

int bench_raw_map_rwx(struct bench *b, size_t size) {
  void *p = VirtualAlloc(NULL, size, MEM_RESERVE | MEM_COMMIT, PAGE_EXECUTE_READWRITE);
  if (!p) return bench_raw_failed(b, "VirtualAlloc(PAGE_EXECUTE_READWRITE)");
  b->rwx = p;
  b->rwx_len = size;
  return 0;
}

void bench_raw_unmap_rwx(struct bench *b) {
  VirtualFree(b->rwx, 0, MEM_RELEASE);
  b->rwx = NULL;
}

/* ---- the fault baseline ---------------------------------------------------------------------- */
static unsigned char *fault_page;
static size_t fault_page_size;

static LONG CALLBACK raw_lift(EXCEPTION_POINTERS *info) {
  const EXCEPTION_RECORD *rec = info->ExceptionRecord;
  if (rec->ExceptionCode != EXCEPTION_ACCESS_VIOLATION ||
      (uintptr_t)rec->ExceptionInformation[1] - (uintptr_t)fault_page >= fault_page_size)
    return EXCEPTION_CONTINUE_SEARCH;
  DWORD old;
  VirtualProtect(fault_page, fault_page_size, PAGE_READWRITE, &old);
  return EXCEPTION_CONTINUE_EXECUTION;
}

int bench_raw_fault_setup(struct bench *b) {
  void *p = VirtualAlloc(NULL, 2 * b->page, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE);
  if (!p) return bench_raw_failed(b, "VirtualAlloc");
  b->raw_page = p;
  return 0;
}

void bench_raw_fault_teardown(struct bench *b) {
  if (b->raw_page) VirtualFree(b->raw_page, 0, MEM_RELEASE);
  b->raw_page = NULL;
}

int bench_raw_fault(struct bench *b, uint64_t iters, double *seconds) {
  fault_page = b->raw_page;
  fault_page_size = b->page;
  void *h = AddVectoredExceptionHandler(1, raw_lift);
  if (!h) return bench_raw_failed(b, "AddVectoredExceptionHandler");
  volatile unsigned char *p = b->raw_page;
  int rc = 0;
  DWORD old;
  double t0 = tool_now();
  for (uint64_t i = 0; i < iters && rc == 0; i++) {
    if (!VirtualProtect(b->raw_page, b->page, PAGE_NOACCESS, &old)) rc = bench_raw_failed(b, "VirtualProtect");
    p[0] = (unsigned char)i;
  }
  *seconds = tool_now() - t0;
  RemoveVectoredExceptionHandler(h);
  return rc;
}

/* ---- the arena baseline ---------------------------------------------------------------------- */
/* The placeholders arena's two calls, raw: UnmapViewOfFile2(MEM_PRESERVE_PLACEHOLDER) of view k
   and MapViewOfFile3(MEM_REPLACE_PLACEHOLDER) of it back, in a placeholder reservation cut into n
   placeholders. n/a where the system has no placeholders (Wine): the arena then uses split
   reservations, which have no two-call equivalent. */
typedef void *(WINAPI *alloc2_fn)(HANDLE, void *, SIZE_T, ULONG, ULONG, void *, ULONG);
typedef void *(WINAPI *map3_fn)(HANDLE, HANDLE, void *, ULONG64, SIZE_T, ULONG, ULONG, void *, ULONG);
typedef BOOL(WINAPI *unmap2_fn)(HANDLE, void *, ULONG);

struct bench_raw_arena {
  unsigned char *base;
  size_t n, unit, next, mapped;
  HANDLE section;
  map3_fn map3;
  unmap2_fn unmap2;
};

static void (*kernelbase(const char *name))(void) {
  HMODULE m = GetModuleHandleW(L"kernelbase.dll");
  return m ? (void (*)(void))GetProcAddress(m, name) : NULL;
}

int bench_raw_arena_new(struct bench *b, xm_descriptor d, size_t n, size_t unit, struct bench_raw_arena **out) {
  *out = NULL;
  struct bench_raw_arena *r = calloc(1, sizeof *r);
  if (!r) return bench_fail(b, XM_E_NO_MEMORY, "out of memory");
  alloc2_fn alloc2 = (alloc2_fn)kernelbase("VirtualAlloc2");
  r->map3 = (map3_fn)kernelbase("MapViewOfFile3");
  r->unmap2 = (unmap2_fn)kernelbase("UnmapViewOfFile2");
  r->n = n;
  r->unit = unit;
  r->section = d;
  *out = r;
  /* Without placeholders the xmmap side still runs; the cycle says why there is no baseline. */
  if (!alloc2 || !r->map3 || !r->unmap2 || strcmp(xm_arena_strategy(), "placeholders") != 0) return 0;
  r->base = alloc2(GetCurrentProcess(), NULL, n * unit, MEM_RESERVE | 0x00040000 /* MEM_RESERVE_PLACEHOLDER */,
                   PAGE_NOACCESS, NULL, 0);
  if (!r->base) return bench_raw_failed(b, "VirtualAlloc2(MEM_RESERVE_PLACEHOLDER)");
  for (size_t k = 0; k + 1 < n; k++)
    if (!VirtualFree(r->base + k * unit, unit, MEM_RELEASE | 0x00000002 /* MEM_PRESERVE_PLACEHOLDER */))
      return bench_raw_failed(b, "VirtualFree(MEM_PRESERVE_PLACEHOLDER)");
  for (; r->mapped < n; r->mapped++)
    if (!r->map3(d, GetCurrentProcess(), r->base + r->mapped * unit, 2 * (ULONG64)r->mapped * unit, unit,
                 0x00004000 /* MEM_REPLACE_PLACEHOLDER */, PAGE_READWRITE, NULL, 0))
      return bench_raw_failed(b, "MapViewOfFile3(MEM_REPLACE_PLACEHOLDER)");
  return 0;
}

int bench_raw_arena_cycle(struct bench *b, struct bench_raw_arena *r, uint64_t iters, double *seconds) {
  if (!r || r->mapped < r->n)
    return bench_fail(b, XM_E_NOT_IMPLEMENTED, "no placeholders here: the arena uses %s", xm_arena_strategy());
  int rc = 0;
  size_t k = r->next;
  double t0 = tool_now();
  for (uint64_t i = 0; i < iters && rc == 0; i++) {
    unsigned char *at = r->base + k * r->unit;
    if (!r->unmap2(GetCurrentProcess(), at, 0x00000002 /* MEM_PRESERVE_PLACEHOLDER */))
      rc = bench_raw_failed(b, "UnmapViewOfFile2(MEM_PRESERVE_PLACEHOLDER)");
    else if (!r->map3(r->section, GetCurrentProcess(), at, 2 * (ULONG64)k * r->unit, r->unit,
                      0x00004000 /* MEM_REPLACE_PLACEHOLDER */, PAGE_READWRITE, NULL, 0))
      rc = bench_raw_failed(b, "MapViewOfFile3(MEM_REPLACE_PLACEHOLDER)");
    k = k + 7919 < r->n ? k + 7919 : (k + 7919) % r->n;
  }
  *seconds = tool_now() - t0;
  r->next = k;
  return rc;
}

void bench_raw_arena_free(struct bench_raw_arena *r) {
  if (!r) return;
  for (size_t k = 0; k < r->mapped; k++)
    r->unmap2(GetCurrentProcess(), r->base + k * r->unit, 0);
  if (r->base)
    for (size_t k = 0; k < r->n; k++)
      VirtualFree(r->base + k * r->unit, 0, MEM_RELEASE);
  free(r);
}
