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
   xm_shm_descriptor's contract forbids). An object that finds no free slot is checked as any
   other descriptor. */
#include <stdatomic.h>

#include "internal.h"

#define SLOTS 64
#define LIVE 1u
#define WRITING 2u
#define NEXT_GENERATION 4u

static struct slot {
  atomic_uint state; /* generation (multiples of 4) | LIVE or WRITING */
  _Atomic(xm_descriptor) descriptor;
  atomic_uint flags;
  atomic_size_t huge_page_size;
} slots[SLOTS];
static atomic_int slots_used; /* one past the highest slot ever taken: readers look no further */

void xm__shm_know(xm_shm *shm) {
  shm->known_slot = -1;
  for (int k = 0; k < SLOTS; k++) {
    struct slot *s = &slots[k];
    unsigned state = atomic_load_explicit(&s->state, memory_order_relaxed);
    if ((state & (LIVE | WRITING)) ||
        !atomic_compare_exchange_strong_explicit(&s->state, &state, state | WRITING, memory_order_acquire,
                                                 memory_order_relaxed))
      continue;
    atomic_store_explicit(&s->descriptor, shm->descriptor, memory_order_relaxed);
    atomic_store_explicit(&s->flags, shm->flags, memory_order_relaxed);
    atomic_store_explicit(&s->huge_page_size, shm->huge_page_size, memory_order_relaxed);
    atomic_store_explicit(&s->state, state | LIVE, memory_order_release);
    int used = atomic_load_explicit(&slots_used, memory_order_relaxed);
    while (used < k + 1 && !atomic_compare_exchange_weak_explicit(&slots_used, &used, k + 1, memory_order_release,
                                                                  memory_order_relaxed)) {}
    shm->known_slot = k;
    return;
  }
}

void xm__shm_forget(xm_shm *shm) {
  if (shm->known_slot < 0) return;
  struct slot *s = &slots[shm->known_slot];
  unsigned state = atomic_load_explicit(&s->state, memory_order_relaxed);
  atomic_store_explicit(&s->state, (state & ~(LIVE | WRITING)) + NEXT_GENERATION, memory_order_release);
  shm->known_slot = -1;
}

bool xm__shm_lookup(xm_descriptor d, struct xm__shm_facts *facts) {
  const int used = atomic_load_explicit(&slots_used, memory_order_acquire);
  for (int k = 0; k < used; k++) {
    struct slot *s = &slots[k];
    const unsigned before = atomic_load_explicit(&s->state, memory_order_acquire);
    if (!(before & LIVE) || atomic_load_explicit(&s->descriptor, memory_order_relaxed) != d) continue;
    facts->flags = atomic_load_explicit(&s->flags, memory_order_relaxed);
    facts->huge_page_size = atomic_load_explicit(&s->huge_page_size, memory_order_relaxed);
    atomic_thread_fence(memory_order_acquire);
    if (atomic_load_explicit(&s->state, memory_order_relaxed) == before) return true;
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
