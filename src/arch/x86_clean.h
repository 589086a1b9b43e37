/* The x86 clean-lines loops (clwb, clflushopt, clflush + their fences): x86.c installs one of
   them as the flush unit, and `xmmap bench` inlines the same ones as its raw baseline. */
#ifndef XMMAP_ARCH_X86_CLEAN_H
#define XMMAP_ARCH_X86_CLEAN_H

#include "arch.h"

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

#endif /* XMMAP_ARCH_X86_CLEAN_H */
