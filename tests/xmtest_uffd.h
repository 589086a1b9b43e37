/* What the uffd-wp back-end tests share (test_dirty_uffd.c, test_dirty_uffd_threads.c): the probe
   as a skip reason, and on POSIX memory of each kind the back end tracks, with an exact-collect
   check. */
#ifndef XMMAP_XMTEST_UFFD_H
#define XMMAP_XMTEST_UFFD_H

#include "xmtest.h"

#include <stdatomic.h>
#include <stdbool.h>

#include "os.h" /* white-box: the back end's contract */

static inline const char *unavailable(void) {
  const char *why = NULL;
  return xm__os_wp_available(&why) ? NULL : why;
}

#define SKIP_WITHOUT_UFFD_WP()                                                                                         \
  do {                                                                                                                 \
    const char *why_ = unavailable();                                                                                  \
    if (why_) XT_SKIP("uffd-wp write tracking is not available: %s", why_);                                            \
  } while (0)

#ifndef _WIN32
#include <sys/syscall.h>

static size_t page; /* set by main */

enum kind { MEMFD, SHARED_ANON, PRIVATE_ANON, FILE_SHARED, KINDS };
static const char *const kind_names[KINDS] = {"memfd shared", "anonymous shared", "anonymous private", "file shared"};

struct memory {
  enum kind kind;
  unsigned char *p;
  size_t pages;
  int memfd; /* MEMFD, FILE_SHARED: the object, to map parts of it again */
};

/* pages of memory of kind, every page written once before tracking starts. */
static inline struct memory map_memory(enum kind kind, size_t pages) {
  struct memory m = {kind, NULL, pages, -1};
  int flags =
      kind == PRIVATE_ANON ? MAP_PRIVATE | MAP_ANONYMOUS : MAP_SHARED | (kind == SHARED_ANON ? MAP_ANONYMOUS : 0);
  if (kind == MEMFD) {
    m.memfd = (int)syscall(SYS_memfd_create, "test-dirty-uffd", 1u /* MFD_CLOEXEC */);
    assert_true(m.memfd >= 0);
    assert_int_equal(ftruncate(m.memfd, (off_t)(pages * page)), 0);
  } else if (kind == FILE_SHARED) {
    m.memfd = xt_temp_file(NULL, 0, 1); /* a file of $TMPDIR, which may be tmpfs or a disk's */
    assert_int_equal(ftruncate(m.memfd, (off_t)(pages * page)), 0);
  }
  void *p = mmap(NULL, pages * page, PROT_READ | PROT_WRITE, flags, m.memfd, 0);
  assert_true(p != MAP_FAILED);
  m.p = p;
  for (size_t i = 0; i < pages; i++)
    m.p[i * page] = (unsigned char)i;
  return m;
}

static inline void unmap_memory(struct memory *m) {
  assert_int_equal(munmap(m->p, m->pages * page), 0);
  if (m->memfd >= 0) close(m->memfd);
}

static inline bool bit(const uint64_t *bitmap, size_t i) { return (bitmap[i / 64] >> (i % 64)) & 1; }

/* Collects [0, m->pages) into a fresh bitmap and checks it holds exactly want[0..n). */
static inline void expect_collect(struct xm__os_wp *wp, const struct memory *m, const size_t *want, size_t n) {
  uint64_t *bitmap = calloc((m->pages + 63) / 64, sizeof *bitmap);
  assert_non_null(bitmap);
  size_t count = 0;
  XT_OK(xm__os_wp_collect(wp, m->p, m->pages * page, bitmap, 0, &count));
  size_t seen = 0;
  for (size_t i = 0; i < m->pages; i++) {
    bool wanted = false;
    for (size_t k = 0; k < n; k++)
      wanted |= want[k] == i;
    if (bit(bitmap, i) != wanted)
      print_message("%s: page %zu reported %d, expected %d\n", kind_names[m->kind], i, bit(bitmap, i), wanted);
    assert_true(bit(bitmap, i) == wanted);
    seen += wanted;
  }
  assert_int_equal(count, seen);
  free(bitmap);
}
#endif

#endif /* XMMAP_XMTEST_UFFD_H */
