/* The ppc64 clean-lines loop (dcbst + sync): ppc64.c installs it as the flush unit, and
   `xmmap bench` inlines the same one as its raw baseline. */
#ifndef XMMAP_ARCH_PPC64_CLEAN_H
#define XMMAP_ARCH_PPC64_CLEAN_H

#include "arch.h"

/* The "memory" clobber keeps earlier stores ahead of the clean of their line; dcbst only starts
   the write-back, sync waits for it to complete. */
static inline void xm__clean_dcbst(uintptr_t first, uintptr_t end, size_t line) {
  XM__FOR_EACH_LINE(p, first, end, line) __asm__ volatile("dcbst 0, %0" : : "r"(p) : "memory");
  __asm__ volatile("sync" : : : "memory");
}

#endif /* XMMAP_ARCH_PPC64_CLEAN_H */
