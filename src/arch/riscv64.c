/* The riscv64 flush unit: Zicbom cbo.clean, used only when the kernel reports it and its block
   size through riscv_hwprobe; otherwise none, with the reason (never a SIGILL). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* syscall() */
#endif
#include <errno.h>
#include <unistd.h>

#include "arch.h"
#include "riscv64_clean.h"

/* From the kernel's uapi <asm/hwprobe.h>, which older distributions' headers lack. */
#define XM__NR_RISCV_HWPROBE 258
#define XM__HWPROBE_KEY_IMA_EXT_0 4
#define XM__HWPROBE_EXT_ZICBOM (UINT64_C(1) << 55)
#define XM__HWPROBE_KEY_ZICBOM_BLOCK_SIZE 12

struct xm__hwprobe_pair {
  int64_t key; /* set to -1 by the kernel when it does not know the key */
  uint64_t value;
};

static void set_unsupported(struct xm__flush_unit *unit, const char *why) {
  unit->method = "none";
  unit->unsupported = why;
  unit->line = 0;
  unit->line_source = NULL;
  unit->clean = NULL;
}

void xm__arch_flush_unit(struct xm__flush_unit *unit) {
  struct xm__hwprobe_pair pairs[2] = {
      {XM__HWPROBE_KEY_IMA_EXT_0, 0},
      {XM__HWPROBE_KEY_ZICBOM_BLOCK_SIZE, 0},
  };
  /* cpusetsize 0 and cpus NULL ask about all online CPUs: an extension is reported only when
     every CPU has it. */
  long rc = syscall(XM__NR_RISCV_HWPROBE, pairs, (size_t)2, (size_t)0, (void *)0, 0u);
  if (rc != 0) {
    if (errno == ENOSYS)
      set_unsupported(unit, "the kernel has no riscv_hwprobe system call, so Zicbom (cbo.clean) "
                            "cannot be detected");
    else
      set_unsupported(unit, "riscv_hwprobe failed, so Zicbom (cbo.clean) cannot be detected");
    return;
  }
  if (pairs[0].key != XM__HWPROBE_KEY_IMA_EXT_0 || (pairs[0].value & XM__HWPROBE_EXT_ZICBOM) == 0) {
    set_unsupported(unit, "riscv_hwprobe does not report Zicbom (cbo.clean) on every CPU");
    return;
  }
  uint64_t block = pairs[1].value;
  if (pairs[1].key != XM__HWPROBE_KEY_ZICBOM_BLOCK_SIZE || block == 0 || (block & (block - 1)) != 0 || block > 4096) {
    set_unsupported(unit, "riscv_hwprobe reports Zicbom but no usable Zicbom block size");
    return;
  }
  unit->method = "cbo.clean";
  unit->unsupported = NULL;
  unit->line = (size_t)block;
  unit->line_source = "hwprobe";
  unit->clean = xm__clean_cbo_clean;
}

/* Instruction cache: nothing user space can do alone here; fence.i reaches only this hart: the kernel's riscv_flush_icache call (src/posix) reaches all. */
void xm__arch_icache_unit(struct xm__icache_unit *unit) {
  unit->method = NULL;
  unit->sync = NULL;
}
