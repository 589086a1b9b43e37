/* The POSIX back end's huge-page shared memory: which huge page size, whether a pool of such pages
   is configured (so that the caller learns it when the object is made, not from a failed mapping
   later), then a MFD_HUGETLB memfd. */
#include <dirent.h>
#include <stdio.h>
#include <string.h>
#if defined(__linux__)
#include <sys/syscall.h>
#endif

#include "posix.h"

#define HUGEPAGES_DIR "/sys/kernel/mm/hugepages"

/* The number in the first line of path that starts with key (e.g. "Hugepagesize:"), or -1. */
static long long read_number(const char *path, const char *key) {
  FILE *f = fopen(path, "re");
  if (!f) return -1;
  char line[256];
  long long v = -1;
  size_t klen = key ? strlen(key) : 0;
  while (fgets(line, sizeof line, f)) {
    if (klen && strncmp(line, key, klen) != 0) continue;
    if (sscanf(line + klen, "%lld", &v) != 1) v = -1;
    break;
  }
  fclose(f);
  return v;
}

/* The size directories of HUGEPAGES_DIR ("2048kB 1048576kB"), for messages. */
static void list_sizes(char *buf, size_t len) {
  buf[0] = '\0';
  DIR *dir = opendir(HUGEPAGES_DIR);
  if (!dir) {
    snprintf(buf, len, "none (no " HUGEPAGES_DIR ")");
    return;
  }
  size_t used = 0;
  for (struct dirent *e = readdir(dir); e; e = readdir(dir)) {
    if (strncmp(e->d_name, "hugepages-", 10) != 0) continue;
    int n = snprintf(buf + used, len - used, "%s%s", used ? " " : "", e->d_name + 10);
    if (n < 0 || (size_t)n >= len - used) break;
    used += (size_t)n;
  }
  closedir(dir);
  if (!used) snprintf(buf, len, "none");
}

/* Counter name of the pool of kb-KiB pages, or -1 where it cannot be read. */
static long long pool_value(size_t kb, const char *name) {
  char path[128];
  snprintf(path, sizeof path, HUGEPAGES_DIR "/hugepages-%zukB/%s", kb, name);
  return read_number(path, NULL);
}

int xm__posix_create_huge_shm(const char *name, uint64_t size, unsigned flags, size_t *huge_page_size, int *out) {
#if defined(__linux__) && defined(SYS_memfd_create)
  size_t page = *huge_page_size;
  if (page == 0) {
    long long kb = read_number("/proc/meminfo", "Hugepagesize:");
    if (kb <= 0)
      return xm__fail(XM_E_NOT_IMPLEMENTED, "no huge pages on this system (/proc/meminfo has no Hugepagesize)");
    page = (size_t)kb << 10;
  }
  char sizes[160];
  const size_t kb = page >> 10;
  long long total = pool_value(kb, "nr_hugepages");
  if (page < 1024 || total < 0) {
    list_sizes(sizes, sizeof sizes);
    return xm__fail(XM_E_NOT_IMPLEMENTED,
                    "no %zu-byte huge pages on this system (no " HUGEPAGES_DIR "/hugepages-%zukB); sizes here: %s",
                    page, kb, sizes);
  }
  if (size % page != 0)
    return xm__fail(XM_E_NOT_PAGE_ALIGNED, "size %llu is not a multiple of the %zu-byte huge page",
                    (unsigned long long)size, page);
  long long overcommit = pool_value(kb, "nr_overcommit_hugepages");
  if (total == 0 && overcommit <= 0) {
    long long meminfo_total = read_number("/proc/meminfo", "HugePages_Total:");
    return xm__fail(XM_E_NOT_IMPLEMENTED,
                    "no %zu KiB huge pages are configured (" HUGEPAGES_DIR "/hugepages-%zukB: nr_hugepages and "
                    "nr_overcommit_hugepages 0; /proc/meminfo HugePages_Total %lld): set vm.nr_hugepages",
                    kb, kb, meminfo_total);
  }
  int rc = xm__posix_memfd_hugetlb(name, size, flags, *huge_page_size ? page : 0, out);
  if (rc == XM_OK) *huge_page_size = page;
  return rc;
#else
  (void)name;
  (void)size;
  (void)flags;
  (void)huge_page_size;
  (void)out;
  return xm__fail(XM_E_NOT_IMPLEMENTED, "huge-page shared memory needs Linux's MFD_HUGETLB");
#endif
}
