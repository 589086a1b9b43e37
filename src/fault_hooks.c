/* The fault dispatcher's front end: the program's (and the library's own) fault hooks.
 *
 * The back end's handler (src/os.h, fault_*.c) calls xm__fault_dispatch_hooks first for every
 * memory fault. The hooks live in an immutable table that add/remove replace as a whole (copy on
 * write) and publish with one atomic store, so a handler reads it without a lock:
 *  - The table holds the hooks sorted by start, with an implicit balanced search tree over the
 *    array (the root of [l, r) is its middle) whose nodes carry the largest end in their subtree:
 *    the hooks covering an address are found in O(log n) each, however they overlap.
 *  - A handler announces that it reads a table by counting itself in one of two reader counters,
 *    the one of the current epoch. A writer publishes the new table, moves the epoch on and waits
 *    until the old epoch's readers are gone before it frees the old table. Readers hold no lock and
 *    run no user code while counted, so that wait is short.
 *  - A hook about to be called is pinned by its own call counter before the reader leaves the
 *    table; removal waits for that counter (not for the readers), which is what lets a hook remove
 *    itself or others, and add hooks, without deadlock. */
#include <stdatomic.h>
#include <stdlib.h>

#include "internal.h"

struct xm_fault_hook {
  uintptr_t lo, hi; /* [lo, hi) */
  xm_fault_fn fn;
  void *user;
  uint64_t seq;                       /* the order of adding: the larger is tried first */
  atomic_size_t calls;                /* calls of fn running now, on any thread */
  atomic_bool removed;                /* set first by remove: lookups skip it from then on */
  struct xm_fault_hook *next_retired; /* removed, but not freed yet (see free_retired) */
};

struct hook_table {
  size_t n;
  struct xm_fault_hook **hooks; /* sorted by lo */
  uintptr_t *max_hi;            /* per tree node: the largest hi in its subtree */
};

/* A call of a hook running on this thread: a list through the thread's stack, so that a hook
   removing itself knows which of the calls it waits for are its own. */
struct hook_call {
  const struct xm_fault_hook *hook;
  struct hook_call *outer;
};

static struct hook_table *_Atomic current;
static atomic_uint epoch;
static atomic_size_t readers[2];

static atomic_int setup_state;
static struct xm__os_mutex writers;   /* serializes add and remove */
static int setup_status;              /* XM_OK, or why the mutex could not be made */
static uint64_t next_seq = 1;         /* guarded by writers */
static struct xm_fault_hook *retired; /* guarded by writers */
static bool table_has_removed;        /* guarded by writers: a removal could not rebuild the table */

static void setup(void) { setup_status = xm__os_mutex_init(&writers); }

/* ---- the lookup (async-signal-safe) ------------------------------------------------------------ */
static uintptr_t build_tree(struct hook_table *t, size_t l, size_t r) {
  if (l >= r) return 0;
  size_t m = l + (r - l) / 2;
  uintptr_t hi = t->hooks[m]->hi, left = build_tree(t, l, m), right = build_tree(t, m + 1, r);
  if (left > hi) hi = left;
  if (right > hi) hi = right;
  t->max_hi[m] = hi;
  return hi;
}

/* The newest hook covering addr that is older than below (a seq), into *best. */
static void find_newest(const struct hook_table *t, size_t l, size_t r, uintptr_t addr, uint64_t below,
                        struct xm_fault_hook **best) {
  while (l < r) {
    size_t m = l + (r - l) / 2;
    if (t->max_hi[m] <= addr) return; /* nothing in [l, r) reaches addr */
    find_newest(t, l, m, addr, below, best);
    const struct xm_fault_hook *h = t->hooks[m];
    if (h->lo > addr) return; /* m and everything right of it start after addr */
    if (addr < h->hi && h->seq < below && (!*best || h->seq > (*best)->seq) && !atomic_load(&h->removed))
      *best = t->hooks[m];
    l = m + 1;
  }
}

/* The next hook to try for addr, pinned (its calls counted), or NULL. */
static struct xm_fault_hook *pin_next(uintptr_t addr, uint64_t below) {
  unsigned e;
  for (;;) {
    e = atomic_load(&epoch);
    atomic_fetch_add(&readers[e & 1], 1);
    if (atomic_load(&epoch) == e) break; /* counted where the writer of this epoch will look */
    atomic_fetch_sub(&readers[e & 1], 1);
  }
  const struct hook_table *t = atomic_load(&current);
  struct xm_fault_hook *h = NULL;
  if (t) find_newest(t, 0, t->n, addr, below, &h);
  if (h) atomic_fetch_add(&h->calls, 1);
  atomic_fetch_sub(&readers[e & 1], 1);
  return h;
}

bool xm__fault_dispatch_hooks(const xm_fault *f) {
  if (!atomic_load_explicit(&current, memory_order_relaxed)) return false; /* no hook was ever added */
  const uintptr_t addr = (uintptr_t)f->addr;
  uint64_t below = UINT64_MAX;
  struct hook_call call = {.outer = xm__os_fault_thread_get()};
  for (;;) {
    struct xm_fault_hook *h = pin_next(addr, below);
    if (!h) return false;
    call.hook = h;
    xm__os_fault_thread_set(&call);
    xm_fault_action action = h->fn(f, h->user);
    xm__os_fault_thread_set(call.outer);
    below = h->seq;
    atomic_fetch_sub(&h->calls, 1); /* the last touch of h: a remover may free it now */
    if (action == XM_FAULT_RETRY) return true;
  }
}

/* ---- add and remove ---------------------------------------------------------------------------- */
/* Publishes t and returns once no handler can still be reading the table it replaces. Writers
   hold the mutex. */
static struct hook_table *publish(struct hook_table *t) {
  struct hook_table *old = atomic_exchange(&current, t);
  unsigned e = atomic_fetch_add(&epoch, 1);
  while (atomic_load(&readers[e & 1]) != 0)
    xm__os_yield();
  return old;
}

static void table_free(struct hook_table *t) {
  if (!t) return;
  free(t->hooks);
  free(t->max_hi);
  free(t);
}

/* A copy of the current table with `add` (may be NULL) inserted and removed hooks left out; NULL
   when out of memory. Writers hold the mutex. */
static struct hook_table *table_with(struct xm_fault_hook *add) {
  const struct hook_table *old = atomic_load(&current);
  size_t n_old = old ? old->n : 0, n = add ? 1 : 0;
  for (size_t i = 0; i < n_old; i++)
    n += !atomic_load(&old->hooks[i]->removed);
  struct hook_table *t = calloc(1, sizeof *t);
  if (!t) return NULL;
  t->n = n;
  if (n) {
    t->hooks = malloc(n * sizeof *t->hooks);
    t->max_hi = malloc(n * sizeof *t->max_hi);
    if (!t->hooks || !t->max_hi) {
      table_free(t);
      return NULL;
    }
  }
  size_t w = 0;
  for (size_t i = 0; i < n_old; i++) {
    struct xm_fault_hook *h = old->hooks[i];
    if (atomic_load(&h->removed)) continue;
    if (add && add->lo < h->lo) {
      t->hooks[w++] = add;
      add = NULL;
    }
    t->hooks[w++] = h;
  }
  if (add) t->hooks[w++] = add;
  build_tree(t, 0, n);
  return t;
}

/* Frees the retired hooks whose last call has ended, once no table holds them. Writers hold the
   mutex. */
static void free_retired(void) {
  if (table_has_removed) return;
  struct xm_fault_hook **link = &retired;
  while (*link) {
    struct xm_fault_hook *h = *link;
    if (atomic_load(&h->calls) == 0) {
      *link = h->next_retired;
      free(h);
    } else {
      link = &h->next_retired;
    }
  }
}

int xm_fault_hook_add(const void *addr, size_t len, xm_fault_fn fn, void *user, xm_fault_hook **out) {
  if (!out) return xm__fail(XM_E_INVALID_ARGUMENT, "out must not be NULL");
  if (!fn) return xm__fail(XM_E_INVALID_ARGUMENT, "the hook function must not be NULL");
  if (len == 0) return xm__fail(XM_E_INVALID_ARGUMENT, "len must be > 0");
  if ((uintptr_t)addr + len - 1 < (uintptr_t)addr) return xm__fail_overflow((uintptr_t)addr, len);
  xm__once(&setup_state, setup);
  if (setup_status) return setup_status;
  /* The dispatcher first: a hook that is in the table is a hook that faults reach. */
  int rc = xm__os_fault_install();
  if (rc) return rc;
  struct xm_fault_hook *h = calloc(1, sizeof *h);
  if (!h) return xm__fail(XM_E_NO_MEMORY, "out of memory for a fault hook");
  h->lo = (uintptr_t)addr;
  /* A range ending at the top of the address space would end at 0: it ends one byte short. */
  h->hi = (uintptr_t)addr + len - 1 == UINTPTR_MAX ? UINTPTR_MAX : (uintptr_t)addr + len;
  h->fn = fn;
  h->user = user;
  xm__os_mutex_lock(&writers);
  h->seq = next_seq++;
  struct hook_table *t = table_with(h);
  if (!t) {
    xm__os_mutex_unlock(&writers);
    free(h);
    return xm__fail(XM_E_NO_MEMORY, "out of memory for the fault hook table");
  }
  table_free(publish(t));
  table_has_removed = false;
  free_retired();
  xm__os_mutex_unlock(&writers);
  *out = h;
  return XM_OK;
}

/* How many of h's running calls are this thread's own (a hook removing itself). */
static size_t own_calls(const struct xm_fault_hook *h) {
  size_t n = 0;
  for (const struct hook_call *c = xm__os_fault_thread_get(); c; c = c->outer)
    n += c->hook == h;
  return n;
}

void xm_fault_hook_remove(xm_fault_hook *h) {
  if (!h) return;
  /* Inside a hook (this thread is handling a fault) nothing is allocated: h is only marked, and
     the table is rebuilt without it by the next change made outside a hook. */
  const bool in_hook = xm__os_fault_thread_get() != NULL;
  xm__os_mutex_lock(&writers);
  atomic_store(&h->removed, true); /* no lookup picks it from now on, whatever the table */
  struct hook_table *t = in_hook ? NULL : table_with(NULL);
  if (t) {
    table_free(publish(t));
    table_has_removed = false;
  } else {
    /* h stays in the table, skipped, until a later change rebuilds it (also when out of memory). */
    table_has_removed = true;
    publish(atomic_load(&current)); /* still waits out the lookups that may have picked h */
  }
  xm__os_mutex_unlock(&writers);
  /* No lookup finds h any more; wait for the calls already pinned, except this thread's own
     (a hook removing itself: its own call ends when it returns). */
  const size_t own = own_calls(h);
  while (atomic_load(&h->calls) > own)
    xm__os_yield();
  xm__os_mutex_lock(&writers);
  h->next_retired = retired;
  retired = h;
  if (!in_hook) free_retired();
  xm__os_mutex_unlock(&writers);
}

int xm_fault_handler_check(void) { return xm__os_fault_handler_check(); }
int xm_fault_handler_reinstall(void) { return xm__os_fault_handler_reinstall(); }
