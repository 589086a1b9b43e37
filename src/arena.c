/* The arena (crosvm MemoryMappingArena): validation, the piece bookkeeping shared by every back
   end, and the arena's region interface. The OS work is xm__os_arena_* in src/os.h. */
#include <stdlib.h>
#include <string.h>

#include "arena.h"

static const struct xm_region_ops arena_region_ops;

/* The unit of piece offsets and sizes (xm_arena_granularity), named the way the user sees it in
   messages. */
static size_t arena_unit(void) { return xm__os_arena_unit(); }
static const char *unit_name(void) { return arena_unit() == xm__page_size() ? "page" : "allocation granularity"; }

size_t xm_arena_granularity(const xm_arena *a) { return a ? arena_unit() : 0; }

static int fail_range(size_t offset, size_t size, size_t arena_size) {
  return xm__fail(XM_E_INVALID_ADDRESS, "offset=%zu size=%zu arena_size=%zu", offset, size, arena_size);
}

/* crosvm's try_add order: the offset's alignment, then the range; then the size is rounded up to
   whole units, which must stay inside the reservation. */
static int check_range(const xm_arena *a, size_t offset, size_t size, size_t *rounded) {
  const size_t unit = arena_unit();
  if (offset % unit != 0)
    return xm__fail(XM_E_NOT_PAGE_ALIGNED, "offset %zu is not a multiple of the %zu-byte %s", offset, unit,
                    unit_name());
  size_t end;
  if (xm__add_overflows(offset, size, &end) || end > a->size) return fail_range(offset, size, a->size);
  size_t reserved = a->os.base ? a->os.size : 0;
  if (size > SIZE_MAX - (unit - 1) || ((size + unit - 1) & ~(unit - 1)) > reserved - offset)
    return xm__fail(XM_E_INVALID_ADDRESS,
                    "offset=%zu size=%zu rounded up to the %zu-byte %s passes the "
                    "arena's end (%zu)",
                    offset, size, unit, unit_name(), a->size);
  *rounded = (size + unit - 1) & ~(unit - 1);
  return XM_OK;
}

/* An arena of size bytes (validated), reserved anywhere (where NULL) or as where asks. */
static int arena_create(size_t size, size_t reserved, const struct xm__os_place *where, xm_arena **out) {
  xm_arena *a = calloc(1, sizeof *a);
  if (!a) return xm__fail(XM_E_NO_MEMORY, "out of memory for the arena");
  int rc = xm__os_mutex_init(&a->mutex);
  if (rc) {
    free(a);
    return rc;
  }
  /* an empty arena is valid and takes no address space, like an empty mapping */
  if (reserved) rc = xm__os_arena_reserve(reserved, where, &a->os);
  if (!rc) {
    rc = xm__pieces_init(&a->pieces, reserved);
    if (rc && reserved) xm__os_arena_release(&a->os, &(struct xm__arena_piece){.size = reserved}, 1);
  }
  if (rc) {
    xm__os_mutex_destroy(&a->mutex);
    free(a);
    return rc;
  }
  a->size = size;
  a->region.ops = &arena_region_ops;
  a->region.ptr = a->os.base;
  a->region.size = size;
  a->region.owner = a;
  *out = a;
  return XM_OK;
}

int xm_arena_new(size_t size, xm_arena **out) {
  if (!out) return xm__fail(XM_E_INVALID_ARGUMENT, "out must not be NULL");
  /* Reserved in whole granularity units (what the OS reserves in), which hold whole arena units. */
  const size_t g = xm__granularity();
  if (size > SIZE_MAX - (g - 1))
    return xm__fail(XM_E_INVALID_ARGUMENT, "arena size %zu does not fit the address space", size);
  return arena_create(size, (size + g - 1) & ~(g - 1), NULL, out);
}

/* The range is taken as the whole units inside [lo, hi); an empty arena is checked the same way
   and takes no address space (its pointer is NULL, as with xm_arena_new(0)). */
int xm_arena_new_in(size_t size, uintptr_t lo, uintptr_t hi, uint64_t align, xm_arena **out) {
  if (!out) return xm__fail(XM_E_INVALID_ARGUMENT, "out must not be NULL");
  /* Reserved and placed in whole granularity units (what the OS reserves in). */
  const size_t g = xm__granularity();
  if (align != 0 && !xm__is_pow2(align))
    return xm__fail(XM_E_INVALID_ARGUMENT, "alignment 0x%llx is not a power of two", (unsigned long long)align);
  if (align > SIZE_MAX / 2)
    return xm__fail(XM_E_INVALID_ARGUMENT, "alignment 0x%llx is larger than the address space",
                    (unsigned long long)align);
  if (lo >= hi) return xm__fail(XM_E_INVALID_ARGUMENT, "address range [%p, %p) is empty", (void *)lo, (void *)hi);
  if (size > SIZE_MAX - (g - 1))
    return xm__fail(XM_E_INVALID_ARGUMENT, "arena size %zu does not fit the address space", size);
  const size_t reserved = (size + g - 1) & ~(g - 1);
  struct xm__os_place where = {.lo = lo > UINTPTR_MAX - (g - 1) ? 0 : (lo + g - 1) & ~(uintptr_t)(g - 1),
                               .hi = xm__align_down(hi, g),
                               .align = align > g ? (size_t)align : g};
  if (where.lo == 0 && lo != 0) where.hi = 0; /* lo rounds up past the address space */
  if (where.lo >= where.hi || where.hi - where.lo < reserved)
    return xm__fail(XM_E_INVALID_ARGUMENT, "address range [%p, %p) holds no %zu bytes in whole %zu-byte %s units",
                    (void *)lo, (void *)hi, reserved, g, g == xm__page_size() ? "page" : "allocation granularity");
  return arena_create(size, reserved, &where, out);
}

/* ---- bookkeeping ------------------------------------------------------------------------------ */
static void unref(xm_arena *a, struct xm__arena_backing *b) {
  if (b && --b->refs == 0) {
    xm__os_arena_backing_close(b->handle);
    xm__pieces_give_backing(&a->pieces, b);
  }
}

/* [from, to) of piece p: the same object, further in. */
static struct xm__arena_piece cut(const struct xm__arena_piece *p, size_t from, size_t to) {
  struct xm__arena_piece c = *p;
  c.offset = from;
  c.size = to - from;
  if (xm__piece_is_mapped(p)) c.backing_offset = p->backing_offset + (uint64_t)(from - p->offset);
  c.flags = 0;
  return c;
}

/* Replaces [offset, offset + size) (unit multiples, inside the reservation) with what = a mapping
   of kind (ANON / DESCRIPTOR, with a fresh backing that this call takes over) or reserved space
   (RESERVED). Called with the mutex held. On failure the back end has left the window consistent
   and now[] says how. */
static int change(xm_arena *a, size_t offset, size_t size, const struct xm__arena_piece *what, xm_descriptor d) {
  const size_t end = offset + size;
  const struct xm__arena_piece *first = xm__pieces_find(&a->pieces, offset);
  const struct xm__arena_piece *last = first; /* the window is walked, not looked up: it is short */
  while (last->offset + last->size < end)
    last = xm__pieces_next(last);
  /* A removal takes adjacent reserved neighbours into the window so that they merge (and a back
     end with placeholders may coalesce them). */
  if (what->kind == XM__PIECE_RESERVED) {
    const struct xm__arena_piece *before = xm__pieces_prev(first), *after = xm__pieces_next(last);
    if (before && first->offset == offset && before->kind == XM__PIECE_RESERVED) first = before;
    if (after && last->offset + last->size == end && after->kind == XM__PIECE_RESERVED) last = after;
  }
  /* The back end takes the window's pieces as an array: a copy, on the stack unless the change
     spans many pieces (a removal across them: the only case that allocates). */
  size_t n_old = 1;
  for (const struct xm__arena_piece *p = first; p != last; p = xm__pieces_next(p))
    n_old++;
  struct xm__arena_piece on_stack[16], *old = on_stack;
  if (n_old > sizeof on_stack / sizeof *on_stack && !(old = malloc(n_old * sizeof *old))) {
    if (what->backing) { /* nothing uses it yet */
      xm__os_arena_backing_close(what->backing->handle);
      xm__pieces_give_backing(&a->pieces, what->backing);
    }
    return xm__fail(XM_E_NO_MEMORY, "out of memory for the arena's bookkeeping (%zu pieces)", n_old);
  }
  {
    const struct xm__arena_piece *p = first;
    for (size_t k = 0; k < n_old; k++, p = xm__pieces_next(p))
      old[k] = *p;
  }

  struct xm__arena_piece now[XM__ARENA_MAX_PIECES];
  size_t n_now = 0;
  for (size_t k = 0; k < n_old; k++) {
    size_t p_end = old[k].offset + old[k].size;
    if (old[k].offset < offset) now[n_now++] = cut(&old[k], old[k].offset, p_end < offset ? p_end : offset);
  }
  now[n_now] = *what;
  now[n_now].offset = offset;
  now[n_now].size = size;
  n_now++;
  for (size_t k = 0; k < n_old; k++) {
    size_t p_end = old[k].offset + old[k].size;
    if (p_end > end) now[n_now++] = cut(&old[k], old[k].offset > end ? old[k].offset : end, p_end);
  }
  /* now[] is not merged yet: each piece stands for one old piece or for the changed range, so a
     failure in the back end costs no more than that range. The list is merged after the call. */

  for (size_t k = 0; k < n_now; k++)
    if (now[k].backing) now[k].backing->refs++;
  bool kept = false;
  unsigned char *window = (unsigned char *)a->os.base + old[0].offset;
  size_t window_size = old[n_old - 1].offset + old[n_old - 1].size - old[0].offset;
  bool held = xm__dirty_begin_change(window, window_size); /* write trackers see the change as one step */
  int rc = xm__os_arena_change(&a->os, old, n_old, now, n_now, d, &kept);
  if (rc && kept) { /* nothing changed: the list stays, and the new backing goes */
    xm__dirty_end_change(held, window, window_size, a->os.base, now, 0);
    for (size_t k = 0; k < n_now; k++)
      unref(a, now[k].backing);
    if (old != on_stack) free(old);
    return rc;
  }
  xm__dirty_end_change(held, window, window_size, a->os.base, now, n_now);
  if (a->page_prot) xm__arena_reset_page_prots(a, now, n_now);
  for (size_t k = 0; k < n_now; k++) {
    if (!xm__piece_is_mapped(&now[k]) && now[k].backing) { /* the back end could not establish it */
      unref(a, now[k].backing);
      now[k].backing = NULL;
      now[k].backing_offset = 0;
      now[k].prot = XM_PROT_NONE;
      now[k].flags = 0;
      now[k].os_flags = 0;
    }
    now[k].flags &= ~(unsigned)XM__PIECE_NEW;
  }
  for (size_t k = 0; k < n_old; k++)
    unref(a, old[k].backing);
  if (old != on_stack) free(old);
  xm__pieces_replace(&a->pieces, first, n_old, now, n_now);
  return rc;
}

static int add(xm_arena *a, size_t offset, size_t size, enum xm__piece_kind kind, xm_descriptor d, uint64_t d_offset,
               xm_prot prot) {
  if (!a) return xm__fail(XM_E_INVALID_ARGUMENT, "arena must not be NULL");
  if (prot & ~XM__PROT_ALL) return xm__fail(XM_E_INVALID_ARGUMENT, "protection 0x%x has unknown bits", prot);
  size_t rounded;
  int rc = check_range(a, offset, size, &rounded);
  if (rc) return rc;
  if (kind == XM__PIECE_DESCRIPTOR) {
    const size_t unit = arena_unit();
    if (d_offset > (uint64_t)INT64_MAX || (uint64_t)rounded > (uint64_t)INT64_MAX - d_offset)
      return xm__fail(XM_E_INVALID_OFFSET, "descriptor offset=%llu size=%zu", (unsigned long long)d_offset, rounded);
    if (d_offset % unit != 0) /* the arena cannot shift its fixed addresses to meet the object */
      return xm__fail(XM_E_NOT_PAGE_ALIGNED, "descriptor offset %llu is not a multiple of the %zu-byte %s",
                      (unsigned long long)d_offset, unit, unit_name());
    size_t page;
    struct xm__shm_facts shm;
    if (xm__shm_lookup(d, &shm)) { /* one of the library's objects: known, no OS call */
      page = shm.huge_page_size ? shm.huge_page_size : xm__os_page_size();
      rc = xm__shm_check_policy(shm.flags, prot);
    } else {
      rc = xm__os_check_arena_descriptor(d, &page);
    }
    if (rc) return rc;
    /* huge pages map in whole huge pages only */
    if (page > unit && (offset % page != 0 || size % page != 0 || d_offset % page != 0))
      return xm__fail(XM_E_NOT_PAGE_ALIGNED,
                      "offset=%zu size=%zu descriptor offset=%llu: the descriptor's object has %zu-byte huge "
                      "pages, and all three must be multiples of them",
                      offset, size, (unsigned long long)d_offset, page);
  }
  if (size == 0) return XM_OK; /* documented no-op (crosvm fails with EINVAL from mmap) */

  struct xm__arena_piece what = {
      .kind = kind,
      .prot = prot,
      .backing_offset = kind == XM__PIECE_DESCRIPTOR ? d_offset : 0,
      .flags = XM__PIECE_NEW,
  };
  xm__os_mutex_lock(&a->mutex);
  rc = xm__pieces_refill(&a->pieces, xm__os_fault_thread_get() != NULL, true);
  if (!rc) {
    what.backing = xm__pieces_take_backing(&a->pieces);
    rc = xm__os_arena_backing_new(kind, d, rounded, prot, &what.backing->handle);
    if (rc)
      xm__pieces_give_backing(&a->pieces, what.backing);
    else
      rc = change(a, offset, rounded, &what, kind == XM__PIECE_DESCRIPTOR ? d : xm__os_no_descriptor());
  }
  xm__os_mutex_unlock(&a->mutex);
  return rc;
}

int xm_arena_add_anon(xm_arena *a, size_t offset, size_t size, xm_prot prot) {
  return add(a, offset, size, XM__PIECE_ANON, xm__os_no_descriptor(), 0, prot);
}

int xm_arena_add_fd(xm_arena *a, size_t offset, size_t size, xm_descriptor d, uint64_t d_offset, xm_prot prot) {
  return add(a, offset, size, XM__PIECE_DESCRIPTOR, d, d_offset, prot);
}

int xm_arena_remove(xm_arena *a, size_t offset, size_t size) {
  if (!a) return xm__fail(XM_E_INVALID_ARGUMENT, "arena must not be NULL");
  size_t rounded;
  int rc = check_range(a, offset, size, &rounded);
  if (rc || size == 0) return rc;
  struct xm__arena_piece what = {.kind = XM__PIECE_RESERVED};
  xm__os_mutex_lock(&a->mutex);
  rc = xm__pieces_refill(&a->pieces, xm__os_fault_thread_get() != NULL, false);
  if (!rc) rc = change(a, offset, rounded, &what, xm__os_no_descriptor());
  xm__os_mutex_unlock(&a->mutex);
  return rc;
}

xm_region *xm_arena_region(xm_arena *a) { return a ? &a->region : NULL; }

/* The back end releases the whole list at once, from an array; should there be no memory for it,
   from the runs of the arena that are not GONE (every back end releases a run whatever views and
   reservations it holds), as many as fit on the stack. */
static void release(xm_arena *a) {
  struct xm__arena_piece *all = malloc(a->pieces.count * sizeof *all), runs[32];
  size_t n = 0;
  for (const struct xm__arena_piece *p = xm__pieces_first(&a->pieces); p; p = xm__pieces_next(p)) {
    if (all) {
      all[n++] = *p;
    } else if (p->kind == XM__PIECE_GONE || n == 0 || runs[n - 1].kind == XM__PIECE_GONE) {
      if (n == sizeof runs / sizeof *runs) break; /* the rest stays reserved */
      runs[n++] = (struct xm__arena_piece){.offset = p->offset,
                                           .size = p->size,
                                           .kind = p->kind == XM__PIECE_GONE ? XM__PIECE_GONE : XM__PIECE_RESERVED};
    } else {
      runs[n - 1].size += p->size;
    }
  }
  xm__os_arena_release(&a->os, all ? all : runs, n);
  free(all);
}

void xm_arena_free(xm_arena *a) {
  if (!a) return;
  if (a->os.base) release(a);
  for (const struct xm__arena_piece *p = xm__pieces_first(&a->pieces); p; p = xm__pieces_next(p))
    if (p->backing && --p->backing->refs == 0) {
      xm__os_arena_backing_close(p->backing->handle);
      free(p->backing);
    }
  xm__pieces_destroy(&a->pieces);
  free(a->page_prot);
  xm__os_mutex_destroy(&a->mutex);
  free(a);
}

/* ---- the arena as a region ------------------------------------------------------------------ */
static struct xm__os_view piece_view(const xm_arena *a, const struct xm__arena_piece *p) {
  void *base = (unsigned char *)a->os.base + p->offset;
  return (struct xm__os_view){.base = base,
                              .size = p->size,
                              .reservation = base,
                              .reservation_size = p->size,
                              .file = xm__os_no_descriptor(),
                              .flags = p->os_flags};
}

struct xm__os_view xm__arena_piece_view(const xm_arena *a, const struct xm__arena_piece *p) {
  return piece_view(a, p);
}

/* Applies fn to the part of every mapped piece that [offset, offset + len) covers, in order,
   stopping at the first failure. Reserved space has no memory to sync or advise: it is skipped.
   Called with the mutex held. */
static int for_each_mapped(const xm_arena *a, size_t offset, size_t len, xm_advice advice,
                           int (*fn)(void *base, size_t size, size_t offset, size_t len, xm_advice advice,
                                     const struct xm__os_view *view)) {
  const size_t end = offset + len;
  for (const struct xm__arena_piece *p = xm__pieces_find(&a->pieces, offset); p && p->offset < end;
       p = xm__pieces_next(p)) {
    if (!xm__piece_is_mapped(p)) continue;
    size_t from = p->offset > offset ? p->offset : offset;
    size_t to = p->offset + p->size < end ? p->offset + p->size : end;
    struct xm__os_view view = piece_view(a, p);
    int rc = fn(view.base, p->size, from - p->offset, to - from, advice, &view);
    if (rc) return rc;
  }
  return XM_OK;
}

static int sync_piece(void *base, size_t size, size_t offset, size_t len, xm_advice advice,
                      const struct xm__os_view *view) {
  (void)advice;
  return xm__sync_range(base, size, offset, len, XM_SYNC_SYNC, view, XM_E_INVALID_ADDRESS);
}

static int advise_piece(void *base, size_t size, size_t offset, size_t len, xm_advice advice,
                        const struct xm__os_view *view) {
  return xm__advise_range(base, size, offset, len, advice, view, XM_E_INVALID_ADDRESS);
}

static int arena_region_msync(const xm_region *r, size_t offset, size_t size) {
  xm_arena *a = r->owner;
  if (!xm__range_inside(offset, size, a->size)) return xm__fail_address(offset, size, a->size);
  if (size == 0) return XM_OK;
  xm__os_mutex_lock(&a->mutex);
  int rc = for_each_mapped(a, offset, size, XM_ADVICE_NORMAL, sync_piece);
  xm__os_mutex_unlock(&a->mutex);
  return rc;
}

static int arena_region_advise(const xm_region *r, size_t offset, size_t len, xm_advice advice) {
  xm_arena *a = r->owner;
  if ((unsigned)advice > XM_ADVICE_POPULATE_WRITE)
    return xm__fail(XM_E_INVALID_ARGUMENT, "unknown advice %d", (int)advice);
  if (!xm__range_inside(offset, len, a->size)) return xm__fail_address(offset, len, a->size);
  if (len == 0) return XM_OK;
  if (advice == XM_ADVICE_DONTNEED || advice == XM_ADVICE_REMOVE) {
    /* Checked here on the arena's offsets (pieces only see their own): destructive advice acts on
       whole pages, never on bytes the caller did not name. */
    size_t page = xm__page_size(), end = offset + len;
    if (offset % page != 0 || end % page != 0)
      return xm__fail(XM_E_NOT_PAGE_ALIGNED, "MADV_%s needs a page-aligned range, got offset=%zu count=%zu",
                      xm__advice_name(advice), offset, len);
  }
  xm__os_mutex_lock(&a->mutex);
  int rc = for_each_mapped(a, offset, len, advice, advise_piece);
  xm__os_mutex_unlock(&a->mutex);
  return rc;
}

static int arena_region_add_fd_mapping(xm_region *r, size_t offset, size_t size, xm_descriptor d, uint64_t d_offset,
                                       xm_prot prot) {
  return xm_arena_add_fd(r->owner, offset, size, d, d_offset, prot);
}

static int arena_region_remove_mapping(xm_region *r, size_t offset, size_t size) {
  return xm_arena_remove(r->owner, offset, size);
}

/* Commit and decommit act on mapped pieces only: the whole range is checked first, so that a
   refusal changes nothing. Then piece by piece (a Windows commit cannot cross views). */
static int commit_pieces(xm_region *r, size_t offset, size_t len, xm_prot prot, bool decommit) {
  xm_arena *a = r->owner;
  const size_t end = offset + len;
  xm__os_mutex_lock(&a->mutex);
  int rc = XM_OK;
  const struct xm__arena_piece *first = xm__pieces_find(&a->pieces, offset);
  for (const struct xm__arena_piece *p = first; p && p->offset < end && !rc; p = xm__pieces_next(p)) {
    size_t at = p->offset > offset ? p->offset : offset;
    if (!xm__piece_is_mapped(p))
      rc = xm__fail(XM_E_INVALID_ADDRESS, "%s of offset=%zu len=%zu: offset %zu of the arena is not mapped",
                    decommit ? "decommit" : "commit", offset, len, at);
    else if (!decommit && !xm_prot_allows(p->prot, prot))
      rc = xm__fail(XM_E_ACCESS, "commit with protection 0x%x: offset %zu of the arena was added with 0x%x", prot, at,
                    p->prot);
  }
  bool held = rc ? false : xm__dirty_begin_touch((unsigned char *)a->os.base + offset, len);
  for (const struct xm__arena_piece *p = first; p && p->offset < end && !rc; p = xm__pieces_next(p)) {
    size_t from = p->offset > offset ? p->offset : offset;
    size_t to = p->offset + p->size < end ? p->offset + p->size : end;
    unsigned char *base = (unsigned char *)a->os.base + p->offset;
    struct xm__os_view view = {.base = base,
                               .size = p->size,
                               .reservation = base,
                               .reservation_size = p->size,
                               .file = xm__os_no_descriptor(),
                               .section = NULL,
                               .flags = p->os_flags};
    void *addr = (unsigned char *)a->os.base + from;
    rc = decommit ? xm__os_decommit(&view, addr, to - from) : xm__os_commit(&view, addr, to - from, prot);
  }
  xm__dirty_end_touch(held, (unsigned char *)a->os.base + offset, len);
  xm__os_mutex_unlock(&a->mutex);
  return rc;
}

static int arena_region_commit(xm_region *r, size_t offset, size_t len, xm_prot prot) {
  return commit_pieces(r, offset, len, prot, false);
}

static int arena_region_decommit(xm_region *r, size_t offset, size_t len) {
  return commit_pieces(r, offset, len, XM_PROT_NONE, true);
}

static const struct xm_region_ops arena_region_ops = {
    .add_fd_mapping = arena_region_add_fd_mapping,
    .remove_mapping = arena_region_remove_mapping,
    .msync = arena_region_msync,
    .advise = arena_region_advise,
    .protect = xm__arena_region_protect,
    .page_prots = xm__arena_page_prots,
    .commit = arena_region_commit,
    .decommit = arena_region_decommit,
};
