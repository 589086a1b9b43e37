/* The POSIX back end's mappings: mmap with placement (alignment, guard pages, a fixed address,
   large folios), msync, mprotect, madvise and locking. */
#include <fcntl.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/types.h>
#include <unistd.h>
#if defined(__linux__)
#include <sys/syscall.h>
#endif

#include "posix.h"

static unsigned seals_of(int fd) {
#if defined(__linux__)
  int s = fcntl(fd, F_GET_SEALS);
  return s > 0 ? (unsigned)s : 0;
#else
  (void)fd;
  return 0;
#endif
}

void *xm__posix_mmap(void *addr, size_t len, int prot, int flags, int fd, uint64_t offset) {
  if (xm__posix_injected()) return MAP_FAILED;
  return mmap(addr, len, prot, flags, fd, (off_t)offset);
}

static bool write_sealed(int fd) { return (seals_of(fd) & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE)) != 0; }

/* mmap of a descriptor. Kernels before 6.7 refuse MAP_SHARED of a write-sealed memfd even
   read-only; a private read-only mapping shows the same (now immutable) bytes. A writable
   request stays refused (EPERM), never silently made private. */
void *xm__posix_map_descriptor(void *addr, size_t len, xm_prot prot, int flags, int fd, uint64_t offset) {
  void *p = xm__posix_mmap(addr, len, xm__posix_prot(prot), flags, fd, offset);
  if (p == MAP_FAILED && errno == EPERM && !(prot & XM_PROT_WRITE) && write_sealed(fd))
    p = xm__posix_mmap(addr, len, xm__posix_prot(prot), (flags & ~MAP_SHARED) | MAP_PRIVATE, fd, offset);
  return p;
}

/* Records a failed mmap (errno e) of fd (-1 for none), naming the write seal when that is why. */
int xm__posix_fail_mmap(int e, int fd) {
  if (e == EPERM && fd >= 0 && write_sealed(fd))
    return xm__fail_os(XM_E_SYSTEM_CALL, e, "mmap of a write-sealed memfd with write access");
  return xm__posix_fail_mapping(e, "mmap");
}

/* Takes [addr, addr + len) of address space, inaccessible, without committing memory. When
   fixed is set the range must be exactly there and free. */
static int reserve(bool fixed, void *want, size_t len, void **out) {
  int flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | (fixed ? MAP_FIXED_NOREPLACE : 0);
  void *fixed_at = fixed ? want : NULL;
  void *p = xm__posix_mmap(fixed_at, len, PROT_NONE, flags, -1, 0);
  if (p == MAP_FAILED) {
    if (fixed && errno == EEXIST) return xm__fail(XM_E_EXISTS, "[%p, +0x%zx) is already mapped", want, len);
    return xm__posix_fail_mapping(errno, "mmap");
  }
  if (fixed && p != want) { /* old kernels and qemu-user treat NOREPLACE as a mere hint */
    munmap(p, len);
    return xm__fail(XM_E_EXISTS, "[%p, +0x%zx) is already mapped", want, len);
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
    for (size_t i = 0; i < len; i += page)
      *(volatile unsigned char *)((unsigned char *)addr + i) = 0;
  else
    for (size_t i = 0; i < len; i += page)
      (void)*(volatile unsigned char *)((unsigned char *)addr + i);
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
  int prot = xm__posix_prot(req->prot);
  int flags = (req->flags & XM__OPT_PRIVATE) ? MAP_PRIVATE : MAP_SHARED;
  int fd = has_fd ? req->descriptor : -1;
  if (!has_fd) flags |= MAP_ANONYMOUS | MAP_NORESERVE;
  if (req->flags & XM__OPT_HUGE_PAGES) {
    if (has_fd)
      return xm__fail(XM_E_NOT_IMPLEMENTED,
                      "huge pages for a descriptor need a hugetlbfs file or an MFD_HUGETLB memfd");
#if defined(MAP_HUGETLB)
    /* Reserved up front, so a system without free huge pages fails here rather than with SIGBUS. */
    flags &= ~MAP_NORESERVE;
    flags |= MAP_HUGETLB | (req->huge_page_size ? (int)(log2_size(req->huge_page_size) << MAP_HUGE_SHIFT) : 0);
#else
    return xm__fail(XM_E_NOT_IMPLEMENTED, "no MAP_HUGETLB on this system");
#endif
  }

  /* Large-folio placement: a file mapping of 64 KiB or more, or any mapping of 2 MiB or more,
     starts on a 2 MiB boundary so that the kernel can back it with large folios (a 1 MiB file
     mapping that straddles a boundary takes 256 faults to write instead of 1). Cheaply: the last
     placed address is tried first with MAP_FIXED_NOREPLACE — free again once that mapping is
     gone, so create/destroy loops pay no extra call — and only a miss reserves and trims. */
  const size_t guard = req->guard_size;
  const bool ranged = (req->flags & XM__OPT_ADDRESS_RANGE) != 0;
  size_t align = req->align;
  bool folio_placed = !align && !guard && !fixed && !ranged && !(req->flags & XM__OPT_HUGE_PAGES) &&
                      (size >= FOLIO_ALIGN || (req->source == XM__SOURCE_FILE && size >= FOLIO_MIN_FILE));
  if (folio_placed) {
    uintptr_t hint = atomic_load_explicit(&folio_hint, memory_order_relaxed);
    if (hint) {
      void *p = xm__posix_mmap((void *)hint, size, prot, flags | MAP_FIXED_NOREPLACE, fd, req->offset);
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
  if (ranged) { /* the search places the aligned base itself: no slack to trim */
    if (size > SIZE_MAX - 2 * guard) return xm__fail_overflow(size, 2 * guard);
    size_t unit = align > page ? align : page;
    if (req->flags & XM__OPT_HUGE_PAGES) { /* MAP_HUGETLB | MAP_FIXED needs a huge-page-aligned address */
      size_t huge = req->huge_page_size ? req->huge_page_size : xm__os_thp_size();
      if (huge > unit) unit = huge;
    }
    struct xm__os_place where = {req->range_lo, req->range_hi, unit, guard};
    int rc = xm__os_reserve_in(size + 2 * guard, &where, 0, &reservation);
    if (rc) return rc;
    reservation_len = size + 2 * guard;
    target = (uintptr_t)reservation + guard;
    flags |= MAP_FIXED;
  } else if (align || guard || fixed) {
    size_t total = size, extra = align ? align - page : 0;
    if (total > SIZE_MAX - 2 * guard - extra) return xm__fail_overflow(size, 2 * guard + extra);
    total += 2 * guard + extra;
    /* The front end checked that a fixed address leaves room for the guards and sends no align. */
    void *want = fixed ? (unsigned char *)req->fixed_addr - guard : NULL;
    int rc = reserve(fixed, want, total, &reservation);
    if (rc && folio_placed && !fixed) { /* placement is an optimisation: a plain mapping fits where it may not */
      folio_placed = false;
      align = 0;
      flags &= ~MAP_FIXED;
    } else if (rc) {
      return rc;
    }
    if (rc == XM_OK) {
      reservation_len = total;
      target = (uintptr_t)reservation + guard;
      if (align) target = (target + align - 1) & ~(uintptr_t)(align - 1);
      flags |= MAP_FIXED;
    }
  }

  void *p = has_fd ? xm__posix_map_descriptor((void *)target, size, req->prot, flags, fd, req->offset)
                   : xm__posix_mmap((void *)target, size, prot, flags, fd, 0);
  if (p == MAP_FAILED) {
    int e = errno;
    if (reservation) munmap(reservation, reservation_len);
    if (req->flags & XM__OPT_HUGE_PAGES)
      return xm__fail_os(XM_E_SYSTEM_CALL, e, "mmap with MAP_HUGETLB; see /proc/sys/vm/nr_hugepages");
    return xm__posix_fail_mmap(e, fd);
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
  if (xm__posix_injected() || msync(addr, len, mode == XM_SYNC_ASYNC ? MS_ASYNC : MS_SYNC) != 0)
    return xm__posix_fail_errno("msync");
  return XM_OK;
}

int xm__os_protect(const struct xm__os_view *view, void *addr, size_t len, xm_prot prot) {
  (void)view;
  if (xm__posix_injected() || mprotect(addr, len, xm__posix_prot(prot)) != 0)
    return xm__posix_fail_mapping(errno, "mprotect");
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
  if (a < 0) return xm__fail(XM_E_NOT_IMPLEMENTED, "MADV_%s has no equivalent here", xm__advice_name(advice));
  if (xm__posix_injected() || madvise(addr, len, a) != 0) return xm__posix_fail_errno("madvise");
  return XM_OK;
}

/* Lock and unlock are the same kind of call: raw system calls on Linux, so that sanitizer
   runtimes (which replace libc's mlock/munlock with no-ops) cannot make them asymmetric. */
int xm__os_lock(void *addr, size_t len) {
  if (xm__posix_injected()) return xm__posix_fail_errno("mlock2");
#if defined(__linux__) && defined(SYS_mlock2)
  if (syscall(SYS_mlock2, addr, len, MLOCK_ONFAULT) == 0) return XM_OK;
  if (errno != ENOSYS) return xm__posix_fail_errno("mlock2");
#endif
#if defined(__linux__) && defined(SYS_mlock)
  if (syscall(SYS_mlock, addr, len) != 0) return xm__posix_fail_errno("mlock");
#else
  if (mlock(addr, len) != 0) return xm__posix_fail_errno("mlock");
#endif
  return XM_OK;
}

int xm__os_unlock(void *addr, size_t len) {
  if (xm__posix_injected()) return xm__posix_fail_errno("munlock");
#if defined(__linux__) && defined(SYS_munlock)
  if (syscall(SYS_munlock, addr, len) != 0) return xm__posix_fail_errno("munlock");
#else
  if (munlock(addr, len) != 0) return xm__posix_fail_errno("munlock");
#endif
  return XM_OK;
}
