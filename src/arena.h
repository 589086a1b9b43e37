/* The arena object, shared by arena.c (the pieces, add and remove, the region interface) and
   arena_protect.c (protection changes and their per-page bookkeeping). */
#ifndef XMMAP_ARENA_H
#define XMMAP_ARENA_H

#include "internal.h"

/* The sorted pieces (arena_pieces.c): a B+ tree for lookup, a list for iteration, and reserves
   of pieces, tree nodes and backing records so that a change inside a fault hook allocates
   nothing. */
struct xm__arena_node;
struct xm__arena_tree;
struct xm__arena_pieces {
  struct xm__arena_tree *root; /* NULL when there are no pieces */
  size_t height;               /* levels of the tree */
  struct xm__arena_node *first;
  struct xm__arena_node *last_changed; /* the first piece of the last change, or NULL */
  size_t count;
  struct xm__arena_node *spare; /* reserve of pieces, threaded through next */
  size_t n_spare;
  struct xm__arena_tree *spare_trees; /* reserve of tree nodes */
  size_t n_spare_trees;
  struct xm__arena_backing *spare_backings; /* reserve of backing records, threaded through refs */
  size_t n_spare_backings;
};
/* An empty list, or one RESERVED piece of reserved bytes; refilled reserves. */
int xm__pieces_init(struct xm__arena_pieces *s, size_t reserved);
/* Frees every node and reserve (the backings of the pieces are the caller's). */
void xm__pieces_destroy(struct xm__arena_pieces *s);
/* Tops the reserves up (inside a hook only to what one change needs); fails only when what this
   change needs (a backing record when backing is set) cannot be had. */
int xm__pieces_refill(struct xm__arena_pieces *s, bool in_hook, bool backing);
/* A backing record from the reserve (refilled first), and one given back. */
struct xm__arena_backing *xm__pieces_take_backing(struct xm__arena_pieces *s);
void xm__pieces_give_backing(struct xm__arena_pieces *s, struct xm__arena_backing *b);
/* The first piece that ends after offset, or NULL; the pieces after and before p, or NULL. */
const struct xm__arena_piece *xm__pieces_find(const struct xm__arena_pieces *s, size_t offset);
const struct xm__arena_piece *xm__pieces_first(const struct xm__arena_pieces *s);
const struct xm__arena_piece *xm__pieces_next(const struct xm__arena_piece *p);
const struct xm__arena_piece *xm__pieces_prev(const struct xm__arena_piece *p);
/* Whether the tree and the list agree and the tree keeps its shape (for tests). */
bool xm__pieces_valid(const struct xm__arena_pieces *s);
/* Replaces the n_old consecutive pieces from first_old with now[0..n_now) (n_now <=
   XM__ARENA_MAX_PIECES, covering the same range; refilled reserves), merging reserved space with
   reserved neighbours. Never fails. */
void xm__pieces_replace(struct xm__arena_pieces *s, const struct xm__arena_piece *first_old, size_t n_old,
                        const struct xm__arena_piece *now, size_t n_now);

struct xm_arena {
  struct xm_region region;        /* ptr = the reservation's base, size = the size asked for */
  struct xm__os_mutex mutex;      /* serializes every operation on the pieces and the OS state */
  struct xm__os_arena os;         /* base NULL for an empty arena */
  size_t size;                    /* the size asked for; the pieces cover it rounded up to the unit */
  struct xm__arena_pieces pieces; /* arena_pieces.c */
  /* The owner's protection of every page of the reservation, once xm_region_protect has changed
     any (NULL until then: each piece is at the protection it was added with); adds and removes
     reset the pages they replace. Read and written with the mutex held. */
  unsigned char *page_prot;
};

/* arena.c: the view a piece is to the back end. Iterate with xm__pieces_find / xm__pieces_next. */
struct xm__os_view xm__arena_piece_view(const xm_arena *a, const struct xm__arena_piece *p);

/* arena_protect.c, each with the mutex held but xm__arena_region_protect and xm__arena_page_prots
   (region ops, which take it). After a change, the pages of the pieces it established get their
   pieces' protection and remainders get the owner's back. */
void xm__arena_reset_page_prots(xm_arena *a, const struct xm__arena_piece *now, size_t n);
int xm__arena_region_protect(xm_region *r, size_t offset, size_t len, xm_prot prot);
void xm__arena_page_prots(xm_region *r, size_t offset, size_t npages, unsigned char *prot,
                          const struct xm__os_view **view, void (*with_lock_held)(void *ctx), void *ctx);

#endif /* XMMAP_ARENA_H */
