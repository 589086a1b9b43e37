/* The POSIX back end's facts: page size, cache line, transparent huge pages, error texts. */
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>
#if defined(__linux__)
#include <sys/auxv.h>
#include <sys/syscall.h>
#endif

#include "posix.h"

_Static_assert(sizeof(xm_slice) == sizeof(struct iovec), "xm_slice has struct iovec's layout");
_Static_assert(offsetof(xm_slice, addr) == offsetof(struct iovec, iov_base), "xm_slice.addr is iov_base");
_Static_assert(offsetof(xm_slice, size) == offsetof(struct iovec, iov_len), "xm_slice.size is iov_len");

size_t xm__os_page_size(void) {
  long v = sysconf(_SC_PAGESIZE);
  return v > 0 ? (size_t)v : 4096;
}
size_t xm__os_granularity(void) { return xm__os_page_size(); }
const char *xm__os_backend_name(void) { return "posix"; }
xm_descriptor xm__os_no_descriptor(void) { return -1; }
int xm__os_last_error(void) { return errno; }

size_t xm__os_cacheline(const char **source) {
#if defined(_SC_LEVEL1_DCACHE_LINESIZE)
  long v = sysconf(_SC_LEVEL1_DCACHE_LINESIZE);
  if (v > 0) {
    *source = "sysconf";
    return (size_t)v;
  }
#endif
#if defined(__linux__) && defined(AT_DCACHEBSIZE)
  unsigned long a = getauxval(AT_DCACHEBSIZE);
  if (a > 0) {
    *source = "auxv";
    return (size_t)a;
  }
#endif
  *source = NULL;
  return 0;
}

void xm__os_error_text(int os_error, char *buf, size_t len) {
#if defined(__GLIBC__) && defined(_GNU_SOURCE)
  const char *text = strerror_r(os_error, buf, len);
  if (text != buf) snprintf(buf, len, "%s", text);
#else
  if (strerror_r(os_error, buf, len) != 0) snprintf(buf, len, "error %d", os_error);
#endif
}

size_t xm__os_thp_size(void) {
  static atomic_size_t cached; /* 0: not read yet; 1: read, none */
  size_t v = atomic_load_explicit(&cached, memory_order_relaxed);
  if (v != 0) return v == 1 ? 0 : v;
  unsigned long long pmd = 0;
  FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/hpage_pmd_size", "re");
  if (!f) {
    /* Only "there is no such file" is an answer; EMFILE and the like are asked again next time. */
    if (errno == ENOENT || errno == ENOTDIR) atomic_store_explicit(&cached, 1, memory_order_relaxed);
    return 0;
  }
  if (fscanf(f, "%llu", &pmd) != 1) pmd = 0;
  fclose(f);
  v = pmd > 1 ? (size_t)pmd : 1;
  atomic_store_explicit(&cached, v, memory_order_relaxed);
  return v == 1 ? 0 : v;
}

/* ---- instruction cache ------------------------------------------------------------------------ */
/* Where the kernel offers a system call for it, that is the way: armhf user space cannot maintain
   caches itself, and riscv64's fence.i reaches only the calling hart. */
#if defined(__linux__) && defined(__ARM_NR_cacheflush)
const char *xm__os_icache_method(void) { return "cacheflush"; }
int xm__os_icache_sync(const void *addr, size_t len) {
  if (syscall(__ARM_NR_cacheflush, addr, (const char *)addr + len, 0) != 0) return xm__posix_fail_errno("cacheflush");
  return XM_OK;
}
#elif defined(__linux__) && defined(__NR_riscv_flush_icache)
const char *xm__os_icache_method(void) { return "riscv_flush_icache"; }
int xm__os_icache_sync(const void *addr, size_t len) {
  /* flags 0: every hart of the process, not only this one */
  if (syscall(__NR_riscv_flush_icache, addr, (const char *)addr + len, 0UL) != 0)
    return xm__posix_fail_errno("riscv_flush_icache");
  return XM_OK;
}
#else
const char *xm__os_icache_method(void) { return NULL; }
int xm__os_icache_sync(const void *addr, size_t len) {
  (void)addr;
  (void)len;
  return xm__fail(XM_E_NOT_IMPLEMENTED, "no instruction-cache system call here");
}
#endif
