/* What the Windows back end's files share: the lazily resolved APIs (api_windows.c), handles with
   the tests' accounting, sections and views, the fault-injection wrapper, and the view flags. */
#ifndef XMMAP_WIN_H
#define XMMAP_WIN_H

#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <windows.h>

#include <stdbool.h>

#include "os.h"
#include "support.h"

/* Back-end bits of xm__os_view.flags (and of xm__arena_piece.os_flags). */
enum {
  XM__WV_FILE = 1u << 0,       /* a view of a file-backed section: no MEM_RESET */
  XM__WV_FLUSH_FILE = 1u << 1, /* shared and writable: msync must also FlushFileBuffers(view->file) */
  XM__WV_COPY = 1u << 2,       /* copy-on-write view (FILE_MAP_COPY): writable pages are PAGE_WRITECOPY */
  XM__WV_GUARDS = 1u << 3,     /* view->reservation holds PAGE_NOACCESS reservations around the view */
};

/* ---- optional APIs (api_windows.c) ---------------------------------------------------------- */
typedef struct {
  void *VirtualAddress;
  SIZE_T NumberOfBytes;
} xm__win_range_entry; /* WIN32_MEMORY_RANGE_ENTRY */

typedef struct {
  void *BaseAddress;
  ULONG AllocationAttributes; /* SEC_FILE (0x800000) for a file-backed section */
  LARGE_INTEGER MaximumSize;
} xm__win_section_info; /* SECTION_BASIC_INFORMATION */

typedef BOOL(WINAPI *xm__win_prefetch_fn)(HANDLE, ULONG_PTR, xm__win_range_entry *, ULONG);
typedef LONG(NTAPI *xm__win_query_section_fn)(HANDLE, int, void *, SIZE_T, SIZE_T *);
typedef BOOL(WINAPI *xm__win_open_token_fn)(HANDLE, DWORD, HANDLE *);
typedef BOOL(WINAPI *xm__win_adjust_privileges_fn)(HANDLE, BOOL, TOKEN_PRIVILEGES *, DWORD, TOKEN_PRIVILEGES *,
                                                   DWORD *);
typedef void *(WINAPI *xm__win_virtual_alloc2_fn)(HANDLE, void *, SIZE_T, ULONG, ULONG, void *, ULONG);
typedef void *(WINAPI *xm__win_map_view3_fn)(HANDLE, HANDLE, void *, ULONG64, SIZE_T, ULONG, ULONG, void *, ULONG);
typedef BOOL(WINAPI *xm__win_unmap_view2_fn)(HANDLE, void *, ULONG);
typedef struct {
  void *VirtualAddress;
  ULONG_PTR VirtualAttributes; /* PSAPI_WORKING_SET_EX_BLOCK: bit 0 valid, bit 23 a large page */
} xm__win_working_set_ex_info; /* PSAPI_WORKING_SET_EX_INFORMATION */
typedef BOOL(WINAPI *xm__win_query_working_set_ex_fn)(HANDLE, void *, DWORD);
typedef BOOL(WINAPI *xm__win_compare_handles_fn)(HANDLE, HANDLE);
typedef struct {
  ULONG Attributes;
  ACCESS_MASK GrantedAccess;
  ULONG HandleCount;
  ULONG PointerCount;
  ULONG Reserved[10];
} xm__win_object_info; /* PUBLIC_OBJECT_BASIC_INFORMATION */
typedef LONG(NTAPI *xm__win_query_object_fn)(HANDLE, int, void *, ULONG, ULONG *);
typedef SIZE_T(WINAPI *xm__win_large_page_minimum_fn)(void);

/* Functions that not every Windows (nor Wine, nor mingw-w64's import libraries) has; a NULL member
   is one this system lacks. */
struct xm__win_api {
  xm__win_prefetch_fn prefetch_virtual_memory; /* Windows 8 */
  xm__win_query_section_fn nt_query_section;   /* ntdll */
  xm__win_open_token_fn open_process_token;    /* kernelbase (Windows 8), else advapi32 */
  xm__win_adjust_privileges_fn adjust_token_privileges;
  xm__win_virtual_alloc2_fn virtual_alloc2; /* Windows 10 1803: placeholders */
  xm__win_map_view3_fn map_view_of_file3;
  xm__win_unmap_view2_fn unmap_view_of_file2;
  xm__win_query_working_set_ex_fn query_working_set_ex; /* kernel32 K32QueryWorkingSetEx (Windows 7) */
  xm__win_compare_handles_fn compare_object_handles;    /* Windows 10 1607 (Wine 8 has it) */
  xm__win_query_object_fn nt_query_object;              /* ntdll: a handle's granted access */
  xm__win_large_page_minimum_fn large_page_minimum;     /* Vista, but absent from Wine's headers */
};
/* The APIs, resolved once. NULL (GetLastError() says why) only when a DLL that exists could not be
   loaded: nothing is cached then, and the next call tries again. */
const struct xm__win_api *xm__win_api(void);
/* GetLargePageMinimum(): the large page size, 0 where there are none (or it cannot be asked). */
size_t xm__win_large_page_minimum(void);

/* ---- shared helpers -------------------------------------------------------------------------- */
/* The test build's fault-injection seam: act as if the next OS call failed. */
static inline bool xm__win_injected(void) {
  int e;
  if (!xm__os_inject_failure(&e)) return false;
  SetLastError((DWORD)e);
  return true;
}

/* Records the failed call with this thread's GetLastError() as XM_E_SYSTEM_CALL. */
static inline int xm__win_fail_last(const char *call) {
  return xm__fail_os(XM_E_SYSTEM_CALL, (int)GetLastError(), call);
}

static inline size_t xm__win_round_up(size_t v, size_t unit) { return (v + unit - 1) & ~(unit - 1); }

static inline bool xm__win_invalid_handle(HANDLE h) { return h == NULL || h == INVALID_HANDLE_VALUE; }

/* Closes a handle; the tests' accounting forgets it first (another thread may get the value next). */
static inline void xm__win_close(HANDLE h) {
  if (xm__win_invalid_handle(h)) return;
  xm__test_handle_closed(h);
  CloseHandle(h);
}

/* ---- handles and sections (shm_windows.c) ---------------------------------------------------- */
/* A non-inheritable duplicate of h with the same access rights. */
int xm__win_duplicate(HANDLE h, HANDLE *out);
/* A new non-inheritable section (CreateFileMappingW), or NULL with GetLastError() set. */
HANDLE xm__win_create_section(HANDLE file, DWORD protect, uint64_t max_size);
/* A new pagefile-backed section, PAGE_READWRITE (exec: PAGE_EXECUTE_READWRITE) and committed so
   that every holder's views are usable as they are, or NULL with GetLastError() set. */
HANDLE xm__win_create_memory_section(uint64_t size, bool exec);

/* ---- address space and protections (map_windows.c) ------------------------------------------- */
/* Enables SeLockMemoryPrivilege in the process token, which SEC_LARGE_PAGES needs. */
int xm__win_enable_lock_memory_privilege(void);
/* VirtualAlloc(MEM_RESERVE, PAGE_NOACCESS) at at (NULL: anywhere), or NULL with GetLastError(). */
void *xm__win_reserve(void *at, size_t size);

/* The FILE_MAP_* access a view is mapped with caps what VirtualProtect may grant its pages later,
   and the pages start with the protection that access implies. So a view is mapped with
   xm__win_view_prot(prot) and then changed to xm__win_page_protection(prot) where the two differ:
   PROT_NONE, execute-only, and exec-later views, which start as asked (read-write). Execute rights
   come from the section (created PAGE_EXECUTE_*) and from the handle (SECTION_MAP_EXECUTE): where
   either lacks them the OS refuses the view with ERROR_ACCESS_DENIED (a file section: the file
   handle needs FILE_EXECUTE), recorded as XM_E_SYSTEM_CALL with that error and a call name that
   says execute rights were asked for, as a handle without write access is. */
#define XM__WIN_EXEC_RIGHTS ", which needs a section and handle with execute rights" /* after a call's name */
/* The page protection for prot; copy: of a copy-on-write view. PAGE_EXECUTE_* for XM_PROT_EXEC. */
DWORD xm__win_page_protection(xm_prot prot, bool copy);
/* What a view for prot is mapped with: readable always (Windows maps no view without reads),
   writable when prot is, executable when prot is or when exec_later. */
xm_prot xm__win_view_prot(xm_prot prot, bool exec_later);
/* The FILE_MAP_* access of a view whose pages start as xm__win_page_protection(view_prot, copy). */
DWORD xm__win_view_access(xm_prot view_prot, bool copy);

/* ---- arena (arena_windows.c, arena_placeholders_windows.c, arena_split_windows.c) ------------ */
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

/* Calls fn with the base and type (MEM_MAPPED, MEM_PRIVATE) of each allocation in [from, to): a
   view, a reservation or a placeholder. fn may free it: each allocation's extent is found before
   fn is called and the walk goes on past it, never looking at freed addresses again. */
void xm__win_arena_walk(uintptr_t from, uintptr_t to, void (*fn)(void *allocation, DWORD type, void *ctx), void *ctx);
/* Unmaps every view and releases every reservation or placeholder in [from, to). */
void xm__win_arena_free(uintptr_t from, uintptr_t to);
/* Maps a piece's view at addr from its backing's handle (placeholders: replacing the placeholder
   that is exactly there) with the piece's protection. ERROR_SUCCESS, or the OS error with *call
   naming the call that failed; on failure the address range is as before. */
DWORD xm__win_arena_map_piece(bool placeholders, uintptr_t addr, const struct xm__arena_piece *q, const char **call);
/* xm__arena_piece.os_flags of a piece just mapped. */
unsigned xm__win_arena_view_flags(const struct xm__arena_piece *q);
/* Records the first failure of an arena change only: later ones (cleaning up) keep it. */
void xm__win_arena_note_failure(int *status, DWORD e, const char *call);

/* xm__os_arena_change for [r0, r1) of the window, the part of now[] that differs from old[]. */
int xm__win_arena_change_placeholders(uintptr_t base, const struct xm__arena_piece *old, size_t n_old,
                                      struct xm__arena_piece *now, size_t n_now, size_t r0, size_t r1, bool *kept);
int xm__win_arena_change_split(struct xm__os_arena *arena, const struct xm__arena_piece *old, size_t n_old,
                               struct xm__arena_piece *now, size_t n_now, size_t r0, size_t r1, bool *kept);
/* For the fault handler, before the hooks: whether the access (kind: ExceptionInformation[0])
   to addr hit an arena window that another thread is remapping or just remapped; true, once that
   change is done, when the access would now succeed (retry it). */
bool xm__win_arena_wait_remap(uintptr_t addr, ULONG_PTR kind);

/* Turns [base, base + size), one reservation of a new split-reservations arena, into reservations
   of at most a bounded block each, or one reservation again when a block is refused
   (arena_split_windows.c). False when something keeps part of the range: the range is then free,
   and the caller reserves anew. */
bool xm__win_arena_reserve_blocks(uintptr_t base, size_t size);
/* xm__os_arena_release of a split-reservations arena: frees the arena's own views and
   reservations only, never an allocation that took freed addresses (arena_split_windows.c). */
void xm__win_arena_release_split(struct xm__os_arena *arena, const struct xm__arena_piece *pieces, size_t n);
/* The record a split-reservations arena keeps of the ranges it lost (xm__os_arena.os_record), or
   NULL without memory. */
void *xm__win_arena_record_new(void);
void xm__win_arena_record_free(void *record);

#endif /* XMMAP_WIN_H */
