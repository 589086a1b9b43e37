/* userfaultfd write protection and PAGEMAP_SCAN: the definitions newer than Debian 12's kernel
   headers (6.1), values and layouts from the kernel's uapi. Shared by dirty_posix.c and the bench's
   raw baseline (tools/bench_dirty_posix.c); include after <linux/userfaultfd.h> and <sys/ioctl.h>. */
#ifndef XMMAP_POSIX_UFFD_UAPI_H
#define XMMAP_POSIX_UFFD_UAPI_H

#include <stdint.h>

#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif
#ifndef UFFD_FEATURE_WP_HUGETLBFS_SHMEM
#define UFFD_FEATURE_WP_HUGETLBFS_SHMEM (1 << 12)
#endif
#ifndef UFFD_FEATURE_WP_UNPOPULATED
#define UFFD_FEATURE_WP_UNPOPULATED (1 << 13)
#endif
#ifndef UFFD_FEATURE_WP_ASYNC
#define UFFD_FEATURE_WP_ASYNC (1 << 15)
#endif
#ifndef PAGEMAP_SCAN
struct page_region {
  uint64_t start;
  uint64_t end;
  uint64_t categories;
};
struct pm_scan_arg {
  uint64_t size;
  uint64_t flags;
  uint64_t start;
  uint64_t end;
  uint64_t walk_end;
  uint64_t vec;
  uint64_t vec_len;
  uint64_t max_pages;
  uint64_t category_inverted;
  uint64_t category_mask;
  uint64_t category_anyof_mask;
  uint64_t return_mask;
};
#define PAGEMAP_SCAN _IOWR('f', 16, struct pm_scan_arg)
#endif
#ifndef PM_SCAN_WP_MATCHING
#define PM_SCAN_WP_MATCHING (1 << 0)
#define PM_SCAN_CHECK_WPASYNC (1 << 1)
#endif
#ifndef PAGE_IS_WRITTEN
#define PAGE_IS_WRITTEN (1 << 1)
#endif
_Static_assert(sizeof(struct pm_scan_arg) == 96, "struct pm_scan_arg has the kernel's layout");
_Static_assert(sizeof(struct page_region) == 24, "struct page_region has the kernel's layout");

#endif /* XMMAP_POSIX_UFFD_UAPI_H */
