/* Contract edges (issue 12, "Wrong results and silent failures", "Contract holes"): each case
   gets its documented status, before any OS call where the contract says so.
   - xm_builder_fixed_noreplace: NULL, no room for the guards, an address off the alignment, and
     the exact range (guards included) as the only thing that can be "already mapped".
   - A failure that is not "unsupported" is never cached: the first xm_shm_new of a process
     meeting EMFILE does not drop the exec seal of every later one.
   - Placement (the large-folio reservation) falls back to a plain mapping under RLIMIT_AS.
   - Statuses: offset + size past INT64_MAX, sizes and descriptors xm_shm_from_descriptor must
     refuse, to_end_of_file of things that have no size.
   - Slices need read access; volatile access refuses a NULL object; msync of memory that cannot
     reach a file is XM_OK; lock and unlock are symmetric (also under the sanitizers).
   The process-wide cases (first shm of a process, RLIMIT_AS) run in children forked from main()
   before this process makes any mapping or shm. Run one test: test_contract_edges <pattern>. */
#include "xmtest.h"

#include <errno.h>

#ifndef _WIN32
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#if defined(__linux__)
#include <sys/eventfd.h>
#include <sys/syscall.h>
#endif
#endif

static size_t page, gran;

/* ---- 7. fixed addresses ------------------------------------------------------------------------ */
#define TWO_MIB ((size_t)2 << 20)

/* Address space nobody uses: a reservation of len bytes, given back at once. */
static uintptr_t free_space(size_t len) {
#ifdef _WIN32
  void *p = VirtualAlloc(NULL, len, MEM_RESERVE, PAGE_NOACCESS);
  assert_non_null(p);
  VirtualFree(p, 0, MEM_RELEASE);
#else
  void *p = mmap(NULL, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  assert_true(p != MAP_FAILED);
  munmap(p, len);
#endif
  return (uintptr_t)p;
}

/* One inaccessible unit of something else's memory at addr. */
static void *block_at(uintptr_t addr, size_t len) {
#ifdef _WIN32
  void *p = VirtualAlloc((void *)addr, len, MEM_RESERVE, PAGE_NOACCESS);
#else
  void *p = mmap((void *)addr, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
  if (p == MAP_FAILED) p = NULL;
#endif
  assert_ptr_equal(p, (void *)addr);
  return p;
}

static void unblock(void *p, size_t len) {
#ifdef _WIN32
  (void)len;
  VirtualFree(p, 0, MEM_RELEASE);
#else
  munmap(p, len);
#endif
}

static void fixed_noreplace_edges(void **state) {
  (void)state;
  xm_builder b = xm_builder_new(2 * page);
  xm_builder_fixed_noreplace(&b, NULL); /* NULL would read as "anywhere" */
  xt_build_refused_before_os(&b, XM_E_INVALID_ARGUMENT);
  xt_assert_errmsg_has("NULL");

  /* the guards below the address would start at 0 or wrap */
  b = xm_builder_new(2 * page);
  xm_builder_guard_pages(&b, 2 * gran / page);
  xm_builder_fixed_noreplace(&b, (void *)(uintptr_t)(2 * gran));
  xt_build_refused_before_os(&b, XM_E_INVALID_ADDRESS);
  xm_builder_fixed_noreplace(&b, (void *)(uintptr_t)gran);
  xt_build_refused_before_os(&b, XM_E_INVALID_ADDRESS);

  /* an address that is not a multiple of the alignment */
  uintptr_t space = free_space(4 * TWO_MIB);
  uintptr_t aligned = (space + TWO_MIB - 1) & ~(uintptr_t)(TWO_MIB - 1);
  b = xm_builder_new(2 * page);
  xm_builder_align(&b, TWO_MIB);
  xm_builder_fixed_noreplace(&b, (void *)(aligned + gran));
  xt_build_refused_before_os(&b, XM_E_INVALID_ALIGNMENT);
}

/* A free 2 MiB-aligned address with something mapped two units after the end of the range
   asked for (size and guards): the mapping starts exactly there; only something inside that
   exact range makes it XM_E_EXISTS. */
static void fixed_noreplace_exact_range(void **state) {
  (void)state;
  const size_t size = 2 * gran, guard = gran; /* guard: one unit of pages */
  uintptr_t space = free_space(4 * TWO_MIB);
  uintptr_t at = ((space + TWO_MIB - 1) & ~(uintptr_t)(TWO_MIB - 1)) + TWO_MIB; /* room below for the guard */
  void *blocker = block_at(at + size + guard + 2 * gran, gran);
  xm_builder b = xm_builder_new(size);
  xm_builder_align(&b, TWO_MIB);
  xm_builder_guard_pages(&b, guard / page);
  xm_builder_fixed_noreplace(&b, (void *)at);
  xm_mapping *m = NULL;
  XT_OK(xm_builder_build(&b, &m));
  assert_ptr_equal(xm_mapping_ptr(m), (void *)at);
  uint8_t v = 0x5a;
  XT_OK(XM_WRITE_OBJ(m, size - 1, &v));
  xm_mapping_free(m);
  unblock(blocker, gran);
  /* without alignment too */
  blocker = block_at(at + size + guard, gran); /* right after the upper guard */
  b = xm_builder_new(size);
  xm_builder_guard_pages(&b, guard / page);
  xm_builder_fixed_noreplace(&b, (void *)at);
  m = NULL;
  XT_OK(xm_builder_build(&b, &m));
  assert_ptr_equal(xm_mapping_ptr(m), (void *)at);
  xm_mapping_free(m);
  unblock(blocker, gran);
  /* something in the upper guard, or right below the lower one: taken / free */
  blocker = block_at(at + size, gran);
  m = NULL;
  XT_STATUS(XM_E_EXISTS, xm_builder_build(&b, &m));
  assert_null(m);
  unblock(blocker, gran);
  blocker = block_at(at - guard - gran, gran);
  XT_OK(xm_builder_build(&b, &m));
  assert_ptr_equal(xm_mapping_ptr(m), (void *)at);
  xm_mapping_free(m);
  unblock(blocker, gran);
}

/* ---- 10. statuses ------------------------------------------------------------------------------ */
/* offset + size past INT64_MAX: XM_E_INVALID_OFFSET before any OS call, for every source that
   has an offset. */
static void offset_past_off_t(void **state) {
  (void)state;
  unsigned char bytes[16] = {0};
  xm_descriptor f = xt_temp_file(bytes, sizeof bytes, 1);
  xm_shm *s = NULL;
  XT_OK(xm_shm_new("contract-offset", page, &s));
  const uint64_t offset = (uint64_t)INT64_MAX & ~(uint64_t)(gran - 1);
  for (int source = 0; source < 3; source++) {
    xm_builder b = xm_builder_new(2 * gran);
    if (source == 0) xm_builder_from_file(&b, f);
    if (source == 1) xm_builder_from_shm(&b, s);
    if (source == 2) xm_builder_from_descriptor(&b, xm_shm_descriptor(s));
    xm_builder_offset(&b, offset);
    xt_build_refused_before_os(&b, XM_E_INVALID_OFFSET);
    char want[64];
    snprintf(want, sizeof want, "offset=%llu", (unsigned long long)offset);
    xt_assert_errmsg_has(want);
    xm_builder_offset(&b, (uint64_t)INT64_MAX - 10); /* unaligned, and past it with 2 units */
    xt_build_refused_before_os(&b, XM_E_INVALID_OFFSET);
  }
  xm_shm_free(s);
  xt_close(f);
}

/* A descriptor the caller owns that can be adopted as shared memory: a read-write file of one
   page, or on Windows a pagefile section of one unit. */
static xm_descriptor adoptable(void) {
#ifdef _WIN32
  HANDLE h = CreateFileMappingW(INVALID_HANDLE_VALUE, NULL, PAGE_READWRITE, 0, (DWORD)gran, NULL);
  assert_non_null(h);
  return h;
#else
  unsigned char *zeros = calloc(1, page);
  assert_non_null(zeros);
  xm_descriptor fd = xt_temp_file(zeros, page, 1);
  free(zeros);
  return fd;
#endif
}

static void shm_adopt_size_past_off_t(void **state) {
  (void)state;
  xm_descriptor d = adoptable();
  xm_shm *adopted = NULL;
  xm__test_fail_nth(0, 0);
  XT_STATUS(XM_E_INVALID_ARGUMENT, xm_shm_from_descriptor(d, UINT64_MAX, &adopted));
  assert_int_equal(xm__test_os_calls(), 0);
  assert_null(adopted);
  XT_STATUS(XM_E_INVALID_ARGUMENT, xm_shm_from_descriptor(d, (uint64_t)INT64_MAX + 1, &adopted));
  XT_OK(xm_shm_from_descriptor(d, page, &adopted)); /* the caller still had it: it adopts now */
  assert_int_equal(xm_shm_size(adopted), page);
  xm_shm_free(adopted);
}

#ifndef _WIN32
/* Descriptors that are not shared memory, each refused with its kind named; the caller keeps
   the descriptor. */
static void expect_adopt_refused(int fd, const char *kind) {
  xm_shm *s = NULL;
  int rc = xm_shm_from_descriptor(fd, 0, &s);
  if (rc != XM_E_INVALID_ARGUMENT && rc != XM_E_ACCESS) print_message("adopting %s: %d (%s)\n", kind, rc, xm_errmsg());
  assert_true(rc == XM_E_INVALID_ARGUMENT || rc == XM_E_ACCESS);
  assert_null(s);
  xt_assert_errmsg_has(kind);
  rc = xm_shm_from_descriptor(fd, page, &s);
  assert_true(rc == XM_E_INVALID_ARGUMENT || rc == XM_E_ACCESS);
  assert_true(fcntl(fd, F_GETFD) >= 0); /* still open: the caller's */
}

static void shm_adopt_refuses_non_shm(void **state) {
  (void)state;
  int p[2], sv[2];
  assert_int_equal(pipe(p), 0);
  assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  int dir = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  assert_true(dir >= 0);
  unsigned char bytes[64] = {0};
  xm_descriptor rw = xt_temp_file(bytes, sizeof bytes, 1);
  xm_descriptor ro = xt_temp_file(bytes, sizeof bytes, 0);
  char path[64];
  snprintf(path, sizeof path, "/proc/self/fd/%d", rw);
  int wo = open(path, O_WRONLY | O_CLOEXEC);
  int opath_dir = -1, opath_file = -1;
#if defined(O_PATH)
  opath_dir = open("/", O_PATH | O_CLOEXEC);
  opath_file = open(path, O_PATH | O_CLOEXEC); /* the regular file, by path only */
#endif
  xt_snapshot before = xt_snap();
  expect_adopt_refused(p[0], "a pipe");
  expect_adopt_refused(sv[0], "a socket");
  expect_adopt_refused(dir, "a directory");
  expect_adopt_refused(ro, "read-write");
  if (wo >= 0) expect_adopt_refused(wo, "write-only");
  if (opath_dir >= 0) expect_adopt_refused(opath_dir, "a directory");
  if (opath_file >= 0) expect_adopt_refused(opath_file, "O_PATH");
  xt_assert_same(before, xt_snap()); /* nothing adopted, nothing closed */
  int fds[] = {p[0], p[1], sv[0], sv[1], dir, wo, opath_dir, opath_file};
  for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++)
    if (fds[i] >= 0) close(fds[i]);
  xt_close(rw);
  xt_close(ro);
}

/* to_end_of_file of things without a size: XM_E_INVALID_ARGUMENT, never an empty mapping. */
static void expect_no_end_of_file(int fd, const char *what) {
  for (int as_file = 0; as_file < 2; as_file++) {
    xm_builder b = xm_builder_new(0);
    if (as_file)
      xm_builder_from_file(&b, fd);
    else
      xm_builder_from_descriptor(&b, fd);
    xm_builder_to_end_of_file(&b);
    xm_mapping *m = NULL;
    int rc = xm_builder_build(&b, &m);
    if (rc != XM_E_INVALID_ARGUMENT)
      print_message("to_end_of_file of %s: %d (%s), size %lu\n", what, rc, xm_errmsg(),
                    (unsigned long)xm_mapping_size(m));
    xm_mapping_free(m);
    assert_int_equal(rc, XM_E_INVALID_ARGUMENT);
  }
}

static void to_end_of_file_without_a_size(void **state) {
  (void)state;
  int p[2], sv[2];
  assert_int_equal(pipe(p), 0);
  assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  expect_no_end_of_file(p[0], "a pipe");
  expect_no_end_of_file(sv[0], "a socket");
  close(p[0]);
  close(p[1]);
  close(sv[0]);
  close(sv[1]);
#if defined(__linux__)
  int ev = eventfd(0, EFD_CLOEXEC);
  if (ev >= 0) {
    expect_no_end_of_file(ev, "an eventfd");
    close(ev);
  }
#endif
  const char *devices[] = {"/dev/null", "/dev/zero"};
  for (size_t i = 0; i < 2; i++) {
    int fd = open(devices[i], O_RDWR | O_CLOEXEC);
    if (fd < 0) continue;
    expect_no_end_of_file(fd, devices[i]);
    close(fd);
  }
}
#endif

/* ---- 11. contract holes --------------------------------------------------------------------- */
static void slices_need_read_access(void **state) {
  (void)state;
  xm_mapping *m = xt_anon(4 * page);
  xm_slice s;
  XT_OK(xm_mapping_get_slice(m, 0, 4 * page, &s));
  XT_OK(xm_mapping_protect(m, page, page, XM_PROT_NONE));
  XT_STATUS(XM_E_ACCESS, xm_mapping_get_slice(m, 0, 2 * page, &s));
  XT_STATUS(XM_E_ACCESS, xm_mapping_get_slice(m, page + 10, 1, &s));
  XT_OK(xm_mapping_get_slice(m, 0, page, &s));
  XT_OK(xm_mapping_get_slice(m, 2 * page, 2 * page, &s));
  XT_OK(xm_mapping_protect(m, 0, 4 * page, XM_PROT_NONE));
  XT_STATUS(XM_E_ACCESS, xm_mapping_get_slice(m, 0, 1, &s));
  XT_STATUS(XM_E_ACCESS, xm_mapping_get_slice(m, 0, 4 * page, &s));
  XT_OK(xm_mapping_protect(m, 0, 4 * page, XM_PROT_READ)); /* reading is all a slice needs */
  XT_OK(xm_mapping_get_slice(m, 0, 4 * page, &s));
  assert_int_equal(s.size, 4 * page);
  xm_mapping_free(m);
  const xm_prot unreadable[2] = {XM_PROT_NONE, XM_PROT_WRITE};
  for (int i = 0; i < 2; i++) {
    xm_builder b = xm_builder_new(page);
    xm_builder_protection(&b, unreadable[i]);
    XT_OK(xm_builder_build(&b, &m));
    XT_STATUS(XM_E_ACCESS, xm_mapping_get_slice(m, 0, page, &s));
    xm_mapping_free(m);
  }
}

static void volatile_null_object(void **state) {
  (void)state;
  xm_mapping *m = xt_anon(page);
  for (size_t size = 1; size <= 8; size *= 2) {
    XT_STATUS(XM_E_INVALID_ARGUMENT, xm_mapping_read_obj_volatile(m, NULL, size, 0));
    xt_assert_errmsg_has("NULL");
    XT_STATUS(XM_E_INVALID_ARGUMENT, xm_mapping_write_obj_volatile(m, NULL, size, 8));
    xt_assert_errmsg_has("NULL");
  }
  uint32_t v = 7;
  XT_OK(xm_mapping_write_obj_volatile(m, &v, sizeof v, 8));
  xm_mapping_free(m);
}

/* msync and sync_range of memory that cannot reach a file: XM_OK, and the file is unchanged. */
static void sync_without_a_file(void **state) {
  (void)state;
  unsigned char *data = xt_pattern(2 * page, 5, 1);
  xm_descriptor f = xt_temp_file(data, 2 * page, 1);
  xm_mapping *ms[4];
  ms[0] = xt_anon(2 * page);
  for (int i = 1; i < 4; i++) {
    xm_builder b = xm_builder_new(2 * page);
    xm_builder_from_file(&b, f);
    if (i == 1) xm_builder_private(&b);
    if (i == 2) xm_builder_protection(&b, XM_PROT_READ);
    if (i == 3) xm_builder_protection(&b, XM_PROT_NONE);
    XT_OK(xm_builder_build(&b, &ms[i]));
  }
  XT_OK(xm_mapping_write_slice(ms[1], "private!", 8, 100, NULL));
  /* valgrind reports msync of a no-access mapping as touching unaddressable bytes (the kernel
     syncs it all the same): that one is left out there. */
  for (int i = 0; i < (xt_under_valgrind() ? 3 : 4); i++) {
    XT_OK(xm_mapping_msync(ms[i]));
    XT_OK(xm_mapping_sync_range(ms[i], 0, 2 * page, XM_SYNC_SYNC));
    XT_OK(xm_mapping_sync_range(ms[i], 10, page, XM_SYNC_ASYNC));
    XT_OK(xm_region_msync(xm_mapping_region(ms[i]), 0, 2 * page));
  }
  unsigned char *got = malloc(2 * page);
  assert_non_null(got);
  xt_pread(f, got, 2 * page, 0);
  assert_memory_equal(got, data, 2 * page); /* nothing reached the file */
  for (int i = 0; i < 4; i++)
    xm_mapping_free(ms[i]);
  free(got);
  free(data);
  xt_close(f);
}

/* ---- 12. lock and unlock are symmetric ----------------------------------------------------- */
/* A "Name: N kB" line of /proc/self/status (VmLck, VmSize), or -1 where there is none. */
static long status_kib(const char *name) {
  FILE *f = fopen("/proc/self/status", "r");
  if (!f) return -1;
  char line[256];
  long kib = -1;
  size_t n = strlen(name);
  while (fgets(line, sizeof line, f))
    if (strncmp(line, name, n) == 0 && line[n] == ':' && sscanf(line + n + 1, "%ld", &kib) == 1) break;
  fclose(f);
  return kib;
}
static long locked_kib(void) { return status_kib("VmLck"); }

static void lock_unlock_symmetric(void **state) {
  (void)state;
  long before = locked_kib();
  if (before < 0) XT_SKIP("/proc/self/status has no VmLck line: locked memory cannot be observed here");
  const size_t len = 16 * page;
  xm_mapping *m = xt_anon(len);
  int rc = xm_mapping_lock_on_fault(m, 0, len);
  if (rc == XM_E_SYSTEM_CALL && (xm_os_error() == EPERM || xm_os_error() == ENOMEM || xm_os_error() == EAGAIN)) {
    char why[256];
    snprintf(why, sizeof why, "%s", xm_errmsg());
    xm_mapping_free(m);
    XT_SKIP("locking memory is refused here (RLIMIT_MEMLOCK): %s", why);
  }
  XT_OK(rc);
  memset(xm_mapping_ptr(m), 1, len); /* fault the pages in */
  long locked = locked_kib();
  if (locked < before + (long)(len / 1024)) {
    xm_mapping_unlock(m, 0, len);
    xm_mapping_free(m);
    XT_SKIP("VmLck went from %ld to %ld kB when %lu KiB were locked: locking is not reported here", before, locked,
            (unsigned long)(len / 1024));
  }
  XT_OK(xm_mapping_unlock(m, 0, len / 2));
  assert_int_equal(locked_kib(), locked - (long)(len / 2 / 1024));
  XT_OK(xm_mapping_unlock(m, 0, len));
  if (locked_kib() != before)
    print_message("VmLck: %ld kB before, %ld locked, %ld after unlock\n", before, locked, locked_kib());
  assert_int_equal(locked_kib(), before);
  /* and again, through the region's start, with an unaligned offset (the page is rounded) */
  XT_OK(xm_mapping_lock_on_fault(m, 100, page));
  XT_OK(xm_mapping_unlock(m, 100, page));
  assert_int_equal(locked_kib(), before);
  xm_mapping_free(m);
}

#ifndef _WIN32
/* ---- children forked before this process made any mapping or shm -------------------------- */
static xt_child emfile_result = {-1, ""}, rlimit_result = {-1, ""};

/* ---- 8. a transient failure is not cached ---------------------------------------------------- */
#define XT_MFD_CLOEXEC 0x1u
#define XT_MFD_ALLOW_SEALING 0x2u
#define XT_MFD_NOEXEC_SEAL 0x8u
#define XT_F_SEAL_EXEC 0x20

static int emfile_child(int out) {
#if defined(__linux__) && defined(SYS_memfd_create)
  /* the kernel's answer, asked directly (the library's probe must not run before its first call) */
  long probe = syscall(SYS_memfd_create, "probe", XT_MFD_CLOEXEC | XT_MFD_ALLOW_SEALING | XT_MFD_NOEXEC_SEAL);
  if (probe < 0)
    return xt_say(out, XT_CHILD_SKIP, "memfd_create refuses MFD_NOEXEC_SEAL here (errno %d): no exec seal to keep",
                  errno);
  close((int)probe);
  /* the lowest free descriptor becomes the limit: the next one fails with EMFILE */
  int lowest = dup(0);
  if (lowest < 0) return xt_say(out, 1, "dup: errno %d", errno);
  close(lowest);
  struct rlimit old, low;
  if (getrlimit(RLIMIT_NOFILE, &old) != 0) return xt_say(out, 2, "getrlimit: errno %d", errno);
  low = old;
  low.rlim_cur = (rlim_t)lowest;
  if (setrlimit(RLIMIT_NOFILE, &low) != 0)
    return xt_say(out, XT_CHILD_SKIP, "setrlimit(RLIMIT_NOFILE) refused: errno %d", errno);
  xm_shm *s = NULL;
  int rc = xm_shm_new("contract-emfile", page, &s);
  int e = xm_os_error();
  setrlimit(RLIMIT_NOFILE, &old);
  if (rc == XM_OK)
    return xt_say(out, XT_CHILD_SKIP, "xm_shm_new worked at the descriptor limit (this system ignores it)");
  if (rc != XM_E_SYSTEM_CALL || e != EMFILE)
    return xt_say(out, 3, "xm_shm_new at the descriptor limit: %d, errno %d (%s)", rc, e, xm_errmsg());
  /* the limit is gone: the next shm has the exec seal */
  rc = xm_shm_new("contract-after-emfile", page, &s);
  if (rc != XM_OK) return xt_say(out, 4, "xm_shm_new after the limit: %s", xm_errmsg());
  int seals = fcntl(xm_shm_descriptor(s), F_GET_SEALS);
  struct stat st;
  if (fstat(xm_shm_descriptor(s), &st) != 0) return xt_say(out, 5, "fstat: errno %d", errno);
  xm_shm_free(s);
  if (seals < 0 || !(seals & XT_F_SEAL_EXEC) || (st.st_mode & 0111) != 0)
    return xt_say(out, 6, "the shm made after an EMFILE lost its exec seal: seals 0x%x, mode 0%o", seals,
                  (unsigned)(st.st_mode & 0777));
  return xt_say(out, 0, "the exec seal survived an EMFILE at the first xm_shm_new");
#else
  return xt_say(out, XT_CHILD_SKIP, "no memfd_create here: no exec seal to keep");
#endif
}

static void transient_failure_not_cached(void **state) {
  (void)state;
  xt_assert_child_passed(&emfile_result);
}

/* ---- 9. placement falls back under RLIMIT_AS ---------------------------------------------- */
static int rlimit_as_child(int out) {
  const size_t mib = (size_t)1 << 20;
  long kib = status_kib("VmSize");
  if (kib < 0) return xt_say(out, XT_CHILD_SKIP, "/proc/self/status has no VmSize: the address-space use is unknown");
  struct rlimit rl;
  if (getrlimit(RLIMIT_AS, &rl) != 0) return xt_say(out, 1, "getrlimit: errno %d", errno);
  rl.rlim_cur = (rlim_t)kib * 1024 + 8 * mib;
  if (setrlimit(RLIMIT_AS, &rl) != 0)
    return xt_say(out, XT_CHILD_SKIP, "setrlimit(RLIMIT_AS) refused: errno %d", errno);
  void *p = mmap(NULL, 16 * mib, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p != MAP_FAILED) {
    munmap(p, 16 * mib);
    return xt_say(out, XT_CHILD_SKIP, "RLIMIT_AS is not enforced here: 16 MiB past a limit 8 MiB away were mapped");
  }
  p = mmap(NULL, 7 * mib, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return xt_say(out, XT_CHILD_SKIP, "a plain 7 MiB mmap fails under the limit: errno %d", errno);
  munmap(p, 7 * mib);
  xm_builder b = xm_builder_new(7 * mib);
  xm_mapping *m = NULL;
  int rc = xm_builder_build(&b, &m);
  if (rc != XM_OK) return xt_say(out, 2, "a 7 MiB build under RLIMIT_AS 8 MiB above the use: %s", xm_errmsg());
  unsigned char *q = xm_mapping_ptr(m);
  q[0] = 1;
  q[7 * mib - 1] = 2;
  xm_mapping_free(m);
  return xt_say(out, 0, "a 7 MiB mapping was built with RLIMIT_AS 8 MiB above the use");
}

static void placement_falls_back(void **state) {
  (void)state;
  if (rlimit_result.status == -1 && rlimit_result.msg[0]) XT_SKIP("%s", rlimit_result.msg);
  xt_assert_child_passed(&rlimit_result);
}
#endif

int main(int argc, char **argv) {
  page = xm_page_size();
  gran = xm_allocation_granularity();
  if (argc > 1) cmocka_set_test_filter(argv[1]);
#ifndef _WIN32
  /* First: nothing in this process has made a shm or a large mapping yet. */
  emfile_result = xt_run_child(emfile_child, 120);
#if defined(XT_SANITIZER)
  const bool sanitized = true;
#else
  const bool sanitized = false;
#endif
  if (sanitized)
    snprintf(rlimit_result.msg, sizeof rlimit_result.msg,
             "a sanitizer runtime reserves its shadow memory: an address-space limit near the use breaks it");
  else if (xt_under_valgrind())
    snprintf(rlimit_result.msg, sizeof rlimit_result.msg, "valgrind manages the address space itself");
  else
    rlimit_result = xt_run_child(rlimit_as_child, 120);
#endif
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(fixed_noreplace_edges),
      cmocka_unit_test(fixed_noreplace_exact_range),
      cmocka_unit_test(offset_past_off_t),
      cmocka_unit_test(shm_adopt_size_past_off_t),
#ifndef _WIN32
      cmocka_unit_test(shm_adopt_refuses_non_shm),
      cmocka_unit_test(to_end_of_file_without_a_size),
      cmocka_unit_test(transient_failure_not_cached),
      cmocka_unit_test(placement_falls_back),
#endif
      cmocka_unit_test(slices_need_read_access),
      cmocka_unit_test(volatile_null_object),
      cmocka_unit_test(sync_without_a_file),
      cmocka_unit_test(lock_unlock_symmetric),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
