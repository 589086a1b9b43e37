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
   what relaxed order promises; 32-bit x86 splits 8-byte ones: xm__plain_*_u64 below), and the
   C11 fences give the release and acquire order. */
#define XM__PLAIN_RELAXED_STORE(type, p, v) (*(volatile type *)(p) = (v))
#define XM__PLAIN_RELAXED_LOAD(type, p) (*(const volatile type *)(p))
#define XM__PLAIN_RELEASE_STORE(type, p, v) (atomic_thread_fence(memory_order_release), *(volatile type *)(p) = (v))
#else
#define XM__PLAIN_RELAXED_STORE(type, p, v) __atomic_store_n((type *)(p), (type)(v), __ATOMIC_RELAXED)
#define XM__PLAIN_RELAXED_LOAD(type, p) __atomic_load_n((const type *)(p), __ATOMIC_RELAXED)
#define XM__PLAIN_RELEASE_STORE(type, p, v) __atomic_store_n((type *)(p), (type)(v), __ATOMIC_RELEASE)
#endif

/* One 8-byte access, also on 32-bit x86 under MSVC, where a plain one is two 4-byte accesses:
   SSE2's movq moves the 8 aligned bytes at once (as gcc's __atomic builtins do there), without the
   write that a lock cmpxchg8b load would make on a read-only page. */
#if defined(_MSC_VER) && defined(_M_IX86)
#include <emmintrin.h>
#if defined(__clang__) /* clang-cl's 32-bit target does not assume SSE2, as cl's /arch:SSE2 does */
#define XM__SSE2_FN __attribute__((target("sse2")))
#else
#define XM__SSE2_FN
#endif
XM__SSE2_FN static inline uint64_t xm__plain_load_u64(const void *p) {
  uint64_t v;
  _mm_storel_epi64((__m128i *)&v, _mm_loadl_epi64((const __m128i *)p));
  return v;
}
XM__SSE2_FN static inline void xm__plain_store_u64(void *p, uint64_t v) {
  _mm_storel_epi64((__m128i *)p, _mm_loadl_epi64((const __m128i *)&v));
}
#else
static inline uint64_t xm__plain_load_u64(const void *p) { return XM__PLAIN_RELAXED_LOAD(uint64_t, p); }
static inline void xm__plain_store_u64(void *p, uint64_t v) { XM__PLAIN_RELAXED_STORE(uint64_t, p, v); }
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
