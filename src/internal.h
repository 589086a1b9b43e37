/* Front-end internals shared by the library's front-end files: object layouts and helpers. */
#ifndef XMMAP_INTERNAL_H
#define XMMAP_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "os.h"
#include "support.h"
#include "xmmap/xmmap.h"

/* ---- errors (errors.c) ------------------------------------------------------------------- */
/* crosvm's OutOfBounds text: "address 0x<addr> is out of bounds". */
int xm__fail_out_of_bounds(size_t addr);
/* XM_E_INVALID_RANGE with offset, count and region size. */
int xm__fail_range(size_t offset, size_t count, size_t region_size);
/* XM_E_INVALID_ADDRESS with offset, count and size. */
int xm__fail_address(size_t offset, size_t count, size_t size);

/* ---- once (facts.c) ------------------------------------------------------------------------ */
/* Runs fn exactly once per zero-initialised state, however many threads call; every caller
   returns after fn has finished. fn must not fault or call xm__once on the same state. */
void xm__once(atomic_int *state, void (*fn)(void));

/* ---- checked arithmetic ------------------------------------------------------------------ */
static inline bool xm__add_overflows(size_t a, size_t b, size_t *sum) {
  *sum = a + b;
  return *sum < a;
}
/* [offset, offset + count) lies inside [0, size): empty ranges at the end included. */
static inline bool xm__range_inside(size_t offset, size_t count, size_t size) {
  return offset <= size && count <= size - offset;
}
static inline uintptr_t xm__align_down(uintptr_t v, size_t unit) { return v & ~(uintptr_t)(unit - 1); }
static inline bool xm__is_pow2(uint64_t v) { return v != 0 && (v & (v - 1)) == 0; }

/* ---- regions (region.c) ------------------------------------------------------------------ */
/* The MappedRegion interface: a mapping, an external mapping and an arena each fill in what they
   support; a NULL entry gives the *_UNSUPPORTED status. */
struct xm_region_ops {
  int (*add_fd_mapping)(xm_region *r, size_t offset, size_t size, xm_descriptor d, uint64_t d_offset, xm_prot prot);
  int (*remove_mapping)(xm_region *r, size_t offset, size_t size);
  int (*msync)(const xm_region *r, size_t offset, size_t size);
  int (*advise)(const xm_region *r, size_t offset, size_t size, xm_advice advice);
  int (*protect)(xm_region *r, size_t offset, size_t len, xm_prot prot);
  /* For a write tracker: fills prot[0..npages) with the owner's protection of each page from offset
     (page-aligned, inside the region) or'ed with XM__PAGE_VIEW_START on the first page of each OS
     view, sets *view (what xm__os_protect needs for this memory, or NULL), and calls
     with_lock_held(ctx) while no protection or piece change of the region can run. */
  void (*page_prots)(xm_region *r, size_t offset, size_t npages, unsigned char *prot, const struct xm__os_view **view,
                     void (*with_lock_held)(void *ctx), void *ctx);
  /* xm_region_commit / _decommit on a validated range: page multiples, inside, > 0, known prot. */
  int (*commit)(xm_region *r, size_t offset, size_t size, xm_prot prot);
  int (*decommit)(xm_region *r, size_t offset, size_t size);
};
/* The first page of an OS view (an arena piece, a mapping): a protection change never spans it. */
#define XM__PAGE_VIEW_START 0x80u
struct xm_region {
  const struct xm_region_ops *ops;
  void *ptr;
  size_t size;
  void *owner; /* the mapping or arena; NULL for an external mapping */
};

/* ---- mappings (builder.c, mapping.c) ----------------------------------------------------- */
struct xm_mapping {
  xm_mapping_prefix pub; /* must stay first: the inline accessors read it */
  xm_prot built_prot;    /* the ceiling for xm_mapping_protect */
  /* The protection the accessors check, which xm_mapping_protect changes while other threads
     read it (so every access is atomic): the whole mapping's `prot`, or per page `page_prot[i]`
     while `mixed` is set. page_prot is allocated by the first partial protect and freed only
     with the mapping, so a reader never touches freed memory. */
  unsigned char prot;
  bool mixed;
  unsigned char *page_prot; /* npages entries, then npages of scratch for a rollback */
  atomic_flag protect_lock; /* serializes xm_mapping_protect */
  struct xm_region region;
  struct xm__os_view view; /* what the back end needs to sync, protect and unmap */
};

/* An empty mapping object whose region and view are set up; NULL when out of memory. */
xm_mapping *xm__mapping_new(void);
/* Sets the limits of the inline accessors for one protection of the whole mapping. */
void xm__mapping_set_prot(xm_mapping *m, xm_prot prot);

/* Shared-memory objects (shm.c). */
struct xm_shm {
  xm_descriptor descriptor;
  uint64_t size;
  unsigned flags;             /* XM_SHM_* and XM__SHM_READ_ONLY: the exec and read-only policies read them */
  size_t huge_page_size;      /* with XM_SHM_HUGE: the object's page size (offsets and sizes of its
                            mappings must be multiples of it); else 0 */
  struct xm__shm_slot *known; /* its entry in the table of live objects (shm_known.c), or NULL */
};
/* A clone from xm_shm_clone_readonly: only read-only and copy-on-write mappings. */
#define XM__SHM_READ_ONLY 0x80000000u

/* What an arena add needs to know of a live object's descriptor (shm_known.c): the arena skips
   the OS's descriptor checks for the objects it knows. */
struct xm__shm_facts {
  unsigned flags;        /* xm_shm.flags */
  size_t huge_page_size; /* xm_shm.huge_page_size */
};
/* Every object the library makes is known from before it is handed out until it is freed:
   reserve a slot (XM_E_NO_MEMORY when the table cannot grow), then publish the object's facts;
   xm__shm_know does both. Forgetting a reserved or published object frees its slot. */
int xm__shm_reserve_slot(xm_shm *shm);
void xm__shm_publish(xm_shm *shm);
int xm__shm_know(xm_shm *shm);
void xm__shm_forget(xm_shm *shm);
bool xm__shm_lookup(xm_descriptor d, struct xm__shm_facts *facts);
/* XM_OK, or XM_E_ACCESS when the object's exec or read-only policy refuses prot for a shared
   mapping (what xm_builder_build and xm_arena_add_fd say). */
int xm__shm_check_policy(unsigned shm_flags, xm_prot prot);

/* ---- range helpers (range.c) --------------------------------------------------------------- */
/* Offset of the mapping's pointer inside its view (an unaligned offset's remainder). */
static inline size_t xm__view_skew(const xm_mapping *m) {
  return (size_t)(m->pub.base - (unsigned char *)m->view.base);
}
/* Whether every page of the non-empty range [offset, offset + len) allows need. */
bool xm__range_allows(const xm_mapping *m, size_t offset, size_t len, xm_prot need);
/* XM_E_ACCESS for a read or write of len bytes at offset. */
int xm__fail_access(size_t offset, size_t len, xm_prot need);
/* The checks of read/write_slice: NULL, offset past the end (XM_E_INVALID_ADDRESS), protection
   (XM_E_ACCESS); *n gets the count to copy, min(len, size - offset). */
int xm__slice_check(const xm_mapping *m, size_t len, size_t offset, xm_prot need, size_t *n);
/* Advice on [offset, offset + len) of the size bytes at base, which view maps (or NULL for memory
   the library does not own). A range leaving the region fails with range_status (crosvm uses
   XM_E_INVALID_RANGE for the named helpers and XM_E_INVALID_ADDRESS for region advice). */
int xm__advise_range(void *base, size_t size, size_t offset, size_t len, xm_advice advice,
                     const struct xm__os_view *view, int range_status);
/* Durable write-back of [offset, offset + len) of the size bytes at base (start rounded down to
   the page); a range leaving the region fails with range_status. */
int xm__sync_range(void *base, size_t size, size_t offset, size_t len, xm_sync mode, const struct xm__os_view *view,
                   int range_status);

/* ---- write tracking (dirty.c, dirty_protect.c) ------------------------------------------------
 * Every protection change of memory the library owns (xm_mapping_protect, xm_region_protect) goes
 * through xm__protect_tracked, and every arena change through the xm__dirty_*_change pair, so that
 * a "protect" tracker on that memory keeps its clean pages write-protected and knows the owner's
 * protection, and a tracker of either strategy reports replaced pieces. With no tracker alive they
 * cost one atomic load. Lock order: arena mutex, then the tracker registry, then trackers by
 * address; a fault hook takes only its own tracker's lock, and no lock is held while the library
 * touches tracked memory. */
/* xm__os_protect(view, addr, len, prot) (prot being the owner's new protection), keeping what
   trackers need: on failure the OS state is as before. */
int xm__protect_tracked(const struct xm__os_view *view, void *addr, size_t len, xm_prot prot);
/* Brackets an arena change of [addr, addr + len): trackers overlapping it are held (no collect
   runs) until end, which tells them the window's new pieces now[0..n) (offsets from arena_base;
   n = 0: nothing changed). begin returns whether it held any; end takes that answer. */
bool xm__dirty_begin_change(void *addr, size_t len);
/* The same bracket around an OS call that fills or empties pages (commit, decommit): tracked pages
   in [addr, addr + len) are reported at the next collect and lifted to the owner's protection. */
bool xm__dirty_begin_touch(void *addr, size_t len);
void xm__dirty_end_touch(bool held, void *addr, size_t len);
void xm__dirty_end_change(bool held, void *addr, size_t len, void *arena_base, const struct xm__arena_piece *now,
                          size_t n);

/* Checked slice [offset, offset + count) of [addr, addr + size) (slice.c). */
int xm__slice_range(void *addr, size_t size, size_t offset, size_t count, xm_slice *out);

#endif /* XMMAP_INTERNAL_H */
