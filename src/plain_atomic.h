/* Atomic loads and stores of plain (not _Atomic) objects: guest memory read and written by the
   volatile accessors, and the protection bookkeeping that the public header's inline accessors
   read, which cannot be _Atomic in a header that C++ also compiles. */
#ifndef XMMAP_PLAIN_ATOMIC_H
#define XMMAP_PLAIN_ATOMIC_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#if defined(_MSC_VER)
/* MSVC has no __atomic builtins for plain objects. A volatile access of a naturally aligned
   object of 1, 2, 4 or 8 bytes is one load or store instruction on x64 and ARM64 (so no tearing:
   what relaxed order promises; 32-bit x86 would split 8-byte ones, and is no MSVC target here),
   and the C11 fences give the release and acquire order. */
#define XM__PLAIN_RELAXED_STORE(type, p, v) (*(volatile type *)(p) = (v))
#define XM__PLAIN_RELAXED_LOAD(type, p) (*(const volatile type *)(p))
#define XM__PLAIN_RELEASE_STORE(type, p, v) (atomic_thread_fence(memory_order_release), *(volatile type *)(p) = (v))
#else
#define XM__PLAIN_RELAXED_STORE(type, p, v) __atomic_store_n((type *)(p), (type)(v), __ATOMIC_RELAXED)
#define XM__PLAIN_RELAXED_LOAD(type, p) __atomic_load_n((const type *)(p), __ATOMIC_RELAXED)
#define XM__PLAIN_RELEASE_STORE(type, p, v) __atomic_store_n((type *)(p), (type)(v), __ATOMIC_RELEASE)
#endif

/* An acquire load of a flag (the "mixed" protection flag that a release store published). */
static inline bool xm__plain_acquire_load_bool(const bool *p) {
#if defined(_MSC_VER)
  bool v = *(const volatile bool *)p;
  atomic_thread_fence(memory_order_acquire);
  return v;
#else
  return __atomic_load_n(p, __ATOMIC_ACQUIRE);
#endif
}

#endif /* XMMAP_PLAIN_ATOMIC_H */
