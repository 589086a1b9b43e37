/* The write-tracking workloads' raw baselines on POSIX, in plain OS calls:
 *  - uffd-wp: userfaultfd in asynchronous write-protect mode over the mapping, and per collect
 *    PAGEMAP_SCAN calls (written pages, re-protected in the same walk) into a buffer large enough
 *    for a round's pages, turned into the bitmap;
 *  - protect: the mapping made read-only; a SIGSEGV handler records the page and makes it writable
 *    again; a collect sets the recorded pages' bits and makes each read-only again.
 * bench_dirty_windows.c has the same functions. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#if defined(__linux__)
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#endif

#include "bench.h"

#if defined(__linux__) && defined(SYS_userfaultfd) && defined(UFFDIO_WRITEPROTECT)
#define HAVE_UFFD 1
#include "posix/uffd_uapi.h"
enum { SCAN_REGIONS = 4096 };
#else
#define HAVE_UFFD 0
#endif

struct bench_raw_tracker {
  int strategy;
  unsigned char *base;
  size_t len, page;
  int uffd, pagemap;         /* uffd-wp */
  void *regions;             /* uffd-wp: struct page_region[SCAN_REGIONS] */
  size_t *written, capacity; /* protect: the pages the handler recorded */
  volatile size_t n_written;
  struct sigaction previous; /* protect, between enter and leave */
};

static struct bench_raw_tracker *catching; /* the protect tracker whose handler is installed */

static void on_write_fault(int sig, siginfo_t *si, void *context) {
  struct bench_raw_tracker *t = catching;
  uintptr_t at = (uintptr_t)si->si_addr;
  if (t && at - (uintptr_t)t->base < t->len && t->n_written < t->capacity) {
    uintptr_t page = at & ~(uintptr_t)(t->page - 1);
    t->written[t->n_written++] = (page - (uintptr_t)t->base) / t->page;
    if (mprotect((void *)page, t->page, PROT_READ | PROT_WRITE) == 0) return;
  }
  /* Not ours: what was there before decides (the default action kills, as it would have). */
  const struct sigaction *prev = t ? &t->previous : NULL;
  if (prev && (prev->sa_flags & SA_SIGINFO)) {
    prev->sa_sigaction(sig, si, context);
  } else if (prev && prev->sa_handler != SIG_DFL && prev->sa_handler != SIG_IGN) {
    prev->sa_handler(sig);
  } else {
    signal(sig, SIG_DFL);
  }
}

void bench_raw_tracker_free(struct bench_raw_tracker *t) {
  if (t->base) munmap(t->base, t->len);
#if HAVE_UFFD
  if (t->uffd >= 0) close(t->uffd);
  if (t->pagemap >= 0) close(t->pagemap);
#endif
  free(t->regions);
  free(t->written);
  free(t);
}

#if HAVE_UFFD
static int start_uffd(struct bench *b, struct bench_raw_tracker *t) {
  t->uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | 1 /* UFFD_USER_MODE_ONLY */);
  if (t->uffd < 0 && (errno == ENOSYS || errno == EPERM))
    return bench_fail(b, XM_E_NOT_IMPLEMENTED, "userfaultfd: %s", strerror(errno));
  if (t->uffd < 0) return bench_raw_failed(b, "userfaultfd");
  struct uffdio_api api = {UFFD_API,
                           UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_WP_UNPOPULATED | UFFD_FEATURE_WP_HUGETLBFS_SHMEM, 0};
  if (ioctl(t->uffd, UFFDIO_API, &api) != 0)
    return bench_fail(b, XM_E_NOT_IMPLEMENTED, "UFFDIO_API with WP_ASYNC: %s", strerror(errno));
  struct uffdio_register reg = {{(uintptr_t)t->base, t->len}, UFFDIO_REGISTER_MODE_WP, 0};
  if (ioctl(t->uffd, UFFDIO_REGISTER, &reg) != 0) return bench_raw_failed(b, "ioctl(UFFDIO_REGISTER)");
  struct uffdio_writeprotect wp = {{(uintptr_t)t->base, t->len}, UFFDIO_WRITEPROTECT_MODE_WP};
  if (ioctl(t->uffd, UFFDIO_WRITEPROTECT, &wp) != 0) return bench_raw_failed(b, "ioctl(UFFDIO_WRITEPROTECT)");
  t->pagemap = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
  if (t->pagemap < 0) return bench_raw_failed(b, "open(/proc/self/pagemap)");
  t->regions = calloc(SCAN_REGIONS, sizeof(struct page_region));
  return t->regions ? 0 : bench_fail(b, XM_E_NO_MEMORY, "out of memory");
}

static int collect_uffd(struct bench *b, struct bench_raw_tracker *t, uint64_t *bitmap, size_t *count) {
  struct page_region *vec = t->regions;
  struct pm_scan_arg arg;
  memset(&arg, 0, sizeof arg);
  arg.size = sizeof arg;
  arg.flags = PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC;
  arg.start = (uintptr_t)t->base;
  arg.end = (uintptr_t)t->base + t->len;
  arg.vec = (uintptr_t)vec;
  arg.vec_len = SCAN_REGIONS;
  arg.category_mask = arg.return_mask = PAGE_IS_WRITTEN;
  for (;;) {
    long n = ioctl(t->pagemap, PAGEMAP_SCAN, &arg);
    if (n < 0) return bench_raw_failed(b, "ioctl(PAGEMAP_SCAN)");
    for (long i = 0; i < n; i++)
      for (uint64_t a = vec[i].start; a < vec[i].end; a += t->page) {
        size_t p = (size_t)(a - (uintptr_t)t->base) / t->page;
        bitmap[p / 64] |= (uint64_t)1 << (p % 64);
        ++*count;
      }
    if (arg.walk_end >= arg.end) return 0;
    arg.start = arg.walk_end; /* the buffer was full */
  }
}
#endif

int bench_raw_tracker_new(struct bench *b, int strategy, size_t len, struct bench_raw_tracker **out,
                          unsigned char **base) {
#if !HAVE_UFFD
  if (strategy == DIRTY_UFFD_WP) return bench_fail(b, XM_E_NOT_IMPLEMENTED, "no userfaultfd on this system");
#endif
  struct bench_raw_tracker *t = calloc(1, sizeof *t);
  if (!t) return bench_fail(b, XM_E_NO_MEMORY, "out of memory");
  t->strategy = strategy;
  t->len = len;
  t->page = (size_t)sysconf(_SC_PAGESIZE);
  t->uffd = t->pagemap = -1;
  void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  int rc = p == MAP_FAILED ? bench_raw_failed(b, "mmap") : 0;
  if (!rc) {
    t->base = p;
    memset(t->base, 0x5a, len);
  }
#if HAVE_UFFD
  if (!rc && strategy == DIRTY_UFFD_WP) rc = start_uffd(b, t);
#endif
  if (!rc && strategy == DIRTY_PROTECT) {
    t->capacity = len / t->page;
    t->written = malloc(t->capacity * sizeof *t->written);
    if (!t->written) rc = bench_fail(b, XM_E_NO_MEMORY, "out of memory");
    if (!rc && mprotect(t->base, len, PROT_READ) != 0) rc = bench_raw_failed(b, "mprotect");
  }
  if (rc) {
    bench_raw_tracker_free(t);
    return rc;
  }
  *out = t;
  *base = t->base;
  return 0;
}

int bench_raw_tracker_enter(struct bench *b, struct bench_raw_tracker *t) {
  if (t->strategy != DIRTY_PROTECT) return 0;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = on_write_fault;
  sa.sa_flags = SA_SIGINFO | SA_NODEFER;
  sigemptyset(&sa.sa_mask);
  catching = t;
  if (sigaction(SIGSEGV, &sa, &t->previous) != 0) {
    catching = NULL;
    return bench_raw_failed(b, "sigaction");
  }
  return 0;
}

void bench_raw_tracker_leave(struct bench_raw_tracker *t) {
  if (t->strategy != DIRTY_PROTECT) return;
  sigaction(SIGSEGV, &t->previous, NULL);
  catching = NULL;
}

int bench_raw_tracker_collect(struct bench *b, struct bench_raw_tracker *t, uint64_t *bitmap, size_t *count) {
#if HAVE_UFFD
  if (t->strategy == DIRTY_UFFD_WP) return collect_uffd(b, t, bitmap, count);
#endif
  size_t n = t->n_written;
  for (size_t i = 0; i < n; i++) {
    size_t p = t->written[i];
    bitmap[p / 64] |= (uint64_t)1 << (p % 64);
    if (mprotect(t->base + p * t->page, t->page, PROT_READ) != 0) return bench_raw_failed(b, "mprotect");
  }
  t->n_written = 0;
  *count += n;
  return 0;
}
