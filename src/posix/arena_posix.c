/* The POSIX back end's arena (src/os.h "arena").
 *
 * Recipe: reserve = mmap(PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE); map =
 * mmap(MAP_FIXED | MAP_SHARED [| MAP_ANONYMOUS | MAP_NORESERVE]) over the piece, which replaces
 * what was there in one step; remove = the reserve mmap again with MAP_FIXED over the mapped
 * parts, so that access faults. Remainders of partly covered mappings stay where they are: the
 * POSIX back end never has to split or re-map anything. */
#include <pthread.h>
#include <stdlib.h>
#include <sys/mman.h>

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

static const int arena_reserved_flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE;

int xm__os_arena_reserve(size_t size, struct xm__os_arena *out) {
  void *p = xm__posix_mmap(NULL, size, PROT_NONE, arena_reserved_flags, -1, 0);
  if (p == MAP_FAILED) return xm__posix_fail_errno("mmap");
  out->base = p;
  out->size = size;
  out->flags = 0;
  return XM_OK;
}

void xm__os_arena_release(struct xm__os_arena *arena, const struct xm__arena_piece *pieces, size_t n) {
  /* One munmap per run of pieces that are still ours (usually the whole arena at once). */
  unsigned char *base = arena->base;
  size_t run = 0, k = 0;
  for (; k < n; k++) {
    if (pieces[k].kind != XM__PIECE_GONE) continue;
    if (pieces[k].offset > run) munmap(base + run, pieces[k].offset - run);
    run = pieces[k].offset + pieces[k].size;
  }
  if (arena->size > run) munmap(base + run, arena->size - run);
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

/* Makes [addr, addr + len) inaccessible reserved space again, dropping what was mapped there.
   When even that mmap fails (e.g. at the VMA limit), what is there is at least made inaccessible:
   it stays the arena's (a later add or the release replaces it), only its memory stays allocated
   until then; the mmap's failure is still reported (into *rc, unless it holds an earlier one).
   False when neither worked: the range's state is unknown. */
static bool arena_reserve_at(void *addr, size_t len, int *rc) {
  if (xm__posix_mmap(addr, len, PROT_NONE, arena_reserved_flags | MAP_FIXED, -1, 0) != MAP_FAILED) return true;
  if (*rc == XM_OK) *rc = xm__posix_fail_errno("mmap");
  return !xm__posix_injected() && mprotect(addr, len, PROT_NONE) == 0;
}

/* Maps the piece that an add creates over whatever is at its addresses. */
static int arena_map(unsigned char *base, const struct xm__arena_piece *q, int fd) {
  void *addr = base + q->offset;
  int prot = xm__posix_prot(q->prot);
  int flags = MAP_SHARED | MAP_FIXED | MAP_NORESERVE;
  if (q->kind == XM__PIECE_ANON) {
    if (xm__posix_mmap(addr, q->size, prot, flags | MAP_ANONYMOUS, -1, 0) == MAP_FAILED) return xm__posix_fail_errno("mmap");
    return XM_OK;
  }
  if (xm__posix_map_descriptor(addr, q->size, q->prot, flags, fd, q->backing_offset) == MAP_FAILED) return xm__posix_fail_mmap(errno, fd);
  return XM_OK;
}

int xm__os_arena_change(struct xm__os_arena *arena, const struct xm__arena_piece *old, size_t n_old,
                        struct xm__arena_piece *now, size_t n_now, xm_descriptor d) {
  unsigned char *base = arena->base;
  int rc = XM_OK;
  for (size_t k = 0; k < n_now; k++) {
    struct xm__arena_piece *q = &now[k];
    q->os_flags = 0;
    if (q->flags & XM__PIECE_NEW) {
      int r = arena_map(base, q, d);
      if (r == XM_OK) continue;
      if (rc == XM_OK) rc = r;
      /* A failed MAP_FIXED may have unmapped the old pages already: reserve the range again. */
      q->kind = arena_reserve_at(base + q->offset, q->size, &rc) ? XM__PIECE_RESERVED : XM__PIECE_GONE;
      continue;
    }
    if (q->kind != XM__PIECE_RESERVED) continue; /* a remainder: already mapped right there */
    /* Reserved space: replace what the old pieces had mapped (or lost) inside it. */
    const size_t q_end = q->offset + q->size;
    for (size_t o = 0; o < n_old && q->kind == XM__PIECE_RESERVED; o++) {
      if (old[o].kind == XM__PIECE_RESERVED) continue;
      size_t from = old[o].offset > q->offset ? old[o].offset : q->offset;
      size_t to = old[o].offset + old[o].size < q_end ? old[o].offset + old[o].size : q_end;
      if (from >= to || arena_reserve_at(base + from, to - from, &rc)) continue;
      q->kind = XM__PIECE_GONE; /* that part's state is unknown: the arena stops claiming it */
    }
  }
  return rc;
}

