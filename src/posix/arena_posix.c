/* The POSIX back end's arena (src/os.h "arena").
 *
 * Recipe: reserve = mmap(PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE); map =
 * mmap(MAP_FIXED | MAP_SHARED [| MAP_ANONYMOUS | MAP_NORESERVE]) over the piece, which replaces
 * what was there in one step; remove = the reserve mmap again with MAP_FIXED over the mapped
 * parts, so that access faults. Remainders of partly covered mappings stay where they are: the
 * POSIX back end never has to split or re-map anything. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#if defined(__linux__)
#include <sys/prctl.h>
#endif

#include "posix.h"

int xm__os_mutex_init(struct xm__os_mutex *m) {
  pthread_mutex_t *p = malloc(sizeof *p);
  if (!p) return xm__fail(XM_E_NO_MEMORY, "out of memory for a mutex");
  int e = pthread_mutex_init(p, NULL);
  if (e != 0) {
    free(p);
    return xm__fail_os(XM_E_SYSTEM_CALL, e, "pthread_mutex_init");
  }
  m->opaque = p;
  return XM_OK;
}

void xm__os_mutex_lock(struct xm__os_mutex *m) { (void)pthread_mutex_lock(m->opaque); }
void xm__os_mutex_unlock(struct xm__os_mutex *m) { (void)pthread_mutex_unlock(m->opaque); }

void xm__os_mutex_destroy(struct xm__os_mutex *m) {
  (void)pthread_mutex_destroy(m->opaque);
  free(m->opaque);
  m->opaque = NULL;
}

const char *xm__os_arena_strategy(void) { return "mmap"; }

/* prctl(PR_SET_VMA, PR_SET_VMA_ANON_NAME, ...), spelled out for older headers. */
#define XM__PR_SET_VMA 0x53564d41
#define XM__PR_SET_VMA_ANON_NAME 0

static const int arena_reserved_flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE;

static void name_reserved(const struct xm__os_arena *arena, void *addr, size_t len);

int xm__os_arena_reserve(size_t size, const struct xm__os_place *where, struct xm__os_arena *out) {
  void *p = NULL;
  if (where) {
    int rc = xm__os_reserve_in(size, where, 0, &p);
    if (rc) return rc;
  } else {
    p = xm__posix_mmap(NULL, size, PROT_NONE, arena_reserved_flags, -1, 0);
    if (p == MAP_FAILED) return xm__posix_fail_mapping(errno, "mmap");
  }
  out->base = p;
  out->size = size;
  out->flags = 0;
  name_reserved(out, p, size);
  return XM_OK;
}

void xm__os_arena_release(struct xm__os_arena *arena, const struct xm__arena_piece *pieces, size_t n) {
  /* One munmap for the whole arena; should even that fail (a split at the mapping-count limit),
     piece by piece: every piece is whole kernel mappings, which unmap without a split. */
  unsigned char *base = arena->base;
  if (munmap(base, arena->size) != 0)
    for (size_t k = 0; k < n; k++)
      if (pieces[k].kind != XM__PIECE_GONE) munmap(base + pieces[k].offset, pieces[k].size);
  arena->base = NULL;
  arena->size = 0;
}

int xm__os_arena_backing_new(enum xm__piece_kind kind, xm_descriptor d, size_t size, xm_prot prot,
                             xm_descriptor *handle) {
  (void)kind;
  (void)d;
  (void)size;
  (void)prot;
  *handle = -1; /* MAP_ANONYMOUS needs no object; the kernel keeps a mapped file alive itself */
  return XM_OK;
}

void xm__os_arena_backing_close(xm_descriptor handle) { xm__os_close(handle); }

/* Reserved space is named after its arena (Linux 5.17+, where the kernel has anonymous VMA
   names): the kernel never merges it with a neighbour outside the arena, so releasing the
   arena's exact range never has to split a mapping (which fails at vm.max_map_count). */
static void name_reserved(const struct xm__os_arena *arena, void *addr, size_t len) {
#if defined(__linux__)
  /* A kernel without CONFIG_ANON_VMA_NAME says EINVAL: asked once, not on every change. */
  static atomic_bool unsupported;
  if (atomic_load_explicit(&unsupported, memory_order_relaxed)) return;
  char name[40];
  snprintf(name, sizeof name, "xmmap-arena-%lx", (unsigned long)(uintptr_t)arena->base);
  if (prctl(XM__PR_SET_VMA, XM__PR_SET_VMA_ANON_NAME, (unsigned long)(uintptr_t)addr, (unsigned long)len,
            (unsigned long)(uintptr_t)name) != 0 &&
      errno == EINVAL)
    atomic_store_explicit(&unsupported, true, memory_order_relaxed);
#else
  (void)arena, (void)addr, (void)len;
#endif
}

/* Makes [addr, addr + len) inaccessible reserved space, dropping what was mapped there, in one
   mmap: the kernel checks the mapping count and splits before it unmaps anything, so a failure
   leaves everything there as it was. Named like the rest of the reservation, so that it merges
   with reserved neighbours and never with an anonymous mapping outside the arena. */
static int reserve_at(const struct xm__os_arena *arena, void *addr, size_t len) {
  if (xm__posix_mmap(addr, len, PROT_NONE, arena_reserved_flags | MAP_FIXED, -1, 0) == MAP_FAILED)
    return xm__posix_fail_mapping(errno, "mmap");
  name_reserved(arena, addr, len);
  return XM_OK;
}

/* Maps the piece an add creates at addr (NULL: anywhere), MAP_FIXED when addr is set. */
static void *map_piece(void *addr, const struct xm__arena_piece *q, int fd) {
  int flags = MAP_SHARED | MAP_NORESERVE | (addr ? MAP_FIXED : 0);
  if (q->kind == XM__PIECE_ANON)
    return xm__posix_mmap(addr, q->size, xm__posix_prot(q->prot), flags | MAP_ANONYMOUS, -1, 0);
  return xm__posix_map_descriptor(addr, q->size, q->prot, flags, fd, q->backing_offset);
}

/* The piece an add creates, without a window in which the old contents are gone and the new
   piece is not there: mapped elsewhere first (where every mmap failure happens: a pipe, a
   read-only descriptor, a seal), then moved over the old pages in one mremap. Where mremap
   cannot move it (not Linux), MAP_FIXED directly; if that fails, the range may have lost its old
   pages and is reserved again. Over reserved space only (over_reserved) there are no contents to
   keep: MAP_FIXED directly, in one call, and reserved again should it fail. *kept: the window is
   as it was. */
static int add_piece(const struct xm__os_arena *arena, const struct xm__arena_piece *q, int fd, bool over_reserved,
                     bool *kept) {
  void *at = (unsigned char *)arena->base + q->offset;
  *kept = true;
  if (!over_reserved) {
    void *tmp = map_piece(NULL, q, fd);
    if (tmp == MAP_FAILED) return xm__posix_fail_mmap(errno, q->kind == XM__PIECE_ANON ? -1 : fd);
#if defined(__linux__) && defined(MREMAP_FIXED)
    if (xm__posix_injected()) {
      int rc = xm__posix_fail_errno("mremap");
      munmap(tmp, q->size);
      return rc;
    }
    if (mremap(tmp, q->size, q->size, MREMAP_MAYMOVE | MREMAP_FIXED, at) != MAP_FAILED) return XM_OK;
    int e = errno;
    munmap(tmp, q->size);
    /* Out of mappings: the old pages are still there, and a direct MAP_FIXED would risk them. Any
       other refusal is the mapping's kind (a device whose driver will not move its mappings, no
       mremap here): map in place as before. */
    if (e == ENOMEM) return xm__posix_fail_mapping(e, "mremap");
#else
    munmap(tmp, q->size);
#endif
  }
  if (map_piece(at, q, fd) != MAP_FAILED) return XM_OK;
  int rc = xm__posix_fail_mmap(errno, q->kind == XM__PIECE_ANON ? -1 : fd);
  /* Reserved again: over reserved space that is where the window was; over mapped pieces the old
     pages may be gone (at worst they stay, inaccessible or not). */
  if (reserve_at(arena, at, q->size) != XM_OK || !over_reserved) *kept = false;
  return rc;
}

/* Whether any mapped old piece overlaps [from, to). */
static bool maps_inside(const struct xm__arena_piece *old, size_t n_old, size_t from, size_t to) {
  for (size_t o = 0; o < n_old; o++)
    if (xm__piece_is_mapped(&old[o]) && old[o].offset < to && from < old[o].offset + old[o].size) return true;
  return false;
}

int xm__os_arena_change(struct xm__os_arena *arena, const struct xm__arena_piece *old, size_t n_old,
                        struct xm__arena_piece *now, size_t n_now, xm_descriptor d, bool *kept) {
  *kept = true;
  for (size_t k = 0; k < n_now; k++) {
    struct xm__arena_piece *q = &now[k];
    q->os_flags = 0;
    int rc = XM_OK;
    if (q->flags & XM__PIECE_NEW) {
      rc = add_piece(arena, q, d, !maps_inside(old, n_old, q->offset, q->offset + q->size), kept);
      if (rc && !*kept) q->kind = XM__PIECE_RESERVED;
    } else if (q->kind == XM__PIECE_RESERVED && maps_inside(old, n_old, q->offset, q->offset + q->size)) {
      /* The removed range: one mmap over it (remainders and unchanged pieces are left alone). */
      rc = reserve_at(arena, (unsigned char *)arena->base + q->offset, q->size);
    }
    if (rc) return rc; /* the only change of the call failed: nothing else was touched */
  }
  return XM_OK;
}
