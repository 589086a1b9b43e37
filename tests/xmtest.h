/* Shared test helpers: cmocka, temporary files, shared memory, arenas, skip-with-reason, leak
   snapshots and failure walks, on POSIX and Windows alike (fault probes: xmtest_faults.h). Tests
   may use #ifdef _WIN32; the library's front end may not. */
#ifndef XMMAP_XMTEST_H
#define XMMAP_XMTEST_H

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "xmmap/xmmap.h"
#include "test/hooks.h" /* the library's test seam (the tests are built with XMMAP_TEST_HOOKS) */

#ifdef _WIN32
#define WIN32_LEAN_AND_MEAN
#include <windows.h>
#include <winioctl.h>
#else
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#endif

/* A descriptor no call accepts, the OS error it gives, and an error to inject. */
#ifdef _WIN32
#define XT_BAD_DESCRIPTOR NULL
#define XT_BAD_DESCRIPTOR_ERROR 6 /* ERROR_INVALID_HANDLE */
#define XT_INJECTED_ERROR 8       /* ERROR_NOT_ENOUGH_MEMORY */
#else
#define XT_BAD_DESCRIPTOR (-1)
#define XT_BAD_DESCRIPTOR_ERROR EBADF
#define XT_INJECTED_ERROR ENOMEM
#endif

/* A skipped test says why, from a feature probe, in its output. */
#define XT_SKIP(...)                                                                                                   \
  do {                                                                                                                 \
    print_message("[  SKIP    ] ");                                                                                    \
    print_message(__VA_ARGS__);                                                                                        \
    print_message("\n");                                                                                               \
    skip();                                                                                                            \
  } while (0)

/* Asserts a status and, on mismatch, shows the library's message. */
#define XT_STATUS(expected, call)                                                                                      \
  do {                                                                                                                 \
    int xt_rc_ = (call);                                                                                               \
    if (xt_rc_ != (expected))                                                                                          \
      print_message("%s -> %d (%s), expected %d\n", #call, xt_rc_, xm_errmsg(), (int)(expected));                      \
    assert_int_equal(xt_rc_, (expected));                                                                              \
  } while (0)
#define XT_OK(call) XT_STATUS(XM_OK, call)

static inline void xt_assert_errmsg_has(const char *needle) {
  const char *msg = xm_errmsg();
  if (!strstr(msg, needle)) print_message("xm_errmsg() = \"%s\" lacks \"%s\"\n", msg, needle);
  assert_non_null(strstr(msg, needle));
}

static inline xm_mapping *xt_anon(size_t size) {
  xm_builder b = xm_builder_new(size);
  xm_mapping *m = NULL;
  XT_OK(xm_builder_build(&b, &m));
  return m;
}

/* Builds b expecting the status expected before any OS call: nothing is made, out stays NULL. */
static inline void xt_build_refused_before_os(const xm_builder *b, int expected) {
  xm_mapping *m = NULL;
  xm__test_fail_nth(0, 0);
  XT_STATUS(expected, xm_builder_build(b, &m));
  assert_int_equal(xm__test_os_calls(), 0);
  assert_null(m);
}

/* Every byte of [offset, offset + len) of m, read through the checked accessor, is want; a
   mismatch names the first wrong byte's offset. */
static inline void xt_assert_bytes(const xm_mapping *m, size_t offset, size_t len, uint8_t want) {
  for (size_t i = offset; i < offset + len; i++) {
    uint8_t v = (uint8_t)~want;
    XT_OK(XM_READ_OBJ(m, i, &v));
    if (v != want) {
      print_message("byte at offset %lu is 0x%02x, expected 0x%02x\n", (unsigned long)i, v, want);
      assert_int_equal(i, SIZE_MAX);
    }
  }
}

/* A malloc'd buffer of len bytes, byte i being (i * mul + add) mod 256; the caller frees it. */
static inline unsigned char *xt_pattern(size_t len, unsigned mul, unsigned add) {
  unsigned char *p = malloc(len ? len : 1);
  assert_non_null(p);
  for (size_t i = 0; i < len; i++)
    p[i] = (unsigned char)(i * mul + add);
  return p;
}

/* Byte i of the position pattern: a function of the absolute position, so that any window of a
   patterned file or memory can be checked against it wherever it was mapped. */
static inline void xt_fill_position_pattern(unsigned char *buf, size_t len, uint64_t base) {
  for (size_t i = 0; i < len; i++)
    buf[i] = (unsigned char)(((base + i) * 7u + ((base + i) >> 12)) & 0xff);
}

/* How many rounds a repeated test runs: XMMAP_TEST_ROUNDS when set (valgrind runs threads one at a
   time, emulators are slow; the races that matter happen in the first rounds), else n. */
static inline int xt_rounds(int n) {
  const char *v = getenv("XMMAP_TEST_ROUNDS");
  int r = v ? atoi(v) : 0;
  return r > 0 ? r : n;
}

/* ---- shared memory ------------------------------------------------------------------------- */
static inline xm_shm *xt_shm(const char *name, uint64_t size) {
  xm_shm *shm = NULL;
  XT_OK(xm_shm_new(name, size, &shm));
  assert_non_null(shm);
  return shm;
}

/* size bytes of shm from offset, with protection prot. */
static inline xm_mapping *xt_map_shm(const xm_shm *shm, size_t size, uint64_t offset, xm_prot prot) {
  xm_builder b = xm_builder_new(size);
  xm_builder_from_shm(&b, shm);
  xm_builder_offset(&b, offset);
  xm_builder_protection(&b, prot);
  xm_mapping *m = NULL;
  XT_OK(xm_builder_build(&b, &m));
  return m;
}

/* ---- arenas --------------------------------------------------------------------------------- */
static inline xm_arena *xt_arena(size_t size) {
  xm_arena *a = NULL;
  XT_OK(xm_arena_new(size, &a));
  assert_non_null(a);
  return a;
}

static inline unsigned char *xt_arena_base(xm_arena *a) { return xm_region_ptr(xm_arena_region(a)); }

/* ---- threads ------------------------------------------------------------------------------- */
#ifdef _WIN32
#define XT_THREAD_RET DWORD WINAPI
typedef HANDLE xt_thread;
typedef LPTHREAD_START_ROUTINE xt_thread_fn;
static inline void xt_thread_start(xt_thread *t, xt_thread_fn fn, void *arg) {
  *t = CreateThread(NULL, 0, fn, arg, 0, NULL);
  assert_non_null(*t);
}
static inline void xt_thread_join(xt_thread t) {
  assert_int_equal(WaitForSingleObject(t, INFINITE), WAIT_OBJECT_0);
  CloseHandle(t);
}
#else
#define XT_THREAD_RET void *
typedef pthread_t xt_thread;
typedef void *(*xt_thread_fn)(void *);
static inline void xt_thread_start(xt_thread *t, xt_thread_fn fn, void *arg) {
  assert_int_equal(pthread_create(t, NULL, fn, arg), 0);
}
static inline void xt_thread_join(xt_thread t) { assert_int_equal(pthread_join(t, NULL), 0); }
#endif

/* Reads one byte for a fault probe. The value is stored, not discarded: valgrind skips a load
   whose value is unused, volatile or not. */
static inline unsigned char xt_touch(const volatile unsigned char *p) {
  static volatile unsigned char sink;
  sink = *p;
  return sink;
}

/* ---- temporary files ---------------------------------------------------------------------- */
#ifdef _WIN32
#define XT_NO_FILE NULL
static inline void xt_temp_path(wchar_t path[MAX_PATH]) {
  wchar_t dir[MAX_PATH];
  GetTempPathW(MAX_PATH, dir);
  GetTempFileNameW(dir, L"xmt", 0, path);
}
/* A temporary file holding len bytes of data, opened read-write (or read-only); deleted on close. */
static inline xm_descriptor xt_temp_file(const void *data, size_t len, int writable) {
  wchar_t path[MAX_PATH];
  xt_temp_path(path);
  HANDLE h = CreateFileW(path, GENERIC_READ | GENERIC_WRITE, FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE,
                         NULL, CREATE_ALWAYS, FILE_ATTRIBUTE_TEMPORARY, NULL);
  assert_true(h != INVALID_HANDLE_VALUE);
  DWORD done = 0;
  if (len) assert_true(WriteFile(h, data, (DWORD)len, &done, NULL) && done == len);
  if (!writable) {
    HANDLE ro = CreateFileW(path, GENERIC_READ, FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE, NULL,
                            OPEN_EXISTING, FILE_FLAG_DELETE_ON_CLOSE, NULL);
    assert_true(ro != INVALID_HANDLE_VALUE);
    CloseHandle(h);
    return ro;
  }
  CloseHandle(h);
  h = CreateFileW(path, GENERIC_READ | GENERIC_WRITE, FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE, NULL,
                  OPEN_EXISTING, FILE_FLAG_DELETE_ON_CLOSE, NULL);
  assert_true(h != INVALID_HANDLE_VALUE);
  return h;
}
static inline void xt_close(xm_descriptor d) { CloseHandle(d); }
/* Reads len bytes at offset through ordinary file I/O, not the mapping. */
static inline void xt_pread(xm_descriptor d, void *buf, size_t len, uint64_t offset) {
  OVERLAPPED ov;
  memset(&ov, 0, sizeof ov);
  ov.Offset = (DWORD)offset;
  ov.OffsetHigh = (DWORD)(offset >> 32);
  DWORD done = 0;
  assert_true(ReadFile(d, buf, (DWORD)len, &done, &ov));
  assert_int_equal(done, len);
}
#else
#define XT_NO_FILE (-1)
static inline xm_descriptor xt_temp_file(const void *data, size_t len, int writable) {
  const char *dir = getenv("TMPDIR");
  char path[512];
  snprintf(path, sizeof path, "%s/xmmap-test-XXXXXX", dir && *dir ? dir : "/tmp");
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  size_t done = 0;
  while (done < len) {
    ssize_t n = write(fd, (const char *)data + done, len - done);
    assert_true(n > 0);
    done += (size_t)n;
  }
  if (!writable) {
    int ro = open(path, O_RDONLY | O_CLOEXEC);
    assert_true(ro >= 0);
    close(fd);
    fd = ro;
  }
  unlink(path);
  return fd;
}
static inline void xt_close(xm_descriptor d) { close(d); }
static inline void xt_pread(xm_descriptor d, void *buf, size_t len, uint64_t offset) {
  assert_int_equal(pread(d, buf, len, (off_t)offset), (ssize_t)len);
}
#endif

/* A temporary file of len bytes of the position pattern, read-write or read-only; deleted on close. */
static inline xm_descriptor xt_pattern_file(size_t len, int writable) {
  unsigned char *data = malloc(len ? len : 1);
  assert_non_null(data);
  xt_fill_position_pattern(data, len, 0);
  xm_descriptor f = xt_temp_file(data, len, writable);
  free(data);
  return f;
}

/* The file's size, through the OS. */
static inline uint64_t xt_file_size(xm_descriptor d) {
#ifdef _WIN32
  LARGE_INTEGER li;
  assert_true(GetFileSizeEx(d, &li));
  return (uint64_t)li.QuadPart;
#else
  struct stat st;
  assert_int_equal(fstat(d, &st), 0);
  return (uint64_t)st.st_size;
#endif
}

/* A duplicate of d that the caller owns, as a descriptor received from elsewhere would be. */
static inline xm_descriptor xt_dup(xm_descriptor d) {
#ifdef _WIN32
  HANDLE h = NULL;
  assert_true(DuplicateHandle(GetCurrentProcess(), d, GetCurrentProcess(), &h, 0, FALSE, DUPLICATE_SAME_ACCESS));
  return h;
#else
  int fd = fcntl(d, F_DUPFD_CLOEXEC, 0);
  assert_true(fd >= 0);
  return fd;
#endif
}

/* d is close-on-exec / not inheritable by child processes. */
static inline void xt_assert_not_inherited(xm_descriptor d) {
#ifdef _WIN32
  DWORD flags = 0xffffffffu;
  assert_true(GetHandleInformation(d, &flags));
  assert_int_equal(flags & HANDLE_FLAG_INHERIT, 0);
#else
  int flags = fcntl(d, F_GETFD);
  assert_true(flags >= 0);
  assert_true(flags & FD_CLOEXEC);
#endif
}

/* What the arena maps for a file: the file itself on POSIX, a section of it on Windows; given back
   with xt_release_arena_descriptor (which closes only the section). */
static inline xm_descriptor xt_arena_descriptor(xm_descriptor file, int writable) {
#ifdef _WIN32
  HANDLE s = CreateFileMappingW(file, NULL, writable ? PAGE_READWRITE : PAGE_READONLY, 0, 0, NULL);
  assert_non_null(s);
  return s;
#else
  (void)writable;
  return file;
#endif
}
static inline void xt_release_arena_descriptor(xm_descriptor d) {
#ifdef _WIN32
  CloseHandle(d);
#else
  (void)d;
#endif
}

/* Makes [p, p + len) inaccessible, or read-write again, behind the library's back. */
static inline void xt_raw_protect(void *p, size_t len, int accessible) {
#ifdef _WIN32
  DWORD old;
  assert_true(VirtualProtect(p, len, accessible ? PAGE_READWRITE : PAGE_NOACCESS, &old));
#else
  assert_int_equal(mprotect(p, len, accessible ? PROT_READ | PROT_WRITE : PROT_NONE), 0);
#endif
}

#ifdef _WIN32
/* What VirtualQuery says of the page at p. */
static inline MEMORY_BASIC_INFORMATION xt_query(const void *p) {
  MEMORY_BASIC_INFORMATION mbi;
  memset(&mbi, 0, sizeof mbi);
  assert_int_equal(VirtualQuery(p, &mbi, sizeof mbi), sizeof mbi);
  return mbi;
}
#endif

/* ---- leak snapshots: mappings and descriptors/handles the process holds ------------------- */
typedef struct xt_snapshot {
  long mappings;
  long handles;
} xt_snapshot;

#ifdef _WIN32
static inline xt_snapshot xt_snap(void) {
  xt_snapshot s = {0, xm__test_open_handles()};
  MEMORY_BASIC_INFORMATION mbi;
  unsigned char *p = NULL;
  while (VirtualQuery(p, &mbi, sizeof mbi) == sizeof mbi) {
    if (mbi.State != MEM_FREE) s.mappings++;
    p = (unsigned char *)mbi.BaseAddress + mbi.RegionSize;
    if ((uintptr_t)p < (uintptr_t)mbi.BaseAddress) break;
  }
  return s;
}
#else
static inline xt_snapshot xt_snap(void) {
  xt_snapshot s = {0, 0};
  FILE *f = fopen("/proc/self/maps", "r");
  if (f) {
    int c;
    while ((c = fgetc(f)) != EOF)
      if (c == '\n') s.mappings++;
    fclose(f);
  }
  DIR *d = opendir("/proc/self/fd");
  if (d) {
    while (readdir(d))
      s.handles++;
    closedir(d);
  }
  return s;
}
#endif

/* Mapping counts are compared only where they mean something: valgrind lists its own mappings in
   /proc/self/maps as it translates code (the host-valgrind leg sets XMMAP_VALGRIND=1), and a
   sanitizer's allocator maps memory as the program allocates (ASan's quarantine keeps freed blocks
   from being reused). There only descriptors and handles are compared; the plain legs compare
   both. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define XT_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define XT_SANITIZER 1
#endif
#endif
static inline int xt_under_valgrind(void) {
  const char *v = getenv("XMMAP_VALGRIND");
  return v && *v && strcmp(v, "0") != 0;
}
static inline int xt_mappings_comparable(void) {
#ifdef XT_SANITIZER
  return 0;
#else
  return !xt_under_valgrind();
#endif
}

static inline void xt_assert_same(xt_snapshot before, xt_snapshot after) {
  if (!xt_mappings_comparable()) after.mappings = before.mappings;
  if (before.mappings != after.mappings || before.handles != after.handles)
    print_message("leak: mappings %ld -> %ld, handles %ld -> %ld\n", before.mappings, after.mappings, before.handles,
                  after.handles);
  assert_int_equal(before.mappings, after.mappings);
  assert_int_equal(before.handles, after.handles);
}

static inline void xt_assert_no_leak(xt_snapshot before) { xt_assert_same(before, xt_snap()); }

/* ---- failure walks ------------------------------------------------------------------------- */
/* Fails each OS call of make in turn through the test seam, n = 1, 2, ...: every failure must give
   XM_E_SYSTEM_CALL with the injected error, write no object and leak nothing against before; the
   walk ends when make needs fewer calls than n, after at least one failure point. make returns
   its status and stores what it made (or NULL) in *out; destroy frees that. */
static inline void xt_walk_make_failures(int (*make)(void **out), void (*destroy)(void *obj), xt_snapshot before) {
  for (long n = 1;; n++) {
    void *obj = NULL;
    xm__test_fail_nth(n, XT_INJECTED_ERROR);
    int rc = make(&obj);
    long calls = xm__test_os_calls();
    xm__test_fail_nth(0, 0);
    if (rc == XM_OK) {
      destroy(obj);
      assert_true(calls < n);
      assert_true(n > 1); /* at least one failure point was walked */
      break;
    }
    assert_int_equal(rc, XM_E_SYSTEM_CALL);
    assert_int_equal(xm_os_error(), XT_INJECTED_ERROR);
    assert_null(obj);
    xt_assert_no_leak(before);
  }
}

/* cmocka_run_group_tests after a first snapshot: that one allocates (stdio, opendir), which under
   ASan maps memory that a test's own first snapshot must not count. */
#define XT_RUN_TESTS_AFTER_A_SNAPSHOT(tests) ((void)xt_snap(), cmocka_run_group_tests(tests, NULL, NULL))

/* ---- children: a check that needs a process of its own (a limit it lowers, a first call of
   the process) runs in a forked child and reports through a pipe: its exit status and one line.
   The child must not use cmocka's asserts (they would run the rest of the tests in it). ---- */
#ifndef _WIN32
#include <signal.h>

/* cmocka swaps its own SIGSEGV/SIGBUS handlers in around every test: a test that needs the
   library's puts it back with xt_own_fault_signals(), after main() captured it with
   xt_capture_library_handler() (a first safe copy makes the library install it). */
static inline struct sigaction *xt_library_handlers(void) {
  static struct sigaction handlers[2]; /* SIGBUS, SIGSEGV */
  return handlers;
}
static inline int xt_capture_library_handler(void) {
  xm_mapping *m = xt_anon(4096);
  unsigned char byte;
  size_t copied;
  int rc = xm_mapping_read_slice_safe(m, &byte, 1, 0, &copied);
  xm_mapping_free(m);
  sigaction(SIGBUS, NULL, &xt_library_handlers()[0]);
  sigaction(SIGSEGV, NULL, &xt_library_handlers()[1]);
  return rc;
}
static inline void xt_own_fault_signals(void) {
  sigaction(SIGBUS, &xt_library_handlers()[0], NULL);
  sigaction(SIGSEGV, &xt_library_handlers()[1], NULL);
}
#include <sys/wait.h>
#define XT_CHILD_SKIP 77 /* the child's exit status for "cannot run here"; its line says why */
typedef struct xt_child {
  int status; /* waitpid's; -1 when no child ran */
  char msg[512];
} xt_child;

/* Writes the child's line to out; returns code, for `return xt_say(out, code, ...)`. */
static inline int xt_say(int out, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static inline int xt_say(int out, int code, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  ssize_t w = write(out, msg, strlen(msg));
  (void)w;
  return code;
}

/* Runs body(out) in a forked child; one still running after seconds is killed (status SIGKILL). */
static inline xt_child xt_run_child(int (*body)(int out), int seconds) {
  xt_child c = {-1, ""};
  int p[2];
  if (pipe(p) != 0) return c;
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) {
    close(p[0]);
    close(p[1]);
    return c;
  }
  if (pid == 0) {
    close(p[0]);
    _exit(body(p[1]));
  }
  close(p[1]);
  pid_t w = 0;
  for (int i = 0; i < seconds * 10 && w == 0; i++) {
    w = waitpid(pid, &c.status, WNOHANG);
    if (w == 0) usleep(100000);
  }
  if (w == 0) {
    kill(pid, SIGKILL);
    waitpid(pid, &c.status, 0);
  }
  ssize_t len = read(p[0], c.msg, sizeof c.msg - 1);
  c.msg[len > 0 ? len : 0] = '\0';
  close(p[0]);
  if (w == 0) {
    size_t used = strlen(c.msg);
    snprintf(c.msg + used, sizeof c.msg - used, " (killed: still running after %d s)", seconds);
  }
  return c;
}

/* Whether threads (the main one among them) resume after their SIGSEGV handler fixed the fault and
   returned, also when they fault at the same time: qemu-i386 7.2 loses such faults (it spins, or
   kills the process), even without the library (and it spins on any fault in a forked child).
   Probed once per process in a child with a raw handler, as the library's flags; a child that does
   not finish within 5 s, or dies, is the answer "no". */
static inline void xt_resume_probe_handler(int sig, siginfo_t *info, void *uc) {
  (void)sig;
  (void)uc;
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  mprotect((void *)((uintptr_t)info->si_addr & ~(uintptr_t)(page - 1)), page, PROT_READ | PROT_WRITE);
}
static inline void *xt_resume_probe_faults(void *arg) {
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  for (int round = 0; round < 200; round++) {
    mprotect(arg, page, PROT_NONE);
    ((volatile unsigned char *)arg)[0] = (unsigned char)round;
  }
  return NULL;
}
/* Another thread replaces mappings meanwhile (an arena's changes). */
static inline void *xt_resume_probe_remaps(void *arg) {
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  for (int round = 0; round < 200; round++) {
    void *q = mmap(arg, page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    if (q == MAP_FAILED) return NULL;
    ((volatile unsigned char *)q)[0] = (unsigned char)round;
  }
  return NULL;
}
static inline int xt_resume_probe_child(int out) {
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  unsigned char *p = mmap(NULL, 4 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return xt_say(out, 1, "mmap failed");
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = xt_resume_probe_handler;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESTART | SA_NODEFER; /* the library's */
  sigaction(SIGSEGV, &sa, NULL);
  pthread_t t[3];
  for (int i = 0; i < 3; i++)
    if (pthread_create(&t[i], NULL, i == 2 ? xt_resume_probe_remaps : xt_resume_probe_faults,
                       p + (size_t)(i + 1) * page) != 0)
      return xt_say(out, 2, "pthread_create failed");
  xt_resume_probe_faults(p);
  for (int i = 0; i < 3; i++)
    pthread_join(t[i], NULL);
  return xt_say(out, 0, "threads resumed after their faults were fixed");
}
static inline bool xt_threads_resume_after_faults(void) {
  static int known = -1;
  if (known < 0) {
    xt_child c = xt_run_child(xt_resume_probe_child, 5);
    known = c.status != -1 && WIFEXITED(c.status) && WEXITSTATUS(c.status) == 0;
  }
  return known == 1;
}
#define XT_SKIP_UNLESS_THREADS_RESUME_AFTER_FAULTS()                                                                   \
  do {                                                                                                                 \
    if (!xt_threads_resume_after_faults())                                                                             \
      XT_SKIP("a thread's fault, fixed by its handler, never resumed here even without the library (qemu-i386 7.2 "    \
              "spins on it)");                                                                                         \
  } while (0)

/* Passes (printing the child's line), skips with the child's reason, or fails with its line. */
static inline void xt_assert_child_passed(const xt_child *c) {
  if (c->status == -1) fail_msg("the child could not be started");
  if (WIFEXITED(c->status) && WEXITSTATUS(c->status) == XT_CHILD_SKIP) XT_SKIP("%s", c->msg);
  if (WIFSIGNALED(c->status)) fail_msg("the child died of signal %d: %s", WTERMSIG(c->status), c->msg);
  if (WEXITSTATUS(c->status) != 0) fail_msg("the child failed at step %d: %s", WEXITSTATUS(c->status), c->msg);
  print_message("%s\n", c->msg);
}
#else
#define XT_SKIP_UNLESS_THREADS_RESUME_AFTER_FAULTS() ((void)0)
#endif

#endif /* XMMAP_XMTEST_H */
