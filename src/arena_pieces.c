/* The arena's list of pieces: a B+ tree keyed by offset (logarithmic lookup, insertion and
   removal, whatever order the caller changes pieces in) over pieces that are also threaded into a
   doubly linked list in offset order (constant-time iteration).

   Lookup is what every change and region operation starts with, and at tens of thousands of
   pieces its cost is cache misses, one per tree node visited: a binary tree takes about twenty
   scattered ones there, this tree about four nodes of a few adjacent lines each. Every entry of
   the tree is the smallest offset of what it leads to, exactly, so one descent finds the piece
   that holds an offset. Pieces are individually allocated nodes, so that the pointers the front
   end holds stay put while the tree changes shape.

   Pieces, tree nodes and backing records come from per-arena reserves, so that a change made by a
   fault hook allocates nothing while the reserves last (they are refilled by the next change made
   outside a hook). */
#include <stdlib.h>
#include <string.h>

#include "arena.h"

/* A tree node: n entries, sorted; key[i] is the smallest offset under entry i. Nodes but the root
   hold at least MIN_ENTRIES; splits make two halves. */
#define ORDER 16
#define MIN_ENTRIES (ORDER / 2 - 1)
struct xm__arena_tree {
  unsigned n;
  bool leaf;
  size_t key[ORDER];
  union {
    struct xm__arena_tree *child[ORDER]; /* inner nodes */
    struct xm__arena_node *piece[ORDER]; /* leaves */
  } to;
};

struct xm__arena_node {
  struct xm__arena_piece piece; /* first: a piece pointer is its node's pointer */
  struct xm__arena_node *prev, *next;
};

/* Spare pieces and backing records kept per arena: a hook's change takes at most
   XM__ARENA_MAX_PIECES pieces and one backing, so the reserve lasts for several of them. Each
   piece inserted may split one tree node per level and add a root. */
#define SPARE_NODES (8 * XM__ARENA_MAX_PIECES)
#define SPARE_BACKINGS 8

static struct xm__arena_node *node_of(const struct xm__arena_piece *p) { return (struct xm__arena_node *)(uintptr_t)p; }

/* ---- reserves ------------------------------------------------------------------------------- */
/* Tree nodes one change may need: it inserts at most XM__ARENA_MAX_PIECES - 1 pieces (the window
   keeps at least one node), each of which may split a node per level and add a root level. */
static size_t trees_for_a_change(const struct xm__arena_pieces *s) {
  return (XM__ARENA_MAX_PIECES - 1) * (s->height + XM__ARENA_MAX_PIECES);
}

/* Tops the reserves up to the goal: what one change needs (need) must be there, the rest outside
   a hook is a cushion, so that a failed allocation beyond need is no error (under memory pressure
   removals, which give memory back, still work). */
int xm__pieces_refill(struct xm__arena_pieces *s, bool in_hook, bool backing) {
  const size_t need_nodes = XM__ARENA_MAX_PIECES, need_trees = trees_for_a_change(s), need_backings = backing;
  /* Inside a hook only what this change cannot do without. */
  const size_t want_nodes = in_hook ? need_nodes : SPARE_NODES, want_trees = (in_hook ? 1 : 2) * need_trees,
               want_backings = in_hook ? need_backings : SPARE_BACKINGS;
  while (s->n_spare < want_nodes) {
    struct xm__arena_node *n = malloc(sizeof *n);
    if (!n) break;
    n->next = s->spare;
    s->spare = n;
    s->n_spare++;
  }
  while (s->n_spare_trees < want_trees) {
    struct xm__arena_tree *t = malloc(sizeof *t);
    if (!t) break;
    t->to.child[0] = s->spare_trees;
    s->spare_trees = t;
    s->n_spare_trees++;
  }
  while (s->n_spare_backings < want_backings) {
    struct xm__arena_backing *b = malloc(sizeof *b);
    if (!b) break;
    b->handle = xm__os_no_descriptor();
    b->refs = (size_t)(uintptr_t)s->spare_backings; /* the free list is threaded through refs */
    s->spare_backings = b;
    s->n_spare_backings++;
  }
  if (s->n_spare < need_nodes || s->n_spare_trees < need_trees || s->n_spare_backings < need_backings)
    return xm__fail(XM_E_NO_MEMORY, "out of memory for the arena's bookkeeping");
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

static struct xm__arena_tree *take_tree(struct xm__arena_pieces *s, bool leaf) {
  struct xm__arena_tree *t = s->spare_trees;
  s->spare_trees = t->to.child[0];
  s->n_spare_trees--;
  t->n = 0;
  t->leaf = leaf;
  return t;
}

static void give_tree(struct xm__arena_pieces *s, struct xm__arena_tree *t) {
  if (s->n_spare_trees >= 4 * trees_for_a_change(s)) {
    free(t);
    return;
  }
  t->to.child[0] = s->spare_trees;
  s->spare_trees = t;
  s->n_spare_trees++;
}

/* ---- the tree ------------------------------------------------------------------------------- */
/* The entry of t whose range holds key: the last one whose smallest offset is at most key (0 when
   key is below them all). */
static unsigned entry_for(const struct xm__arena_tree *t, size_t key) {
  unsigned i = 1;
  while (i < t->n && t->key[i] <= key)
    i++;
  return i - 1;
}

/* Opens a hole at entry i. */
static void open_entry(struct xm__arena_tree *t, unsigned i) {
  memmove(&t->key[i + 1], &t->key[i], (t->n - i) * sizeof t->key[0]);
  memmove(&t->to.child[i + 1], &t->to.child[i], (t->n - i) * sizeof t->to.child[0]);
  t->n++;
}

static void close_entry(struct xm__arena_tree *t, unsigned i) {
  t->n--;
  memmove(&t->key[i], &t->key[i + 1], (t->n - i) * sizeof t->key[0]);
  memmove(&t->to.child[i], &t->to.child[i + 1], (t->n - i) * sizeof t->to.child[0]);
}

/* Moves entries [from, t->n) of t to the end of u. */
static void move_entries(struct xm__arena_tree *t, unsigned from, struct xm__arena_tree *u) {
  const unsigned n = t->n - from;
  memcpy(&u->key[u->n], &t->key[from], n * sizeof t->key[0]);
  memcpy(&u->to.child[u->n], &t->to.child[from], n * sizeof t->to.child[0]);
  u->n += n;
  t->n = from;
}

/* Inserts key (not in t) for piece under t; returns the new right half should t have split. */
static struct xm__arena_tree *insert(struct xm__arena_pieces *s, struct xm__arena_tree *t, size_t key,
                                     struct xm__arena_node *piece) {
  unsigned i = entry_for(t, key);
  if (t->leaf) {
    if (key > t->key[i]) i++;
    open_entry(t, i);
    t->key[i] = key;
    t->to.piece[i] = piece;
  } else {
    struct xm__arena_tree *right = insert(s, t->to.child[i], key, piece);
    t->key[i] = t->to.child[i]->key[0];
    if (right) {
      open_entry(t, i + 1);
      t->key[i + 1] = right->key[0];
      t->to.child[i + 1] = right;
    }
  }
  if (t->n < ORDER) return NULL;
  struct xm__arena_tree *right = take_tree(s, t->leaf);
  move_entries(t, ORDER / 2, right);
  return right;
}

/* Child i of t fell below MIN_ENTRIES: merged with a neighbour, or given one of its entries. */
static void refill_child(struct xm__arena_pieces *s, struct xm__arena_tree *t, unsigned i) {
  const unsigned li = i > 0 ? i - 1 : 0; /* the pair: children li and li + 1 */
  struct xm__arena_tree *left = t->to.child[li], *right = t->to.child[li + 1];
  if (left->n + right->n < ORDER) {
    move_entries(right, 0, left);
    give_tree(s, right);
    close_entry(t, li + 1);
  } else if (left->n < right->n) { /* right's first entry to the end of left */
    left->key[left->n] = right->key[0];
    left->to.child[left->n] = right->to.child[0];
    left->n++;
    close_entry(right, 0);
    t->key[li + 1] = right->key[0];
  } else { /* left's last entry to the front of right */
    open_entry(right, 0);
    right->key[0] = left->key[left->n - 1];
    right->to.child[0] = left->to.child[left->n - 1];
    left->n--;
    t->key[li + 1] = right->key[0];
  }
  t->key[li] = left->key[0];
}

/* Removes key (which is in t). */
static void erase(struct xm__arena_pieces *s, struct xm__arena_tree *t, size_t key) {
  const unsigned i = entry_for(t, key);
  if (t->leaf) {
    close_entry(t, i);
    return;
  }
  struct xm__arena_tree *c = t->to.child[i];
  erase(s, c, key);
  if (c->n < MIN_ENTRIES)
    refill_child(s, t, i);
  else
    t->key[i] = c->key[0];
}

/* Changes key from to to, which keeps its place among the other keys. */
static void rekey(struct xm__arena_tree *t, size_t from, size_t to) {
  const unsigned i = entry_for(t, from);
  if (!t->leaf) rekey(t->to.child[i], from, to);
  t->key[i] = t->leaf ? to : t->to.child[i]->key[0];
}

static void tree_insert(struct xm__arena_pieces *s, struct xm__arena_node *piece) {
  const size_t key = piece->piece.offset;
  if (!s->root) {
    s->root = take_tree(s, true);
    s->root->n = 1;
    s->root->key[0] = key;
    s->root->to.piece[0] = piece;
    s->height = 1;
    return;
  }
  struct xm__arena_tree *right = insert(s, s->root, key, piece);
  if (right) {
    struct xm__arena_tree *root = take_tree(s, false);
    root->n = 2;
    root->key[0] = s->root->key[0];
    root->to.child[0] = s->root;
    root->key[1] = right->key[0];
    root->to.child[1] = right;
    s->root = root;
    s->height++;
  }
}

static void tree_erase(struct xm__arena_pieces *s, size_t key) {
  erase(s, s->root, key);
  if (!s->root->leaf && s->root->n == 1) {
    struct xm__arena_tree *old = s->root;
    s->root = old->to.child[0];
    give_tree(s, old);
    s->height--;
  } else if (s->root->n == 0) {
    give_tree(s, s->root);
    s->root = NULL;
    s->height = 0;
  }
}

/* The pieces cover the arena without gaps: the piece that holds offset is the last one that starts
   at or before it. A range just changed is often looked up again next (removed and added back, or
   accessed): the first piece of the last change is tried first. */
const struct xm__arena_piece *xm__pieces_find(const struct xm__arena_pieces *s, size_t offset) {
  const struct xm__arena_node *h = s->last_changed;
  if (h && h->piece.offset <= offset && offset - h->piece.offset < h->piece.size) return &h->piece;
  const struct xm__arena_tree *t = s->root;
  if (!t || offset < t->key[0]) return NULL;
  while (!t->leaf)
    t = t->to.child[entry_for(t, offset)];
  const struct xm__arena_piece *p = &t->to.piece[entry_for(t, offset)]->piece;
  return offset - p->offset < p->size ? p : NULL;
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

/* Checks t's subtree at depth (leaves at s->height): sorted, entries within bounds, every key the
   smallest of what it leads to; walks the leaves' pieces against the list from *next. */
static bool valid(const struct xm__arena_pieces *s, const struct xm__arena_tree *t, size_t depth,
                  const struct xm__arena_node **next) {
  if (t->n == 0 || t->n >= ORDER || (t != s->root && t->n < MIN_ENTRIES) || t->leaf != (depth == s->height))
    return false;
  for (unsigned i = 0; i < t->n; i++) {
    if (i > 0 && t->key[i] <= t->key[i - 1]) return false;
    if (t->leaf) {
      if (t->to.piece[i] != *next || t->key[i] != (*next)->piece.offset) return false;
      *next = (*next)->next;
    } else if (t->key[i] != t->to.child[i]->key[0] || !valid(s, t->to.child[i], depth + 1, next)) {
      return false;
    }
  }
  return true;
}

bool xm__pieces_valid(const struct xm__arena_pieces *s) {
  const struct xm__arena_node *next = s->first;
  size_t n = 0;
  for (const struct xm__arena_node *p = s->first; p; p = p->next)
    n++;
  if (n != s->count) return false;
  if (!s->root) return s->count == 0;
  return valid(s, s->root, 1, &next) && next == NULL;
}

static bool mergeable(const struct xm__arena_piece *a, const struct xm__arena_piece *b) {
  return a->kind == XM__PIECE_RESERVED && b->kind == XM__PIECE_RESERVED;
}

/* Replaces the n_old consecutive pieces from first_old with now[0..n_now) (which cover the same
   range), merging reserved space with reserved neighbours, inside and around the window. The
   reserves hold what one change needs; nothing fails. */
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
  /* The window's nodes are reused in order (the common change, one piece for one, leaves the tree
   * as it is): the surplus is erased first; then the kept nodes take their new offsets, which stay
   * between their neighbours' at every step when the ones that move down go first, left to right,
   * and the ones that move up after, right to left; then the missing nodes are inserted. */
  const size_t n_kept = n < n_old ? n : n_old;
  struct xm__arena_node *kept[XM__ARENA_MAX_PIECES];
  kept[0] = lo;
  for (size_t k = 1; k < n_kept; k++)
    kept[k] = kept[k - 1]->next;
  struct xm__arena_node *keep_last = kept[n_kept - 1];
  for (size_t k = n; k < n_old; k++) {
    struct xm__arena_node *gone = keep_last->next;
    tree_erase(s, gone->piece.offset);
    keep_last->next = gone->next;
    if (gone->next) gone->next->prev = keep_last;
    give_node(s, gone);
    s->count--;
  }
  for (size_t k = 0; k < n_kept; k++)
    if (list[k].offset < kept[k]->piece.offset) rekey(s->root, kept[k]->piece.offset, list[k].offset);
  for (size_t k = n_kept; k-- > 0;)
    if (list[k].offset > kept[k]->piece.offset) rekey(s->root, kept[k]->piece.offset, list[k].offset);
  for (size_t k = 0; k < n_kept; k++)
    kept[k]->piece = list[k];
  struct xm__arena_node *prev = keep_last;
  for (size_t k = n_old; k < n; k++) {
    struct xm__arena_node *node = take_node(s);
    *node = (struct xm__arena_node){.piece = list[k], .prev = prev, .next = prev->next};
    if (prev->next) prev->next->prev = node;
    prev->next = node;
    prev = node;
    tree_insert(s, node);
    s->count++;
  }
  s->last_changed = lo; /* never given back above: the window keeps at least one node */
}

int xm__pieces_init(struct xm__arena_pieces *s, size_t reserved) {
  memset(s, 0, sizeof *s);
  int rc = xm__pieces_refill(s, false, true);
  if (rc) {
    xm__pieces_destroy(s);
    return rc;
  }
  if (reserved) {
    struct xm__arena_node *n = take_node(s);
    *n = (struct xm__arena_node){.piece = {.offset = 0, .size = reserved, .kind = XM__PIECE_RESERVED}};
    s->first = n;
    s->count = 1;
    tree_insert(s, n);
  }
  return XM_OK;
}

static void free_tree(struct xm__arena_tree *t) {
  if (!t->leaf)
    for (unsigned i = 0; i < t->n; i++)
      free_tree(t->to.child[i]);
  free(t);
}

void xm__pieces_destroy(struct xm__arena_pieces *s) {
  if (s->root) free_tree(s->root);
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
  while (s->spare_trees) {
    struct xm__arena_tree *next = s->spare_trees->to.child[0];
    free(s->spare_trees);
    s->spare_trees = next;
  }
  while (s->spare_backings) {
    struct xm__arena_backing *next = (struct xm__arena_backing *)(uintptr_t)s->spare_backings->refs;
    free(s->spare_backings);
    s->spare_backings = next;
  }
  memset(s, 0, sizeof *s);
}
