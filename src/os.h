/* The OS contract: the few primitives each back end (src/posix, src/windows) implements.
 *
 * The front end validates every argument before it calls down here, so these functions assume
 * their documented pre-conditions. Every function that returns int returns XM_OK or a status that
 * it has already recorded with xm__fail_os() / xm__fail() (so xm_errmsg() and xm_os_error() are
 * set), and on failure it has released everything it took. Nothing here allocates front-end
 * objects. Modelled on mimalloc's prim.h. */
#ifndef XMMAP_OS_H
#define XMMAP_OS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "xmmap/xmmap.h"

/* ---- facts: called once by facts.c, which caches them ---------------------------------------- */
size_t xm__os_page_size(void);
/* The unit of mapping offsets and fixed addresses (64 KiB on Windows, the page size on POSIX). */
size_t xm__os_granularity(void);
const char *xm__os_backend_name(void);
/* The data-cache line size the OS reports, or 0 when it reports none; *source names where it
   came from (a static string). */
size_t xm__os_cacheline(const char **source);
/* The errno / GetLastError() value of the calling thread's last failed OS call. */
int xm__os_last_error(void);
/* The OS's text for an error number, without trailing newline or period. */
void xm__os_error_text(int os_error, char *buf, size_t len);
/* The value meaning "no descriptor" (-1 / NULL). */
xm_descriptor xm__os_no_descriptor(void);

/* ---- mappings ---------------------------------------------------------------------------------- */
enum xm__source {
  XM__SOURCE_ANON,       /* anonymous shared memory */
  XM__SOURCE_FILE,       /* a regular file: fd, or a file HANDLE on Windows */
  XM__SOURCE_SHM,        /* an xm_shm's descriptor (fd / section handle) */
  XM__SOURCE_DESCRIPTOR, /* POSIX: any fd; Windows: a section handle */
};

struct xm__map_request {
  enum xm__source source;
  xm_descriptor descriptor; /* unused for XM__SOURCE_ANON */
  uint64_t offset;          /* a multiple of xm__os_granularity(), <= INT64_MAX */
  size_t size;              /* > 0: bytes mapped from offset (whole pages are mapped) */
  size_t align;             /* 0, or a power of two > the granularity: alignment of the base */
  xm_prot prot;
  unsigned flags;           /* XM__OPT_* of internal.h: populate, dontdump, private, noreplace, huge */
  void *fixed_addr;         /* with XM__OPT_FIXED_NOREPLACE: granularity-aligned address */
  size_t guard_size;        /* bytes of inaccessible guard space before and after (page multiple) */
  size_t huge_page_size;    /* with XM__OPT_HUGE_PAGES: 0 = the default huge page size */
};

/* What the back end needs to sync, protect, advise and unmap a mapping. */
struct xm__os_view {
  void *base;               /* the first mapped byte (granularity-aligned) */
  size_t size;              /* the mapped length */
  void *reservation;        /* the whole address range taken, guard pages included */
  size_t reservation_size;
  xm_descriptor file;       /* Windows: the mapping's own duplicate of the file handle, else none */
  void *section;            /* Windows: the section handle when the view owns it, else NULL */
  unsigned flags;           /* back-end bits, e.g. the view is file-backed, the file is writable */
};

/* Checks that the caller's descriptor is valid for this source by an OS call on the descriptor
   itself (fstat / DuplicateHandle), before anything else is tried. */
int xm__os_check_descriptor(enum xm__source source, xm_descriptor d);
/* The size of a file or shared-memory object. */
int xm__os_descriptor_size(enum xm__source source, xm_descriptor d, uint64_t *size);
/* Maps what req asks for; on success *view describes it. */
int xm__os_map(const struct xm__map_request *req, struct xm__os_view *view);
/* Unmaps and releases everything view holds; never fails (errors are ignored). */
void xm__os_unmap(struct xm__os_view *view);
/* Writes [addr, addr + len) back to the file. addr is page-aligned and inside the view, or view
   is NULL for memory the library does not own (an external mapping). */
int xm__os_sync(const struct xm__os_view *view, void *addr, size_t len, xm_sync mode);
/* Changes the protection of [addr, addr + len); addr and len are page multiples. */
int xm__os_protect(const struct xm__os_view *view, void *addr, size_t len, xm_prot prot);
/* Applies advice to [addr, addr + len); addr page-aligned. view may be NULL (external memory).
   XM_E_NOT_IMPLEMENTED where the OS has no equivalent, never a silent success. */
int xm__os_advise(const struct xm__os_view *view, void *addr, size_t len, xm_advice advice);
/* Locks [addr, addr + len) in memory: on fault where the OS can (mlock2 MLOCK_ONFAULT), else at
   once (VirtualLock). */
int xm__os_lock(void *addr, size_t len);
int xm__os_unlock(void *addr, size_t len);
/* The huge-page (PMD) size of transparent huge pages, 0 when there are none. */
size_t xm__os_thp_size(void);

/* ---- shared memory ----------------------------------------------------------------------------- */
/* A new close-on-exec / non-inheritable shared-memory object; name has no NUL inside, size is
   <= INT64_MAX. */
int xm__os_shm_create(const char *name, uint64_t size, xm_descriptor *out);
/* Duplicates a descriptor, close-on-exec / non-inheritable. */
int xm__os_dup(xm_descriptor d, xm_descriptor *out);
void xm__os_close(xm_descriptor d);
int xm__os_shm_get_seals(xm_descriptor d, unsigned *seals);
int xm__os_shm_add_seals(xm_descriptor d, unsigned seals);

/* ---- fault-safe copies -------------------------------------------------------------------------- */
/* Which side of a fault-safe copy is mapped memory: faults there are recovered, faults on the
   other side (the caller's buffer) are left to the program like any other fault. */
enum xm__safe_side {
  XM__SAFE_SRC, /* a read: the mapping is the source */
  XM__SAFE_DST, /* a write: the mapping is the destination */
};
/* Copies len (> 0) bytes from src to dst (not overlapping). A memory fault (SIGBUS / SIGSEGV,
   EXCEPTION_IN_PAGE_ERROR / EXCEPTION_ACCESS_VIOLATION) at an address in a page that holds bytes
   of the guarded side (memcpy may load the aligned word around an unaligned start or end, so the
   fault address can lie just outside the bytes asked for), raised by this copy on this thread,
   ends the copy with XM_E_FAULT instead
   of ending the process; *done is then the index of the first byte not copied: every byte before
   it was copied, and it lies on the page that faulted (the back end may stop at the page's start
   or at the exact byte). On success *done = len. Faults anywhere else, on this or any other
   thread, behave exactly as without the library: the back end's handler (installed process-wide
   on first use, once, thread-safe) passes them on to whatever handled them before (POSIX: the
   previous sigaction, SA_SIGINFO or plain, SIG_DFL or SIG_IGN; Windows: the next exception
   handler). XM_E_FAULT is not recorded with xm__fail (the front end knows the mapping offsets);
   installing the handler may fail with XM_E_SYSTEM_CALL (recorded), XM_E_NOT_IMPLEMENTED where
   the back end cannot recover faults on this CPU. Not a fault-injection point: once installed,
   no OS call can fail. A handler that the program installs later for SIGBUS/SIGSEGV replaces the
   library's (as with any chaining handler): it must pass on what it does not handle, or safe
   copies lose their recovery. Nesting works (a signal handler that interrupts a safe copy may do one of
   its own): each copy recovers only its own range's faults. */
int xm__os_safe_copy(void *dst, const void *src, size_t len, enum xm__safe_side guarded, size_t *done);

/* ---- fault-injection seam (test builds only) --------------------------------------------------- */
/* Back ends call this before each OS primitive; when it returns true they act as if the call
   failed with *os_error (set errno / SetLastError to it). Release builds compile it away. */
#ifdef XMMAP_TEST_HOOKS /* only in xmmap_testable, the tests' copy */
bool xm__os_inject_failure(int *os_error);
#else
static inline bool xm__os_inject_failure(int *os_error) {
  (void)os_error;
  return false;
}
#endif

/* ---- arena ------------------------------------------------------------------------------------
 * The arena (xm_arena_*) is one reserved, inaccessible address range into which anonymous memory
 * and descriptors are mapped at fixed offsets and later removed again. The bookkeeping is the
 * front end's (src/arena.c): a sorted list of pieces that covers [0, arena size) without gaps.
 * Every change (add or remove) is planned there and handed to the back end as "these old pieces
 * become these new pieces"; the back end only makes the OS state match the new list.
 *
 * Units: "unit" below is xm__os_granularity() (the page on POSIX, 64 KiB on Windows). Every piece
 * offset, piece size, arena size and backing_offset that reaches the back end is a multiple of it.
 *
 * Invariants the front end keeps (and the back end may rely on):
 *  - Pieces are sorted, contiguous, non-empty, and cover the arena exactly.
 *  - A mapped piece (ANON or DESCRIPTOR) is exactly one OS view/mapping of its backing object at
 *    backing_offset: the back end never has to look for more than one view per mapped piece.
 *  - A RESERVED piece is inaccessible address space that belongs to the arena. It may be made of
 *    several OS reservations or placeholders (the front end merges adjacent RESERVED pieces in its
 *    list without telling the back end), but no OS reservation, placeholder or view ever extends
 *    across a piece boundary. So a back end that must release a RESERVED piece finds the OS
 *    objects inside it (Windows: VirtualQuery's AllocationBase / RegionSize) and frees each.
 *  - A GONE piece is address space the back end lost (see xm__os_arena_change's failure rules);
 *    it is not the arena's any more: nothing there is unmapped or released. GONE pieces are never
 *    merged with RESERVED ones.
 *  - Operations on one arena are serialized by the front end (struct xm__os_mutex below), so the
 *    back end needs no locking of its own for one arena; different arenas and other mappings may
 *    be changed by other threads at the same time (Windows split reservations must expect freed
 *    address space to be taken by another thread: retry, see below).
 *
 * Windows strategies (xm__os_arena_strategy):
 *  "placeholders" (Windows 10 1803+; VirtualAlloc2, MapViewOfFile3 and UnmapViewOfFile2 resolved
 *    from kernelbase.dll with GetProcAddress, since mingw-w64's import libraries lack them):
 *    reserve = VirtualAlloc2(MEM_RESERVE | MEM_RESERVE_PLACEHOLDER, PAGE_NOACCESS); split a
 *    placeholder = VirtualFree(addr, len, MEM_RELEASE | MEM_PRESERVE_PLACEHOLDER); map =
 *    MapViewOfFile3(MEM_REPLACE_PLACEHOLDER); unmap = UnmapViewOfFile2(MEM_PRESERVE_PLACEHOLDER);
 *    coalesce = VirtualFree(addr, len, MEM_RELEASE | MEM_COALESCE_PLACEHOLDERS). Nothing is ever
 *    unreserved, so no other thread can take the range; GONE never happens.
 *  "split reservations" (where MEM_RESERVE_PLACEHOLDER fails, e.g. Wine 8, which answers
 *    ERROR_INVALID_PARAMETER): reserve = VirtualAlloc(MEM_RESERVE, PAGE_NOACCESS); to map into part
 *    of a reservation, VirtualFree(MEM_RELEASE) the whole reservation, re-reserve the parts around
 *    the new view with VirtualAlloc at their addresses, and MapViewOfFileEx at the freed address.
 *    Another thread may take freed addresses in between: retry the whole step a bounded number of
 *    times; when an address stays taken, the piece there becomes GONE. Reservations are split on
 *    demand only (never one reservation per 64 KiB: a 64 GiB BAR arena would need a million).
 *  In both strategies a view cannot be unmapped in part: an old view that the change covers only
 *    partly is unmapped whole and its remainders (pieces of now[] that are not XM__PIECE_NEW and
 *    share the old piece's backing) are mapped again from the backing's section handle at their
 *    adjusted backing_offset. That is why anonymous arena memory is a pagefile-backed section on
 *    Windows (see xm__os_arena_backing_new): its remainders can be mapped again with their data.
 * POSIX ("mmap"): reserve = mmap(PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE); map =
 *    mmap(MAP_FIXED | MAP_SHARED [| MAP_ANONYMOUS | MAP_NORESERVE]) over the piece, which replaces
 *    what was there atomically; remove = mmap(MAP_FIXED, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS |
 *    MAP_NORESERVE) over the mapped parts, so that access faults (crosvm mapped readable zero pages
 *    there). Remainders of partly covered mappings stay where they are: nothing to re-map.
 * ------------------------------------------------------------------------------------------------ */

/* A mutex for the arena's serialization: the size of a pointer, opaque to the front end
   (POSIX: a heap-allocated pthread_mutex_t; Windows: an SRWLOCK stored in place). Not recursive. */
struct xm__os_mutex {
  void *opaque;
};
/* Makes *m usable. XM_OK, or XM_E_NO_MEMORY / XM_E_SYSTEM_CALL recorded (then *m is unusable and
   must not be destroyed). */
int xm__os_mutex_init(struct xm__os_mutex *m);
/* Blocks until the calling thread holds m. m is initialised and not held by the calling thread. */
void xm__os_mutex_lock(struct xm__os_mutex *m);
/* Releases m, which the calling thread holds. */
void xm__os_mutex_unlock(struct xm__os_mutex *m);
/* Frees what init took. m is initialised and not held; afterwards it is unusable. */
void xm__os_mutex_destroy(struct xm__os_mutex *m);

/* The arena's address range as the back end reserved it. */
struct xm__os_arena {
  void *base;    /* the first byte; a multiple of the unit */
  size_t size;   /* a multiple of the unit, > 0 */
  unsigned flags; /* back-end bits (e.g. which Windows strategy this arena was reserved with) */
};

enum xm__piece_kind {
  XM__PIECE_RESERVED,   /* inaccessible reserved space that belongs to the arena */
  XM__PIECE_ANON,       /* anonymous shared memory (Windows: a pagefile-backed section) */
  XM__PIECE_DESCRIPTOR, /* the caller's descriptor (POSIX: any mappable fd; Windows: a section) */
  XM__PIECE_GONE,       /* address space the back end lost; not the arena's any more */
};

/* The object a mapped piece maps. One backing is shared by all the pieces that were cut from one
   add (an add that is later partly covered leaves remainders that map the same object). The front
   end allocates it, counts the pieces that use it, and calls xm__os_arena_backing_close() when the
   last one is gone. */
struct xm__arena_backing {
  xm_descriptor handle; /* the back end's own handle, or xm__os_no_descriptor() when it keeps
                           none (POSIX: the kernel holds the object through the mapping) */
  size_t refs;          /* front end only */
};

enum {
  XM__PIECE_NEW = 1u << 0, /* in now[]: the mapping this change creates (the added range) */
};

struct xm__arena_piece {
  size_t offset;                     /* from the arena base */
  size_t size;
  enum xm__piece_kind kind;
  xm_prot prot;                      /* mapped pieces: the protection of the view */
  struct xm__arena_backing *backing; /* mapped pieces: what they map; NULL otherwise */
  uint64_t backing_offset;           /* mapped pieces: where the piece's first byte lies in the
                                        backing object (the descriptor offset) */
  unsigned flags;                    /* XM__PIECE_* */
  unsigned os_flags;                 /* back-end bits for this view, set by xm__os_arena_change for
                                        mapped pieces; the front end passes them back unchanged as
                                        xm__os_view.flags when it syncs or advises the piece */
};

/* Whether a piece maps memory (ANON or DESCRIPTOR). */
static inline bool xm__piece_is_mapped(const struct xm__arena_piece *p) {
  return p->kind == XM__PIECE_ANON || p->kind == XM__PIECE_DESCRIPTOR;
}

/* Which strategy arenas use in this process: "mmap", "placeholders" or "split reservations".
   Probed once (a back end with a choice decides at the first call); thread-safe; for `xmmap info`. */
const char *xm__os_arena_strategy(void);

/* Reserves size bytes of inaccessible address space (size a multiple of the unit, > 0) without
   committing memory, and fills *out. On failure nothing is reserved. The whole range is then one
   RESERVED piece. */
int xm__os_arena_reserve(size_t size, struct xm__os_arena *out);

/* Unmaps every view and releases every reservation of the arena. pieces[0..n) is the front end's
   complete list (it covers the arena); GONE pieces are skipped. Never fails (errors are ignored);
   afterwards *arena is unusable. Backing handles are not closed here (the front end closes them
   with xm__os_arena_backing_close afterwards). */
void xm__os_arena_release(struct xm__os_arena *arena, const struct xm__arena_piece *pieces, size_t n);

/* Prepares the object an add will map, before anything in the arena changes, so that a failure
   here changes nothing. kind is XM__PIECE_ANON or XM__PIECE_DESCRIPTOR; size is the rounded size
   of the add (> 0, a unit multiple). For XM__PIECE_DESCRIPTOR, d is the caller's descriptor, already
   checked by xm__os_check_descriptor(XM__SOURCE_DESCRIPTOR, d); the caller keeps ownership of d and
   may close it as soon as the add returns.
   *handle receives the back end's own handle for the object, or xm__os_no_descriptor():
     POSIX: always xm__os_no_descriptor() (no OS call: MAP_ANONYMOUS needs no object, and the
       kernel keeps a mapped file alive by itself).
     Windows: ANON: a new non-inheritable pagefile-backed section of size bytes (PAGE_READWRITE,
       whatever prot is: views may be mapped with less), so that remainders can be mapped again;
       DESCRIPTOR: a non-inheritable DuplicateHandle of d, so that remainders can be mapped again
       after the caller closed d.
   On failure nothing is created. */
int xm__os_arena_backing_new(enum xm__piece_kind kind, xm_descriptor d, size_t size, xm_prot prot,
                             xm_descriptor *handle);
/* Closes a handle from xm__os_arena_backing_new (no-op for xm__os_no_descriptor()). Called only
   when no view of the arena maps the object any more. */
void xm__os_arena_backing_close(xm_descriptor handle);

/* Makes the OS state of one window of the arena match a new list of pieces.
 *
 * Pre-conditions:
 *  - old[0..n_old) are consecutive pieces of the front end's list (unchanged by the call); their
 *    extent [E0, E1) is the window. now[0..n_now) are sorted, contiguous, non-empty pieces that
 *    cover exactly [E0, E1). n_old >= 1, n_now >= 1, n_now <= 5.
 *  - At most one piece of now[] carries XM__PIECE_NEW: the added range, kind ANON or DESCRIPTOR,
 *    with a backing fresh from xm__os_arena_backing_new (no other piece uses it). When it is a
 *    DESCRIPTOR piece, d is the caller's descriptor (valid for the call; map it at
 *    now[k].backing_offset, or map the backing's own handle instead); otherwise d is
 *    xm__os_no_descriptor().
 *  - Every other mapped piece of now[] is a remainder: it lies inside one mapped old piece with the
 *    same backing, prot and kind, and its backing_offset is that old piece's backing_offset plus
 *    the distance between their offsets. Its bytes must keep their contents (they are the same
 *    memory), so a back end that has to unmap the old view maps the remainder again.
 *  - now[] is not merged: each piece of it is either the changed range (the XM__PIECE_NEW piece
 *    of an add, or the RESERVED piece of a removal, which may span several old pieces of any
 *    kind) or a part of exactly one old piece (a remainder, or a whole old piece). Adjacent
 *    RESERVED pieces may appear; the front end merges them in its list after the call.
 *  - A RESERVED piece of now[] must end up inaccessible reserved space of the arena: where old[]
 *    was RESERVED already there is nothing to do (a back end may coalesce: placeholders,
 *    MEM_COALESCE_PLACEHOLDERS over adjacent RESERVED pieces of now[]); where old[] was mapped or
 *    GONE, unmap the views there / take the addresses back, and reserve.
 *  - A GONE piece of now[] is a part of a GONE old piece: nothing to do.
 *  - A piece of now[] equal to a piece of old[] (same offset, size, kind, backing, backing_offset)
 *    is unchanged; the front end includes such pieces only as RESERVED neighbours of a removed
 *    range, so that a back end may coalesce with them.
 *
 * Post-conditions, success (XM_OK): the OS state of the window is exactly now[]; the back end has
 *  set os_flags of every mapped piece of now[] (0 where it needs none).
 * Post-conditions, failure (a status recorded with xm__fail_os / xm__fail, the first failure's;
 *  later failures while cleaning up do not overwrite it): the window is still the arena's and
 *  consistent, and now[] says how: every piece the back end could not establish has been changed
 *  in now[] to kind RESERVED (the addresses are inaccessible reserved space again; the front end
 *  drops its backing reference) or, when even that was impossible (Windows split reservations:
 *  another thread keeps the freed addresses; POSIX: the PROT_NONE mmap failed), to kind GONE.
 *  The back end changes nothing else in now[]: offsets and sizes stay, so the list still covers
 *  the window. Pieces it did establish (including remainders) stay as they are. The caller's
 *  descriptor d is never closed or kept. */
int xm__os_arena_change(struct xm__os_arena *arena, const struct xm__arena_piece *old, size_t n_old,
                        struct xm__arena_piece *now, size_t n_now, xm_descriptor d);
/* ---- end of arena ------------------------------------------------------------------------------ */

#endif /* XMMAP_OS_H */
