/* The OS's protection of one page, as the kernel (/proc/self/maps) or VirtualQuery reports it, for
   tests that check what a protection change or a write tracker did to the page tables. */
#ifndef XMMAP_XMTEST_PROT_H
#define XMMAP_XMTEST_PROT_H

#include "xmtest.h"

/* Not mapped, or not known (no /proc/self/maps). */
#define XT_PROT_UNMAPPED 0x100u

static inline unsigned xt_os_prot(const void *p) {
#ifdef _WIN32
  MEMORY_BASIC_INFORMATION mbi = xt_query(p);
  if (mbi.State != MEM_COMMIT) return XT_PROT_UNMAPPED;
  switch (mbi.Protect & 0xff) {
  case PAGE_NOACCESS: return XM_PROT_NONE;
  case PAGE_READONLY: return XM_PROT_READ;
  case PAGE_READWRITE:
  case PAGE_WRITECOPY: return XM_PROT_READ_WRITE;
  case PAGE_EXECUTE: return XM_PROT_EXEC;
  case PAGE_EXECUTE_READ: return XM_PROT_READ | XM_PROT_EXEC;
  default: return XM_PROT_READ_WRITE | XM_PROT_EXEC;
  }
#else
  FILE *f = fopen("/proc/self/maps", "r");
  if (!f) return XT_PROT_UNMAPPED;
  char line[512];
  unsigned prot = XT_PROT_UNMAPPED;
  while (fgets(line, sizeof line, f)) {
    unsigned long lo, hi;
    char perms[8];
    if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) != 3) continue;
    if ((uintptr_t)p < lo || (uintptr_t)p >= hi) continue;
    prot = (perms[0] == 'r' ? XM_PROT_READ : 0u) | (perms[1] == 'w' ? XM_PROT_WRITE : 0u) |
           (perms[2] == 'x' ? XM_PROT_EXEC : 0u);
    break;
  }
  fclose(f);
  return prot;
#endif
}

/* Whether xt_os_prot can tell protections here. */
static inline int xt_os_prot_known(void) {
  static const unsigned char probe = 1;
  return xt_os_prot(&probe) != XT_PROT_UNMAPPED;
}

/* Asserts the OS protection of the page at p, naming what it found. */
#define XT_OS_PROT(p, want)                                                                                            \
  do {                                                                                                                 \
    unsigned xt_got_ = xt_os_prot(p);                                                                                  \
    if (xt_got_ != (unsigned)(want))                                                                                   \
      print_message("%s: OS protection of %p is 0x%x, expected 0x%x\n", #p, (const void *)(p), xt_got_,                \
                    (unsigned)(want));                                                                                 \
    assert_int_equal(xt_got_, (unsigned)(want));                                                                       \
  } while (0)

#endif /* XMMAP_XMTEST_PROT_H */
