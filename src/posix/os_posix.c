/* The POSIX back end of src/os.h: mmap, memfd (shm_open elsewhere), msync, madvise, mlock2. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>
#if defined(__linux__)
#include <sys/auxv.h>
#include <sys/syscall.h>
#endif

#include "internal.h"

_Static_assert(sizeof(xm_slice) == sizeof(struct iovec), "xm_slice has struct iovec's layout");
_Static_assert(offsetof(xm_slice, addr) == offsetof(struct iovec, iov_base), "xm_slice.addr is iov_base");
_Static_assert(offsetof(xm_slice, size) == offsetof(struct iovec, iov_len), "xm_slice.size is iov_len");

#ifndef MAP_NORESERVE
#define MAP_NORESERVE 0
#endif
#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif
#ifndef MFD_CLOEXEC
#define MFD_CLOEXEC 0x0001U
#endif
#ifndef MFD_ALLOW_SEALING
#define MFD_ALLOW_SEALING 0x0002U
#endif
#ifndef MFD_NOEXEC_SEAL
#define MFD_NOEXEC_SEAL 0x0008U
#endif
#ifndef MFD_HUGETLB
#define MFD_HUGETLB 0x0004U
#endif
#ifndef MAP_HUGE_SHIFT
#define MAP_HUGE_SHIFT 26
#endif
#ifndef F_ADD_SEALS
#define F_ADD_SEALS 1033
#define F_GET_SEALS 1034
#define F_SEAL_SEAL 0x0001
#define F_SEAL_SHRINK 0x0002
#define F_SEAL_GROW 0x0004
#define F_SEAL_WRITE 0x0008
#endif
#ifndef F_SEAL_FUTURE_WRITE
#define F_SEAL_FUTURE_WRITE 0x0010
#endif
#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#define MADV_POPULATE_WRITE 23
#endif
#ifndef MADV_COLD
#define MADV_COLD 20
#define MADV_PAGEOUT 21
#endif
#ifndef MLOCK_ONFAULT
#define MLOCK_ONFAULT 0x01
#endif

/* The test build's fault-injection seam: act as if the next OS call failed. */
static bool injected(void) {
  int e;
  if (!xm__os_inject_failure(&e)) return false;
  errno = e;
  return true;
}

static int fail_errno(const char *call) { return xm__fail_os(XM_E_SYSTEM_CALL, errno, call); }

/* ---- facts ---------------------------------------------------------------------------------- */
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
  static atomic_size_t cached; /* 1 means "read, none" */
  size_t v = atomic_load_explicit(&cached, memory_order_relaxed);
  if (v == 0) {
    unsigned long long pmd = 0;
    FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/hpage_pmd_size", "re");
    if (f) {
      if (fscanf(f, "%llu", &pmd) != 1) pmd = 0;
      fclose(f);
    }
    v = pmd > 1 ? (size_t)pmd : 1;
    atomic_store_explicit(&cached, v, memory_order_relaxed);
  }
  return v == 1 ? 0 : v;
}

/* ---- descriptors ---------------------------------------------------------------------------- */
int xm__os_check_descriptor(enum xm__source source, xm_descriptor d) {
  (void)source;
  struct stat st;
  if (injected() || fstat(d, &st) != 0) return fail_errno("fstat");
  return XM_OK;
}

int xm__os_descriptor_size(enum xm__source source, xm_descriptor d, uint64_t *size) {
  (void)source;
  struct stat st;
  if (injected() || fstat(d, &st) != 0) return fail_errno("fstat");
  *size = st.st_size > 0 ? (uint64_t)st.st_size : 0;
  return XM_OK;
}

int xm__os_dup(xm_descriptor d, xm_descriptor *out) {
  int fd = injected() ? -1 : fcntl(d, F_DUPFD_CLOEXEC, 0);
  if (fd < 0) return fail_errno("fcntl(F_DUPFD_CLOEXEC)");
  *out = fd;
  return XM_OK;
}

void xm__os_close(xm_descriptor d) {
  if (d >= 0) close(d);
}

/* ---- mappings ------------------------------------------------------------------------------- */
static int to_posix_prot(xm_prot prot) {
  return ((prot & XM_PROT_READ) ? PROT_READ : 0) | ((prot & XM_PROT_WRITE) ? PROT_WRITE : 0);
}

static unsigned seals_of(int fd) {
#if defined(__linux__)
  int s = fcntl(fd, F_GET_SEALS);
  return s > 0 ? (unsigned)s : 0;
#else
  (void)fd;
  return 0;
#endif
}

static void *sys_mmap(void *addr, size_t len, int prot, int flags, int fd, uint64_t offset) {
  if (injected()) return MAP_FAILED;
  return mmap(addr, len, prot, flags, fd, (off_t)offset);
}

static bool write_sealed(int fd) { return (seals_of(fd) & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE)) != 0; }

/* mmap of a descriptor. Kernels before 6.7 refuse MAP_SHARED of a write-sealed memfd even
   read-only; a private read-only mapping shows the same (now immutable) bytes. A writable
   request stays refused (EPERM), never silently made private. */
static void *map_descriptor(void *addr, size_t len, xm_prot prot, int flags, int fd, uint64_t offset) {
  void *p = sys_mmap(addr, len, to_posix_prot(prot), flags, fd, offset);
  if (p == MAP_FAILED && errno == EPERM && !(prot & XM_PROT_WRITE) && write_sealed(fd))
    p = sys_mmap(addr, len, to_posix_prot(prot), (flags & ~MAP_SHARED) | MAP_PRIVATE, fd, offset);
  return p;
}

/* Records a failed mmap (errno e) of fd (-1 for none), naming the write seal when that is why. */
static int fail_mmap(int e, int fd) {
  if (e == EPERM && fd >= 0 && write_sealed(fd))
    return xm__fail_os(XM_E_SYSTEM_CALL, e, "mmap of a write-sealed memfd with write access");
  return xm__fail_os(XM_E_SYSTEM_CALL, e, "mmap");
}

/* Takes [addr, addr + len) of address space, inaccessible, without committing memory. When
   fixed is set the range must be exactly there and free. */
static int reserve(void *fixed, size_t len, void **out) {
  int flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | (fixed ? MAP_FIXED_NOREPLACE : 0);
  void *p = sys_mmap(fixed, len, PROT_NONE, flags, -1, 0);
  if (p == MAP_FAILED) {
    if (fixed && errno == EEXIST)
      return xm__fail(XM_E_EXISTS, "%s: [%p, +0x%zx) is already mapped", xm_strerror(XM_E_EXISTS), fixed, len);
    return fail_errno("mmap");
  }
  if (fixed && p != fixed) { /* old kernels and qemu-user treat NOREPLACE as a mere hint */
    munmap(p, len);
    return xm__fail(XM_E_EXISTS, "%s: [%p, +0x%zx) is already mapped", xm_strerror(XM_E_EXISTS), fixed, len);
  }
  *out = p;
  return XM_OK;
}

static void unmap_part(uintptr_t from, uintptr_t to) {
  if (to > from) munmap((void *)from, to - from);
}

/* Best-effort pre-faulting with MADV_POPULATE_* (Linux 5.14+). Where the kernel lacks it, only
   anonymous memory is touched by hand: a file or shm page past the end would raise SIGBUS. */
static void populate(void *addr, size_t len, xm_prot prot, enum xm__source source) {
  if (prot == XM_PROT_NONE) return;
  int advice = (source == XM__SOURCE_FILE || !(prot & XM_PROT_WRITE)) ? MADV_POPULATE_READ : MADV_POPULATE_WRITE;
  if (madvise(addr, len, advice) == 0 || errno != EINVAL || source != XM__SOURCE_ANON) return;
  size_t page = xm__page_size();
  if (prot & XM_PROT_WRITE)
    for (size_t i = 0; i < len; i += page) *(volatile unsigned char *)((unsigned char *)addr + i) = 0;
  else
    for (size_t i = 0; i < len; i += page) (void)*(volatile unsigned char *)((unsigned char *)addr + i);
}

static size_t log2_size(size_t v) {
  size_t n = 0;
  while (v > 1) {
    v >>= 1;
    n++;
  }
  return n;
}

enum { FOLIO_ALIGN = 2 << 20, FOLIO_MIN_FILE = 64 << 10 };
static _Atomic uintptr_t folio_hint; /* where the last large-folio placement went */

/* The options applied after mapping, and the view's record. */
static void finish_view(struct xm__os_view *view, void *p, size_t size, void *reservation, size_t reservation_len,
                        const struct xm__map_request *req) {
  if (req->flags & XM__OPT_DONTDUMP) (void)madvise(p, size, MADV_DONTDUMP);
  if (req->flags & XM__OPT_POPULATE) populate(p, size, req->prot, req->source);
  view->base = p;
  view->size = size;
  view->reservation = reservation;
  view->reservation_size = reservation_len;
  view->file = -1;
  view->section = NULL;
  view->flags = 0;
}

int xm__os_map(const struct xm__map_request *req, struct xm__os_view *view) {
  const size_t page = xm__page_size();
  const bool has_fd = req->source != XM__SOURCE_ANON;
  const bool fixed = (req->flags & XM__OPT_FIXED_NOREPLACE) != 0;
  const size_t size = (req->size + page - 1) & ~(page - 1);
  int prot = to_posix_prot(req->prot);
  int flags = (req->flags & XM__OPT_PRIVATE) ? MAP_PRIVATE : MAP_SHARED;
  int fd = has_fd ? req->descriptor : -1;
  if (!has_fd) flags |= MAP_ANONYMOUS | MAP_NORESERVE;
  if (req->flags & XM__OPT_HUGE_PAGES) {
    if (has_fd)
      return xm__fail(XM_E_NOT_IMPLEMENTED, "%s: huge pages for a descriptor need a hugetlbfs file or an "
                      "MFD_HUGETLB memfd", xm_strerror(XM_E_NOT_IMPLEMENTED));
#if defined(MAP_HUGETLB)
    /* Reserved up front, so a system without free huge pages fails here rather than with SIGBUS. */
    flags &= ~MAP_NORESERVE;
    flags |= MAP_HUGETLB | (req->huge_page_size ? (int)(log2_size(req->huge_page_size) << MAP_HUGE_SHIFT) : 0);
#else
    return xm__fail(XM_E_NOT_IMPLEMENTED, "%s: no MAP_HUGETLB on this system", xm_strerror(XM_E_NOT_IMPLEMENTED));
#endif
  }

  /* Large-folio placement: a file mapping of 64 KiB or more, or any mapping of 2 MiB or more,
     starts on a 2 MiB boundary so that the kernel can back it with large folios (a 1 MiB file
     mapping that straddles a boundary takes 256 faults to write instead of 1). Cheaply: the last
     placed address is tried first with MAP_FIXED_NOREPLACE — free again once that mapping is
     gone, so create/destroy loops pay no extra call — and only a miss reserves and trims. */
  const size_t guard = req->guard_size;
  size_t align = req->align;
  bool folio_placed = !align && !guard && !fixed && !(req->flags & XM__OPT_HUGE_PAGES) &&
                      (size >= FOLIO_ALIGN || (req->source == XM__SOURCE_FILE && size >= FOLIO_MIN_FILE));
  if (folio_placed) {
    uintptr_t hint = atomic_load_explicit(&folio_hint, memory_order_relaxed);
    if (hint) {
      void *p = sys_mmap((void *)hint, size, prot, flags | MAP_FIXED_NOREPLACE, fd, req->offset);
      if (p == (void *)hint) {
        finish_view(view, p, size, p, size, req);
        return XM_OK;
      }
      if (p != MAP_FAILED) munmap(p, size); /* NOREPLACE taken as a mere hint (qemu-user, old kernels) */
    }
    align = FOLIO_ALIGN;
  }

  /* Where to put it: a PROT_NONE reservation when the placement needs one (alignment, guard
     pages, a fixed address); the mapping then replaces its middle with MAP_FIXED. */
  void *reservation = NULL;
  size_t reservation_len = 0;
  uintptr_t target = 0;
  if (align || guard || fixed) {
    size_t total = size, extra = align ? align - page : 0;
    if (total > SIZE_MAX - 2 * guard - extra)
      return xm__fail(XM_E_OVERFLOW, "address 0x%zx offset by 0x%zx would overflow", size, 2 * guard + extra);
    total += 2 * guard + extra;
    void *want = NULL;
    if (fixed) {
      if ((uintptr_t)req->fixed_addr < guard)
        return xm__fail(XM_E_INVALID_ADDRESS, "%s: no room for guard pages below %p", xm_strerror(XM_E_INVALID_ADDRESS),
                        req->fixed_addr);
      want = (unsigned char *)req->fixed_addr - guard;
    }
    int rc = reserve(want, total, &reservation);
    if (rc) return rc;
    reservation_len = total;
    target = (uintptr_t)reservation + guard;
    if (align) target = (target + align - 1) & ~(uintptr_t)(align - 1);
    flags |= MAP_FIXED;
  }

  void *p = has_fd ? map_descriptor((void *)target, size, req->prot, flags, fd, req->offset)
                   : sys_mmap((void *)target, size, prot, flags, fd, 0);
  if (p == MAP_FAILED) {
    int e = errno;
    if (reservation) munmap(reservation, reservation_len);
    if (req->flags & XM__OPT_HUGE_PAGES)
      return xm__fail_os(XM_E_SYSTEM_CALL, e, "mmap with MAP_HUGETLB; see /proc/sys/vm/nr_hugepages");
    return fail_mmap(e, fd);
  }
  if (reservation) { /* keep guard pages, give back the alignment slack */
    uintptr_t keep_from = target - guard, keep_to = target + size + guard;
    unmap_part((uintptr_t)reservation, keep_from);
    unmap_part(keep_to, (uintptr_t)reservation + reservation_len);
    reservation = (void *)keep_from;
    reservation_len = keep_to - keep_from;
  } else {
    reservation = p;
    reservation_len = size;
  }
  if (folio_placed) atomic_store_explicit(&folio_hint, (uintptr_t)p, memory_order_relaxed);
  finish_view(view, p, size, reservation, reservation_len, req);
  return XM_OK;
}

void xm__os_unmap(struct xm__os_view *view) {
  if (view->reservation) munmap(view->reservation, view->reservation_size);
  view->base = view->reservation = NULL;
  view->size = view->reservation_size = 0;
}

int xm__os_sync(const struct xm__os_view *view, void *addr, size_t len, xm_sync mode) {
  (void)view;
  if (injected() || msync(addr, len, mode == XM_SYNC_ASYNC ? MS_ASYNC : MS_SYNC) != 0) return fail_errno("msync");
  return XM_OK;
}

int xm__os_protect(const struct xm__os_view *view, void *addr, size_t len, xm_prot prot) {
  (void)view;
  if (injected() || mprotect(addr, len, to_posix_prot(prot)) != 0) return fail_errno("mprotect");
  return XM_OK;
}

/* The madvise value for each xm_advice, or -1 where this system has none. */
static int to_madvise(xm_advice advice) {
  switch (advice) {
  case XM_ADVICE_NORMAL: return MADV_NORMAL;
  case XM_ADVICE_RANDOM: return MADV_RANDOM;
  case XM_ADVICE_SEQUENTIAL: return MADV_SEQUENTIAL;
  case XM_ADVICE_WILLNEED: return MADV_WILLNEED;
  case XM_ADVICE_DONTNEED: return MADV_DONTNEED;
#if defined(__linux__)
  case XM_ADVICE_REMOVE: return MADV_REMOVE;
  case XM_ADVICE_DONTFORK: return MADV_DONTFORK;
  case XM_ADVICE_DOFORK: return MADV_DOFORK;
  case XM_ADVICE_HUGEPAGE: return MADV_HUGEPAGE;
  case XM_ADVICE_NOHUGEPAGE: return MADV_NOHUGEPAGE;
  case XM_ADVICE_DONTDUMP: return MADV_DONTDUMP;
  case XM_ADVICE_DODUMP: return MADV_DODUMP;
  case XM_ADVICE_MERGEABLE: return MADV_MERGEABLE;
  case XM_ADVICE_UNMERGEABLE: return MADV_UNMERGEABLE;
  case XM_ADVICE_COLD: return MADV_COLD;
  case XM_ADVICE_PAGEOUT: return MADV_PAGEOUT;
  case XM_ADVICE_POPULATE_READ: return MADV_POPULATE_READ;
  case XM_ADVICE_POPULATE_WRITE: return MADV_POPULATE_WRITE;
#endif
  default: return -1;
  }
}

int xm__os_advise(const struct xm__os_view *view, void *addr, size_t len, xm_advice advice) {
  (void)view;
  int a = to_madvise(advice);
  if (a < 0) return xm__fail(XM_E_NOT_IMPLEMENTED, "%s: MADV_%s has no equivalent here",
                             xm_strerror(XM_E_NOT_IMPLEMENTED), xm__advice_name(advice));
  if (injected() || madvise(addr, len, a) != 0) return fail_errno("madvise");
  return XM_OK;
}

int xm__os_lock(void *addr, size_t len) {
  if (injected()) return fail_errno("mlock2");
#if defined(__linux__) && defined(SYS_mlock2)
  if (syscall(SYS_mlock2, addr, len, MLOCK_ONFAULT) == 0) return XM_OK;
  if (errno != ENOSYS) return fail_errno("mlock2");
#endif
  if (mlock(addr, len) != 0) return fail_errno("mlock");
  return XM_OK;
}

int xm__os_unlock(void *addr, size_t len) {
  if (injected() || munlock(addr, len) != 0) return fail_errno("munlock");
  return XM_OK;
}

/* ---- shared memory -------------------------------------------------------------------------- */
#if defined(__linux__) && defined(SYS_memfd_create)
/* MFD_NOEXEC_SEAL exists from Linux 6.3; older kernels reject the flag with EINVAL. */
static unsigned memfd_flags(void) {
  static atomic_uint cached; /* 0 = not probed yet */
  unsigned v = atomic_load_explicit(&cached, memory_order_relaxed);
  if (v == 0) {
    v = MFD_CLOEXEC | MFD_ALLOW_SEALING;
    long fd = syscall(SYS_memfd_create, "xmmap_noexec_probe", v | MFD_NOEXEC_SEAL);
    if (fd >= 0) {
      close((int)fd);
      v |= MFD_NOEXEC_SEAL;
    }
    atomic_store_explicit(&cached, v, memory_order_relaxed);
  }
  return v;
}
#endif

/* shm_open + unlink: the portable fallback where there is no memfd. */
static int shm_open_anonymous(int *out) {
  char name[64];
  static atomic_uint counter;
  for (int attempt = 0; attempt < 16; attempt++) {
    snprintf(name, sizeof name, "/xmmap-%ld-%u", (long)getpid(), atomic_fetch_add(&counter, 1u));
    int fd = injected() ? -1 : shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0600);
    if (fd >= 0) {
      shm_unlink(name);
      int fdflags = fcntl(fd, F_GETFD);
      if (fdflags >= 0) fcntl(fd, F_SETFD, fdflags | FD_CLOEXEC);
      *out = fd;
      return XM_OK;
    }
    if (errno != EEXIST) break;
  }
  return fail_errno("shm_open");
}

int xm__os_shm_create(const char *name, uint64_t size, xm_descriptor *out) {
  int fd = -1;
  if (strlen(name) > 249) /* memfd_create's limit; say so rather than pass on EINVAL */
    return xm__fail(XM_E_INVALID_ARGUMENT, "shared-memory name of %zu bytes is longer than 249", strlen(name));
#if defined(__linux__) && defined(SYS_memfd_create)
  long r = injected() ? -1 : syscall(SYS_memfd_create, name, memfd_flags());
  if (r < 0 && errno != ENOSYS) return fail_errno("memfd_create");
  fd = (int)r;
#endif
  if (fd < 0) {
    int rc = shm_open_anonymous(&fd);
    if (rc) return rc;
  }
  if (injected() || ftruncate(fd, (off_t)size) != 0) {
    int rc = fail_errno("ftruncate");
    close(fd);
    return rc;
  }
  *out = fd;
  return XM_OK;
}

static const struct { unsigned xm, os; } seal_bits[] = {
    {XM_SEAL_SEAL, F_SEAL_SEAL},   {XM_SEAL_SHRINK, F_SEAL_SHRINK},
    {XM_SEAL_GROW, F_SEAL_GROW},   {XM_SEAL_WRITE, F_SEAL_WRITE},
    {XM_SEAL_FUTURE_WRITE, F_SEAL_FUTURE_WRITE},
};

int xm__os_shm_get_seals(xm_descriptor d, unsigned *seals) {
  int s = injected() ? -1 : fcntl(d, F_GET_SEALS);
  if (s < 0) {
    if (errno == EINVAL) return xm__fail_os(XM_E_NOT_IMPLEMENTED, errno, "fcntl(F_GET_SEALS): not a sealable memfd");
    return fail_errno("fcntl(F_GET_SEALS)");
  }
  unsigned v = 0;
  for (size_t i = 0; i < sizeof seal_bits / sizeof seal_bits[0]; i++)
    if ((unsigned)s & seal_bits[i].os) v |= seal_bits[i].xm;
  *seals = v;
  return XM_OK;
}

int xm__os_shm_add_seals(xm_descriptor d, unsigned seals) {
  unsigned os = 0;
  for (size_t i = 0; i < sizeof seal_bits / sizeof seal_bits[0]; i++)
    if (seals & seal_bits[i].xm) os |= seal_bits[i].os;
  if (injected() || fcntl(d, F_ADD_SEALS, (int)os) != 0) {
    if (errno == EINVAL) return xm__fail_os(XM_E_NOT_IMPLEMENTED, errno, "fcntl(F_ADD_SEALS): not a sealable memfd");
    return fail_errno("fcntl(F_ADD_SEALS)");
  }
  return XM_OK;
}

/* ---- arena (the "arena" section of src/os.h) ------------------------------------------------
   One PROT_NONE reservation; MAP_FIXED replaces any part of it atomically, so the POSIX back end
   never has to split or re-map anything: remainders of partly covered mappings stay where they
   are, and only the changed range and removed mappings see an mmap. */
int xm__os_mutex_init(struct xm__os_mutex *m) {
  pthread_mutex_t *p = malloc(sizeof *p);
  if (!p) return xm__fail(XM_E_NO_MEMORY, "out of memory for a mutex");
  int e = pthread_mutex_init(p, NULL);
  if (e != 0) {
    free(p);
    return xm__fail_os(XM_E_SYSTEM_CALL, e, "pthread_mutex_init");
  }
  m->opaque = p;
  return XM_OK;
}

void xm__os_mutex_lock(struct xm__os_mutex *m) { (void)pthread_mutex_lock(m->opaque); }
void xm__os_mutex_unlock(struct xm__os_mutex *m) { (void)pthread_mutex_unlock(m->opaque); }

void xm__os_mutex_destroy(struct xm__os_mutex *m) {
  (void)pthread_mutex_destroy(m->opaque);
  free(m->opaque);
  m->opaque = NULL;
}

const char *xm__os_arena_strategy(void) { return "mmap"; }

static const int arena_reserved_flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE;

int xm__os_arena_reserve(size_t size, struct xm__os_arena *out) {
  void *p = sys_mmap(NULL, size, PROT_NONE, arena_reserved_flags, -1, 0);
  if (p == MAP_FAILED) return fail_errno("mmap");
  out->base = p;
  out->size = size;
  out->flags = 0;
  return XM_OK;
}

void xm__os_arena_release(struct xm__os_arena *arena, const struct xm__arena_piece *pieces, size_t n) {
  /* One munmap per run of pieces that are still ours (usually the whole arena at once). */
  unsigned char *base = arena->base;
  size_t run = 0, k = 0;
  for (; k < n; k++) {
    if (pieces[k].kind != XM__PIECE_GONE) continue;
    if (pieces[k].offset > run) munmap(base + run, pieces[k].offset - run);
    run = pieces[k].offset + pieces[k].size;
  }
  if (arena->size > run) munmap(base + run, arena->size - run);
  arena->base = NULL;
  arena->size = 0;
}

int xm__os_arena_backing_new(enum xm__piece_kind kind, xm_descriptor d, size_t size, xm_prot prot,
                             xm_descriptor *handle) {
  (void)kind;
  (void)d;
  (void)size;
  (void)prot;
  *handle = -1; /* MAP_ANONYMOUS needs no object; the kernel keeps a mapped file alive itself */
  return XM_OK;
}

void xm__os_arena_backing_close(xm_descriptor handle) { xm__os_close(handle); }

/* Makes [addr, addr + len) inaccessible reserved space again, dropping what was mapped there.
   When even that mmap fails (e.g. at the VMA limit), what is there is at least made inaccessible:
   it stays the arena's (a later add or the release replaces it), only its memory stays allocated
   until then; the mmap's failure is still reported (into *rc, unless it holds an earlier one).
   False when neither worked: the range's state is unknown. */
static bool arena_reserve_at(void *addr, size_t len, int *rc) {
  if (sys_mmap(addr, len, PROT_NONE, arena_reserved_flags | MAP_FIXED, -1, 0) != MAP_FAILED) return true;
  if (*rc == XM_OK) *rc = fail_errno("mmap");
  return !injected() && mprotect(addr, len, PROT_NONE) == 0;
}

/* Maps the piece that an add creates over whatever is at its addresses. */
static int arena_map(unsigned char *base, const struct xm__arena_piece *q, int fd) {
  void *addr = base + q->offset;
  int prot = to_posix_prot(q->prot);
  int flags = MAP_SHARED | MAP_FIXED | MAP_NORESERVE;
  if (q->kind == XM__PIECE_ANON) {
    if (sys_mmap(addr, q->size, prot, flags | MAP_ANONYMOUS, -1, 0) == MAP_FAILED) return fail_errno("mmap");
    return XM_OK;
  }
  if (map_descriptor(addr, q->size, q->prot, flags, fd, q->backing_offset) == MAP_FAILED) return fail_mmap(errno, fd);
  return XM_OK;
}

int xm__os_arena_change(struct xm__os_arena *arena, const struct xm__arena_piece *old, size_t n_old,
                        struct xm__arena_piece *now, size_t n_now, xm_descriptor d) {
  unsigned char *base = arena->base;
  int rc = XM_OK;
  for (size_t k = 0; k < n_now; k++) {
    struct xm__arena_piece *q = &now[k];
    q->os_flags = 0;
    if (q->flags & XM__PIECE_NEW) {
      int r = arena_map(base, q, d);
      if (r == XM_OK) continue;
      if (rc == XM_OK) rc = r;
      /* A failed MAP_FIXED may have unmapped the old pages already: reserve the range again. */
      q->kind = arena_reserve_at(base + q->offset, q->size, &rc) ? XM__PIECE_RESERVED : XM__PIECE_GONE;
      continue;
    }
    if (q->kind != XM__PIECE_RESERVED) continue; /* a remainder: already mapped right there */
    /* Reserved space: replace what the old pieces had mapped (or lost) inside it. */
    const size_t q_end = q->offset + q->size;
    for (size_t o = 0; o < n_old && q->kind == XM__PIECE_RESERVED; o++) {
      if (old[o].kind == XM__PIECE_RESERVED) continue;
      size_t from = old[o].offset > q->offset ? old[o].offset : q->offset;
      size_t to = old[o].offset + old[o].size < q_end ? old[o].offset + old[o].size : q_end;
      if (from >= to || arena_reserve_at(base + from, to - from, &rc)) continue;
      q->kind = XM__PIECE_GONE; /* that part's state is unknown: the arena stops claiming it */
    }
  }
  return rc;
}

/* ==== fault-safe copies ============================================================== */
/* A process-wide SIGBUS + SIGSEGV handler, installed on the first safe copy, recovers only the
   faults of an active safe copy of the faulting thread, inside that copy's guarded range; every
   other fault goes to the handler that was there before, exactly as if the library were absent.
   The copy walks the guarded side page by page with memcpy, so that a fault (always in the page
   being copied) leaves every earlier byte copied; sigsetjmp(…, 1) / siglongjmp bring the thread
   back with its signal mask restored. */
struct safe_copy_ctx {
  sigjmp_buf env;
  uintptr_t lo; /* the pages of the guarded side: [lo, lo + len) */
  size_t len;
};

/* The thread's innermost active safe copy. Set before the copy, read by the handler on the same
   thread only; TLS of a thread that has already stored here needs no allocation in the handler. */
static _Thread_local struct safe_copy_ctx *volatile safe_current;

static struct sigaction prev_sigbus, prev_sigsegv;
static pthread_once_t safe_once = PTHREAD_ONCE_INIT;
static int safe_install_error; /* errno of a failed sigaction, 0 when installed */

/* Passes a fault that is not ours on, as the previous disposition would have handled it. */
static void chain_signal(int sig, siginfo_t *info, void *uc) {
  const struct sigaction *prev = sig == SIGBUS ? &prev_sigbus : &prev_sigsegv;
  if (prev->sa_flags & SA_SIGINFO) {
    if (prev->sa_sigaction) prev->sa_sigaction(sig, info, uc);
    return;
  }
  if (prev->sa_handler == SIG_IGN) {
    /* A signal someone sent stays ignored; a fault cannot be ignored (the kernel forces the
       default action for a synchronous fault whose signal is ignored): fall through. */
    if (info == NULL || info->si_code <= 0) return;
  } else if (prev->sa_handler != SIG_DFL) {
    prev->sa_handler(sig);
    return;
  }
  /* The default action: put it back and re-raise. The signal is blocked while this handler runs,
     so it is delivered (and kills) as soon as the handler returns; a hardware fault would also
     simply fault again on return. */
  struct sigaction dfl;
  memset(&dfl, 0, sizeof dfl);
  dfl.sa_handler = SIG_DFL;
  sigemptyset(&dfl.sa_mask);
  sigaction(sig, &dfl, NULL);
  raise(sig);
}

static void on_fault(int sig, siginfo_t *info, void *uc) {
  int saved_errno = errno;
  struct safe_copy_ctx *c = safe_current;
  /* si_code > 0: raised by the kernel for a fault, not sent by kill/raise/tgkill. */
  if (c && info && info->si_code > 0 && (uintptr_t)info->si_addr - c->lo < c->len) siglongjmp(c->env, 1);
  chain_signal(sig, info, uc);
  errno = saved_errno;
}

static void install_fault_handler(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = on_fault;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESTART;
  sigemptyset(&sa.sa_mask);
  /* Both are blocked while either runs: a fault inside a chained handler is then fatal at once. */
  sigaddset(&sa.sa_mask, SIGBUS);
  sigaddset(&sa.sa_mask, SIGSEGV);
  if (sigaction(SIGBUS, &sa, &prev_sigbus) != 0) {
    safe_install_error = errno;
    return;
  }
  if (sigaction(SIGSEGV, &sa, &prev_sigsegv) != 0) {
    safe_install_error = errno;
    sigaction(SIGBUS, &prev_sigbus, NULL);
  }
}

int xm__os_safe_copy(void *dst, const void *src, size_t len, enum xm__safe_side guarded, size_t *done) {
  pthread_once(&safe_once, install_fault_handler);
  if (safe_install_error) return xm__fail_os(XM_E_SYSTEM_CALL, safe_install_error, "sigaction(SIGBUS/SIGSEGV)");
  const size_t page = xm__page_size();
  const uintptr_t start = (uintptr_t)(guarded == XM__SAFE_SRC ? src : dst);
  /* Whole pages: memcpy may load the aligned word around an unaligned start or end (riscv64's and
     ppc64le's do), so a gone page faults at an address just outside the bytes asked for. A fault
     anywhere in a page that holds guarded bytes means that page is gone. */
  struct safe_copy_ctx ctx;
  ctx.lo = start & ~(uintptr_t)(page - 1);
  ctx.len = (size_t)(((start + len - 1) | (page - 1)) - ctx.lo) + 1;
  struct safe_copy_ctx *prev = safe_current;
  volatile size_t progress = 0; /* volatile: read after siglongjmp */
  if (sigsetjmp(ctx.env, 1)) {
    atomic_signal_fence(memory_order_seq_cst);
    safe_current = prev;
    *done = progress;
    return XM_E_FAULT;
  }
  safe_current = &ctx;
  atomic_signal_fence(memory_order_seq_cst); /* the copy starts only after the handler can see it */
  while (progress < len) {
    size_t at = progress;
    size_t chunk = page - (size_t)((start + at) % page);
    if (chunk > len - at) chunk = len - at;
    memcpy((unsigned char *)dst + at, (const unsigned char *)src + at, chunk);
    progress = at + chunk;
  }
  atomic_signal_fence(memory_order_seq_cst);
  safe_current = prev;
  *done = len;
  return XM_OK;
}
