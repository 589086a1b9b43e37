/* The POSIX back end's kernel write tracking ("uffd-wp"): Linux userfaultfd in asynchronous
 * write-protect mode. The kernel write-protects the tracked range, lifts the protection of a page
 * itself on its first write (no fault reaches user space), and PAGEMAP_SCAN on /proc/self/pagemap
 * reports the written pages and protects them again in the same walk.
 *
 * Recipe: userfaultfd(O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY); UFFDIO_API with WP_ASYNC |
 * WP_UNPOPULATED (markers on unpopulated anonymous pages, so that their first write is seen too)
 * [| WP_HUGETLBFS_SHMEM]; UFFDIO_REGISTER (MODE_WP) and UFFDIO_WRITEPROTECT over the range. Collect:
 * PAGEMAP_SCAN with PM_SCAN_WP_MATCHING (re-protect what matched) and PM_SCAN_CHECK_WPASYNC (fail
 * rather than skip a mapping of the range that is not tracked: a write there would be missed).
 * Linux 6.7 is the first kernel with all of it; everything else answers XM_E_NOT_IMPLEMENTED. */
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>
#if defined(__linux__)
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#endif

#include "posix.h"

#if defined(__linux__) && defined(SYS_userfaultfd) && defined(UFFDIO_WRITEPROTECT)
#include "uffd_uapi.h"

#define WP_REQUIRED ((uint64_t)(UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_WP_UNPOPULATED))

/* ---- the probe's answer, and the process's pagemap descriptor ---------------------------------
 * Both are set under one mutex and read without it: state (and pagemap_pid) are published with
 * release after the fields they guard. */
static pthread_mutex_t wp_lock = PTHREAD_MUTEX_INITIALIZER;
enum { PROBE_UNKNOWN, PROBE_WORKS, PROBE_FAILS };
static atomic_int probe_state;
static const char *probe_why;   /* PROBE_FAILS: the first step that failed */
static uint64_t probe_features; /* PROBE_WORKS: what UFFDIO_API is asked for */
static int probe_open_flags;    /* PROBE_WORKS: UFFD_USER_MODE_ONLY where the kernel knows it */
static atomic_int pagemap_fd = -1;
static atomic_long pagemap_pid; /* the process that opened pagemap_fd (a forked child reopens) */

static bool transient(int e) { return e == EMFILE || e == ENFILE || e == ENOMEM || e == EAGAIN || e == EINTR; }

static int userfaultfd_open(int mode_flags) {
  return (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | mode_flags);
}

static int uffd_api(int fd, uint64_t features, uint64_t *offered) {
  struct uffdio_api api;
  memset(&api, 0, sizeof api);
  api.api = UFFD_API;
  api.features = features;
  int r = ioctl(fd, UFFDIO_API, &api);
  if (r == 0 && offered) *offered = api.features;
  return r;
}

static int uffd_register(int fd, uintptr_t addr, size_t len) {
  struct uffdio_register reg;
  memset(&reg, 0, sizeof reg);
  reg.range.start = addr;
  reg.range.len = len;
  reg.mode = UFFDIO_REGISTER_MODE_WP;
  return ioctl(fd, UFFDIO_REGISTER, &reg);
}

static int uffd_write_protect(int fd, uintptr_t addr, size_t len) {
  struct uffdio_writeprotect wp;
  memset(&wp, 0, sizeof wp);
  wp.range.start = addr;
  wp.range.len = len;
  wp.mode = UFFDIO_WRITEPROTECT_MODE_WP;
  return ioctl(fd, UFFDIO_WRITEPROTECT, &wp);
}

static void uffd_unregister(int fd, uintptr_t addr, size_t len) {
  struct uffdio_range range = {addr, len};
  (void)ioctl(fd, UFFDIO_UNREGISTER, &range); /* also lifts the write protection it set */
}

/* One PAGEMAP_SCAN from start to end: the written pages (into vec), write-protected again. */
static long scan(int pm, uint64_t start, uint64_t end, struct page_region *vec, size_t n, uint64_t *walk_end) {
  struct pm_scan_arg arg;
  memset(&arg, 0, sizeof arg);
  arg.size = sizeof arg;
  arg.flags = PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC;
  arg.start = start;
  arg.end = end;
  arg.vec = (uintptr_t)vec;
  arg.vec_len = n;
  arg.category_mask = PAGE_IS_WRITTEN;
  arg.return_mask = PAGE_IS_WRITTEN;
  long r = ioctl(pm, PAGEMAP_SCAN, &arg);
  *walk_end = arg.walk_end;
  return r;
}

/* ---- the probe -------------------------------------------------------------------------------- */
struct probe_result {
  const char *why;   /* NULL: it works */
  bool definitive;   /* false: a resource ran short; ask again next time */
  uint64_t features; /* for UFFDIO_API */
  int open_flags;
};

static bool probe_failed(struct probe_result *r, const char *why, int e) {
  r->why = why;
  r->definitive = !transient(e);
  return false;
}

/* What the probe says when a step fails on one kind of memory. */
struct memory_failures {
  const char *registering, *protecting, *scanning, *inexact, *not_rearmed;
};

/* One kind of memory: page 0 written before tracking starts, page 1 after; a scan must report
   exactly page 1 and re-protect it, the next scan nothing. */
static bool probe_memory(struct probe_result *r, int uffd, int pm, int memfd, const struct memory_failures *fails) {
  size_t page = xm__page_size();
  int flags = memfd >= 0 ? MAP_SHARED : MAP_PRIVATE | MAP_ANONYMOUS;
  unsigned char *p = mmap(NULL, 2 * page, PROT_READ | PROT_WRITE, flags, memfd, 0);
  if (p == MAP_FAILED) return probe_failed(r, "the probe could not map memory", errno);
  bool ok = false;
  struct page_region vec[4];
  uint64_t walk_end = 0;
  p[0] = 1;
  if (uffd_register(uffd, (uintptr_t)p, 2 * page) != 0) {
    probe_failed(r, fails->registering, errno);
  } else if (uffd_write_protect(uffd, (uintptr_t)p, 2 * page) != 0) {
    probe_failed(r, fails->protecting, errno);
  } else {
    p[page] = 2;
    long n = scan(pm, (uintptr_t)p, (uintptr_t)p + 2 * page, vec, 4, &walk_end);
    if (n < 0 && (errno == ENOTTY || errno == EINVAL))
      probe_failed(r, "the kernel lacks PAGEMAP_SCAN (Linux 6.7)", errno);
    else if (n < 0)
      probe_failed(r, fails->scanning, errno);
    else if (n != 1 || vec[0].start != (uintptr_t)p + page || vec[0].end != (uintptr_t)p + 2 * page)
      probe_failed(r, fails->inexact, 0);
    else if (scan(pm, (uintptr_t)p, (uintptr_t)p + 2 * page, vec, 4, &walk_end) != 0)
      probe_failed(r, fails->not_rearmed, 0);
    else
      ok = true;
    uffd_unregister(uffd, (uintptr_t)p, 2 * page);
  }
  munmap(p, 2 * page);
  return ok;
}

static const struct memory_failures shared_failures = {
    .registering = "UFFDIO_REGISTER refuses write-protect mode for shared memory (no userfaultfd write "
                   "protection on this architecture or for shmem)",
    .protecting = "UFFDIO_WRITEPROTECT fails on shared memory",
    .scanning = "PAGEMAP_SCAN fails on write-protected shared memory",
    .inexact = "PAGEMAP_SCAN did not report exactly the written page of shared memory",
    .not_rearmed = "PAGEMAP_SCAN did not write-protect a reported page of shared memory again",
};
static const struct memory_failures anonymous_failures = {
    .registering = "UFFDIO_REGISTER refuses write-protect mode for anonymous memory (no userfaultfd write "
                   "protection on this architecture)",
    .protecting = "UFFDIO_WRITEPROTECT fails on anonymous memory",
    .scanning = "PAGEMAP_SCAN fails on write-protected anonymous memory",
    .inexact = "PAGEMAP_SCAN did not report exactly the written page of anonymous memory",
    .not_rearmed = "PAGEMAP_SCAN did not write-protect a reported page of anonymous memory again",
};

/* Every step a tracker takes, on throwaway memory of both kinds; not a fault-injection point. */
static bool probe(struct probe_result *r) {
  memset(r, 0, sizeof *r);
  r->open_flags = UFFD_USER_MODE_ONLY; /* needs no privilege even with vm.unprivileged_userfaultfd = 0 */
  int fd = userfaultfd_open(r->open_flags);
  if (fd < 0 && errno == EINVAL) { /* before Linux 5.11 */
    r->open_flags = 0;
    fd = userfaultfd_open(0);
  }
  if (fd < 0 && errno == ENOSYS)
    return probe_failed(r,
                        "there is no userfaultfd system call (QEMU user mode, valgrind, or a kernel without "
                        "CONFIG_USERFAULTFD)",
                        errno);
  if (fd < 0 && (errno == EPERM || errno == EACCES))
    return probe_failed(r,
                        "userfaultfd is refused (a seccomp filter such as a container's, or "
                        "vm.unprivileged_userfaultfd = 0)",
                        errno);
  if (fd < 0) return probe_failed(r, "userfaultfd fails", errno);
  uint64_t offered = 0;
  int api = uffd_api(fd, 0, &offered); /* the features this kernel offers */
  int e = errno;
  close(fd);
  if (api != 0) return probe_failed(r, "UFFDIO_API fails", e);
  if ((offered & WP_REQUIRED) != WP_REQUIRED)
    return probe_failed(
        r, "the kernel lacks asynchronous userfaultfd write protection (UFFD_FEATURE_WP_ASYNC, Linux 6.7)", 0);
  r->features = WP_REQUIRED | (offered & UFFD_FEATURE_WP_HUGETLBFS_SHMEM);

  fd = userfaultfd_open(r->open_flags); /* UFFDIO_API is once per descriptor */
  if (fd < 0) return probe_failed(r, "userfaultfd fails the second time", errno);
  bool ok = false;
  int pm = -1, memfd = -1;
  if (uffd_api(fd, r->features, NULL) != 0) {
    probe_failed(r, "UFFDIO_API refuses the asynchronous write-protect features", errno);
  } else if ((pm = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC)) < 0) {
    probe_failed(r, "/proc/self/pagemap cannot be opened (no /proc)", errno);
  } else if ((memfd = (int)syscall(SYS_memfd_create, "xmmap-wp-probe", MFD_CLOEXEC)) < 0 ||
             ftruncate(memfd, (off_t)(2 * xm__page_size())) != 0) {
    probe_failed(r, "the probe could not create shared memory", errno);
  } else {
    ok = probe_memory(r, fd, pm, memfd, &shared_failures) && probe_memory(r, fd, pm, -1, &anonymous_failures);
  }
  if (memfd >= 0) close(memfd);
  if (pm >= 0) close(pm);
  close(fd);
  return ok;
}

/* The cached answer, probing first if no definitive one is known. */
static bool wp_works(const char **why) {
  int state = atomic_load_explicit(&probe_state, memory_order_acquire);
  const char *reason = state == PROBE_UNKNOWN ? NULL : probe_why; /* published before state */
  if (state == PROBE_UNKNOWN) {
    pthread_mutex_lock(&wp_lock);
    state = atomic_load_explicit(&probe_state, memory_order_relaxed);
    reason = probe_why;
    if (state == PROBE_UNKNOWN) {
      struct probe_result r;
      bool ok = probe(&r);
      reason = r.why;
      state = ok ? PROBE_WORKS : PROBE_FAILS;
      if (ok || r.definitive) { /* a resource that ran short is asked again next time */
        probe_why = r.why;
        probe_features = r.features;
        probe_open_flags = r.open_flags;
        atomic_store_explicit(&probe_state, state, memory_order_release);
      }
    }
    pthread_mutex_unlock(&wp_lock);
  }
  *why = state == PROBE_WORKS ? NULL : reason;
  return state == PROBE_WORKS;
}

bool xm__os_wp_available(const char **why) { return wp_works(why); }

/* The process's /proc/self/pagemap, opened once (again in a forked child: the parent's descriptor
   scans the parent). */
static int pagemap(int *out) {
  long me = (long)getpid();
  if (atomic_load_explicit(&pagemap_pid, memory_order_acquire) == me) {
    *out = atomic_load_explicit(&pagemap_fd, memory_order_relaxed);
    return XM_OK;
  }
  int rc = XM_OK;
  pthread_mutex_lock(&wp_lock);
  if (atomic_load_explicit(&pagemap_pid, memory_order_relaxed) != me) {
    int old = atomic_load_explicit(&pagemap_fd, memory_order_relaxed);
    int fd = xm__posix_injected() ? -1 : open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      rc = xm__posix_fail_errno("open(/proc/self/pagemap)");
    } else {
      if (old >= 0) close(old); /* the parent's, inherited */
      atomic_store_explicit(&pagemap_fd, fd, memory_order_relaxed);
      atomic_store_explicit(&pagemap_pid, me, memory_order_release);
    }
  }
  *out = atomic_load_explicit(&pagemap_fd, memory_order_relaxed);
  pthread_mutex_unlock(&wp_lock);
  return rc;
}

/* Registers [addr, addr + len) and write-protects every page of it. A failed protection leaves
   the range registered: a page without protection reads as written once it is populated, so it is
   reported (perhaps falsely) and protected by the next collect; a write is never missed. */
static int track(int uffd, void *addr, size_t len) {
  if (xm__posix_injected() || uffd_register(uffd, (uintptr_t)addr, len) != 0)
    return xm__posix_fail_errno("ioctl(UFFDIO_REGISTER)");
  if (xm__posix_injected() || uffd_write_protect(uffd, (uintptr_t)addr, len) != 0)
    return xm__posix_fail_errno("ioctl(UFFDIO_WRITEPROTECT)");
  return XM_OK;
}

int xm__os_wp_start(void *addr, size_t len, struct xm__os_wp *wp) {
  const char *why = NULL;
  if (!wp_works(&why)) return xm__fail(XM_E_NOT_IMPLEMENTED, "uffd-wp write tracking: %s", why);
  int pm, rc = pagemap(&pm);
  if (rc) return rc;
  int fd = xm__posix_injected() ? -1 : userfaultfd_open(probe_open_flags);
  if (fd < 0) return xm__posix_fail_errno("userfaultfd");
  if (xm__posix_injected() || uffd_api(fd, probe_features, NULL) != 0) {
    rc = xm__posix_fail_errno("ioctl(UFFDIO_API)");
  } else {
    rc = track(fd, addr, len);
    if (rc) uffd_unregister(fd, (uintptr_t)addr, len);
  }
  if (rc) {
    close(fd);
    return rc;
  }
  wp->handle = fd;
  return XM_OK;
}

int xm__os_wp_restart_range(struct xm__os_wp *wp, void *addr, size_t len) { return track((int)wp->handle, addr, len); }

/* Sets bits [from, to) of bitmap. */
static void set_bits(uint64_t *bitmap, size_t from, size_t to) {
  for (; from < to && (from & 63); from++)
    bitmap[from / 64] |= (uint64_t)1 << (from & 63);
  for (; to - from >= 64; from += 64)
    bitmap[from / 64] = ~(uint64_t)0;
  for (; from < to; from++)
    bitmap[from / 64] |= (uint64_t)1 << (from & 63);
}

/* Reports vec[0..n) (regions inside [base, ...)); stops at the first empty entry. */
static void report(const struct page_region *vec, size_t n, uintptr_t base, uint64_t *bitmap, size_t first_bit,
                   size_t *count) {
  size_t page = xm__page_size();
  for (size_t i = 0; i < n && vec[i].end > vec[i].start; i++) {
    size_t from = (size_t)(vec[i].start - base) / page, to = (size_t)(vec[i].end - base) / page;
    set_bits(bitmap, first_bit + from, first_bit + to);
    *count += to - from;
  }
}

enum { SCAN_REGIONS = 256 }; /* 6 KiB of stack; a longer answer takes another call */

int xm__os_wp_collect(struct xm__os_wp *wp, void *addr, size_t len, uint64_t *bitmap, size_t first_bit, size_t *count) {
  (void)wp; /* the scan reads the page tables; the userfaultfd only keeps them armed */
  int pm, rc = pagemap(&pm);
  if (rc) return rc;
  struct page_region vec[SCAN_REGIONS];
  uintptr_t base = (uintptr_t)addr;
  uint64_t start = base, end = (uint64_t)base + len;
  while (start < end) {
    uint64_t walk_end = start;
    if (xm__posix_injected()) return xm__posix_fail_errno("ioctl(PAGEMAP_SCAN)");
    /* A failing scan has still re-protected and stored the regions before the failure: cleared
       first, they can be told from the rest and reported, so that no write is lost. */
    memset(vec, 0, sizeof vec);
    long n = scan(pm, start, end, vec, SCAN_REGIONS, &walk_end);
    if (n < 0) {
      int e = errno;
      report(vec, SCAN_REGIONS, base, bitmap, first_bit, count);
      return xm__fail_os(XM_E_SYSTEM_CALL, e, "ioctl(PAGEMAP_SCAN)");
    }
    report(vec, (size_t)n, base, bitmap, first_bit, count);
    if (walk_end >= end) break;
    if (walk_end <= start) /* never seen: it would loop for ever */
      return xm__fail(XM_E_SYSTEM_CALL, "PAGEMAP_SCAN made no progress at 0x%llx", (unsigned long long)start);
    start = walk_end; /* vec was full: go on from where the walk stopped */
  }
  return XM_OK;
}

void xm__os_wp_stop(struct xm__os_wp *wp, void *addr, size_t len) {
  int fd = (int)wp->handle;
  if (fd < 0) return;
  uffd_unregister(fd, (uintptr_t)addr, len);
  close(fd);
  wp->handle = -1;
}

#else /* no userfaultfd */
static const char no_userfaultfd[] = "write protection by the kernel needs Linux userfaultfd";
bool xm__os_wp_available(const char **why) {
  *why = no_userfaultfd;
  return false;
}
int xm__os_wp_start(void *addr, size_t len, struct xm__os_wp *wp) {
  (void)addr;
  (void)len;
  wp->handle = -1;
  return xm__fail(XM_E_NOT_IMPLEMENTED, "uffd-wp write tracking: %s", no_userfaultfd);
}
int xm__os_wp_restart_range(struct xm__os_wp *wp, void *addr, size_t len) {
  (void)wp;
  (void)addr;
  (void)len;
  return xm__fail(XM_E_NOT_IMPLEMENTED, "uffd-wp write tracking: %s", no_userfaultfd);
}
int xm__os_wp_collect(struct xm__os_wp *wp, void *addr, size_t len, uint64_t *bitmap, size_t first_bit, size_t *count) {
  (void)wp;
  (void)addr;
  (void)len;
  (void)bitmap;
  (void)first_bit;
  (void)count;
  return xm__fail(XM_E_NOT_IMPLEMENTED, "uffd-wp write tracking: %s", no_userfaultfd);
}
void xm__os_wp_stop(struct xm__os_wp *wp, void *addr, size_t len) {
  (void)addr;
  (void)len;
  wp->handle = -1;
}
#endif
