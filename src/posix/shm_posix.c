/* The POSIX back end's descriptors and shared memory: checks, memfd (shm_open elsewhere), seals. */
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#if defined(__linux__)
#include <sys/vfs.h>
#endif
#include <unistd.h>
#if defined(__linux__)
#include <sys/syscall.h>
#endif

#include "posix.h"

/* What a file type is called in messages. */
static const char *type_name(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a pipe";
  if (S_ISSOCK(mode)) return "a socket";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISREG(mode)) return "a regular file";
  return "not a file";
}

static int stat_descriptor(xm_descriptor d, struct stat *st) {
  if (xm__posix_injected() || fstat(d, st) != 0) return xm__posix_fail_errno("fstat");
  return XM_OK;
}

/* Files and shm map; devices may (/dev/zero, vfio); pipes, sockets, directories never do. A shared-
   memory object is a file the library will map read-write: opened O_RDWR, not O_PATH. */
static int check_stat(enum xm__source source, xm_descriptor d, const struct stat *st_in);

int xm__os_check_descriptor(enum xm__source source, xm_descriptor d) {
  struct stat st;
  int rc = stat_descriptor(d, &st);
  return rc ? rc : check_stat(source, d, &st);
}

/* One fstat for both (an arena add is on emulators' hot path). hugetlbfs reports its huge page
   size as the block size; other file systems may report large block sizes too (NFS, ZFS), so the
   file system is checked, only when the block size is large. */
int xm__os_check_arena_descriptor(xm_descriptor d, size_t *page_size) {
  struct stat st;
  int rc = stat_descriptor(d, &st);
  if (!rc) rc = check_stat(XM__SOURCE_DESCRIPTOR, d, &st);
  if (rc) return rc;
  *page_size = xm__os_page_size();
#if defined(__linux__)
  struct statfs fs;
  const unsigned long hugetlbfs_magic = 0x958458f6ul;
  if (st.st_blksize > 0 && (size_t)st.st_blksize > *page_size && fstatfs(d, &fs) == 0 &&
      (unsigned long)fs.f_type == hugetlbfs_magic && (size_t)fs.f_bsize > *page_size)
    *page_size = (size_t)fs.f_bsize;
#endif
  return XM_OK;
}

static int check_stat(enum xm__source source, xm_descriptor d, const struct stat *st_in) {
  const struct stat st = *st_in;
  bool mappable = S_ISREG(st.st_mode) || (source != XM__SOURCE_SHM && (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)));
  if (!mappable)
    return xm__fail(XM_E_INVALID_ARGUMENT, "descriptor %d is %s, which cannot be mapped%s", d, type_name(st.st_mode),
                    source == XM__SOURCE_SHM ? " as shared memory" : "");
  int fl = fcntl(d, F_GETFL);
#if defined(O_PATH)
  if (fl >= 0 && (fl & O_PATH))
    return xm__fail(XM_E_INVALID_ARGUMENT, "descriptor %d is an O_PATH descriptor, which cannot be mapped", d);
#endif
  if (fl >= 0 && (fl & O_ACCMODE) == O_WRONLY)
    return xm__fail(XM_E_ACCESS, "descriptor %d is open write-only, and a mapping always reads", d);
  /* ... unless nobody can write it anyway: a read-only clone (xm_shm_clone_readonly) received from
     its owner is a read-only descriptor of a write-sealed memfd, and may be adopted. */
  if (source == XM__SOURCE_SHM && fl >= 0 && (fl & O_ACCMODE) != O_RDWR) {
    int seals = fcntl(d, F_GET_SEALS);
    if (seals < 0 || !(seals & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE)))
      return xm__fail(XM_E_ACCESS,
                      "descriptor %d is not open read-write, as shared memory must be (or a write-sealed "
                      "memfd)",
                      d);
  }
  return XM_OK;
}

int xm__os_descriptor_size(enum xm__source source, xm_descriptor d, uint64_t *size) {
  (void)source;
  struct stat st;
  int rc = stat_descriptor(d, &st);
  if (rc) return rc;
  /* Only a regular file (memfd and shm_open objects are) knows its size; a device's 0 is not one. */
  if (!S_ISREG(st.st_mode))
    return xm__fail(XM_E_INVALID_ARGUMENT, "descriptor %d is %s, which has no size to map to its end", d,
                    type_name(st.st_mode));
  *size = st.st_size > 0 ? (uint64_t)st.st_size : 0;
  return XM_OK;
}

int xm__os_dup(xm_descriptor d, xm_descriptor *out) {
  int fd = xm__posix_injected() ? -1 : fcntl(d, F_DUPFD_CLOEXEC, 0);
  if (fd < 0) return xm__posix_fail_errno("fcntl(F_DUPFD_CLOEXEC)");
  *out = fd;
  return XM_OK;
}

void xm__os_close(xm_descriptor d) {
  if (d >= 0) close(d);
}

#if defined(__linux__) && defined(SYS_memfd_create)
/* MFD_NOEXEC_SEAL exists from Linux 6.3; older kernels reject the flag with EINVAL. Only that
   answer is cached: any other failure (EMFILE, ENOMEM) is reported and the flag is probed again,
   so that a transient failure never drops the exec seal for the rest of the process. extra
   (MFD_HUGETLB and its size) is added to every attempt and never cached. */
static atomic_uint memfd_flags_cached; /* 0 = not known yet */

static long create_memfd(const char *name, unsigned extra) {
  unsigned base = MFD_CLOEXEC | MFD_ALLOW_SEALING;
  unsigned v = atomic_load_explicit(&memfd_flags_cached, memory_order_relaxed);
  if (v != 0) return syscall(SYS_memfd_create, name, v | extra);
  long fd = syscall(SYS_memfd_create, name, base | MFD_NOEXEC_SEAL | extra);
  if (fd >= 0) {
    atomic_store_explicit(&memfd_flags_cached, base | MFD_NOEXEC_SEAL, memory_order_relaxed);
    return fd;
  }
  if (errno != EINVAL) return fd;
  fd = syscall(SYS_memfd_create, name, base | extra);
  if (fd >= 0) atomic_store_explicit(&memfd_flags_cached, base, memory_order_relaxed); /* EINVAL was the seal's */
  return fd;
}

/* An object that may be mapped executable: MFD_EXEC (6.3+; older kernels know no exec flags and
   refuse it with EINVAL: then none). Under vm.memfd_noexec = 2 the kernel refuses executable memfds
   (EACCES): the exec seal then only freezes the mode bits, and an executable mapping still works. */
static long create_exec_memfd(const char *name) {
  unsigned base = MFD_CLOEXEC | MFD_ALLOW_SEALING;
  long fd = syscall(SYS_memfd_create, name, base | MFD_EXEC);
  if (fd < 0 && errno == EINVAL) fd = syscall(SYS_memfd_create, name, base);
  if (fd < 0 && errno == EACCES) fd = syscall(SYS_memfd_create, name, base | MFD_NOEXEC_SEAL);
  return fd;
}
#endif

/* shm_open + unlink: the portable fallback where there is no memfd. */
static int shm_open_anonymous(int *out) {
  char name[64];
  static atomic_uint counter;
  for (int attempt = 0; attempt < 16; attempt++) {
    snprintf(name, sizeof name, "/xmmap-%ld-%u", (long)getpid(), atomic_fetch_add(&counter, 1u));
    int fd = xm__posix_injected() ? -1 : shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0600);
    if (fd >= 0) {
      shm_unlink(name);
      int fdflags = fcntl(fd, F_GETFD);
      if (fdflags >= 0) fcntl(fd, F_SETFD, fdflags | FD_CLOEXEC);
      *out = fd;
      return XM_OK;
    }
    if (errno != EEXIST) break;
  }
  return xm__posix_fail_errno("shm_open");
}

int xm__os_shm_create(const char *name, uint64_t size, unsigned flags, size_t *huge_page_size, xm_descriptor *out) {
  int fd = -1;
  if (strlen(name) > 249) /* memfd_create's limit; say so rather than pass on EINVAL */
    return xm__fail(XM_E_INVALID_ARGUMENT, "shared-memory name of %zu bytes is longer than 249", strlen(name));
  /* XM_SHM_LAZY_COMMIT: a memfd's pages are allocated on first touch already. */
  if (flags & XM_SHM_HUGE) return xm__posix_create_huge_shm(name, size, flags, huge_page_size, out);
#if defined(__linux__) && defined(SYS_memfd_create)
  long r = xm__posix_injected() ? -1 : (flags & XM_SHM_EXEC) ? create_exec_memfd(name) : create_memfd(name, 0);
  if (r < 0 && errno != ENOSYS) return xm__posix_fail_errno("memfd_create");
  fd = (int)r;
#endif
  if (fd < 0) { /* POSIX shm: the library's exec policy is its only guard */
    int rc = shm_open_anonymous(&fd);
    if (rc) return rc;
  }
  if (xm__posix_injected() || ftruncate(fd, (off_t)size) != 0) {
    int rc = xm__posix_fail_errno("ftruncate");
    close(fd);
    return rc;
  }
  *out = fd;
  return XM_OK;
}

#if defined(__linux__) && defined(SYS_memfd_create)
/* A MFD_HUGETLB memfd of size bytes with pages of page_size (0: the default) and the pool's check
   done (huge_pages_posix.c). The exec seal is asked for as for any memfd. */
int xm__posix_memfd_hugetlb(const char *name, uint64_t size, unsigned flags, size_t page_size, int *out) {
  unsigned extra = MFD_HUGETLB;
  if (page_size) {
    unsigned shift = 0;
    while (((size_t)1 << shift) < page_size)
      shift++;
    extra |= shift << MFD_HUGE_SHIFT;
  }
  long fd = xm__posix_injected() ? -1 : create_memfd(name, extra);
  (void)flags; /* hugetlbfs has no exec bits to seal or keep: XM_SHM_EXEC is the library's policy here */
  if (fd < 0) {
    if (errno == EINVAL || errno == ENOSYS)
      return xm__fail_os(XM_E_NOT_IMPLEMENTED, errno, "memfd_create(MFD_HUGETLB): no hugetlbfs here");
    return xm__posix_fail_errno("memfd_create(MFD_HUGETLB)");
  }
  if (xm__posix_injected() || ftruncate((int)fd, (off_t)size) != 0) {
    int rc = xm__posix_fail_errno("ftruncate of a MFD_HUGETLB memfd");
    close((int)fd);
    return rc;
  }
  *out = (int)fd;
  return XM_OK;
}
#endif

/* /proc/self/fd/N opened read-only: a new open file of the same object, which a descriptor
   duplicate is not (F_SETFL cannot change the access mode). */
static int reopen_read_only(int fd, int *out) {
  char path[64];
  snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
  int ro = xm__posix_injected() ? -1 : open(path, O_RDONLY | O_CLOEXEC);
  if (ro < 0) return xm__fail_os(XM_E_SYSTEM_CALL, errno, "open(/proc/self/fd/N, O_RDONLY)");
  *out = ro;
  return XM_OK;
}

int xm__os_shm_clone_readonly(xm_descriptor d, xm_descriptor *out) {
  int seals = xm__posix_injected() ? -1 : fcntl(d, F_GET_SEALS);
  if (seals < 0) {
    if (errno == EINVAL)
      return xm__fail_os(XM_E_NOT_IMPLEMENTED, errno,
                         "fcntl(F_GET_SEALS): read-only sharing needs a sealable memfd, and this object is not one");
    return xm__posix_fail_errno("fcntl(F_GET_SEALS)");
  }
  const bool write_sealed = (seals & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE)) != 0;
  if (!write_sealed && (seals & F_SEAL_SEAL))
    return xm__fail(XM_E_INVALID_ARGUMENT, "the object is sealed against new seals (F_SEAL_SEAL) and has no write "
                                           "seal: F_SEAL_FUTURE_WRITE cannot be added to make it read-only");
  /* The reopen first: if it fails, the object is left unsealed. */
  int ro = -1;
  int rc = reopen_read_only(d, &ro);
  if (rc) return rc;
  if (!write_sealed && (xm__posix_injected() || fcntl(d, F_ADD_SEALS, F_SEAL_FUTURE_WRITE) != 0)) {
    int e = errno;
    close(ro);
    if (e == EINVAL)
      return xm__fail_os(XM_E_NOT_IMPLEMENTED, e, "fcntl(F_ADD_SEALS, F_SEAL_FUTURE_WRITE), which needs Linux 5.1");
    return xm__fail_os(XM_E_SYSTEM_CALL, e, "fcntl(F_ADD_SEALS, F_SEAL_FUTURE_WRITE)");
  }
  *out = ro;
  return XM_OK;
}

static const struct {
  unsigned xm, os;
} seal_bits[] = {
    {XM_SEAL_SEAL, F_SEAL_SEAL},
    {XM_SEAL_SHRINK, F_SEAL_SHRINK},
    {XM_SEAL_GROW, F_SEAL_GROW},
    {XM_SEAL_WRITE, F_SEAL_WRITE},
    {XM_SEAL_FUTURE_WRITE, F_SEAL_FUTURE_WRITE},
};

int xm__os_shm_get_seals(xm_descriptor d, unsigned *seals) {
  int s = xm__posix_injected() ? -1 : fcntl(d, F_GET_SEALS);
  if (s < 0) {
    if (errno == EINVAL) return xm__fail_os(XM_E_NOT_IMPLEMENTED, errno, "fcntl(F_GET_SEALS): not a sealable memfd");
    return xm__posix_fail_errno("fcntl(F_GET_SEALS)");
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
  if (xm__posix_injected() || fcntl(d, F_ADD_SEALS, (int)os) != 0) {
    if (errno == EINVAL) return xm__fail_os(XM_E_NOT_IMPLEMENTED, errno, "fcntl(F_ADD_SEALS): not a sealable memfd");
    return xm__posix_fail_errno("fcntl(F_ADD_SEALS)");
  }
  return XM_OK;
}
