/* The POSIX back end's commit and decommit. Linux commits memory on first touch, so committing is
   pre-faulting; decommitting punches a hole in the shared memory behind the range. */
#include "posix.h"

int xm__os_commit(const struct xm__os_view *view, void *addr, size_t len, xm_prot prot) {
  (void)view;
  if (prot == XM_PROT_NONE) return XM_OK; /* nothing may touch the pages: nothing to pre-fault */
  int advice = (prot & XM_PROT_WRITE) ? MADV_POPULATE_WRITE : MADV_POPULATE_READ;
  if (xm__posix_injected() || madvise(addr, len, advice) != 0) {
    /* Kernels before 5.14 (and systems without it) do not know the advice: the pages are then
       committed on first touch, which is what committing means here. */
    if (errno == EINVAL) return XM_OK;
    if (errno == EFAULT || errno == ENOMEM)
      return xm__fail_os(XM_E_SYSTEM_CALL, errno,
                         advice == MADV_POPULATE_WRITE ? "madvise(MADV_POPULATE_WRITE): no memory or no backing"
                                                       : "madvise(MADV_POPULATE_READ): no memory or no backing");
    return xm__posix_fail_errno(advice == MADV_POPULATE_WRITE ? "madvise(MADV_POPULATE_WRITE)"
                                                              : "madvise(MADV_POPULATE_READ)");
  }
  return XM_OK;
}

int xm__os_decommit(const struct xm__os_view *view, void *addr, size_t len) {
  (void)view;
#if defined(MADV_REMOVE)
  /* MADV_REMOVE frees the object's pages (fallocate(PUNCH_HOLE) through the mapping): every mapping
     of it reads zeros there afterwards. It needs a writable shared mapping: private memory has no
     object to punch (EINVAL for anonymous memory, EACCES for a private or read-only view). */
  if (!xm__posix_injected() && madvise(addr, len, MADV_REMOVE) == 0) return XM_OK;
  if (errno == EINVAL || errno == EOPNOTSUPP || errno == EACCES)
    return xm__fail_os(XM_E_NOT_IMPLEMENTED, errno,
                       "madvise(MADV_REMOVE): decommit needs writable shared memory (a private mapping has no object "
                       "to free pages of; XM_ADVICE_DONTNEED drops private pages)");
  return xm__posix_fail_errno("madvise(MADV_REMOVE)");
#else
  (void)addr;
  (void)len;
  return xm__fail(XM_E_NOT_IMPLEMENTED, "decommit needs MADV_REMOVE, which this system lacks");
#endif
}
