/* The arena (crosvm MemoryMappingArena): validation, the piece bookkeeping shared by every back
   end, and the arena's region interface. The OS work is xm__os_arena_* in src/os.h. */
#include <stdlib.h>
#include <string.h>

#include "arena.h"

static const struct xm_region_ops arena_region_ops;

/* The alignment unit, named the way the user sees it in messages. */
static const char *unit_name(void) { return xm__granularity() == xm__page_size() ? "page" : "allocation granularity"; }

static int fail_range(size_t offset, size_t size, size_t arena_size) {
  return xm__fail(XM_E_INVALID_ADDRESS, "offset=%zu size=%zu arena_size=%zu", offset, size, arena_size);
}

/* crosvm's try_add order: the offset's alignment, then the range; then the size is rounded up to
   whole units, which must stay inside the reservation. */
static int check_range(const xm_arena *a, size_t offset, size_t size, size_t *rounded) {
  const size_t unit = xm__granularity();
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
  struct xm__arena_piece *pieces = calloc(4, sizeof *pieces);
  if (!a || !pieces) {
    free(a);
    free(pieces);
    return xm__fail(XM_E_NO_MEMORY, "out of memory for the arena");
  }
  int rc = xm__os_mutex_init(&a->mutex);
  if (rc) {
    free(a);
    free(pieces);
    return rc;
  }
  if (reserved) { /* an empty arena is valid and takes no address space, like an empty mapping */
    rc = xm__os_arena_reserve(reserved, where, &a->os);
    if (rc) {
      xm__os_mutex_destroy(&a->mutex);
      free(a);
      free(pieces);
      return rc;
    }
    pieces[0] = (struct xm__arena_piece){.offset = 0, .size = reserved, .kind = XM__PIECE_RESERVED};
    a->count = 1;
  }
  a->pieces = pieces;
  a->cap = 4;
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
  const size_t unit = xm__granularity();
  if (size > SIZE_MAX - (unit - 1))
    return xm__fail(XM_E_INVALID_ARGUMENT, "arena size %zu does not fit the address space", size);
  return arena_create(size, (size + unit - 1) & ~(unit - 1), NULL, out);
}

/* The range is taken as the whole units inside [lo, hi); an empty arena is checked the same way
   and takes no address space (its pointer is NULL, as with xm_arena_new(0)). */
int xm_arena_new_in(size_t size, uintptr_t lo, uintptr_t hi, uint64_t align, xm_arena **out) {
  if (!out) return xm__fail(XM_E_INVALID_ARGUMENT, "out must not be NULL");
  const size_t unit = xm__granularity();
  if (align != 0 && !xm__is_pow2(align))
    return xm__fail(XM_E_INVALID_ARGUMENT, "alignment 0x%llx is not a power of two", (unsigned long long)align);
  if (align > SIZE_MAX / 2)
    return xm__fail(XM_E_INVALID_ARGUMENT, "alignment 0x%llx is larger than the address space",
                    (unsigned long long)align);
  if (lo >= hi) return xm__fail(XM_E_INVALID_ARGUMENT, "address range [%p, %p) is empty", (void *)lo, (void *)hi);
  if (size > SIZE_MAX - (unit - 1))
    return xm__fail(XM_E_INVALID_ARGUMENT, "arena size %zu does not fit the address space", size);
  const size_t reserved = (size + unit - 1) & ~(unit - 1);
  struct xm__os_place where = {.lo = lo > UINTPTR_MAX - (unit - 1) ? 0 : (lo + unit - 1) & ~(uintptr_t)(unit - 1),
                               .hi = xm__align_down(hi, unit),
                               .align = align > unit ? (size_t)align : unit};
  if (where.lo == 0 && lo != 0) where.hi = 0; /* lo rounds up past the address space */
  if (where.lo >= where.hi || where.hi - where.lo < reserved)
    return xm__fail(XM_E_INVALID_ARGUMENT, "address range [%p, %p) holds no %zu bytes in whole %zu-byte %s units",
                    (void *)lo, (void *)hi, reserved, unit, unit_name());
  return arena_create(size, reserved, &where, out);
}

/* ---- bookkeeping ------------------------------------------------------------------------------ */
static void unref(struct xm__arena_backing *b) {
  if (b && --b->refs == 0) {
    xm__os_arena_backing_close(b->handle);
    free(b);
  }
}

/* The first piece that ends after offset (offset lies inside the pieces' extent). */
static size_t find_piece(const xm_arena *a, size_t offset) {
  size_t lo = 0, hi = a->count;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (a->pieces[mid].offset + a->pieces[mid].size <= offset)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
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

/* Merges runs of adjacent RESERVED pieces in list[0..*n). */
static void merge_reserved(struct xm__arena_piece *list, size_t *n) {
  size_t w = 0;
  for (size_t r = 0; r < *n; r++) {
    if (w > 0 && list[w - 1].kind == XM__PIECE_RESERVED && list[r].kind == XM__PIECE_RESERVED) {
      list[w - 1].size += list[r].size;
      continue;
    }
    list[w++] = list[r];
  }
  *n = w;
}

/* Replaces [offset, offset + size) (unit multiples, inside the reservation) with what = a mapping
   of kind (ANON / DESCRIPTOR, with a fresh backing that this call takes over) or reserved space
   (RESERVED). Called with the mutex held. On failure the back end has left the window consistent
   and now[] says how. */
static int change(xm_arena *a, size_t offset, size_t size, const struct xm__arena_piece *what, xm_descriptor d) {
  const size_t end = offset + size;
  if (a->count + XM__ARENA_MAX_PIECES > a->cap) { /* grow first: after the OS change nothing may fail */
    size_t cap = a->cap * 2 > a->count + XM__ARENA_MAX_PIECES ? a->cap * 2 : a->count + XM__ARENA_MAX_PIECES;
    struct xm__arena_piece *grown = realloc(a->pieces, cap * sizeof *grown);
    if (!grown) {
      if (what->backing) { /* nothing uses it yet */
        xm__os_arena_backing_close(what->backing->handle);
        free(what->backing);
      }
      return xm__fail(XM_E_NO_MEMORY, "out of memory for the arena's bookkeeping");
    }
    a->pieces = grown;
    a->cap = cap;
  }
  size_t i = find_piece(a, offset), j = find_piece(a, end - 1);
  /* A removal takes adjacent reserved neighbours into the window so that they merge (and a back
     end with placeholders may coalesce them). */
  if (what->kind == XM__PIECE_RESERVED) {
    if (i > 0 && a->pieces[i].offset == offset && a->pieces[i - 1].kind == XM__PIECE_RESERVED) i--;
    if (j + 1 < a->count && a->pieces[j].offset + a->pieces[j].size == end &&
        a->pieces[j + 1].kind == XM__PIECE_RESERVED)
      j++;
  }
  const size_t n_old = j - i + 1;
  const struct xm__arena_piece *old = &a->pieces[i];

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
      unref(now[k].backing);
    return rc;
  }
  xm__dirty_end_change(held, window, window_size, a->os.base, now, n_now);
  if (a->page_prot) xm__arena_reset_page_prots(a, now, n_now);
  for (size_t k = 0; k < n_now; k++) {
    if (!xm__piece_is_mapped(&now[k]) && now[k].backing) { /* the back end could not establish it */
      unref(now[k].backing);
      now[k].backing = NULL;
      now[k].backing_offset = 0;
      now[k].prot = XM_PROT_NONE;
      now[k].flags = 0;
      now[k].os_flags = 0;
    }
    now[k].flags &= ~(unsigned)XM__PIECE_NEW;
  }
  for (size_t k = 0; k < n_old; k++)
    unref(old[k].backing);

  /* Splice now[] over old[], then merge reserved space the change (or its failure) left next to
     reserved neighbours. */
  memmove(&a->pieces[i + n_now], &a->pieces[j + 1], (a->count - j - 1) * sizeof *a->pieces);
  memcpy(&a->pieces[i], now, n_now * sizeof *now);
  a->count = a->count - n_old + n_now;
  size_t from = i > 0 ? i - 1 : 0;
  size_t n = a->count - from;
  merge_reserved(&a->pieces[from], &n);
  a->count = from + n;
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
    const size_t unit = xm__granularity();
    if (d_offset > (uint64_t)INT64_MAX || (uint64_t)rounded > (uint64_t)INT64_MAX - d_offset)
      return xm__fail(XM_E_INVALID_OFFSET, "descriptor offset=%llu size=%zu", (unsigned long long)d_offset, rounded);
    if (d_offset % unit != 0) /* the arena cannot shift its fixed addresses to meet the object */
      return xm__fail(XM_E_NOT_PAGE_ALIGNED, "descriptor offset %llu is not a multiple of the %zu-byte %s",
                      (unsigned long long)d_offset, unit, unit_name());
    rc = xm__os_check_descriptor(XM__SOURCE_DESCRIPTOR, d);
    if (rc) return rc;
  }
  if (size == 0) return XM_OK; /* documented no-op (crosvm fails with EINVAL from mmap) */

  struct xm__arena_backing *backing = calloc(1, sizeof *backing);
  if (!backing) return xm__fail(XM_E_NO_MEMORY, "out of memory for the arena's bookkeeping");
  rc = xm__os_arena_backing_new(kind, d, rounded, prot, &backing->handle);
  if (rc) {
    free(backing);
    return rc;
  }
  struct xm__arena_piece what = {
      .kind = kind,
      .prot = prot,
      .backing = backing,
      .backing_offset = kind == XM__PIECE_DESCRIPTOR ? d_offset : 0,
      .flags = XM__PIECE_NEW,
  };
  xm__os_mutex_lock(&a->mutex);
  rc = change(a, offset, rounded, &what, kind == XM__PIECE_DESCRIPTOR ? d : xm__os_no_descriptor());
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
  rc = change(a, offset, rounded, &what, xm__os_no_descriptor());
  xm__os_mutex_unlock(&a->mutex);
  return rc;
}

xm_region *xm_arena_region(xm_arena *a) { return a ? &a->region : NULL; }

void xm_arena_free(xm_arena *a) {
  if (!a) return;
  if (a->os.base) xm__os_arena_release(&a->os, a->pieces, a->count);
  for (size_t k = 0; k < a->count; k++)
    unref(a->pieces[k].backing);
  free(a->pieces);
  free(a->page_prot);
  xm__os_mutex_destroy(&a->mutex);
  free(a);
}

/* ---- the arena as a region ------------------------------------------------------------------ */
size_t xm__arena_find_piece(const xm_arena *a, size_t offset) { return find_piece(a, offset); }

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
  for (size_t k = find_piece(a, offset); k < a->count && a->pieces[k].offset < end; k++) {
    const struct xm__arena_piece *p = &a->pieces[k];
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
  const size_t first = find_piece(a, offset);
  for (size_t k = first; k < a->count && a->pieces[k].offset < end && !rc; k++) {
    const struct xm__arena_piece *p = &a->pieces[k];
    size_t at = p->offset > offset ? p->offset : offset;
    if (!xm__piece_is_mapped(p))
      rc = xm__fail(XM_E_INVALID_ADDRESS, "%s of offset=%zu len=%zu: offset %zu of the arena is not mapped",
                    decommit ? "decommit" : "commit", offset, len, at);
    else if (!decommit && !xm_prot_allows(p->prot, prot))
      rc = xm__fail(XM_E_ACCESS, "commit with protection 0x%x: offset %zu of the arena was added with 0x%x", prot, at,
                    p->prot);
  }
  bool held = rc ? false : xm__dirty_begin_touch((unsigned char *)a->os.base + offset, len);
  for (size_t k = first; k < a->count && a->pieces[k].offset < end && !rc; k++) {
    const struct xm__arena_piece *p = &a->pieces[k];
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
