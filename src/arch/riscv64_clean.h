/* The riscv64 clean-lines loop (Zicbom cbo.clean + fence): riscv64.c installs it as the flush
   unit when the kernel reports Zicbom, and `xmmap bench` inlines the same one as its baseline. */
#ifndef XMMAP_ARCH_RISCV64_CLEAN_H
#define XMMAP_ARCH_RISCV64_CLEAN_H

#include "arch.h"

/* cbo.clean rs1 is MISC-MEM (0x0f), funct3 2, rd x0, imm 1; emitted with .insn because the
   assembler only knows the mnemonic with a Zicbom -march. Cache-block operations are ordered by
   FENCE like stores; the I/O bits also order them before later device accesses (a doorbell),
   since the reader may be a device. */
static inline void xm__clean_cbo_clean(uintptr_t first, uintptr_t end, size_t line) {
  XM__FOR_EACH_LINE(p, first, end, line) __asm__ volatile(".insn i 0x0f, 2, x0, %0, 1" : : "r"(p) : "memory");
  __asm__ volatile("fence iorw, iorw" : : : "memory");
}

#endif /* XMMAP_ARCH_RISCV64_CLEAN_H */
