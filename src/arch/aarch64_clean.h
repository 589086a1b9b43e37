/* The aarch64 clean-lines loop (DC CVAC + DSB SY): aarch64.c installs it as the flush unit, and
   `xmmap bench` inlines the same one as its raw baseline. */
#ifndef XMMAP_ARCH_AARCH64_CLEAN_H
#define XMMAP_ARCH_AARCH64_CLEAN_H

#include "arch.h"

/* The "memory" clobber keeps earlier stores ahead of the clean of their line. DSB SY, not ISH:
   the reader may be a non-coherent device or a guest's uncached mapping outside the
   inner-shareable domain, and DSB SY is what completes cleans to the PoC for every observer
   (Linux's dcache_clean_poc does the same). cl.exe has no inline assembly on ARM64 and no
   intrinsic for DC CVAC, so there is no loop for it (aarch64.c installs none on Windows; clang-cl
   compiles this one). */
#if !(defined(_MSC_VER) && !defined(__clang__))
static inline void xm__clean_dc_cvac(uintptr_t first, uintptr_t end, size_t line) {
  XM__FOR_EACH_LINE(p, first, end, line) __asm__ volatile("dc cvac, %0" : : "r"(p) : "memory");
  __asm__ volatile("dsb sy" : : : "memory");
}
#endif

#endif /* XMMAP_ARCH_AARCH64_CLEAN_H */
