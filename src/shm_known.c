/* The table of live shared-memory objects made by the library, by descriptor. An emulator adds
   pieces of its guest RAM to an arena thousands of times a second, always from the same object;
   for an object the library made it already knows what the OS's descriptor checks would find
   (on POSIX an fstat and an fcntl: a third of an add's cost), and it can apply the object's own
   policies (no exec without XM_SHM_EXEC, no writable mapping of a read-only clone).

   Lock-free, allocation-free: arena adds may run in a fault hook. Each slot is a small seqlock:
   its owner fills it while it is marked WRITING, then publishes it LIVE; a reader takes the facts
   only when the slot's state is the same LIVE generation before and after it read them. An
   object is forgotten before its descriptor is closed, so a number the OS reuses for another file
   is never found here (unless the caller closes the object's descriptor behind its back, which
   xm_shm_descriptor's contract forbids).

   Every object is in the table, however many there are, so that its policies always hold: slots
   come in chunks of CHUNK_SLOTS, the first static, the others added by the objects that found the
   chunks before full (where allocation is allowed) and kept for the process's life (a few KiB per
   64 live objects at their peak). Lookups scan the slots ever used: a few nanoseconds for the
   handful of objects an emulator keeps. */
#include <stdatomic.h>
#include <stdlib.h>

#include "internal.h"

#define CHUNK_SLOTS 64
#define LIVE 1u
#define WRITING 2u
#define NEXT_GENERATION 4u

struct xm__shm_slot {
  atomic_uint state; /* generation (multiples of 4) | LIVE or WRITING */
  _Atomic(xm_descriptor) descriptor;
  atomic_uint flags;
  atomic_size_t huge_page_size;
};

struct chunk {
  struct xm__shm_slot slots[CHUNK_SLOTS];
  atomic_int used;              /* one past the highest slot ever taken: readers look no further */
  _Atomic(struct chunk *) next; /* set once, never freed */
};
static struct chunk first_chunk;

/* A free slot of c marked WRITING, or NULL. */
static struct xm__shm_slot *take_slot(struct chunk *c) {
  for (int k = 0; k < CHUNK_SLOTS; k++) {
    struct xm__shm_slot *s = &c->slots[k];
    unsigned state = atomic_load_explicit(&s->state, memory_order_relaxed);
    if ((state & (LIVE | WRITING)) ||
        !atomic_compare_exchange_strong_explicit(&s->state, &state, state | WRITING, memory_order_acquire,
                                                 memory_order_relaxed))
      continue;
    /* The seqlock's writer: WRITING is seen before any of the facts written next. */
    atomic_thread_fence(memory_order_release);
    int used = atomic_load_explicit(&c->used, memory_order_relaxed);
    while (used < k + 1 &&
           !atomic_compare_exchange_weak_explicit(&c->used, &used, k + 1, memory_order_release, memory_order_relaxed)) {
    }
    return s;
  }
  return NULL;
}

int xm__shm_reserve_slot(xm_shm *shm) {
  shm->known = NULL;
  for (struct chunk *c = &first_chunk;;) {
    if ((shm->known = take_slot(c)) != NULL) return XM_OK;
    struct chunk *next = atomic_load_explicit(&c->next, memory_order_acquire);
    if (!next) {
      struct chunk *fresh = calloc(1, sizeof *fresh);
      if (!fresh) return xm__fail(XM_E_NO_MEMORY, "out of memory for the table of shared-memory objects");
      if (atomic_compare_exchange_strong_explicit(&c->next, &next, fresh, memory_order_acq_rel, memory_order_acquire))
        next = fresh;
      else
        free(fresh); /* another thread added one first: next is that one */
    }
    c = next;
  }
}

void xm__shm_publish(xm_shm *shm) {
  struct xm__shm_slot *s = shm->known;
  const unsigned state = atomic_load_explicit(&s->state, memory_order_relaxed);
  atomic_store_explicit(&s->descriptor, shm->descriptor, memory_order_relaxed);
  atomic_store_explicit(&s->flags, shm->flags, memory_order_relaxed);
  atomic_store_explicit(&s->huge_page_size, shm->huge_page_size, memory_order_relaxed);
  atomic_store_explicit(&s->state, (state & ~WRITING) | LIVE, memory_order_release);
}

int xm__shm_know(xm_shm *shm) {
  int rc = xm__shm_reserve_slot(shm);
  if (rc == XM_OK) xm__shm_publish(shm);
  return rc;
}

void xm__shm_forget(xm_shm *shm) {
  struct xm__shm_slot *s = shm->known;
  if (!s) return;
  unsigned state = atomic_load_explicit(&s->state, memory_order_relaxed);
  atomic_store_explicit(&s->state, (state & ~(LIVE | WRITING)) + NEXT_GENERATION, memory_order_release);
  shm->known = NULL;
}

bool xm__shm_lookup(xm_descriptor d, struct xm__shm_facts *facts) {
  for (const struct chunk *c = &first_chunk; c; c = atomic_load_explicit(&c->next, memory_order_acquire)) {
    const int used = atomic_load_explicit(&c->used, memory_order_acquire);
    for (int k = 0; k < used; k++) {
      const struct xm__shm_slot *s = &c->slots[k];
      const unsigned before = atomic_load_explicit(&s->state, memory_order_acquire);
      if (!(before & LIVE) || atomic_load_explicit(&s->descriptor, memory_order_relaxed) != d) continue;
      facts->flags = atomic_load_explicit(&s->flags, memory_order_relaxed);
      facts->huge_page_size = atomic_load_explicit(&s->huge_page_size, memory_order_relaxed);
      atomic_thread_fence(memory_order_acquire);
      if (atomic_load_explicit(&s->state, memory_order_relaxed) == before) return true;
    }
  }
  return false;
}

int xm__shm_check_policy(unsigned shm_flags, xm_prot prot) {
  if ((prot & XM_PROT_EXEC) && !(shm_flags & XM_SHM_EXEC))
    return xm__fail(XM_E_ACCESS, "the shared-memory object was made without XM_SHM_EXEC and cannot be mapped "
                                 "executable");
  /* A read-only clone's descriptor cannot write the object: say so before the OS does. */
  if ((shm_flags & XM__SHM_READ_ONLY) && (prot & XM_PROT_WRITE))
    return xm__fail(XM_E_ACCESS, "the shared-memory object is a read-only clone: map it read-only, or private "
                                 "(copy-on-write) to write a copy");
  return XM_OK;
}
