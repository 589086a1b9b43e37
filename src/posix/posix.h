/* What the POSIX back end's files share: fallback constants for older headers, the
   fault-injection wrapper, and the descriptor mmap that mappings and arenas both use. */
#ifndef XMMAP_POSIX_H
#define XMMAP_POSIX_H

#include <errno.h>
#include <stdbool.h>
#include <sys/mman.h>

#include "os.h"
#include "support.h"

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
#ifndef MFD_EXEC
#define MFD_EXEC 0x0010U
#endif
#ifndef MFD_HUGETLB
#define MFD_HUGETLB 0x0004U
#endif
#ifndef MFD_HUGE_SHIFT
#define MFD_HUGE_SHIFT 26
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
static inline bool xm__posix_injected(void) {
  int e;
  if (!xm__os_inject_failure(&e)) return false;
  errno = e;
  return true;
}

/* Records the failed call with this thread's errno as XM_E_SYSTEM_CALL. */
static inline int xm__posix_fail_errno(const char *call) { return xm__fail_os(XM_E_SYSTEM_CALL, errno, call); }

static inline int xm__posix_prot(xm_prot prot) {
  return ((prot & XM_PROT_READ) ? PROT_READ : 0) | ((prot & XM_PROT_WRITE) ? PROT_WRITE : 0) |
         ((prot & XM_PROT_EXEC) ? PROT_EXEC : 0);
}

/* mmap through the fault-injection seam. */
void *xm__posix_mmap(void *addr, size_t len, int prot, int flags, int fd, uint64_t offset);
/* mmap of a descriptor, with the write-sealed memfd fallback (map_posix.c). */
void *xm__posix_map_descriptor(void *addr, size_t len, xm_prot prot, int flags, int fd, uint64_t offset);
/* Records a failed mmap (errno e) of fd (-1 for none), naming the write seal when that is why. */
int xm__posix_fail_mmap(int e, int fd);

/* ---- huge-page shared memory (huge_pages_posix.c, shm_posix.c) ------------------------------- */
/* xm__os_shm_create with XM_SHM_HUGE: the page size resolved and its pool checked, then the memfd. */
int xm__posix_create_huge_shm(const char *name, uint64_t size, unsigned flags, size_t *huge_page_size, int *out);
/* A MFD_HUGETLB memfd of size bytes with pages of page_size bytes (0: the default); no checks. */
int xm__posix_memfd_hugetlb(const char *name, uint64_t size, unsigned flags, size_t page_size, int *out);

#endif /* XMMAP_POSIX_H */
