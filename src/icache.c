/* Instruction-cache synchronisation: nothing on coherent CPUs, else the OS call where the kernel
   offers one (src/os.h), else the arch unit's sequence (src/arch.h), else the compiler's builtin;
   chosen once. */
#include <string.h>

#include "arch.h"
#include "internal.h"

static atomic_int state;
static struct xm__icache_unit unit; /* sync NULL: use the OS call, or the builtin when method is "builtin" */
static bool use_os;
static bool coherent; /* nothing to do at all */

/* A CPU whose instruction fetch is coherent with stores needs nothing, not even a kernel call
   (Windows' FlushInstructionCache is a system call that does nothing on x86); elsewhere the OS's
   call where it has one, else the arch unit's sequence, else the builtin. */
static void choose(void) {
  xm__arch_icache_unit(&unit);
  coherent = unit.method && strcmp(unit.method, "coherent") == 0;
  if (coherent) return;
  const char *os = xm__os_icache_method();
  if (os) {
    unit.method = os;
    use_os = true;
  } else if (!unit.sync) {
    unit.method = "builtin";
  }
}

const char *xm_icache_method(void) {
  xm__once(&state, choose);
  return unit.method;
}

int xm_icache_sync(const void *exec_addr, size_t len) {
  if (len == 0) return XM_OK;
  if (!exec_addr) return xm__fail(XM_E_INVALID_ARGUMENT, "address must not be NULL");
  uintptr_t start = (uintptr_t)exec_addr;
  if (start + len < start) return xm__fail_overflow((size_t)start, len);
  xm__once(&state, choose);
  if (coherent) {
    atomic_signal_fence(memory_order_seq_cst); /* the stores that wrote the code come first */
    return XM_OK;
  }
  if (use_os) return xm__os_icache_sync(exec_addr, len);
  if (unit.sync) {
    unit.sync(start, start + len);
    return XM_OK;
  }
#if defined(_MSC_VER)
  /* Not reached: MSVC builds are Windows builds, where the OS call is always chosen (MSVC has no
     __builtin___clear_cache). */
  return xm__os_icache_sync(exec_addr, len);
#else
  __builtin___clear_cache((char *)(uintptr_t)exec_addr, (char *)(uintptr_t)exec_addr + len);
  return XM_OK;
#endif
}
