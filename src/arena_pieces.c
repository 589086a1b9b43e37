/* The arena's list of pieces: a treap keyed by offset (logarithmic lookup, insertion and removal
   in expectation, whatever order the caller changes pieces in) threaded with a doubly linked list
   in offset order (constant-time iteration). Nodes and backing records come from per-arena
   reserves, so that a change made by a fault hook allocates nothing while the reserves last
   (they are refilled by the next change made outside a hook). */
#include <stdlib.h>
#include <string.h>

#include "arena.h"

struct xm__arena_node {
  struct xm__arena_piece piece; /* first: a piece pointer is its node's pointer */
  struct xm__arena_node *left, *right, *prev, *next;
  uint32_t priority;
};

/* Spare nodes and backing records kept per arena: a hook's change takes at most
   XM__ARENA_MAX_PIECES nodes and one backing, so the reserve lasts for several of them. */
#define SPARE_NODES (8 * XM__ARENA_MAX_PIECES)
#define SPARE_BACKINGS 8

static struct xm__arena_node *node_of(const struct xm__arena_piece *p) { return (struct xm__arena_node *)(uintptr_t)p; }

static uint32_t next_priority(struct xm__arena_pieces *s) { /* xorshift32: never 0 from a non-zero seed */
  uint32_t x = s->seed ? s->seed : 0x9e3779b9u;
  x ^= x << 13;
  x ^= x >> 17;
  x ^= x << 5;
  s->seed = x;
  return x;
}

/* ---- reserves ------------------------------------------------------------------------------- */
int xm__pieces_refill(struct xm__arena_pieces *s, bool in_hook) {
  /* Inside a hook only what this change cannot do without. */
  const size_t want_nodes = in_hook ? XM__ARENA_MAX_PIECES : SPARE_NODES;
  while (s->n_spare < want_nodes) {
    struct xm__arena_node *n = malloc(sizeof *n);
    if (!n) return xm__fail(XM_E_NO_MEMORY, "out of memory for the arena's bookkeeping");
    n->next = s->spare;
    s->spare = n;
    s->n_spare++;
  }
  const size_t want_backings = in_hook ? 1 : SPARE_BACKINGS;
  while (s->n_spare_backings < want_backings) {
    struct xm__arena_backing *b = malloc(sizeof *b);
    if (!b) return xm__fail(XM_E_NO_MEMORY, "out of memory for the arena's bookkeeping");
    b->handle = xm__os_no_descriptor();
    b->refs = (size_t)(uintptr_t)s->spare_backings; /* the free list is threaded through refs */
    s->spare_backings = b;
    s->n_spare_backings++;
  }
  return XM_OK;
}

struct xm__arena_backing *xm__pieces_take_backing(struct xm__arena_pieces *s) {
  struct xm__arena_backing *b = s->spare_backings;
  s->spare_backings = (struct xm__arena_backing *)(uintptr_t)b->refs;
  s->n_spare_backings--;
  b->refs = 0;
  return b;
}

void xm__pieces_give_backing(struct xm__arena_pieces *s, struct xm__arena_backing *b) {
  if (s->n_spare_backings >= 2 * SPARE_BACKINGS) {
    free(b);
    return;
  }
  b->refs = (size_t)(uintptr_t)s->spare_backings;
  s->spare_backings = b;
  s->n_spare_backings++;
}

static struct xm__arena_node *take_node(struct xm__arena_pieces *s) {
  struct xm__arena_node *n = s->spare;
  s->spare = n->next;
  s->n_spare--;
  return n;
}

static void give_node(struct xm__arena_pieces *s, struct xm__arena_node *n) {
  if (s->n_spare >= 2 * SPARE_NODES) {
    free(n);
    return;
  }
  n->next = s->spare;
  s->spare = n;
  s->n_spare++;
}

/* ---- the treap ------------------------------------------------------------------------------ */
/* Splits t into the nodes with offset < key (*l) and the rest (*r). */
static void split(struct xm__arena_node *t, size_t key, struct xm__arena_node **l, struct xm__arena_node **r) {
  if (!t) {
    *l = *r = NULL;
  } else if (t->piece.offset < key) {
    split(t->right, key, &t->right, r);
    *l = t;
  } else {
    split(t->left, key, l, &t->left);
    *r = t;
  }
}

/* Every node of l comes before every node of r. */
static struct xm__arena_node *merge(struct xm__arena_node *l, struct xm__arena_node *r) {
  if (!l) return r;
  if (!r) return l;
  if (l->priority > r->priority) {
    l->right = merge(l->right, r);
    return l;
  }
  r->left = merge(l, r->left);
  return r;
}

/* t without the node whose offset is key (which is in t). */
static struct xm__arena_node *erase(struct xm__arena_node *t, size_t key) {
  if (t->piece.offset == key) return merge(t->left, t->right);
  if (key < t->piece.offset)
    t->left = erase(t->left, key);
  else
    t->right = erase(t->right, key);
  return t;
}

const struct xm__arena_piece *xm__pieces_find(const struct xm__arena_pieces *s, size_t offset) {
  const struct xm__arena_node *t = s->root, *best = NULL;
  while (t) {
    if (t->piece.offset + t->piece.size > offset) {
      best = t;
      t = t->left;
    } else {
      t = t->right;
    }
  }
  return best ? &best->piece : NULL;
}

const struct xm__arena_piece *xm__pieces_first(const struct xm__arena_pieces *s) {
  return s->first ? &s->first->piece : NULL;
}

const struct xm__arena_piece *xm__pieces_next(const struct xm__arena_piece *p) {
  const struct xm__arena_node *n = node_of(p)->next;
  return n ? &n->piece : NULL;
}

const struct xm__arena_piece *xm__pieces_prev(const struct xm__arena_piece *p) {
  const struct xm__arena_node *n = node_of(p)->prev;
  return n ? &n->piece : NULL;
}

static bool mergeable(const struct xm__arena_piece *a, const struct xm__arena_piece *b) {
  return a->kind == XM__PIECE_RESERVED && b->kind == XM__PIECE_RESERVED;
}

/* Replaces the n_old consecutive pieces from first_old with now[0..n_now) (which cover the same
   range), merging reserved space with reserved neighbours, inside and around the window. The
   reserve holds at least n_now nodes; nothing fails. */
void xm__pieces_replace(struct xm__arena_pieces *s, const struct xm__arena_piece *first_old, size_t n_old,
                        const struct xm__arena_piece *now, size_t n_now) {
  struct xm__arena_node *lo = node_of(first_old), *after = lo;
  for (size_t k = 0; k < n_old; k++)
    after = after->next;
  struct xm__arena_node *before = lo->prev;
  /* The merged new pieces, widened over a reserved neighbour on either side. */
  struct xm__arena_piece list[XM__ARENA_MAX_PIECES];
  size_t n = 0;
  for (size_t k = 0; k < n_now; k++) {
    if (n > 0 && mergeable(&list[n - 1], &now[k]))
      list[n - 1].size += now[k].size;
    else
      list[n++] = now[k];
  }
  if (before && mergeable(&before->piece, &list[0])) {
    list[0].offset = before->piece.offset;
    list[0].size += before->piece.size;
    lo = before;
    n_old++;
  }
  if (after && mergeable(&list[n - 1], &after->piece)) {
    list[n - 1].size += after->piece.size;
    n_old++;
  }
  /* The window's nodes are reused in order (their keys stay in order among the rest of the tree,
     so the common change costs no restructuring): the surplus is erased first, under its old
     keys; then the keys are reassigned; then the missing nodes are inserted. */
  struct xm__arena_node *keep_last = lo;
  for (size_t k = 1; k < n_old && k < n; k++)
    keep_last = keep_last->next;
  for (size_t k = n; k < n_old; k++) {
    struct xm__arena_node *gone = keep_last->next;
    s->root = erase(s->root, gone->piece.offset);
    keep_last->next = gone->next;
    if (gone->next) gone->next->prev = keep_last;
    give_node(s, gone);
    s->count--;
  }
  struct xm__arena_node *at = lo;
  for (size_t k = 0; k < n && k < n_old; k++, at = at->next)
    at->piece = list[k];
  struct xm__arena_node *prev = keep_last;
  for (size_t k = n_old; k < n; k++) {
    struct xm__arena_node *node = take_node(s);
    *node = (struct xm__arena_node){.piece = list[k], .prev = prev, .next = prev->next, .priority = next_priority(s)};
    if (prev->next) prev->next->prev = node;
    prev->next = node;
    prev = node;
    struct xm__arena_node *left, *right;
    split(s->root, node->piece.offset, &left, &right);
    s->root = merge(merge(left, node), right);
    s->count++;
  }
}

int xm__pieces_init(struct xm__arena_pieces *s, size_t reserved, uint32_t seed) {
  memset(s, 0, sizeof *s);
  s->seed = seed | 1u;
  int rc = xm__pieces_refill(s, false);
  if (rc) {
    xm__pieces_destroy(s);
    return rc;
  }
  if (reserved) {
    struct xm__arena_node *n = take_node(s);
    *n = (struct xm__arena_node){.piece = {.offset = 0, .size = reserved, .kind = XM__PIECE_RESERVED},
                                 .priority = next_priority(s)};
    s->root = s->first = n;
    s->count = 1;
  }
  return XM_OK;
}

void xm__pieces_destroy(struct xm__arena_pieces *s) {
  for (struct xm__arena_node *n = s->first; n;) {
    struct xm__arena_node *next = n->next;
    free(n);
    n = next;
  }
  while (s->spare) {
    struct xm__arena_node *next = s->spare->next;
    free(s->spare);
    s->spare = next;
  }
  while (s->spare_backings) {
    struct xm__arena_backing *next = (struct xm__arena_backing *)(uintptr_t)s->spare_backings->refs;
    free(s->spare_backings);
    s->spare_backings = next;
  }
  memset(s, 0, sizeof *s);
}
