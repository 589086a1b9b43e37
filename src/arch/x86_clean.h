/* The x86 clean-lines loops (clwb, clflushopt, clflush + their fences): x86.c installs one of
   them as the flush unit, and `xmmap bench` inlines the same ones as its raw baseline. */
#ifndef XMMAP_ARCH_X86_CLEAN_H
#define XMMAP_ARCH_X86_CLEAN_H

#include "arch.h"

#if defined(_MSC_VER)
/* MSVC (and clang-cl, which compiles this branch too): the <intrin.h> intrinsics. _ReadWriteBarrier
   keeps every earlier store to a line ahead of its flush, as the "memory" clobber does below.
   clang checks an intrinsic's target feature where it is inlined, so the clwb and clflushopt
   loops carry theirs (cl.exe emits any instruction it has an intrinsic for), and call the
   builtins behind _mm_clwb / _mm_clflushopt, which clang's headers declare in MSVC mode only when
   the whole program is built for those features. */
#include <intrin.h>
#if defined(__clang__)
#define XM__X86_TARGET(feature) __attribute__((target(feature)))
#define XM__X86_CLWB(p) __builtin_ia32_clwb(p)
#define XM__X86_CLFLUSHOPT(p) __builtin_ia32_clflushopt(p)
#define XM__X86_CLFLUSH(p) __builtin_ia32_clflush(p)
#define XM__X86_SFENCE() __builtin_ia32_sfence()
#define XM__X86_MFENCE() __builtin_ia32_mfence()
#else
#define XM__X86_TARGET(feature)
#define XM__X86_CLWB(p) _mm_clwb(p)
#define XM__X86_CLFLUSHOPT(p) _mm_clflushopt(p)
#define XM__X86_CLFLUSH(p) _mm_clflush(p)
#define XM__X86_SFENCE() _mm_sfence()
#define XM__X86_MFENCE() _mm_mfence()
#endif

/* clwb and clflushopt are weakly ordered: sfence orders them before later stores. */
XM__X86_TARGET("sse,clwb") static inline void xm__clean_clwb(uintptr_t first, uintptr_t end, size_t line) {
  _ReadWriteBarrier();
  XM__FOR_EACH_LINE(p, first, end, line) XM__X86_CLWB((const void *)p);
  XM__X86_SFENCE();
  _ReadWriteBarrier();
}

XM__X86_TARGET("sse,clflushopt") static inline void xm__clean_clflushopt(uintptr_t first, uintptr_t end, size_t line) {
  _ReadWriteBarrier();
  XM__FOR_EACH_LINE(p, first, end, line) XM__X86_CLFLUSHOPT((const void *)p);
  XM__X86_SFENCE();
  _ReadWriteBarrier();
}

/* clflush is ordered with stores already; mfence also orders it before later loads. */
XM__X86_TARGET("sse2") static inline void xm__clean_clflush(uintptr_t first, uintptr_t end, size_t line) {
  _ReadWriteBarrier();
  XM__FOR_EACH_LINE(p, first, end, line) XM__X86_CLFLUSH((const void *)p);
  XM__X86_MFENCE();
  _ReadWriteBarrier();
}

#if defined(_M_IX86)
/* A 32-bit CPU with CLFLUSH but without SSE2 has no mfence: a locked read-modify-write is the
   full barrier that clflush is also ordered by. (clang files CLFLUSH under SSE2; it emits nothing
   else here.) */
XM__X86_TARGET("sse2") static inline void xm__clean_clflush_locked(uintptr_t first, uintptr_t end, size_t line) {
  volatile long fence = 0;
  _ReadWriteBarrier();
  XM__FOR_EACH_LINE(p, first, end, line) XM__X86_CLFLUSH((const void *)p);
  _InterlockedOr(&fence, 0);
}
#endif
#else
/* The instructions are emitted by encoding so that no -mclwb / -mclflushopt flag (which would let
   the compiler use those extensions anywhere) and no recent assembler is needed:
   clflushopt = 66 0F AE /7 (clflush with a 66 prefix), clwb = 66 0F AE /6 (xsaveopt with a 66
   prefix). The "memory" clobber keeps every earlier store to the line ahead of its flush even
   after inlining. */
#define XM__X86_LINE(p) "m"(*(const volatile char *)(p))

/* clwb and clflushopt are weakly ordered: sfence orders them before later stores. */
static inline void xm__clean_clwb(uintptr_t first, uintptr_t end, size_t line) {
  XM__FOR_EACH_LINE(p, first, end, line) __asm__ volatile(".byte 0x66; xsaveopt %0" : : XM__X86_LINE(p) : "memory");
  __asm__ volatile("sfence" : : : "memory");
}

static inline void xm__clean_clflushopt(uintptr_t first, uintptr_t end, size_t line) {
  XM__FOR_EACH_LINE(p, first, end, line) __asm__ volatile(".byte 0x66; clflush %0" : : XM__X86_LINE(p) : "memory");
  __asm__ volatile("sfence" : : : "memory");
}

/* clflush is ordered with stores already; mfence also orders it before later loads. */
static inline void xm__clean_clflush(uintptr_t first, uintptr_t end, size_t line) {
  XM__FOR_EACH_LINE(p, first, end, line) __asm__ volatile("clflush %0" : : XM__X86_LINE(p) : "memory");
  __asm__ volatile("mfence" : : : "memory");
}

#if defined(__i386__)
/* A 32-bit CPU with CLFLUSH but without SSE2 has no mfence: a locked read-modify-write is the
   full barrier that clflush is also ordered by. */
static inline void xm__clean_clflush_locked(uintptr_t first, uintptr_t end, size_t line) {
  XM__FOR_EACH_LINE(p, first, end, line) __asm__ volatile("clflush %0" : : XM__X86_LINE(p) : "memory");
  __asm__ volatile("lock; orl $0, (%%esp)" : : : "memory", "cc");
}
#endif
#endif /* _MSC_VER */

#endif /* XMMAP_ARCH_X86_CLEAN_H */
