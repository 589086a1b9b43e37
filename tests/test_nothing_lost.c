/* Nothing lost (issue 12, "Data loss"): a call that is refused or fails leaves every byte the
   caller did not name where it was.
   - Destructive advice (REMOVE, DONTNEED, remove_range, drop_page_cache) on a range whose start
     or end is not page-aligned, also one ending at a region end that is not page-aligned, is
     refused with XM_E_NOT_PAGE_ALIGNED and the caller's own offsets; the bytes that share the
     last page (an object's bytes past a short mapping, an arena's past its end) stay.
   - A failed arena add leaves the arena as it was: data, protection.
   - At the mapping-count limit (vm.max_map_count) arena changes fail with XM_E_SYSTEM_CALL and
     lose nothing, and xm_arena_free still leaves no mapping behind.
   Run one test: test_nothing_lost <name pattern>. */
#include "xmtest.h"

#ifndef _WIN32
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#endif

static size_t page, gran;

/* Byte i of a patterned range: depends on the seed, so stale data never passes for new. */
static unsigned char pattern_byte(size_t i, unsigned seed) { return (unsigned char)(i * 31 + seed * 7 + 1); }

static void fill(unsigned char *p, size_t len, unsigned seed) {
  for (size_t i = 0; i < len; i++)
    p[i] = pattern_byte(i, seed);
}

/* The offset of the first byte of p[0, len) that is not the pattern, or len. */
static size_t pattern_mismatch(const unsigned char *p, size_t len, unsigned seed) {
  for (size_t i = 0; i < len; i++)
    if (p[i] != pattern_byte(i, seed)) return i;
  return len;
}

static void assert_pattern(const unsigned char *p, size_t len, unsigned seed, const char *what) {
  size_t bad = pattern_mismatch(p, len, seed);
  if (bad != len)
    print_message("%s: byte %lu is 0x%02x, expected 0x%02x\n", what, (unsigned long)bad, p[bad],
                  pattern_byte(bad, seed));
  assert_int_equal(bad, len);
}

/* Every form of destructive advice on [offset, offset + count) of m (and its region) is refused
   before any OS call, naming the caller's offsets. */
static void assert_destructive_refused(xm_mapping *m, size_t offset, size_t count) {
  char want[64];
  snprintf(want, sizeof want, "offset=%zu count=%zu", offset, count);
  xm_region *r = xm_mapping_region(m);
  for (int i = 0; i < 6; i++) {
    xm__test_fail_nth(0, 0);
    int rc = i == 0   ? xm_mapping_remove_range(m, offset, count)
             : i == 1 ? xm_mapping_drop_page_cache(m, offset, count)
             : i == 2 ? xm_mapping_advise(m, offset, count, XM_ADVICE_REMOVE)
             : i == 3 ? xm_mapping_advise(m, offset, count, XM_ADVICE_DONTNEED)
             : i == 4 ? xm_region_advise(r, offset, count, XM_ADVICE_REMOVE)
                      : xm_region_advise(r, offset, count, XM_ADVICE_DONTNEED);
    if (rc != XM_E_NOT_PAGE_ALIGNED) print_message("form %d: %d (%s)\n", i, rc, xm_errmsg());
    assert_int_equal(rc, XM_E_NOT_PAGE_ALIGNED);
    xt_assert_errmsg_has(want);
    assert_int_equal(xm__test_os_calls(), 0);
  }
}

/* ---- 1. destructive advice never reaches bytes the caller did not name ----------------------- */
/* A shm of size bytes filled with the pattern, and a mapping of all of it. */
static xm_mapping *patterned_shm(const char *name, size_t size, unsigned seed, xm_shm **s) {
  XT_OK(xm_shm_new(name, size, s));
  xm_builder b = xm_builder_new(size);
  xm_builder_from_shm(&b, *s);
  xm_mapping *whole = NULL;
  XT_OK(xm_builder_build(&b, &whole));
  fill(xm_mapping_ptr(whole), size, seed);
  return whole;
}

/* A 100-byte mapping of a 2-page shm: the first page also holds the shm's bytes 100..page-1. */
static void partial_page_advice_shm(void **state) {
  (void)state;
  xm_shm *s = NULL;
  xm_mapping *whole = patterned_shm("nothing-lost-advice", 2 * page, 1, &s);
  xm_builder b = xm_builder_new(100);
  xm_builder_from_shm(&b, s);
  xm_mapping *m = NULL;
  XT_OK(xm_builder_build(&b, &m));

  assert_destructive_refused(m, 0, 100);                  /* ends at the mapping's end, inside a page */
  assert_destructive_refused(m, 0, 99);                   /* ends inside a page */
  assert_destructive_refused(whole, 100, 2 * page - 100); /* starts inside a page, ends at the end */
  assert_destructive_refused(whole, 0, page + 1);
  assert_pattern(xm_mapping_ptr(whole), 2 * page, 1, "shm after refused advice");

  xm_mapping_free(m);
  xm_mapping_free(whole);
  xm_shm_free(s);
}

/* The same through a file: the bytes past the named range are still in the file. */
static void partial_page_advice_file(void **state) {
  (void)state;
  unsigned char *data = malloc(3 * gran);
  assert_non_null(data);
  fill(data, 3 * gran, 2);
  xm_descriptor f = xt_temp_file(data, 3 * gran, 1);
  xm_builder b = xm_builder_new(100);
  xm_builder_from_file(&b, f);
  xm_mapping *m = NULL;
  XT_OK(xm_builder_build(&b, &m));
  assert_destructive_refused(m, 0, 100);
  xm_mapping_free(m);
  /* a short mapping further into the file, and one that starts inside a page */
  b = xm_builder_new(page + 100);
  xm_builder_from_file(&b, f);
  xm_builder_offset(&b, gran);
  XT_OK(xm_builder_build(&b, &m));
  assert_destructive_refused(m, page, 100);
  assert_destructive_refused(m, 0, page + 100);
  xm_mapping_free(m);
  b = xm_builder_new(page);
  xm_builder_from_file(&b, f);
  xm_builder_offset(&b, gran + 10);
  XT_OK(xm_builder_build(&b, &m));
  assert_destructive_refused(m, 0, page);
  xm_mapping_free(m);

  unsigned char *got = malloc(3 * gran);
  assert_non_null(got);
  xt_pread(f, got, 3 * gran, 0);
  assert_pattern(got, 3 * gran, 2, "file after refused advice");
  free(got);
  free(data);
  xt_close(f);
}

/* Memory the caller owns, wrapped as an external region of 100 bytes. */
static void partial_page_advice_external(void **state) {
  (void)state;
  xm_shm *s = NULL;
  xm_mapping *whole = patterned_shm("nothing-lost-external", 2 * page, 3, &s);
  xm_region *r = NULL;
  XT_OK(xm_external_mapping_new((uint64_t)(uintptr_t)xm_mapping_ptr(whole), 100, &r));
  XT_STATUS(XM_E_NOT_PAGE_ALIGNED, xm_region_advise(r, 0, 100, XM_ADVICE_REMOVE));
  xt_assert_errmsg_has("offset=0 count=100");
  XT_STATUS(XM_E_NOT_PAGE_ALIGNED, xm_region_advise(r, 0, 100, XM_ADVICE_DONTNEED));
  xt_assert_errmsg_has("offset=0 count=100");
  XT_STATUS(XM_E_NOT_PAGE_ALIGNED, xm_region_advise(r, 10, 90, XM_ADVICE_REMOVE));
  xt_assert_errmsg_has("offset=10 count=90");
  xm_region_free(r);
  assert_pattern(xm_mapping_ptr(whole), 2 * page, 3, "memory behind the external region");
  xm_mapping_free(whole);
  xm_shm_free(s);
}

/* An arena whose end is not page-aligned: the last piece's last page holds the object's bytes
   past the arena's end. The refusal names the arena's offsets, not a piece's. */
static void partial_page_advice_arena(void **state) {
  (void)state;
  xm_shm *s = NULL;
  xm_mapping *whole = patterned_shm("nothing-lost-arena", 3 * gran, 4, &s);
  xm_arena *a = NULL;
  XT_OK(xm_arena_new(3 * gran + 100, &a));
  XT_OK(xm_arena_add_anon(a, 0, gran, XM_PROT_READ_WRITE));
  XT_OK(xm_arena_add_fd(a, gran, 2 * gran + 100, xm_shm_descriptor(s), 0, XM_PROT_READ_WRITE));
  xm_region *r = xm_arena_region(a);
  const xm_advice destructive[2] = {XM_ADVICE_REMOVE, XM_ADVICE_DONTNEED};
  for (int i = 0; i < 2; i++) {
    char want[64];
    xm__test_fail_nth(0, 0);
    XT_STATUS(XM_E_NOT_PAGE_ALIGNED, xm_region_advise(r, 3 * gran, 100, destructive[i]));
    snprintf(want, sizeof want, "offset=%zu count=100", 3 * gran); /* 12288, not the piece's 8192 */
    xt_assert_errmsg_has(want);
    XT_STATUS(XM_E_NOT_PAGE_ALIGNED, xm_region_advise(r, gran, 2 * gran + 100, destructive[i]));
    snprintf(want, sizeof want, "offset=%zu count=%zu", gran, 2 * gran + 100);
    xt_assert_errmsg_has(want);
    XT_STATUS(XM_E_NOT_PAGE_ALIGNED, xm_region_advise(r, 0, 3 * gran + 100, destructive[i]));
    snprintf(want, sizeof want, "offset=0 count=%zu", 3 * gran + 100);
    xt_assert_errmsg_has(want);
    XT_STATUS(XM_E_NOT_PAGE_ALIGNED, xm_region_advise(r, 100, gran, destructive[i]));
    xt_assert_errmsg_has("offset=100 count=");
    assert_int_equal(xm__test_os_calls(), 0);
  }
  unsigned char *base = xm_region_ptr(r);
  assert_pattern(base + gran, 2 * gran + 100, 4, "the arena's shm piece");
  assert_pattern(xm_mapping_ptr(whole), 3 * gran, 4, "the shm behind the arena");
  xm_arena_free(a);
  xm_mapping_free(whole);
  xm_shm_free(s);
}

#ifndef _WIN32
/* ---- POSIX: memory probes that cannot fault --------------------------------------------------
   The kernel (and qemu-user) copies a buffer for write()/read() with checks: an inaccessible
   buffer gives EFAULT instead of a signal, so "is this memory still there" is asked without
   crashing when the answer is no. */
static int scratch = -1;

static bool mem_readable(const void *p, size_t len) { return pwrite(scratch, p, len, 0) == (ssize_t)len; }

/* Writes the same bytes back: true when p[0, len) is readable and writable. */
static bool mem_writable(void *p, size_t len) {
  return mem_readable(p, len) && pread(scratch, p, len, 0) == (ssize_t)len;
}

/* The arena's first two pages still hold their pattern and are still read-write. */
static void assert_arena_kept(unsigned char *base, unsigned seed, const char *after) {
  if (!mem_readable(base, 2 * page)) print_message("after %s: the arena's pages are no longer readable\n", after);
  assert_true(mem_readable(base, 2 * page));
  assert_pattern(base, 2 * page, seed, after);
  if (!mem_writable(base, 2 * page)) print_message("after %s: the arena's pages are no longer writable\n", after);
  assert_true(mem_writable(base, 2 * page));
}

/* ---- 2. a failed arena add leaves the arena as it was ---------------------------------------- */
static void failed_arena_add_keeps_data(void **state) {
  (void)state;
  xm_arena *a = NULL;
  XT_OK(xm_arena_new(4 * page, &a));
  XT_OK(xm_arena_add_anon(a, 0, 2 * page, XM_PROT_READ_WRITE));
  unsigned char *base = xm_region_ptr(xm_arena_region(a));
  fill(base, 2 * page, 5);
  int fds[2];
  assert_int_equal(pipe(fds), 0);
  unsigned char *data = xt_pattern(2 * page, 3, 9);
  xm_descriptor ro = xt_temp_file(data, 2 * page, 0);
  int dir = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  assert_true(dir >= 0);
  xm_descriptor rw = xt_temp_file(data, 2 * page, 1);
  char path[64];
  snprintf(path, sizeof path, "/proc/self/fd/%d", rw);
  int wo = open(path, O_WRONLY | O_CLOEXEC); /* the same (deleted) file, write-only */
  xt_snapshot before = xt_snap();

  /* what the arena holds is checked first: that is what a failed add must never cost */
  int rc = xm_arena_add_fd(a, 0, page, fds[0], 0, XM_PROT_READ);
  assert_arena_kept(base, 5, "an add of a pipe");
  XT_STATUS(XM_E_INVALID_ARGUMENT, rc);
  xt_assert_errmsg_has("is a pipe");
  rc = xm_arena_add_fd(a, 0, 2 * page, fds[1], 0, XM_PROT_READ_WRITE);
  assert_arena_kept(base, 5, "an add of a pipe's write end");
  XT_STATUS(XM_E_INVALID_ARGUMENT, rc);

  for (size_t at = 0; at < 2 * page; at += page) {
    rc = xm_arena_add_fd(a, at, page, ro, 0, XM_PROT_READ_WRITE);
    if (rc != XM_E_SYSTEM_CALL && rc != XM_E_ACCESS)
      print_message("read-only file added read-write: %d (%s)\n", rc, xm_errmsg());
    assert_true(rc == XM_E_SYSTEM_CALL || rc == XM_E_ACCESS);
    assert_arena_kept(base, 5, "a read-write add of a read-only file");
  }

  rc = xm_arena_add_fd(a, 0, 2 * page, dir, 0, XM_PROT_READ);
  assert_arena_kept(base, 5, "an add of a directory");
  XT_STATUS(XM_E_INVALID_ARGUMENT, rc);
  xt_assert_errmsg_has("is a directory");

  if (wo >= 0) {
    rc = xm_arena_add_fd(a, page, page, wo, 0, XM_PROT_READ);
    assert_arena_kept(base, 5, "an add of a write-only file");
    XT_STATUS(XM_E_ACCESS, rc);
    xt_assert_errmsg_has("write-only");
  }
  xt_assert_same(before, xt_snap());

  /* the arena still works, and an add replaces exactly its own range */
  XT_OK(xm_arena_add_fd(a, page, page, ro, 0, XM_PROT_READ));
  assert_pattern(base, page, 5, "page 0 after an add at page 1");
  assert_memory_equal(base + page, data, page);
  if (wo >= 0) close(wo);
  close(fds[0]);
  close(fds[1]);
  close(dir);
  xt_close(ro);
  xt_close(rw);
  free(data);
  xm_arena_free(a);
}

/* ---- 3. at the mapping-count limit ------------------------------------------------------------
   Run in a child process: a process at its mapping-count limit cannot map anything, not even
   what the test framework or a sanitizer would. The child says what happened through a pipe. */
#define MAP_COUNT_ATTEMPTS 200000
/* Whether any mapping in /proc/self/maps overlaps [lo, hi). */
static bool anything_mapped(uintptr_t lo, uintptr_t hi) {
  FILE *f = fopen("/proc/self/maps", "r");
  if (!f) return false;
  char line[512];
  bool found = false;
  while (fgets(line, sizeof line, f)) {
    unsigned long long a = 0, b = 0;
    if (sscanf(line, "%llx-%llx", &a, &b) == 2 && a < hi && lo < b) found = true;
  }
  fclose(f);
  return found;
}

static long map_count_max; /* vm.max_map_count */

/* Maps 1-page mappings of alternating protection (so that no two merge into one kernel mapping)
   until mmap fails; returns its errno (0: it never failed) and the count in *n. */
static int fill_to_limit(void **filler, size_t *n) {
  for (*n = 0; *n < MAP_COUNT_ATTEMPTS; (*n)++) {
    void *p = mmap(NULL, page, (*n & 1) ? PROT_READ : PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return errno;
    filler[*n] = p;
  }
  return 0;
}

static void release(void **filler, size_t n) {
  for (size_t i = 0; i < n; i++)
    munmap(filler[i], page);
}

/* Whether a mapping can be split in two more (what the limit forbids). */
static bool split_works(void) {
  unsigned char *p = mmap(NULL, 3 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return false;
  bool ok = mprotect(p + page, page, PROT_NONE) == 0;
  munmap(p, 3 * page);
  return ok;
}

/* The probe, without the library: the limit is reached, and released mappings give the count
   back. */
static int map_count_probe_child(int out) {
  const long limit = map_count_max;
  void **filler = calloc(MAP_COUNT_ATTEMPTS, sizeof *filler);
  if (!filler) return xt_say(out, 1, "out of memory");
  size_t n = 0;
  int e = fill_to_limit(filler, &n);
  release(filler, n);
  if (e == 0)
    return xt_say(out, XT_CHILD_SKIP,
                  "%d mappings did not reach the mapping-count limit (vm.max_map_count=%ld is not enforced here)",
                  MAP_COUNT_ATTEMPTS, limit);
  if (e != ENOMEM) return xt_say(out, XT_CHILD_SKIP, "mmap failed with errno %d, not ENOMEM, after %zu mappings", e, n);
  if (!split_works())
    return xt_say(out, XT_CHILD_SKIP,
                  "after %zu mappings reached the limit and were unmapped, a mapping still cannot be split: unmapping "
                  "does not give the mapping count back here (an emulator that keeps released memory reserved)",
                  n);
  free(filler);
  return xt_say(out, 0, "%zu", n);
}

static int map_count_child(int out) {
  const long limit = map_count_max;
  void **filler = calloc(MAP_COUNT_ATTEMPTS, sizeof *filler); /* before the snapshot: freed after it */
  if (!filler) return xt_say(out, 1, "out of memory");
  size_t n = 0;
  int e = 0;
  xt_snapshot before = xt_snap();
  xm_arena *a = NULL;
  if (xm_arena_new(8 * page, &a) != XM_OK) return xt_say(out, 2, "xm_arena_new: %s", xm_errmsg());
  if (xm_arena_add_anon(a, 0, 4 * page, XM_PROT_READ_WRITE) != XM_OK)
    return xt_say(out, 3, "xm_arena_add_anon: %s", xm_errmsg());
  unsigned char *base = xm_region_ptr(xm_arena_region(a));
  fill(base, 4 * page, 6);
  e = fill_to_limit(filler, &n);
  int add_rc = 0, add_err = 0, remove_rc = 0, remove_err = 0;
  bool readable = false, remove_named = false;
  size_t bad = 0;
  if (e == ENOMEM) { /* at the limit: a new mapping, or a split, needs one more */
    add_rc = xm_arena_add_anon(a, page, page, XM_PROT_READ_WRITE);
    add_err = xm_os_error();
    remove_rc = xm_arena_remove(a, 2 * page, page);
    remove_err = xm_os_error();
    remove_named = strstr(xm_errmsg(), "vm.max_map_count") != NULL;
    readable = mem_readable(base, 4 * page);
    bad = readable ? pattern_mismatch(base, 4 * page, 6) : 0;
  }
  release(filler, n);
  if (e != ENOMEM) return xt_say(out, 4, "the limit was not reached again: errno %d after %zu mappings", e, n);
  if (add_rc != XM_E_MAP_LIMIT || add_err != ENOMEM)
    return xt_say(out, 10, "add at the limit: status %d, errno %d (%s)", add_rc, add_err, xm_errmsg());
  if (remove_rc != XM_E_MAP_LIMIT || remove_err != ENOMEM)
    return xt_say(out, 11, "remove inside a piece at the limit: status %d, errno %d", remove_rc, remove_err);
  if (!remove_named) return xt_say(out, 19, "the failed remove's message does not name vm.max_map_count");
  if (!readable) return xt_say(out, 12, "the arena's piece is no longer readable after the failed changes");
  if (bad != 4 * page) return xt_say(out, 13, "the arena's piece lost byte %zu after the failed changes", bad);
  if (!mem_writable(base, 4 * page)) return xt_say(out, 14, "the arena's piece is no longer writable");
  /* the pressure is gone: the same changes work */
  if (xm_arena_remove(a, 2 * page, page) != XM_OK) return xt_say(out, 15, "remove after the limit: %s", xm_errmsg());
  if (pattern_mismatch(base, 2 * page, 6) != 2 * page || !mem_readable(base + 3 * page, page) ||
      base[3 * page] != pattern_byte(3 * page, 6))
    return xt_say(out, 16, "a remove of page 2 changed the pages around it");
  uintptr_t lo = (uintptr_t)base, hi = lo + 8 * page;
  xm_arena_free(a);
  if (anything_mapped(lo, hi)) return xt_say(out, 17, "xm_arena_free left a mapping in the arena's range");
  xt_snapshot after = xt_snap();
  if (xt_mappings_comparable() && after.mappings != before.mappings)
    return xt_say(out, 18, "/proc/self/maps has %ld lines after xm_arena_free, %ld before the arena", after.mappings,
                  before.mappings);
  free(filler);
  return xt_say(out, 0, "%zu mappings reached the limit (vm.max_map_count=%ld)", n, limit);
}

static void map_count_limit(void **state) {
  (void)state;
  if (xt_under_valgrind()) XT_SKIP("valgrind keeps a table of mappings far smaller than vm.max_map_count");
  long limit = -1;
  FILE *f = fopen("/proc/sys/vm/max_map_count", "r");
  if (f) {
    if (fscanf(f, "%ld", &limit) != 1) limit = -1;
    fclose(f);
  }
  if (limit <= 0) XT_SKIP("/proc/sys/vm/max_map_count cannot be read: no mapping-count limit to reach");
  if (limit > MAP_COUNT_ATTEMPTS)
    XT_SKIP("vm.max_map_count is %ld, more than the %d mappings this test makes", limit, MAP_COUNT_ATTEMPTS);
  map_count_max = limit;
  xt_child c = xt_run_child(map_count_probe_child, 60); /* emulators map slowly */
  if (!WIFEXITED(c.status) || WEXITSTATUS(c.status) != 0) {
    if (WIFEXITED(c.status) && WEXITSTATUS(c.status) == XT_CHILD_SKIP) XT_SKIP("%s", c.msg);
    XT_SKIP("a process that reaches the mapping-count limit without xmmap does not come back here (status 0x%x%s): "
            "an emulator that needs mappings of its own",
            (unsigned)c.status, c.msg);
  }
  c = xt_run_child(map_count_child, 120);
  xt_assert_child_passed(&c);
}
#endif

static int setup(void **state) {
  (void)state;
#ifndef _WIN32
  scratch = xt_temp_file(NULL, 0, 1);
#endif
  return 0;
}

static int teardown(void **state) {
  (void)state;
#ifndef _WIN32
  close(scratch);
#endif
  return 0;
}

int main(int argc, char **argv) {
  page = xm_page_size();
  gran = xm_allocation_granularity();
  if (argc > 1) cmocka_set_test_filter(argv[1]);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(partial_page_advice_shm),      cmocka_unit_test(partial_page_advice_file),
      cmocka_unit_test(partial_page_advice_external), cmocka_unit_test(partial_page_advice_arena),
#ifndef _WIN32
      cmocka_unit_test(failed_arena_add_keeps_data),  cmocka_unit_test(map_count_limit),
#endif
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
