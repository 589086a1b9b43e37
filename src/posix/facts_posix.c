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
  static atomic_size_t cached; /* asked on every arena change */
  size_t page = atomic_load_explicit(&cached, memory_order_relaxed);
  if (page == 0) {
    long v = sysconf(_SC_PAGESIZE);
    page = v > 0 ? (size_t)v : 4096;
    atomic_store_explicit(&cached, page, memory_order_relaxed);
  }
  return page;
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

/* ---- the mapping count ------------------------------------------------------------------------ */
#if defined(__linux__)
#include <fcntl.h>

long xm__posix_each_mapping(const char *path, bool (*fn)(uintptr_t start, uintptr_t end, void *ctx), void *ctx) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  /* Each line starts "start-end " in hex; the rest (up to PATH_MAX of name) is skipped, so a fixed
     buffer and a three-state scanner suffice. */
  enum { START, END, REST } state = START;
  uintptr_t start = 0, end = 0;
  long lines = 0;
  bool go_on = true;
  char buf[4096];
  while (go_on) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int e = errno;
      close(fd);
      errno = e;
      return -1;
    }
    if (n == 0) break;
    for (ssize_t i = 0; i < n && go_on; i++) {
      char c = buf[i];
      if (state == REST) {
        if (c != '\n') continue;
        lines++;
        if (fn) go_on = fn(start, end, ctx);
        state = START;
        start = end = 0;
        continue;
      }
      unsigned digit = c >= '0' && c <= '9'   ? (unsigned)(c - '0')
                       : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10)
                                              : 16;
      if (digit < 16 && state == START)
        start = start << 4 | digit;
      else if (digit < 16)
        end = end << 4 | digit;
      else if (c == '-' && state == START)
        state = END;
      else
        state = REST;
      if (c == '\n') { /* a line without a name */
        lines++;
        if (fn) go_on = fn(start, end, ctx);
        state = START;
        start = end = 0;
      }
    }
  }
  close(fd);
  return lines;
}

static bool read_ulong(const char *path, unsigned long long *v) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  char buf[32];
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return false;
  buf[n] = '\0';
  return sscanf(buf, "%llu", v) == 1;
}

/* QEMU user mode answers /proc/self/maps (and /proc/<pid>/maps) itself, listing only the guest's
   mappings, but passes /proc/self/task/<tid>/maps through to the kernel, which lists the whole
   process, QEMU's own mappings included. On a real kernel both name the same address space and
   have as many lines. Both are read around a second read of the first, so that a thread mapping
   meanwhile is not taken for emulation: only a stable difference counts. */
static atomic_int emulated_cache; /* 0: not probed; 1: real; 2: emulated */

static bool maps_emulated(void) {
  int v = atomic_load_explicit(&emulated_cache, memory_order_relaxed);
  if (v) return v == 2;
  char task[64];
  snprintf(task, sizeof task, "/proc/self/task/%ld/maps", (long)syscall(SYS_gettid));
  bool emulated = false;
  for (int attempt = 0; attempt < 4; attempt++) {
    long a = xm__posix_each_mapping("/proc/self/maps", NULL, NULL);
    long t = xm__posix_each_mapping(task, NULL, NULL);
    long b = xm__posix_each_mapping("/proc/self/maps", NULL, NULL);
    if (a < 0 || t < 0) return false; /* not cached: the next call looks again */
    if (a != b) continue;             /* another thread changed the mappings: look again */
    emulated = t != a;
    break;
  }
  atomic_store_explicit(&emulated_cache, emulated ? 2 : 1, memory_order_relaxed);
  return emulated;
}

int xm__os_map_count(size_t *used, size_t *limit) {
  unsigned long long max = 0;
  if (!read_ulong("/proc/sys/vm/max_map_count", &max))
    return xm__fail_os(XM_E_NOT_IMPLEMENTED, errno, "reading /proc/sys/vm/max_map_count");
  if (maps_emulated())
    return xm__fail(XM_E_NOT_IMPLEMENTED, "/proc/self/maps is emulated (QEMU user mode): the process's mapping "
                                          "count cannot be known");
  long n = xm__posix_each_mapping("/proc/self/maps", NULL, NULL);
  if (n < 0) return xm__fail_os(XM_E_NOT_IMPLEMENTED, errno, "reading /proc/self/maps");
  *used = (size_t)n;
  *limit = max > SIZE_MAX ? SIZE_MAX : (size_t)max;
  return XM_OK;
}

/* The kernel's own count, even under QEMU user mode: the thread's maps file is the kernel's. */
static bool kernel_map_count(size_t *used, size_t *limit) {
  unsigned long long max = 0;
  char task[64];
  snprintf(task, sizeof task, "/proc/self/task/%ld/maps", (long)syscall(SYS_gettid));
  long n = xm__posix_each_mapping(task, NULL, NULL);
  if (n < 0 || !read_ulong("/proc/sys/vm/max_map_count", &max)) return false;
  *used = (size_t)n;
  *limit = max > SIZE_MAX ? SIZE_MAX : (size_t)max;
  return true;
}

int xm__posix_fail_mapping(int e, const char *call) {
  size_t used = 0, limit = 0;
  /* The kernel refuses a new mapping past the limit and a split at it; the maps file may list
     one more line than the kernel counts ([vsyscall]), and a protection change in the middle of a
     mapping needs two more: a few to spare. */
  if (e == ENOMEM && kernel_map_count(&used, &limit) && used + 3 >= limit) {
    char what[160]; /* the OS error stays ENOMEM for xm_os_error() */
    snprintf(what, sizeof what, "%s; %zu mappings in use of vm.max_map_count=%zu", call, used, limit);
    return xm__fail_os(XM_E_MAP_LIMIT, e, what);
  }
  return xm__fail_os(XM_E_SYSTEM_CALL, e, call);
}
#else
long xm__posix_each_mapping(const char *path, bool (*fn)(uintptr_t start, uintptr_t end, void *ctx), void *ctx) {
  (void)path, (void)fn, (void)ctx;
  errno = ENOSYS;
  return -1;
}
int xm__os_map_count(size_t *used, size_t *limit) {
  (void)used, (void)limit;
  return xm__fail(XM_E_NOT_IMPLEMENTED, "this system does not report its mapping count");
}
int xm__posix_fail_mapping(int e, const char *call) { return xm__fail_os(XM_E_SYSTEM_CALL, e, call); }
#endif
