/* The x86 flush unit (x86_64 and i686; gcc, clang, MinGW-w64 and MSVC): clwb > clflushopt >
   clflush. */
#if defined(_MSC_VER)
#include <intrin.h>
#else
#include <cpuid.h>
#endif
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "arch.h"
#include "x86_clean.h"

/* CPUID bits, spelled out so that older <cpuid.h> headers (which lack some names) still work. */
#define XM__CPUID1_EDX_CLFSH (1u << 19)
#define XM__CPUID1_EDX_SSE2 (1u << 26)
#define XM__CPUID7_EBX_CLFLUSHOPT (1u << 23)
#define XM__CPUID7_EBX_CLWB (1u << 24)

/* CPUID leaf `leaf`, subleaf `sub`, into r (EAX, EBX, ECX, EDX); false when the leaf is above
   the CPU's maximum basic leaf. */
static bool cpuid(unsigned leaf, unsigned sub, unsigned r[4]) {
#if defined(_MSC_VER)
  int regs[4];
  __cpuid(regs, 0);
  if ((unsigned)regs[0] < leaf) return false;
  __cpuidex(regs, (int)leaf, (int)sub);
  for (int i = 0; i < 4; i++)
    r[i] = (unsigned)regs[i];
  return true;
#else
  return __get_cpuid_count(leaf, sub, &r[0], &r[1], &r[2], &r[3]) != 0;
#endif
}

static void set_unsupported(struct xm__flush_unit *unit, const char *why) {
  unit->method = "none";
  unit->unsupported = why;
  unit->clean = NULL;
}

void xm__arch_flush_unit(struct xm__flush_unit *unit) {
  unsigned r[4] = {0, 0, 0, 0}; /* EAX, EBX, ECX, EDX */
  bool has_clflush = false, has_sse2 = false, has_clflushopt = false, has_clwb = false;
  size_t line = 0;
  if (cpuid(1, 0, r)) {
    has_clflush = (r[3] & XM__CPUID1_EDX_CLFSH) != 0;
    has_sse2 = (r[3] & XM__CPUID1_EDX_SSE2) != 0;
    /* EBX[15:8] is the CLFLUSH line size in 8-byte units, valid only when CLFSH is set. */
    if (has_clflush) line = (size_t)((r[1] >> 8) & 0xffu) * 8u;
  }
  if (cpuid(7, 0, r)) {
    has_clflushopt = (r[1] & XM__CPUID7_EBX_CLFLUSHOPT) != 0;
    has_clwb = (r[1] & XM__CPUID7_EBX_CLWB) != 0;
  }
  unit->line = line;
  unit->line_source = line ? "cpuid" : NULL;

  const char *want = getenv("XMMAP_FLUSH");
  if (want != NULL && want[0] != '\0') {
    if (strcmp(want, "clwb") == 0) {
      if (!has_clwb) {
        set_unsupported(unit, "XMMAP_FLUSH=clwb forces CLWB, which this CPU does not have "
                              "(CPUID.(EAX=7,ECX=0):EBX[24] is clear)");
        return;
      }
      unit->method = "clwb";
      unit->clean = xm__clean_clwb;
    } else if (strcmp(want, "clflushopt") == 0) {
      if (!has_clflushopt) {
        set_unsupported(unit, "XMMAP_FLUSH=clflushopt forces CLFLUSHOPT, which this CPU does not have "
                              "(CPUID.(EAX=7,ECX=0):EBX[23] is clear)");
        return;
      }
      unit->method = "clflushopt";
      unit->clean = xm__clean_clflushopt;
    } else if (strcmp(want, "clflush") == 0) {
      if (!has_clflush) {
        set_unsupported(unit, "XMMAP_FLUSH=clflush forces CLFLUSH, which this CPU does not have "
                              "(CPUID.1:EDX[19] is clear)");
        return;
      }
      unit->method = "clflush";
      unit->clean = xm__clean_clflush;
    } else {
      set_unsupported(unit, "XMMAP_FLUSH must be one of clflush, clflushopt or clwb");
      return;
    }
  } else if (has_clwb) {
    unit->method = "clwb";
    unit->clean = xm__clean_clwb;
  } else if (has_clflushopt) {
    unit->method = "clflushopt";
    unit->clean = xm__clean_clflushopt;
  } else if (has_clflush) {
    unit->method = "clflush";
    unit->clean = xm__clean_clflush;
  } else {
    set_unsupported(unit, "this CPU has no CLFLUSH (CPUID.1:EDX[19] is clear)");
    return;
  }
  unit->unsupported = NULL;
#if defined(_M_IX86) || defined(__i386__)
  if (unit->clean == xm__clean_clflush && !has_sse2) unit->clean = xm__clean_clflush_locked;
#else
  (void)has_sse2;
#endif
}

/* ---- instruction cache ------------------------------------------------------------------------ */
/* x86 keeps instruction fetches coherent with stores: only the compiler must not move the stores
   that wrote the code past the point where it may run. */
static void sync_coherent(uintptr_t start, uintptr_t end) {
  (void)start;
  (void)end;
#if defined(_MSC_VER)
  _ReadWriteBarrier();
#else
  __asm__ volatile("" : : : "memory");
#endif
}

void xm__arch_icache_unit(struct xm__icache_unit *unit) {
  unit->method = "coherent";
  unit->sync = sync_coherent;
}
