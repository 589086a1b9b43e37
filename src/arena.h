/* The arena object, shared by arena.c (the pieces, add and remove, the region interface) and
   arena_protect.c (protection changes and their per-page bookkeeping). */
#ifndef XMMAP_ARENA_H
#define XMMAP_ARENA_H

#include "internal.h"

struct xm_arena {
  struct xm_region region;   /* ptr = the reservation's base, size = the size asked for */
  struct xm__os_mutex mutex; /* serializes every operation on the pieces and the OS state */
  struct xm__os_arena os;    /* base NULL for an empty arena */
  size_t size;               /* the size asked for; the pieces cover it rounded up to the unit */
  struct xm__arena_piece *pieces;
  size_t count, cap;
  /* The owner's protection of every page of the reservation, once xm_region_protect has changed
     any (NULL until then: each piece is at the protection it was added with); adds and removes
     reset the pages they replace. Read and written with the mutex held. */
  unsigned char *page_prot;
};

/* arena.c: the first piece that ends after offset; the view a piece is to the back end. */
size_t xm__arena_find_piece(const xm_arena *a, size_t offset);
struct xm__os_view xm__arena_piece_view(const xm_arena *a, const struct xm__arena_piece *p);

/* arena_protect.c, each with the mutex held but xm__arena_region_protect and xm__arena_page_prots
   (region ops, which take it). After a change, the pages of the pieces it established get their
   pieces' protection and remainders get the owner's back. */
void xm__arena_reset_page_prots(xm_arena *a, const struct xm__arena_piece *now, size_t n);
int xm__arena_region_protect(xm_region *r, size_t offset, size_t len, xm_prot prot);
void xm__arena_page_prots(xm_region *r, size_t offset, size_t npages, unsigned char *prot,
                          const struct xm__os_view **view, void (*with_lock_held)(void *ctx), void *ctx);

#endif /* XMMAP_ARENA_H */
