/* The OS contract: the primitives each back end (src/posix, src/windows) implements, one section
   per back-end file (facts_*, map_*, shm_*, fault_*, arena_*), modelled on mimalloc's prim.h.
 *
 * Rules for every function here:
 *  - The front end has validated every argument: a back end may rely on the stated
 *    pre-conditions and checks nothing twice.
 *  - An int result is XM_OK or a status already recorded with xm__fail_os / xm__fail
 *    (src/support.h); on failure everything the call took is released.
 *  - Nothing here allocates or knows front-end objects. A back end includes this file and
 *    src/support.h, and nothing else of the front end. */
#ifndef XMMAP_OS_H
#define XMMAP_OS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "xmmap/xmmap.h"

/* ---- facts (facts_*.c) ------------------------------------------------------------------------ */
/* Each is called once; the front end caches the answer. */
size_t xm__os_page_size(void);
/* The unit of mapping offsets and fixed addresses (64 KiB on Windows, the page size on POSIX). */
size_t xm__os_granularity(void);
const char *xm__os_backend_name(void);
/* The data-cache line size the OS reports and *source where it came from (static), or 0 and NULL. */
size_t xm__os_cacheline(const char **source);
/* The huge-page (PMD) size of transparent huge pages, 0 when there are none. */
size_t xm__os_thp_size(void);
/* The errno / GetLastError() value of the calling thread's last failed OS call. */
int xm__os_last_error(void);
/* The OS's text for an error number, without trailing newline or period. */
void xm__os_error_text(int os_error, char *buf, size_t len);
/* The value meaning "no descriptor" (-1 / NULL). */
xm_descriptor xm__os_no_descriptor(void);
/* How many memory mappings the process has now (*used) and the most the kernel allows (*limit):
   Linux counts the lines of /proc/self/maps and reads vm.max_map_count. Not cached (the count
   changes). XM_E_NOT_IMPLEMENTED (recorded) where either cannot be known: Windows has no such
   limit, and QEMU user mode emulates /proc/self/maps with the guest's mappings only. */
int xm__os_map_count(size_t *used, size_t *limit);

/* ---- placement in an address range (place_*.c) ------------------------------------------------ */
/* Where a reservation may lie: its base b satisfies lo <= b, b + size <= hi and (b + lead) is a
   multiple of align. Pre-conditions: lo < hi, both multiples of the granularity; align a power of
   two >= the granularity; lead a multiple of the granularity (the guard bytes before a view whose
   base is the aligned address). */
struct xm__os_place {
  uintptr_t lo, hi;
  size_t align;
  size_t lead;
};
enum {
  XM__RESERVE_PLACEHOLDER = 1u << 0, /* Windows: the reservation is a placeholder (VirtualAlloc2) */
};
/* Reserves size (a granularity multiple, > 0, <= hi - lo) bytes of inaccessible address space at
   a free place that where allows (POSIX: a PROT_NONE MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE
   mapping; Windows: VirtualAlloc(MEM_RESERVE), or a placeholder with XM__RESERVE_PLACEHOLDER).
   XM_E_NO_ADDRESS (recorded, naming the range, size and alignment) when no such place is free,
   XM_E_MAP_LIMIT when the mapping count is exhausted. On failure nothing is reserved. Another
   thread may take the chosen place first: the search then goes on with the next one. */
int xm__os_reserve_in(size_t size, const struct xm__os_place *where, unsigned flags, void **out);

/* ---- mappings (map_*.c) ----------------------------------------------------------------------- */
enum xm__source {
  XM__SOURCE_ANON,       /* anonymous shared memory */
  XM__SOURCE_FILE,       /* a regular file: fd, or a file HANDLE on Windows */
  XM__SOURCE_SHM,        /* an xm_shm's descriptor (fd / section handle) */
  XM__SOURCE_DESCRIPTOR, /* POSIX: any fd; Windows: a section handle */
};

/* Builder options (xm_builder._private.flags, xm__map_request.flags). */
enum {
  XM__OPT_POPULATE = 1u << 0,
  XM__OPT_DONTDUMP = 1u << 1,
  XM__OPT_PRIVATE = 1u << 2,
  XM__OPT_TO_END_OF_FILE = 1u << 3, /* front end only: the size comes from the file */
  XM__OPT_FIXED_NOREPLACE = 1u << 4,
  XM__OPT_HUGE_PAGES = 1u << 5,
  XM__OPT_EXEC_LATER = 1u << 6,    /* the view may be made executable later (Windows: a section and a
                                   view with execute rights; POSIX: nothing to do) */
  XM__OPT_ADDRESS_RANGE = 1u << 7, /* the view and its guards lie inside [range_lo, range_hi) */
};

/* Every XM_PROT_* bit. */
#define XM__PROT_ALL (XM_PROT_READ | XM_PROT_WRITE | XM_PROT_EXEC)

struct xm__map_request {
  enum xm__source source;
  xm_descriptor descriptor; /* unused for XM__SOURCE_ANON */
  uint64_t offset;          /* a multiple of the granularity; offset + size <= INT64_MAX */
  size_t size;              /* > 0: bytes mapped from offset (whole pages are mapped) */
  size_t align;             /* 0, or a power of two > the granularity: alignment of the base */
  xm_prot prot;
  unsigned flags;        /* XM__OPT_* */
  void *fixed_addr;      /* with XM__OPT_FIXED_NOREPLACE: non-NULL, granularity-aligned, a
                               multiple of align; the view's base is exactly there */
  size_t guard_size;     /* inaccessible bytes before and after the view (page multiple) */
  size_t huge_page_size; /* with XM__OPT_HUGE_PAGES: 0 = the default huge page size */
  uintptr_t range_lo;    /* with XM__OPT_ADDRESS_RANGE (never with FIXED_NOREPLACE): granularity */
  uintptr_t range_hi;    /* multiples, range_lo < range_hi, room for the view and its guards */
};

/* What the back end needs to sync, protect, advise and unmap a mapping. */
struct xm__os_view {
  void *base;        /* the first mapped byte (granularity-aligned) */
  size_t size;       /* the mapped length */
  void *reservation; /* the whole address range taken, guard pages included */
  size_t reservation_size;
  xm_descriptor file; /* Windows: the mapping's own duplicate of the file handle, else none */
  void *section;      /* Windows: the section handle when the view owns it, else NULL */
  unsigned flags;     /* back-end bits, e.g. the view is file-backed, the file is writable */
};

/* Checks by an OS call on the descriptor itself (fstat / DuplicateHandle) that d can be mapped
   as source. */
int xm__os_check_descriptor(enum xm__source source, xm_descriptor d);
/* The size of a file or shared-memory object. */
int xm__os_descriptor_size(enum xm__source source, xm_descriptor d, uint64_t *size);
/* Maps what req asks for and fills *view. */
int xm__os_map(const struct xm__map_request *req, struct xm__os_view *view);
/* Unmaps and releases everything view holds. Never fails. */
void xm__os_unmap(struct xm__os_view *view);
/* Writes [addr, addr + len) back to the file. addr is page-aligned and inside the view, or view
   is NULL for memory the library does not own (an external mapping). */
int xm__os_sync(const struct xm__os_view *view, void *addr, size_t len, xm_sync mode);
/* Changes the protection of [addr, addr + len): page multiples inside the view. */
int xm__os_protect(const struct xm__os_view *view, void *addr, size_t len, xm_prot prot);
/* Applies advice to [addr, addr + len): addr page-aligned; view may be NULL (external memory).
   Destructive advice (DONTNEED, REMOVE) comes as whole pages the caller named. No OS equivalent:
   XM_E_NOT_IMPLEMENTED, never a silent success. */
int xm__os_advise(const struct xm__os_view *view, void *addr, size_t len, xm_advice advice);
/* Locks [addr, addr + len) (page-aligned) on fault where the OS can, else at once; unlock is the
   same kind of call in reverse. */
int xm__os_lock(void *addr, size_t len);
int xm__os_unlock(void *addr, size_t len);

/* The advice names of messages ("MADV_" + this). */
static inline const char *xm__advice_name(xm_advice advice) {
  static const char *const names[] = {"NORMAL",   "RANDOM",        "SEQUENTIAL",    "WILLNEED",    "DONTNEED",
                                      "REMOVE",   "DONTFORK",      "DOFORK",        "HUGEPAGE",    "NOHUGEPAGE",
                                      "DONTDUMP", "DODUMP",        "MERGEABLE",     "UNMERGEABLE", "COLD",
                                      "PAGEOUT",  "POPULATE_READ", "POPULATE_WRITE"};
  return (unsigned)advice < sizeof names / sizeof names[0] ? names[advice] : "unknown";
}

/* ---- instruction cache (facts_*.c) ------------------------------------------------------------- */
/* The OS call that makes written instructions visible to instruction fetches, where user space
   cannot do it alone (armhf cacheflush, riscv64 riscv_flush_icache, Windows
   FlushInstructionCache): its name, or NULL when the arch unit does it (src/arch.h). */
const char *xm__os_icache_method(void);
/* Runs that call over [addr, addr + len) (len > 0). */
int xm__os_icache_sync(const void *addr, size_t len);

/* ---- shared memory (shm_*.c) ------------------------------------------------------------------ */
/* A new close-on-exec / non-inheritable shared-memory object of size (<= INT64_MAX) bytes; name
   has no NUL inside. flags: XM_SHM_* (checked: never LAZY_COMMIT with HUGE).
 *  - XM_SHM_EXEC: an object that may be mapped executable (Linux creates it without the exec seal
 *    where vm.memfd_noexec allows, Windows with execute rights).
 *  - XM_SHM_LAZY_COMMIT: Windows reserves the section's pages (SEC_RESERVE); Linux ignores it.
 *  - XM_SHM_HUGE: *huge_page_size in: 0 (the default) or a power of two; out: the huge page size
 *    the object really has. XM_E_NOT_PAGE_ALIGNED when size is not a multiple of it;
 *    XM_E_NOT_IMPLEMENTED with the reason when that size does not exist, no pool is configured,
 *    or the OS gave no large pages. Without the flag *huge_page_size is 0 and stays so.
 * Windows objects carry a security descriptor that grants nobody access (see
 * xm__os_shm_clone_readonly); every handle the library holds was duplicated with its rights. */
int xm__os_shm_create(const char *name, uint64_t size, unsigned flags, size_t *huge_page_size, xm_descriptor *out);
/* A new close-on-exec / non-inheritable descriptor of d's object through which the object cannot
   be written, now or later (Linux: the write seal, then a read-only reopen; Windows: a read-only
   handle whose rights the object's security keeps from being raised, checked). d stays as it is
   on failure, seals included. */
int xm__os_shm_clone_readonly(xm_descriptor d, xm_descriptor *out);
/* A close-on-exec / non-inheritable duplicate of d. */
int xm__os_dup(xm_descriptor d, xm_descriptor *out);
/* Closes d; no-op for xm__os_no_descriptor(). */
void xm__os_close(xm_descriptor d);
/* XM_SEAL_* bits; XM_E_NOT_IMPLEMENTED where the object cannot be sealed. */
int xm__os_shm_get_seals(xm_descriptor d, unsigned *seals);
int xm__os_shm_add_seals(xm_descriptor d, unsigned seals);

/* ---- commit and decommit (commit_*.c) ---------------------------------------------------------- */
/* Commits [addr, addr + len) (page-aligned, > 0, inside view, or view NULL for memory the library
   does not own) with prot, at most what the view was mapped with (Windows: VirtualAlloc
   MEM_COMMIT; POSIX: pre-faults, protection unchanged). */
int xm__os_commit(const struct xm__os_view *view, void *addr, size_t len, xm_prot prot);
/* Gives back the memory of [addr, addr + len) as xm_region_decommit documents (POSIX: MADV_REMOVE;
   Windows: MEM_RESET of the committed pages). */
int xm__os_decommit(const struct xm__os_view *view, void *addr, size_t len);

/* ---- fault recovery (fault_*.c) --------------------------------------------------------------- */
/* A guarded run: the front end's fault-safe copy fills lo, len and run, and the back end runs it
   with memory faults in [lo, lo + len) recovered. */
struct xm__fault_guard {
  uintptr_t lo; /* page-aligned */
  size_t len;   /* > 0, a page multiple */
  void (*run)(struct xm__fault_guard *g);
};
/* Calls g->run(g) on this thread. XM_OK when it returns; XM_E_FAULT (not recorded: the front end
   knows the offsets) when a memory fault (SIGBUS / SIGSEGV, EXCEPTION_IN_PAGE_ERROR /
   EXCEPTION_ACCESS_VIOLATION) raised by this thread inside g's range ends it early.
 *  - Only the guard running now on this thread recovers: a guarded run nested inside a signal
 *    handler recovers its own range, never an outer one's. A guard whose run a handler jumped
 *    out of is never recovered into: POSIX clears the thread's guard while it passes a fault on;
 *    Windows, which cannot restore it afterwards, recognises a dead guard before recovering.
 *  - Works in threads that block SIGBUS/SIGSEGV and inside signal handlers.
 *  - Every other fault, on any thread, goes where it would go without the library (POSIX: the
 *    previous sigaction, SIG_DFL or SIG_IGN; Windows: the next exception handler).
 *  - The handler is installed once, process-wide, on first use: XM_E_SYSTEM_CALL (recorded) if
 *    that fails, XM_E_NOT_IMPLEMENTED where this CPU's faults cannot be recovered. Not a
 *    fault-injection point. */
int xm__os_run_guarded(struct xm__fault_guard *g);

/* The dispatcher. For every memory fault (POSIX: SIGSEGV / SIGBUS with si_code > 0; Windows:
   EXCEPTION_ACCESS_VIOLATION / EXCEPTION_IN_PAGE_ERROR) the back end's handler, in this order:
 *  1. fills an xm_fault (addr, pc, the OS context, the access kind where the CPU reports it) and
 *     calls xm__fault_dispatch_hooks; true: resume the faulting thread with the (possibly changed)
 *     context;
 *  2. recovers the guard running on this thread if the address is in its range (above);
 *  3. passes the fault on as if the library were absent (POSIX: the handlers found in front of it
 *     when it was installed or reinstalled, then SIG_DFL / SIG_IGN; Windows: the next handler).
 * While a hook runs or a fault is passed on, the thread's guard is set aside: a fault there never
 * jumps into the guarded run it interrupted. */
/* Installs the handler if it is not yet (as xm__os_run_guarded does). */
int xm__os_fault_install(void);
/* XM_OK while the handler is in front (installing it first), XM_E_EXISTS (recorded, naming what is
   in front) when another was installed over it. */
int xm__os_fault_handler_check(void);
/* Puts the handler back in front; what was in front is chained to first. A handler that passes
   faults back to the library's does not make a loop: the library passes such a fault on to the
   handler before it. */
int xm__os_fault_handler_reinstall(void);
/* One pointer per thread for the dispatcher's front end, readable and writable in a fault handler
   without allocating (NULL on a thread that never set it). */
void *xm__os_fault_thread_get(void);
void xm__os_fault_thread_set(void *p);
/* Gives the processor to another thread (a writer waiting for a handler to finish). */
void xm__os_yield(void);
/* Provided by the front end (fault_hooks.c); async-signal-safe. */
bool xm__fault_dispatch_hooks(const xm_fault *f);

/* ---- kernel write tracking (dirty_*.c) --------------------------------------------------------
 * The "uffd-wp" strategy of xm_dirty: the kernel write-protects the range and records the first
 * write to each page itself (Linux userfaultfd in asynchronous write-protect mode, collected and
 * re-armed by one PAGEMAP_SCAN), so no fault reaches user space. Windows and kernels or emulators
 * without it give XM_E_NOT_IMPLEMENTED and the front end write-protects pages itself ("protect"). */
struct xm__os_wp {
  intptr_t handle; /* the userfaultfd, or -1 */
};
/* Whether the strategy works here, probed once (every step: the userfaultfd syscall, UFFDIO_API
   with the asynchronous write-protect features, UFFDIO_REGISTER, UFFDIO_WRITEPROTECT and
   PAGEMAP_SCAN on throwaway shared and anonymous memory); when it does not, *why (static text) says
   which step failed, else *why is NULL. Thread-safe; not a fault-injection point. A probe that ran
   short of descriptors or memory is not cached. */
bool xm__os_wp_available(const char **why);
/* Starts tracking [addr, addr + len) (page-aligned, > 0; memory of one region: shared memory,
   anonymous or file mappings): registers it and write-protects every page. Protection set with
   mprotect / VirtualProtect is independent of it. XM_E_NOT_IMPLEMENTED (with the probe's reason)
   where xm__os_wp_available says no. Linux refuses (EPERM) a shared mapping the process may never
   write (a read-only descriptor, a write-sealed memfd). The first start opens /proc/self/pagemap
   and keeps it for the process (reopened in a forked child). */
int xm__os_wp_start(void *addr, size_t len, struct xm__os_wp *wp);
/* Tracks [addr, addr + len) again after its kernel mapping was replaced (an arena piece added or
   removed inside the tracked range: the new mapping, a reservation too, is not registered, and
   until this call a collect over it fails rather than miss its writes). The caller reports the
   range dirty in full at the next collect. On failure the rest of the tracker works as before. */
int xm__os_wp_restart_range(struct xm__os_wp *wp, void *addr, size_t len);
/* Sets bit (first_bit + i) of bitmap (bit n is bit n % 64 of bitmap[n / 64]) for each page i of
   [addr, addr + len) written since it was last write-protected, write-protects those pages again
   in the same call, and adds the number of pages reported to *count. Bits of unwritten pages are
   left as they are. On failure (XM_E_SYSTEM_CALL: e.g. EPERM for a mapping in the range that is not
   tracked) the pages already write-protected again are still set in bitmap and counted, so no
   write is lost; the rest of the range keeps its writes for the next collect. Writes may race a
   collect: each is reported by the first collect that starts after it completed, or an earlier one. */
int xm__os_wp_collect(struct xm__os_wp *wp, void *addr, size_t len, uint64_t *bitmap, size_t first_bit, size_t *count);
/* Stops tracking [addr, addr + len) (lifting the write protection) and releases the tracker;
   never fails. wp->handle is -1 afterwards. */
void xm__os_wp_stop(struct xm__os_wp *wp, void *addr, size_t len);

/* ---- fault-injection seam (test builds only) --------------------------------------------------- */
/* Back ends ask this before each OS primitive; when it is true they act as if the call failed
   with *os_error (set errno / SetLastError to it). Release builds compile it away. */
#include "test/hooks.h"
static inline bool xm__os_inject_failure(int *os_error) { return xm__test_inject_failure(os_error); }

/* ---- arena (arena_*.c) ------------------------------------------------------------------------
 * The arena is one reserved, inaccessible address range into which anonymous memory and
 * descriptors are mapped at fixed offsets and removed again. The front end (src/arena.c) keeps
 * the pieces: a sorted list (a balanced tree, src/arena_pieces.c) that covers [0, arena size)
 * without gaps. Each add or remove is planned there and handed down as "these old pieces become
 * these new pieces"; the back end makes the OS state match. The back ends' recipes are at the top of arena_posix.c and arena_windows.c.
 *
 * "Unit" is the arena unit, xm__os_arena_unit() (xm_arena_granularity): every piece offset and
 * size, arena size and backing_offset that reaches the back end is a multiple of it, and of the
 * page size of the piece's object where that is larger (huge pages).
 *
 * Invariants the front end keeps:
 *  - Pieces are sorted, contiguous, non-empty, and cover the arena exactly.
 *  - A mapped piece (ANON or DESCRIPTOR) is exactly one OS view of its backing at backing_offset.
 *  - A RESERVED piece is inaccessible address space of the arena. It may consist of several OS
 *    reservations or placeholders, but none of them crosses a piece boundary.
 *  - A GONE piece is address space the back end lost to someone else: nothing there is unmapped
 *    or released, and GONE pieces are never merged with RESERVED ones.
 *  - Windows split reservations: a RESERVED piece may also hold an allocation that is not the
 *    arena's (one that took addresses a change had freed). The back end records its range, never
 *    frees it and reserves around it: it is the GONE part of that piece (the front end cannot cut
 *    pieces at its edges, since a change's now[] keeps its offsets and sizes).
 *  - Operations on one arena are serialized by the front end (xm__os_mutex); other arenas and
 *    mappings may change at the same time on other threads.
 * ------------------------------------------------------------------------------------------------ */

/* At most this many pieces replace a window in one change: a front remainder, the change, a back
   remainder, and a RESERVED neighbour on each side of a removal. */
#define XM__ARENA_MAX_PIECES 5

/* A non-recursive mutex the size of a pointer, opaque to the front end. */
struct xm__os_mutex {
  void *opaque;
};
/* XM_OK, or a recorded status (then *m is unusable and is not destroyed). */
int xm__os_mutex_init(struct xm__os_mutex *m);
void xm__os_mutex_lock(struct xm__os_mutex *m);    /* m not held by this thread */
void xm__os_mutex_unlock(struct xm__os_mutex *m);  /* m held by this thread */
void xm__os_mutex_destroy(struct xm__os_mutex *m); /* m not held; unusable afterwards */

/* The arena's address range as the back end reserved it. */
struct xm__os_arena {
  void *base;      /* the first byte; a multiple of the unit */
  size_t size;     /* a multiple of the unit, > 0 */
  unsigned flags;  /* back-end bits (e.g. the Windows strategy of this arena) */
  void *os_record; /* the back end's own record of the arena, or NULL (Windows split reservations:
                      the ranges intruders took) */
};

enum xm__piece_kind {
  XM__PIECE_RESERVED,   /* inaccessible reserved space of the arena */
  XM__PIECE_ANON,       /* anonymous shared memory (Windows: a pagefile-backed section) */
  XM__PIECE_DESCRIPTOR, /* the caller's descriptor (POSIX: any mappable fd; Windows: a section) */
  XM__PIECE_GONE,       /* address space the back end lost; not the arena's any more */
};

/* The object mapped pieces map. All pieces cut from one add share it; the front end counts them
   and closes the handle when the last is gone. */
struct xm__arena_backing {
  xm_descriptor handle; /* the back end's own handle, or xm__os_no_descriptor() */
  size_t refs;          /* front end only */
};

enum {
  XM__PIECE_NEW = 1u << 0, /* in now[]: the mapping this change creates (the added range) */
};

struct xm__arena_piece {
  size_t offset; /* from the arena base */
  size_t size;
  enum xm__piece_kind kind;
  xm_prot prot;                      /* mapped pieces: the view's protection */
  struct xm__arena_backing *backing; /* mapped pieces: what they map; NULL otherwise */
  uint64_t backing_offset;           /* mapped pieces: the object offset of the first byte */
  unsigned flags;                    /* XM__PIECE_* */
  unsigned os_flags;                 /* set by the back end for mapped pieces; passed back as xm__os_view.flags */
};

static inline bool xm__piece_is_mapped(const struct xm__arena_piece *p) {
  return p->kind == XM__PIECE_ANON || p->kind == XM__PIECE_DESCRIPTOR;
}

/* The unit of every arena's offsets and sizes: the page on POSIX and with Windows placeholders;
   the allocation granularity with split reservations. At most the granularity, which arena
   reservations are still made in. Constant once the strategy is decided; cheap. */
size_t xm__os_arena_unit(void);
/* xm__os_check_descriptor(XM__SOURCE_DESCRIPTOR, d), and on success *page_size = the page size
   of the object d maps: the huge page size of a hugetlbfs file or MFD_HUGETLB memfd (Linux), else
   the page size (Windows large-page sections are not told apart). */
int xm__os_check_arena_descriptor(xm_descriptor d, size_t *page_size);

/* "mmap", "placeholders" or "split reservations": decided once, thread-safe. */
const char *xm__os_arena_strategy(void);

/* Reserves size (a unit multiple, > 0) bytes of inaccessible address space without committing
   memory, anywhere (where NULL) or as where asks (xm__os_reserve_in's rules, lead 0). On failure
   nothing is reserved. */
int xm__os_arena_reserve(size_t size, const struct xm__os_place *where, struct xm__os_arena *out);

/* Unmaps every view and releases every reservation; pieces[0..n) is the whole list, and GONE
   pieces are skipped. Never fails; *arena is unusable afterwards. Backing handles are the front
   end's to close. */
void xm__os_arena_release(struct xm__os_arena *arena, const struct xm__arena_piece *pieces, size_t n);

/* Prepares the object an add maps, before anything in the arena changes. kind is ANON or
   DESCRIPTOR; size is the add's rounded size; d is the caller's descriptor, already checked with
   xm__os_check_descriptor(XM__SOURCE_DESCRIPTOR, d), which the caller keeps. *handle is the back
   end's own handle for the object (one that can map the add's remainders again after the caller
   closed d), or xm__os_no_descriptor() when the OS keeps the object alive through the mapping. */
int xm__os_arena_backing_new(enum xm__piece_kind kind, xm_descriptor d, size_t size, xm_prot prot,
                             xm_descriptor *handle);
/* Closes a handle from xm__os_arena_backing_new once no view maps the object. */
void xm__os_arena_backing_close(xm_descriptor handle);

/* Makes the OS state of one window of the arena match a new list of pieces.
 * Pre-conditions:
 *  - old[0..n_old) (n_old >= 1) are consecutive pieces of the list; their extent is the window.
 *    now[0..n_now) (1 <= n_now <= XM__ARENA_MAX_PIECES) are sorted, contiguous and cover it.
 *  - At most one piece of now[] has XM__PIECE_NEW: the added range, ANON or DESCRIPTOR, with a
 *    fresh backing; d is then the caller's descriptor for a DESCRIPTOR add, else none.
 *  - Every other mapped piece of now[] is a remainder: part of one mapped old piece with the same
 *    backing, prot and kind, at the matching backing_offset; its bytes keep their contents.
 *  - A RESERVED piece of now[] must end up inaccessible reserved space; a GONE one is part of a
 *    GONE old piece; a piece equal to an old one is unchanged (a neighbour to coalesce with).
 * Success: the window's OS state is exactly now[], and os_flags is set for every mapped piece.
 * Failure (the first failure's status recorded):
 *  - *kept true: the window is exactly as old[] describes it, contents and protection included;
 *    now[] is ignored. Back ends arrange their OS calls so that this is every failure they can
 *    foresee (map the new piece before the old one goes, check before touching the range).
 *  - *kept false, only where the old state could not be restored (Windows split reservations:
 *    another thread keeps freed addresses): the window is still the arena's and consistent, and
 *    now[] says how: each piece the back end could not establish is RESERVED or, where even the
 *    reservation was impossible, GONE. Offsets and sizes in now[] never change.
 *  The caller's d is never closed or kept. */
int xm__os_arena_change(struct xm__os_arena *arena, const struct xm__arena_piece *old, size_t n_old,
                        struct xm__arena_piece *now, size_t n_now, xm_descriptor d, bool *kept);

#endif /* XMMAP_OS_H */
