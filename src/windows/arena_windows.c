/* The Windows back end's arena (src/os.h "arena"): the strategy, the reservation, backings, and
 * what both strategies share; each strategy's change is in a file of its own.
 *
 * "placeholders" (Windows 10 1803+; VirtualAlloc2, MapViewOfFile3 and UnmapViewOfFile2 resolved
 *   at run time, api_windows.c, since mingw-w64's import libraries lack them), in
 *   arena_placeholders_windows.c: reserve = VirtualAlloc2(MEM_RESERVE | MEM_RESERVE_PLACEHOLDER,
 *   PAGE_NOACCESS); split a placeholder = VirtualFree(addr, len, MEM_RELEASE |
 *   MEM_PRESERVE_PLACEHOLDER); map = MapViewOfFile3(MEM_REPLACE_PLACEHOLDER); unmap =
 *   UnmapViewOfFile2(MEM_PRESERVE_PLACEHOLDER); coalesce = VirtualFree(addr, len, MEM_RELEASE |
 *   MEM_COALESCE_PLACEHOLDERS). Nothing is ever unreserved, so no other thread can take the range:
 *   GONE never happens, and a failed change is undone (the old pieces shaped and mapped again).
 * "split reservations" (where MEM_RESERVE_PLACEHOLDER is refused, e.g. Wine 8, which answers
 *   ERROR_INVALID_PARAMETER), in arena_split_windows.c: reserve = VirtualAlloc(MEM_RESERVE,
 *   PAGE_NOACCESS); to map into part of a reservation, VirtualFree(MEM_RELEASE) the reservations
 *   that overlap the new view, re-reserve their parts around it at once (a few MiB next to the
 *   view apart from the rest, so that the cost of a change does not grow with the arena), and
 *   MapViewOfFileEx at the freed address. Another allocation may take freed addresses in between
 *   (an intruder): it is named, reserved around and never freed (details there). Reservations
 *   are split on demand only (never one reservation per 64 KiB: a 64 GiB BAR arena would need a
 *   million).
 * In both strategies a view cannot be unmapped in part: an old view that the change covers only
 * partly is unmapped whole and its remainders are mapped again from the backing's section handle
 * at their adjusted backing_offset. That is why anonymous arena memory is a pagefile-backed section
 * (xm__os_arena_backing_new): its remainders, and the old pieces of a change that is undone, can
 * be mapped again with their data. XMMAP_ARENA=split forces the second strategy, so that a native
 * Windows run can test it too. */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "win.h"

enum { XM__ARENA_PLACEHOLDERS = 1u << 0 }; /* xm__os_arena.flags */

#define XM__SEC_FILE 0x800000 /* SECTION_BASIC_INFORMATION.AllocationAttributes: a file-backed section */

enum { STRATEGY_UNKNOWN, STRATEGY_PLACEHOLDERS, STRATEGY_SPLIT };
static atomic_int strategy; /* decided once; STRATEGY_UNKNOWN until then */

/* Whether VirtualAlloc2's failure says "no placeholders here", as opposed to a transient one. */
static bool refused(DWORD e) {
  return e == ERROR_INVALID_PARAMETER || e == ERROR_NOT_SUPPORTED || e == ERROR_INVALID_FLAGS ||
         e == ERROR_CALL_NOT_IMPLEMENTED;
}

/* The strategy, probed on first use. Only an answer is cached: a probe that fails for another
   reason (no memory, no address space) gives STRATEGY_UNKNOWN with *error set, and the next call
   probes again. */
static int decide_strategy(DWORD *error) {
  int s = atomic_load(&strategy);
  if (s != STRATEGY_UNKNOWN) return s;
  const char *force = getenv("XMMAP_ARENA");
  const struct xm__win_api *api = xm__win_api();
  if (force && strcmp(force, "split") == 0) {
    s = STRATEGY_SPLIT;
  } else if (!api) {
    *error = GetLastError();
    return STRATEGY_UNKNOWN;
  } else if (!api->virtual_alloc2 || !api->map_view_of_file3 || !api->unmap_view_of_file2) {
    s = STRATEGY_SPLIT;
  } else {
    /* Present is not enough (Wine exports them and refuses the flags): try one. Not a
       fault-injection point, or a test could switch the strategy for the whole process. */
    void *p = api->virtual_alloc2(GetCurrentProcess(), NULL, xm__granularity(), MEM_RESERVE | MEM_RESERVE_PLACEHOLDER,
                                  PAGE_NOACCESS, NULL, 0);
    if (p) {
      VirtualFree(p, 0, MEM_RELEASE);
      s = STRATEGY_PLACEHOLDERS;
    } else if (refused(GetLastError())) {
      s = STRATEGY_SPLIT;
    } else {
      *error = GetLastError();
      return STRATEGY_UNKNOWN;
    }
  }
  int expected = STRATEGY_UNKNOWN; /* a concurrent first call may have decided already */
  return atomic_compare_exchange_strong(&strategy, &expected, s) ? s : expected;
}

const char *xm__os_arena_strategy(void) {
  DWORD error = ERROR_SUCCESS;
  /* Undecided only while the probe meets transient failures: VirtualAlloc2 is there and did not
     refuse the flags, so placeholders are what arenas will use. */
  return decide_strategy(&error) == STRATEGY_SPLIT ? "split reservations" : "placeholders";
}

int xm__os_arena_reserve(size_t size, const struct xm__os_place *where, struct xm__os_arena *out) {
  DWORD error = ERROR_SUCCESS;
  const int s = decide_strategy(&error);
  if (s == STRATEGY_UNKNOWN)
    return xm__fail_os(XM_E_SYSTEM_CALL, (int)error, "VirtualAlloc2(MEM_RESERVE_PLACEHOLDER) probe");
  void *p = NULL;
  /* Split reservations: in bounded blocks, made again elsewhere should another thread take part
     of the range while it is being cut (after a few tries the arena keeps one reservation: every
     change still works, the first ones in a region cost more). */
  for (int attempt = 0;; attempt++) {
    if (where) {
      int rc = xm__os_reserve_in(size, where, s == STRATEGY_PLACEHOLDERS ? XM__RESERVE_PLACEHOLDER : 0, &p);
      if (rc) return rc;
    } else if (s == STRATEGY_PLACEHOLDERS) {
      p = xm__win_injected()
              ? NULL
              : xm__win_api()->virtual_alloc2(GetCurrentProcess(), NULL, size, MEM_RESERVE | MEM_RESERVE_PLACEHOLDER,
                                              PAGE_NOACCESS, NULL, 0);
      if (!p) return xm__win_fail_last("VirtualAlloc2(MEM_RESERVE_PLACEHOLDER)");
    } else {
      p = xm__win_reserve(NULL, size);
      if (!p) return xm__win_fail_last("VirtualAlloc(MEM_RESERVE)");
    }
    if (s == STRATEGY_PLACEHOLDERS || attempt == 3 || xm__win_arena_reserve_blocks((uintptr_t)p, size)) break;
  }
  void *record = NULL;
  if (s == STRATEGY_SPLIT && !(record = xm__win_arena_record_new())) {
    xm__win_arena_free((uintptr_t)p, (uintptr_t)p + size);
    return xm__fail(XM_E_NO_MEMORY, "out of memory for the arena's record of lost ranges");
  }
  /* The fault handler retries accesses to remainders being mapped again (xm__win_arena_wait_remap);
     best effort: without it such an access crashes as it would without the library. */
  (void)xm__os_fault_install();
  out->base = p;
  out->size = size;
  out->flags = s == STRATEGY_PLACEHOLDERS ? XM__ARENA_PLACEHOLDERS : 0;
  out->os_record = record;
  return XM_OK;
}

void xm__win_arena_walk(uintptr_t from, uintptr_t to, void (*fn)(void *allocation, DWORD type, void *ctx), void *ctx) {
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
      fn(allocation, mbi.Type, ctx);
    }
    p = end;
  }
}

static void free_allocation(void *allocation, DWORD type, void *ctx) {
  (void)ctx;
  if (type == MEM_MAPPED)
    UnmapViewOfFile(allocation);
  else
    VirtualFree(allocation, 0, MEM_RELEASE);
}

void xm__win_arena_free(uintptr_t from, uintptr_t to) { xm__win_arena_walk(from, to, free_allocation, NULL); }

/* The arena's invariants say that no view, reservation or placeholder crosses a piece boundary and
   that nothing else lives in a piece that is not GONE. */
void xm__os_arena_release(struct xm__os_arena *arena, const struct xm__arena_piece *pieces, size_t n) {
  uintptr_t base = (uintptr_t)arena->base;
  if (!(arena->flags & XM__ARENA_PLACEHOLDERS)) {
    xm__win_arena_release_split(arena, pieces, n); /* an intruder in a reserved piece stays */
    xm__win_arena_record_free(arena->os_record);
    arena->os_record = NULL;
    n = 0;
  }
  for (size_t k = 0; k < n; k++)
    if (pieces[k].kind != XM__PIECE_GONE)
      xm__win_arena_free(base + pieces[k].offset, base + pieces[k].offset + pieces[k].size);
  arena->base = NULL;
  arena->size = 0;
}

/* Adds of the same section share one duplicate of its handle (each handle costs a host file
   descriptor under Wine, whose limit 20,000 pieces of one section would otherwise exhaust). The
   object is compared with CompareObjectHandles, never by handle value (values are reused), and
   only a duplicate with the same granted access is shared. Where either API is missing (older
   Windows) or the table is full, each add keeps a duplicate of its own. */
#define XM__SHARED_HANDLES 64
static SRWLOCK shared_lock = SRWLOCK_INIT;
static struct {
  HANDLE handle; /* the back end's duplicate; NULL: a free slot */
  ACCESS_MASK access;
  size_t refs; /* backings that use it */
} shared[XM__SHARED_HANDLES];

static bool granted_access(const struct xm__win_api *api, HANDLE h, ACCESS_MASK *access) {
  xm__win_object_info info;
  if (!api || !api->compare_object_handles || !api->nt_query_object ||
      api->nt_query_object(h, 0 /* ObjectBasicInformation */, &info, sizeof info, NULL) < 0)
    return false;
  *access = info.GrantedAccess;
  return true;
}

static int share_duplicate(HANDLE d, HANDLE *handle) {
  const struct xm__win_api *api = xm__win_api();
  ACCESS_MASK access;
  if (!granted_access(api, d, &access)) return xm__win_duplicate(d, handle);
  AcquireSRWLockExclusive(&shared_lock);
  for (int k = 0; k < XM__SHARED_HANDLES; k++) {
    if (shared[k].handle && shared[k].access == access && api->compare_object_handles(shared[k].handle, d)) {
      shared[k].refs++;
      *handle = shared[k].handle;
      ReleaseSRWLockExclusive(&shared_lock);
      return XM_OK;
    }
  }
  int rc = xm__win_duplicate(d, handle);
  for (int k = 0; rc == XM_OK && k < XM__SHARED_HANDLES; k++) {
    if (!shared[k].handle) {
      shared[k].handle = *handle;
      shared[k].access = access;
      shared[k].refs = 1;
      break;
    }
  }
  ReleaseSRWLockExclusive(&shared_lock);
  return rc;
}

/* Whether handle is a shared duplicate that other backings still use (one use is given up). */
static bool still_shared(HANDLE handle) {
  bool kept = false;
  AcquireSRWLockExclusive(&shared_lock);
  for (int k = 0; k < XM__SHARED_HANDLES; k++) {
    if (shared[k].handle == handle) {
      kept = --shared[k].refs > 0;
      if (!kept) shared[k].handle = NULL; /* closed by the caller, after the lock */
      break;
    }
  }
  ReleaseSRWLockExclusive(&shared_lock);
  return kept;
}

int xm__os_arena_backing_new(enum xm__piece_kind kind, xm_descriptor d, size_t size, xm_prot prot,
                             xm_descriptor *handle) {
  if (kind == XM__PIECE_DESCRIPTOR) return share_duplicate(d, handle); /* remainders are mapped again from it */
  /* Anonymous arena memory is a section, so that a remainder can be mapped again with its data.
     Read-write (views may be mapped with less than the section allows), and executable only when
     the add asks for it. */
  HANDLE h = xm__win_create_memory_section(size, (prot & XM_PROT_EXEC) != 0);
  if (!h) return xm__win_fail_last("CreateFileMappingW");
  *handle = h;
  return XM_OK;
}

void xm__os_arena_backing_close(xm_descriptor handle) {
  if (!still_shared(handle)) xm__win_close(handle);
}

/* Views of file-backed sections cannot take MEM_RESET. */
unsigned xm__win_arena_view_flags(const struct xm__arena_piece *q) {
  if (q->kind != XM__PIECE_DESCRIPTOR) return 0;
  const struct xm__win_api *api = xm__win_api();
  xm__win_section_info info;
  if (api && api->nt_query_section &&
      api->nt_query_section(q->backing->handle, 0 /* SectionBasicInformation */, &info, sizeof info, NULL) >= 0 &&
      (info.AllocationAttributes & XM__SEC_FILE))
    return XM__WV_FILE;
  return 0;
}

void xm__win_arena_note_failure(int *status, DWORD e, const char *call) {
  if (*status == XM_OK) *status = xm__fail_os(XM_E_SYSTEM_CALL, (int)e, call);
}

DWORD xm__win_arena_map_piece(bool placeholders, uintptr_t addr, const struct xm__arena_piece *q, const char **call) {
  /* Mapped as xm__os_map does: with what a view can be mapped with, then changed to q->prot. */
  const xm_prot view_prot = xm__win_view_prot(q->prot, false);
  const DWORD mapped = xm__win_page_protection(view_prot, false), want = xm__win_page_protection(q->prot, false);
  const bool exec = (view_prot & XM_PROT_EXEC) != 0;
  void *p;
  if (placeholders)
    *call = exec ? "MapViewOfFile3(MEM_REPLACE_PLACEHOLDER, PAGE_EXECUTE_*)" XM__WIN_EXEC_RIGHTS
                 : "MapViewOfFile3(MEM_REPLACE_PLACEHOLDER)";
  else
    *call = exec ? "MapViewOfFileEx(FILE_MAP_EXECUTE)" XM__WIN_EXEC_RIGHTS : "MapViewOfFileEx";
  if (xm__win_injected()) {
    p = NULL;
  } else if (placeholders) {
    p = xm__win_api()->map_view_of_file3(q->backing->handle, GetCurrentProcess(), (void *)addr, q->backing_offset,
                                         q->size, MEM_REPLACE_PLACEHOLDER, mapped, NULL, 0);
  } else {
    p = MapViewOfFileEx(q->backing->handle, xm__win_view_access(view_prot, false), (DWORD)(q->backing_offset >> 32),
                        (DWORD)q->backing_offset, q->size, (void *)addr);
  }
  if (!p) return GetLastError();
  if (want != mapped) { /* PROT_NONE or execute-only */
    DWORD old;
    *call = "VirtualProtect";
    if (xm__win_injected() || !VirtualProtect(p, q->size, want, &old)) {
      DWORD e = GetLastError();
      if (placeholders)
        xm__win_api()->unmap_view_of_file2(GetCurrentProcess(), p, MEM_PRESERVE_PLACEHOLDER);
      else
        UnmapViewOfFile(p);
      return e;
    }
  }
  return ERROR_SUCCESS;
}

static bool same_piece(const struct xm__arena_piece *a, const struct xm__arena_piece *b) {
  return a->offset == b->offset && a->size == b->size && a->kind == b->kind && a->backing == b->backing &&
         a->backing_offset == b->backing_offset;
}

static bool unchanged(const struct xm__arena_piece *q, const struct xm__arena_piece *old, size_t n_old) {
  for (size_t o = 0; o < n_old; o++)
    if (same_piece(q, &old[o])) return true;
  return false;
}

static int change(struct xm__os_arena *arena, const struct xm__arena_piece *old, size_t n_old,
                  struct xm__arena_piece *now, size_t n_now, xm_descriptor d, bool *kept);

/* ---- accesses during a remap ----------------------------------------------------------------
   A view cannot be unmapped in part: while a change unmaps a partly covered view and maps its
   remainders again, accesses to the remainders fault for a moment. The change announces its
   window here first; the fault handler (fault_windows.c) asks xm__win_arena_wait_remap before
   anything else, which waits until the change is done and has the access retried. The change
   holds its arena's mutex but never touches mapped memory and never waits for another thread, so
   the faulting thread's wait always ends; a change's own thread never waits for itself. With all
   slots in use a change goes unannounced (its faults crash as before). */
#define XM__REMAP_SLOTS 64
enum { SLOT_FREE, SLOT_CLAIMED, SLOT_ACTIVE };
static struct {
  atomic_int state;
  atomic_uintptr_t lo, hi; /* kept after the change ends: a fault seen late still finds it */
  atomic_ulong thread;     /* the changing thread */
} remapping[XM__REMAP_SLOTS];
static atomic_int remapping_now;     /* windows announced since the start: 0 lets every fault through */
static atomic_uint remapping_cursor; /* slots are taken round the table, so ended windows stay a while */

static int remap_begin(uintptr_t lo, uintptr_t hi) {
  for (int n = 0; n < XM__REMAP_SLOTS; n++) {
    int k = (int)(atomic_fetch_add(&remapping_cursor, 1) % XM__REMAP_SLOTS), expected = SLOT_FREE;
    if (atomic_compare_exchange_strong(&remapping[k].state, &expected, SLOT_CLAIMED)) {
      atomic_store(&remapping[k].thread, GetCurrentThreadId());
      atomic_store(&remapping[k].lo, lo);
      atomic_store(&remapping[k].hi, hi);
      atomic_store(&remapping[k].state, SLOT_ACTIVE);
      atomic_store(&remapping_now, 1);
      return k;
    }
  }
  return -1;
}

static void remap_end(int k) {
  if (k >= 0) atomic_store(&remapping[k].state, SLOT_FREE);
}

/* Whether an access of this kind (ExceptionInformation[0]: 0 read, 1 write, 8 execute) to addr
   would succeed now. */
static bool accessible_now(uintptr_t addr, ULONG_PTR kind) {
  MEMORY_BASIC_INFORMATION m;
  if (VirtualQuery((void *)addr, &m, sizeof m) != sizeof m || m.State != MEM_COMMIT || (m.Protect & PAGE_GUARD))
    return false;
  const DWORD p = m.Protect & 0xff;
  const DWORD writable = PAGE_READWRITE | PAGE_WRITECOPY | PAGE_EXECUTE_READWRITE | PAGE_EXECUTE_WRITECOPY;
  const DWORD executable = PAGE_EXECUTE | PAGE_EXECUTE_READ | PAGE_EXECUTE_READWRITE | PAGE_EXECUTE_WRITECOPY;
  if (kind == 1) return (p & writable) != 0;
  if (kind == 8) return (p & executable) != 0;
  return p != PAGE_NOACCESS && p != PAGE_EXECUTE;
}

/* Whether a window holding addr is being remapped by another thread now. */
static bool remap_active(uintptr_t addr, DWORD me) {
  for (int k = 0; k < XM__REMAP_SLOTS; k++)
    if (atomic_load(&remapping[k].state) == SLOT_ACTIVE && addr >= atomic_load(&remapping[k].lo) &&
        addr < atomic_load(&remapping[k].hi) && atomic_load(&remapping[k].thread) != me)
      return true;
  return false;
}

bool xm__win_arena_wait_remap(uintptr_t addr, ULONG_PTR kind) {
  if (atomic_load(&remapping_now) == 0) return false;
  const DWORD me = GetCurrentThreadId();
  bool seen = false; /* addr lies in a window announced by another thread, now or lately */
  for (int k = 0; k < XM__REMAP_SLOTS; k++) {
    uintptr_t lo = atomic_load(&remapping[k].lo), hi = atomic_load(&remapping[k].hi);
    seen = seen || (addr >= lo && addr < hi && atomic_load(&remapping[k].thread) != me);
  }
  if (!seen) return false;
  /* Until the access works, or no change over addr runs any more (then the range was removed or
     protected: the fault goes on to the hooks as any other). */
  for (;;) {
    if (accessible_now(addr, kind)) return true;
    if (!remap_active(addr, me)) return accessible_now(addr, kind);
    SwitchToThread();
  }
}

int xm__os_arena_change(struct xm__os_arena *arena, const struct xm__arena_piece *old, size_t n_old,
                        struct xm__arena_piece *now, size_t n_now, xm_descriptor d, bool *kept) {
  bool remaps = false; /* a mapped old piece goes, which accesses may still reach */
  for (size_t o = 0; o < n_old; o++)
    remaps = remaps || xm__piece_is_mapped(&old[o]);
  const uintptr_t lo = (uintptr_t)arena->base + old[0].offset,
                  hi = lo + (old[n_old - 1].offset + old[n_old - 1].size - old[0].offset);
  const int slot = remaps ? remap_begin(lo, hi) : -1;
  int rc = change(arena, old, n_old, now, n_now, d, kept);
  remap_end(slot);
  return rc;
}

static int change(struct xm__os_arena *arena, const struct xm__arena_piece *old, size_t n_old,
                  struct xm__arena_piece *now, size_t n_now, xm_descriptor d, bool *kept) {
  (void)d; /* the new piece is mapped from its backing's own handle (a duplicate of d) */
  *kept = true;
  /* Pieces equal in old[] and now[] (the reserved neighbours of a removal, at the window's ends)
     stay as they are; the run between them changes. */
  size_t first = 0, last = n_now;
  while (first < n_now && unchanged(&now[first], old, n_old))
    first++;
  while (last > first && unchanged(&now[last - 1], old, n_old))
    last--;
  if (first == last) return XM_OK;
  const size_t r0 = now[first].offset, r1 = now[last - 1].offset + now[last - 1].size;
  const uintptr_t base = (uintptr_t)arena->base;
  if (arena->flags & XM__ARENA_PLACEHOLDERS)
    return xm__win_arena_change_placeholders(base, old, n_old, now, n_now, r0, r1, kept);
  return xm__win_arena_change_split(arena, old, n_old, now, n_now, r0, r1, kept);
}

/* ---- serialization ---------------------------------------------------------------------------- */
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
