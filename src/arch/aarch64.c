/* The aarch64 flush unit: DC CVAC per line, then DSB SY; the line from CTR_EL0.DminLine. On
   Windows none, and the instruction cache through the OS (FlushInstructionCache). */
#include "arch.h"

#if defined(_WIN32)
/* Windows on ARM64 documents no way for user space to clean to the point of coherency: whether
   DC CVAC may run at EL0 (SCTLR_EL1.UCI) and CTR_EL0 may be read there (UCT) is not promised, and
   cl.exe could not emit DC CVAC anyway (no inline assembly on ARM64, and _WriteStatusReg encodes
   only MSR, op0 2 or 3, never the SYS form DC CVAC is). A clear error beats a possible crash. */
void xm__arch_flush_unit(struct xm__flush_unit *unit) {
  unit->method = "none";
  unit->unsupported = "Windows on ARM64 offers user space no documented clean to the point of coherency "
                      "(DC CVAC at EL0 is not promised, and cl.exe has no intrinsic for it)";
  unit->line = 0;
  unit->line_source = NULL;
  unit->clean = NULL;
}

/* Instruction cache: FlushInstructionCache (src/windows facts), which cleans, invalidates and
   reaches every core without relying on EL0 cache maintenance. */
void xm__arch_icache_unit(struct xm__icache_unit *unit) {
  unit->method = NULL;
  unit->sync = NULL;
}
#else
#include "aarch64_clean.h"
#include "aarch64_icache.h"

void xm__arch_flush_unit(struct xm__flush_unit *unit) {
  /* EL0 reads of CTR_EL0 are allowed (or emulated) by Linux; DminLine, bits [19:16], is log2 of
     the smallest data-cache line in 4-byte words across all CPUs (the kernel sanitises it). */
  uint64_t ctr;
  __asm__ volatile("mrs %0, ctr_el0" : "=r"(ctr));
  unit->method = "dc cvac";
  unit->unsupported = NULL;
  unit->line = (size_t)4 << ((ctr >> 16) & 0xfu);
  unit->line_source = "ctr_el0";
  unit->clean = xm__clean_dc_cvac;
}

/* ---- instruction cache ------------------------------------------------------------------------ */
static struct xm__aarch64_icache_plan icache_plan; /* written once before the unit is published */

static void sync_dc_cvau_ic_ivau(uintptr_t start, uintptr_t end) {
  const struct xm__aarch64_icache_plan p = icache_plan;
  if (p.clean_data)
    for (uintptr_t a = start & ~(uintptr_t)(p.dline - 1); a < end; a += p.dline)
      __asm__ volatile("dc cvau, %0" : : "r"(a) : "memory");
  __asm__ volatile("dsb ish" : : : "memory");
  if (p.invalidate_insn) {
    for (uintptr_t a = start & ~(uintptr_t)(p.iline - 1); a < end; a += p.iline)
      __asm__ volatile("ic ivau, %0" : : "r"(a) : "memory");
    __asm__ volatile("dsb ish" : : : "memory");
  }
  __asm__ volatile("isb" : : : "memory");
}

void xm__arch_icache_unit(struct xm__icache_unit *unit) {
  uint64_t ctr;
  __asm__ volatile("mrs %0, ctr_el0" : "=r"(ctr));
  icache_plan = xm__aarch64_icache_plan(ctr);
  unit->method = "dc cvau + ic ivau";
  unit->sync = sync_dc_cvau_ic_ivau;
}
#endif /* _WIN32 */
