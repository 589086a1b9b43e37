/* Shared test helpers for faults, on POSIX and Windows alike: probes that tell whether memory can
   be touched without faulting the test (a child process, or VirtualQuery), released ranges, and
   what fault-safe copy tests need (a patterned mapping, a file truncated under its mapping,
   whether SIGBUS reports its address here). */
#ifndef XMMAP_XMTEST_FAULTS_H
#define XMMAP_XMTEST_FAULTS_H

#include "xmtest.h"

#ifndef _WIN32
#include <signal.h>
#include <sys/wait.h>
#endif

/* valgrind reports every access that faults on memory it knows to be inaccessible as an invalid
   access, also one that a fault hook then fixes and retries, and the leg fails on any report: tests
   built on such retries skip there (the host-valgrind leg sets XMMAP_VALGRIND). */
#define XT_SKIP_IF_RETRIED_FAULTS_ARE_REPORTED()                                                                       \
  do {                                                                                                                 \
    if (xt_under_valgrind())                                                                                           \
      XT_SKIP("valgrind reports each deliberately faulting access, also one a hook fixes and retries, as an "          \
              "invalid access");                                                                                       \
  } while (0)

/* ---- fault-safe copies -------------------------------------------------------------------- */
/* A read-write anonymous mapping of size bytes, byte i being (i * 13 + 5) mod 256. */
static inline xm_mapping *xt_anon_patterned(size_t size) {
  xm_mapping *m = xt_anon(size);
  unsigned char *p = xm_mapping_ptr(m);
  for (size_t i = 0; i < size; i++)
    p[i] = (unsigned char)(i * 13 + 5);
  return m;
}

#ifndef _WIN32
/* A mapping of a 3-page file whose file is then truncated to 1 page: pages 1 and 2 are gone (a
   touch raises SIGBUS). NULL, with nothing left open, where that cannot be made. */
static inline xm_mapping *xt_truncated_file_mapping(size_t page, xm_descriptor *fd_out) {
  unsigned char *data = malloc(3 * page);
  if (!data) return NULL;
  for (size_t i = 0; i < 3 * page; i++)
    data[i] = (unsigned char)(i * 7 + 3);
  xm_descriptor fd = xt_temp_file(data, 3 * page, 1);
  free(data);
  xm_builder b = xm_builder_new(3 * page);
  xm_builder_from_file(&b, fd);
  xm_mapping *m = NULL;
  if (xm_builder_build(&b, &m) != XM_OK || ftruncate(fd, (off_t)page) != 0) {
    xm_mapping_free(m);
    xt_close(fd);
    return NULL;
  }
  *fd_out = fd;
  return m;
}

/* Whether SIGBUS reports the faulting address (si_addr) truthfully here: qemu-user 7.2 with a
   32-bit guest (i686, armhf) reports the host address truncated to 32 bits, which is off by its
   guest base, so no handler can tell where a SIGBUS hit. Probed with a handler of its own, before
   the library installs one; *seen and *expected say what was reported for which address. */
static sigjmp_buf xt_sigbus_env;
static uintptr_t xt_sigbus_seen;
static inline void xt_sigbus_probe_handler(int sig, siginfo_t *info, void *uc) {
  (void)sig;
  (void)uc;
  xt_sigbus_seen = (uintptr_t)info->si_addr;
  siglongjmp(xt_sigbus_env, 1);
}
static inline int xt_sigbus_reports_address(size_t page, uintptr_t *seen, uintptr_t *expected) {
  *seen = *expected = 0;
  xm_descriptor fd;
  xm_mapping *m = xt_truncated_file_mapping(page, &fd);
  if (!m) return 1;
  struct sigaction sa, old;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = xt_sigbus_probe_handler;
  sa.sa_flags = SA_SIGINFO;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGBUS, &sa, &old);
  unsigned char *target = (unsigned char *)xm_mapping_ptr(m) + 2 * page + 5;
  *expected = (uintptr_t)target;
  xt_sigbus_seen = 0;
  if (sigsetjmp(xt_sigbus_env, 1) == 0) xt_touch(target);
  sigaction(SIGBUS, &old, NULL);
  *seen = xt_sigbus_seen;
  xm_mapping_free(m);
  xt_close(fd);
  return *seen == *expected;
}
#endif

/* ---- faults, observed without faulting the test ------------------------------------------ */
#ifndef _WIN32
#define XT_CHILD_HUNG (-1)   /* the child neither died nor returned within 20 s */
#define XT_CHILD_FAILED (-2) /* the child exited with a non-zero status */
/* Reads (or writes) one byte at addr in a forked child and returns the signal that ended it, 0 if
   none. qemu-i386 7.2 can spin on a fault in a forked child instead of delivering it: a child that
   has not ended within 20 s is killed and reported as XT_CHILD_HUNG. */
static inline int xt_child_touch(volatile unsigned char *addr, int write) {
  fflush(NULL);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    signal(SIGSEGV, SIG_DFL); /* not cmocka's or a sanitizer's handler: the child dies of the fault */
    signal(SIGBUS, SIG_DFL);
    if (write)
      *addr = 1;
    else
      xt_touch(addr);
    _exit(0);
  }
  int status = 0;
  for (int waited_ms = 0; waitpid(pid, &status, WNOHANG) == 0; waited_ms += 10) {
    if (waited_ms >= 20000) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      return XT_CHILD_HUNG;
    }
    usleep(10000);
  }
  if (WIFSIGNALED(status)) return WTERMSIG(status);
  return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : XT_CHILD_FAILED;
}
#endif

/* Asserts that touching addr faults (a free or reserved page, or one made inaccessible). owner,
   the mapping addr lies in or next to, is freed before a skip. */
static inline void xt_assert_faults(xm_mapping *owner, void *addr) {
#ifdef _WIN32
  (void)owner; /* nothing here can skip */
  MEMORY_BASIC_INFORMATION mbi = xt_query(addr);
  if (mbi.State == MEM_COMMIT)
    assert_int_equal(mbi.Protect & 0xff, PAGE_NOACCESS);
  else
    assert_true(mbi.State == MEM_RESERVE || mbi.State == MEM_FREE);
#else
  int sig = xt_child_touch(addr, 0);
  if (sig == XT_CHILD_HUNG) {
    xm_mapping_free(owner);
    XT_SKIP("a faulting child process never ended here (qemu-i386 spins on the fault)");
  }
  assert_true(sig == SIGSEGV || sig == SIGBUS);
#endif
}

/* Asserts that addr can be read. */
static inline void xt_assert_accessible(xm_mapping *owner, void *addr) {
#ifdef _WIN32
  (void)owner;
  MEMORY_BASIC_INFORMATION mbi = xt_query(addr);
  assert_int_equal(mbi.State, MEM_COMMIT);
  assert_int_not_equal(mbi.Protect & 0xff, PAGE_NOACCESS);
#else
  int sig = xt_child_touch(addr, 0);
  if (sig == XT_CHILD_HUNG) {
    xm_mapping_free(owner);
    XT_SKIP("a child process never ended here (qemu-i386 spins on a fault)");
  }
  assert_int_equal(sig, 0);
#endif
}

/* Which of n units of unit bytes from base can be read: readable[k] for unit k, both of its ends
   read. Windows asks VirtualQuery; POSIX reads in a child process that catches the faults, so the
   test process never faults. */
#ifdef _WIN32
static inline int xt_readable_at(const unsigned char *p) {
  MEMORY_BASIC_INFORMATION mbi;
  if (VirtualQuery(p, &mbi, sizeof mbi) != sizeof mbi) return 0;
  if (mbi.State != MEM_COMMIT) return 0;
  return !(mbi.Protect & (PAGE_NOACCESS | PAGE_GUARD));
}
static inline void xt_probe_readable(const unsigned char *base, size_t unit, size_t n, unsigned char *readable) {
  for (size_t k = 0; k < n; k++)
    readable[k] = (unsigned char)(xt_readable_at(base + k * unit) && xt_readable_at(base + k * unit + unit - 1));
}
#else
static sigjmp_buf xt_probe_jump;
static inline void xt_probe_handler(int sig) {
  (void)sig;
  siglongjmp(xt_probe_jump, 1);
}
static inline void xt_probe_readable(const unsigned char *base, size_t unit, size_t n, unsigned char *readable) {
  int fds[2];
  assert_int_equal(pipe(fds), 0);
  fflush(NULL);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    close(fds[0]);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = xt_probe_handler;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, NULL);
    sigaction(SIGBUS, &sa, NULL);
    for (size_t k = 0; k < n; k++) {
      volatile unsigned char ok = 0; /* volatile: it must survive siglongjmp */
      if (sigsetjmp(xt_probe_jump, 1) == 0) {
        /* stored, not discarded: valgrind drops loads whose value is unused, volatile or not */
        xt_touch(base + k * unit);
        xt_touch(base + k * unit + unit - 1);
        ok = 1;
      }
      unsigned char result = ok;
      if (write(fds[1], &result, 1) != 1) _exit(2);
    }
    _exit(0);
  }
  close(fds[1]);
  size_t got = 0;
  while (got < n) {
    ssize_t r = read(fds[0], readable + got, n - got);
    if (r <= 0) break;
    got += (size_t)r;
  }
  close(fds[0]);
  int status = 0;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  /* Under valgrind the child's exit also reports the parent's heap it inherited. */
  assert_true(WIFEXITED(status) && (WEXITSTATUS(status) == 0 || xt_under_valgrind()));
  assert_int_equal(got, n);
}
#endif

/* After a free: nothing of [base, base + size) is mapped or reserved any more. */
static inline void xt_assert_released(const void *base, size_t size) {
  const uintptr_t lo = (uintptr_t)base, hi = lo + size;
#ifdef _WIN32
  for (uintptr_t p = lo; p < hi;) {
    MEMORY_BASIC_INFORMATION mbi = xt_query((const void *)p);
    if (mbi.State != MEM_FREE) print_message("still in use at %p: state 0x%lx\n", (void *)p, (unsigned long)mbi.State);
    assert_int_equal(mbi.State, MEM_FREE);
    p = (uintptr_t)mbi.BaseAddress + mbi.RegionSize;
  }
#else
  FILE *f = fopen("/proc/self/maps", "r");
  if (!f) return; /* no /proc here: nothing to look at */
  char line[512];
  int clean = 1;
  while (fgets(line, sizeof line, f)) {
    unsigned long long a, b;
    /* only what lies inside the range can be the freed object's: anything larger is somebody
       else's (a sanitizer's allocator, say) that took the freed addresses since */
    if (sscanf(line, "%llx-%llx", &a, &b) == 2 && a >= lo && b <= hi) {
      print_message("still mapped: %s", line);
      clean = 0;
    }
  }
  fclose(f);
  assert_true(clean);
#endif
}

#endif /* XMMAP_XMTEST_FAULTS_H */
