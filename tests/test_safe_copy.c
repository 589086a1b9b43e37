/* Fault-safe copies: a fault inside the mapping gives XM_E_FAULT with its offset instead of
   killing the process; faults anywhere else behave as without the library (chained handlers,
   default death). POSIX: a file truncated under its mapping (SIGBUS) and a page made inaccessible
   behind the library's back (SIGSEGV); Windows: a PAGE_NOACCESS page (Windows refuses to shrink a
   mapped file; Wine raises an access violation where Windows raises EXCEPTION_IN_PAGE_ERROR). */
#include "xmtest.h"

#ifdef _WIN32
#else
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#endif

static size_t page;

/* A read-write anonymous mapping of n pages filled with a pattern. */
static xm_mapping *patterned(size_t pages) {
  xm_mapping *m = xt_anon(pages * page);
  unsigned char *p = xm_mapping_ptr(m);
  for (size_t i = 0; i < pages * page; i++) p[i] = (unsigned char)(i * 13 + 5);
  return m;
}

static void expect_fault_at(size_t offset) {
  char want[64];
  snprintf(want, sizeof want, "faulted at offset %zu ", offset);
  xt_assert_errmsg_has(want);
  xt_assert_errmsg_has("memory access faulted");
  assert_int_equal(xm_os_error(), 0);
}

/* Makes one page of m inaccessible, or accessible again, behind the library's back. */
static void page_access(xm_mapping *m, size_t index, int accessible) {
  unsigned char *p = (unsigned char *)xm_mapping_ptr(m) + index * page;
#ifdef _WIN32
  DWORD old;
  assert_true(VirtualProtect(p, page, accessible ? PAGE_READWRITE : PAGE_NOACCESS, &old));
#else
  assert_int_equal(mprotect(p, page, accessible ? PROT_READ | PROT_WRITE : PROT_NONE), 0);
#endif
}

#ifndef _WIN32
/* ---- POSIX: the handler and cmocka -----------------------------------------------------------
   cmocka swaps its own SIGSEGV/SIGBUS handler in around every test (with signal(), which also
   drops SA_SIGINFO when it puts the previous one back) and so replaces the library's handler, as
   any program that installs a handler after the library's would. Each test that needs faults
   recovered puts the library's handler back first; it is captured in main() right after the
   library installed it. */
static struct sigaction lib_sigbus, lib_sigsegv;
static void own_fault_signals(void) {
  sigaction(SIGBUS, &lib_sigbus, NULL);
  sigaction(SIGSEGV, &lib_sigsegv, NULL);
}

/* Whether SIGBUS reports the faulting address (si_addr) truthfully here: qemu-user 7.2 with a
   32-bit guest (i686, armhf) reports the host address truncated to 32 bits, which is off by its
   guest base, so no handler can tell where a SIGBUS hit. The SIGBUS checks then skip or let
   SIGSEGV stand in, with that reason (SIGSEGV reports are right there). */
static int sigbus_addr_ok = 1;
static uintptr_t sigbus_addr_seen, sigbus_addr_expected;
static sigjmp_buf probe_env;
static void probe_bus_handler(int sig, siginfo_t *info, void *uc) {
  (void)sig;
  (void)uc;
  sigbus_addr_seen = (uintptr_t)info->si_addr;
  siglongjmp(probe_env, 1);
}

/* A mapping of a 3-page file whose file is then truncated to 1 page: pages 1 and 2 are gone. */
static xm_mapping *truncated_file_mapping(xm_descriptor *fd_out) {
  unsigned char *data = malloc(3 * page);
  if (!data) return NULL;
  for (size_t i = 0; i < 3 * page; i++) data[i] = (unsigned char)(i * 7 + 3);
  xm_descriptor fd = xt_temp_file(data, 3 * page, 1);
  free(data);
  xm_builder b = xm_builder_new(3 * page);
  xm_builder_from_file(&b, fd);
  xm_mapping *m = NULL;
  if (xm_builder_build(&b, &m) != XM_OK || ftruncate(fd, (off_t)page) != 0) { /* nothing is left open */
    xm_mapping_free(m);
    xt_close(fd);
    return NULL;
  }
  *fd_out = fd;
  return m;
}

/* Runs before the library's handler exists in this process. */
static void probe_sigbus_address(void) {
  xm_descriptor fd;
  xm_mapping *m = truncated_file_mapping(&fd);
  if (!m) return;
  struct sigaction sa, old;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = probe_bus_handler;
  sa.sa_flags = SA_SIGINFO;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGBUS, &sa, &old);
  unsigned char *target = (unsigned char *)xm_mapping_ptr(m) + 2 * page + 5;
  sigbus_addr_expected = (uintptr_t)target;
  if (sigsetjmp(probe_env, 1) == 0) xt_touch(target);
  sigaction(SIGBUS, &old, NULL);
  sigbus_addr_ok = sigbus_addr_seen == sigbus_addr_expected;
  xm_mapping_free(m);
  xt_close(fd);
}

/* ---- children that must die: forked in main() before the library installed its handler in this
   process, so that each child installs it over the disposition it sets up itself. Two control
   children without the library show whether the platform delivers such faults to a forked child
   at all (qemu-i386 7.2 spins forever on any fault in a forked child). */
enum child_kind {
  CHILD_CONTROL_SIGSEGV, /* no library: a raw SIGSEGV kills the child */
  CHILD_CONTROL_SIGBUS,  /* no library: a raw SIGBUS kills the child */
  CHILD_DEFAULT_SIGBUS,  /* SIG_DFL under the library: a raw touch of a gone page still kills */
  CHILD_IGNORED_SIGSEGV, /* SIG_IGN under the library: a fault cannot be ignored, it kills */
  CHILD_BUFFER_FAULT,    /* a fault on the caller's side of a safe copy is not recovered */
  CHILD_COUNT
};
#define CHILD_HUNG (-2) /* the status of a child killed after it neither died nor returned */
static int child_status[CHILD_COUNT];
static const char *const child_names[CHILD_COUNT] = {"control SIGSEGV", "control SIGBUS", "default SIGBUS",
                                                     "ignored SIGSEGV", "caller's buffer"};
static int faults_in_children_ok = 1, sigbus_in_children_ok = 1;
#define SIGBUS_IN_CHILDREN (sigbus_addr_ok && sigbus_in_children_ok)

/* The child's body; returning at all is wrong (the exit status, 100 + the value, says where it
   survived). */
/* Children die holding their mappings: kept reachable, so that valgrind does not call them lost. */
static xm_mapping *child_objects[4];
static xm_mapping *kept(xm_mapping *m) {
  for (size_t i = 0; i < sizeof child_objects / sizeof child_objects[0]; i++)
    if (!child_objects[i]) return child_objects[i] = m;
  return m;
}

static int child_main(enum child_kind kind) {
  xm_descriptor fd;
  unsigned char buf[64];
  size_t copied;
  switch (kind) {
  case CHILD_CONTROL_SIGSEGV: {
    xm_mapping *m = kept(xt_anon(page));
    if (mprotect(xm_mapping_ptr(m), page, PROT_NONE) != 0) return 10;
    xt_touch(xm_mapping_ptr(m));
    return 11;
  }
  case CHILD_CONTROL_SIGBUS: {
    xm_mapping *m = kept(truncated_file_mapping(&fd));
    if (!m) return 20;
    xt_touch(((unsigned char *)xm_mapping_ptr(m) + 2 * page));
    return 21;
  }
  case CHILD_DEFAULT_SIGBUS: {
    if (!SIGBUS_IN_CHILDREN) { /* SIGSEGV stands in */
      xm_mapping *m = kept(xt_anon(2 * page));
      if (mprotect(xm_mapping_ptr(m), page, PROT_NONE) != 0) return 30;
      if (xm_mapping_read_slice_safe(m, buf, sizeof buf, 0, &copied) != XM_E_FAULT) return 31;
      xt_touch(xm_mapping_ptr(m));
      return 32;
    }
    xm_mapping *m = kept(truncated_file_mapping(&fd));
    if (!m) return 33;
    if (xm_mapping_read_slice_safe(m, buf, sizeof buf, 2 * page, &copied) != XM_E_FAULT) return 34;
    xt_touch(((unsigned char *)xm_mapping_ptr(m) + 2 * page));
    return 35;
  }
  case CHILD_IGNORED_SIGSEGV: {
    signal(SIGSEGV, SIG_IGN);
    xm_mapping *m = kept(xt_anon(2 * page));
    if (mprotect(xm_mapping_ptr(m), page, PROT_NONE) != 0) return 40;
    if (xm_mapping_read_slice_safe(m, buf, sizeof buf, 0, &copied) != XM_E_FAULT) return 41;
    xt_touch(xm_mapping_ptr(m));
    return 42;
  }
  case CHILD_BUFFER_FAULT: {
    xm_mapping *m = kept(xt_anon(2 * page));
    xm_mapping *bad = kept(xt_anon(page));
    if (mprotect(xm_mapping_ptr(bad), page, PROT_NONE) != 0) return 50;
    (void)xm_mapping_read_slice_safe(m, xm_mapping_ptr(bad), page, 0, &copied);
    return 51;
  }
  default:
    return 99;
  }
}

/* Waits up to seconds for the child; a child that hangs is killed and reported as CHILD_HUNG. */
static int wait_child(pid_t pid, int seconds) {
  int status = -1;
  for (int i = 0; i < seconds * 50; i++) {
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) return status;
    if (r < 0) return -1;
    usleep(20000);
  }
  kill(pid, SIGKILL);
  waitpid(pid, &status, 0);
  return CHILD_HUNG;
}

static void run_children(void) {
  for (int k = 0; k < CHILD_COUNT; k++) {
    if (!faults_in_children_ok) break;
    if (k == CHILD_CONTROL_SIGBUS && !sigbus_addr_ok) continue;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) _exit(100 + child_main((enum child_kind)k)); /* 100..199: the child survived */
    child_status[k] = pid > 0 ? wait_child(pid, k <= CHILD_CONTROL_SIGBUS ? 10 : 60) : -1;
    if (k == CHILD_CONTROL_SIGSEGV && child_status[k] == CHILD_HUNG) faults_in_children_ok = 0;
    if (k == CHILD_CONTROL_SIGBUS && child_status[k] == CHILD_HUNG) sigbus_in_children_ok = 0;
  }
}

/* The status a child that must die of sig shows: the signal itself, unless a sanitizer's handler
   was there before the library (it reports the fault and exits or aborts instead). */
#if defined(__SANITIZE_ADDRESS__)
#define XT_SANITIZER_HANDLES_FAULTS 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || __has_feature(memory_sanitizer)
#define XT_SANITIZER_HANDLES_FAULTS 1
#endif
#endif
#ifndef XT_SANITIZER_HANDLES_FAULTS
#define XT_SANITIZER_HANDLES_FAULTS 0
#endif

static void assert_child_died_of(enum child_kind k, int sig) {
  int st = child_status[k];
  if (st == CHILD_HUNG)
    print_message("child \"%s\" hung (killed after its time)\n", child_names[k]);
  else if (WIFEXITED(st))
    print_message("child \"%s\" exited with %d\n", child_names[k], WEXITSTATUS(st));
  else if (WIFSIGNALED(st))
    print_message("child \"%s\" died of signal %d\n", child_names[k], WTERMSIG(st));
  assert_true(st != -1 && st != CHILD_HUNG);
  if (XT_SANITIZER_HANDLES_FAULTS) {
    assert_false(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    if (WIFEXITED(st)) assert_true(WEXITSTATUS(st) < 100 || WEXITSTATUS(st) > 199); /* the sanitizer's exit */
  } else {
    assert_true(WIFSIGNALED(st));
    assert_int_equal(WTERMSIG(st), sig);
  }
}

static void fault_elsewhere_kills(void **state) {
  (void)state;
  if (!faults_in_children_ok)
    XT_SKIP("a fault in a forked child is never delivered here, even without the library (qemu-i386 "
            "7.2 spins on it): the child checks cannot run");
  assert_child_died_of(CHILD_CONTROL_SIGSEGV, SIGSEGV);
  if (!sigbus_addr_ok)
    print_message("SIGBUS reports si_addr %p for a fault at %p here (qemu-user with a 32-bit guest): "
                  "SIGSEGV stands in for it\n", (void *)sigbus_addr_seen, (void *)sigbus_addr_expected);
  else if (!sigbus_in_children_ok)
    print_message("a SIGBUS in a forked child is never delivered here: SIGSEGV stands in for it\n");
  else
    assert_child_died_of(CHILD_CONTROL_SIGBUS, SIGBUS);
  assert_child_died_of(CHILD_DEFAULT_SIGBUS, SIGBUS_IN_CHILDREN ? SIGBUS : SIGSEGV);
  assert_child_died_of(CHILD_IGNORED_SIGSEGV, SIGSEGV);
  assert_child_died_of(CHILD_BUFFER_FAULT, SIGSEGV);
}

/* ---- chained handlers, in this process: installed before the library's handler, they still
   get every fault that is not a safe copy's. Run from main() before anything installs the
   library's handler; the result is checked by the chained_handlers test. */
static sigjmp_buf chained_env;
static volatile sig_atomic_t chained_segv, chained_bus;
static void *volatile chained_addr;
static void chained_segv_handler(int sig, siginfo_t *info, void *uc) {
  (void)sig;
  (void)uc;
  chained_segv++;
  chained_addr = info->si_addr;
  siglongjmp(chained_env, 1);
}
static void chained_bus_handler(int sig) { /* a plain (non-SA_SIGINFO) handler */
  (void)sig;
  chained_bus++;
  siglongjmp(chained_env, 1);
}

static int chained_result = -1;
static int chained_steps(void) {
  xm_descriptor fd;
  unsigned char buf[64];
  size_t copied;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = chained_segv_handler;
  sa.sa_flags = SA_SIGINFO;
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGSEGV, &sa, NULL) != 0) return 1;
  sa.sa_handler = chained_bus_handler;
  sa.sa_flags = 0;
  if (sigaction(SIGBUS, &sa, NULL) != 0) return 2;
  xm_mapping *gone = truncated_file_mapping(&fd);
  xm_mapping *m = xt_anon(2 * page);
  if (!gone || !m || mprotect((unsigned char *)xm_mapping_ptr(m) + page, page, PROT_NONE) != 0) return 3;
  /* the safe copies recover their own faults (the first one installs the library's handler) */
  if (xm_mapping_read_slice_safe(m, buf, sizeof buf, page, &copied) != XM_E_FAULT) return 4;
  if (sigbus_addr_ok && xm_mapping_read_slice_safe(gone, buf, sizeof buf, 2 * page, &copied) != XM_E_FAULT)
    return 5;
  if (chained_segv || chained_bus) return 6;
  /* a raw SIGSEGV elsewhere reaches the SA_SIGINFO handler with its address */
  unsigned char *target = (unsigned char *)xm_mapping_ptr(m) + page + 8;
  if (sigsetjmp(chained_env, 1) == 0) xt_touch(target);
  if (chained_segv != 1 || chained_addr != target) return 7;
  /* a raw SIGBUS elsewhere reaches the plain handler */
  if (sigsetjmp(chained_env, 1) == 0) xt_touch((unsigned char *)xm_mapping_ptr(gone) + page);
  if (chained_bus != 1) return 8;
  /* and the library still recovers its own afterwards */
  if (xm_mapping_write_slice_safe(m, buf, sizeof buf, page, &copied) != XM_E_FAULT) return 9;
  if (chained_segv != 1 || chained_bus != 1) return 10;
  xm_mapping_free(m);
  xm_mapping_free(gone);
  xt_close(fd);
  return 0;
}

static void chained_handlers(void **state) {
  (void)state;
  if (chained_result != 0) print_message("chained handlers: step %d failed\n", chained_result);
  assert_int_equal(chained_result, 0);
}

/* A file truncated under its mapping: SIGBUS on the pages past the end. */
static void truncated_file(void **state) {
  (void)state;
  if (!sigbus_addr_ok)
    XT_SKIP("SIGBUS si_addr is %p for a fault at %p: this emulator reports host addresses (qemu-user "
            "with a 32-bit guest), so no handler can place a SIGBUS", (void *)sigbus_addr_seen,
            (void *)sigbus_addr_expected);
  own_fault_signals();
  xm_descriptor fd;
  xm_mapping *m = truncated_file_mapping(&fd);
  assert_non_null(m);
  unsigned char *buf = malloc(3 * page);
  assert_non_null(buf);
  size_t copied = 12345;
  XT_STATUS(XM_E_FAULT, xm_mapping_read_slice_safe(m, buf, page, 2 * page, &copied));
  expect_fault_at(2 * page);
  assert_int_equal(copied, 12345); /* out-parameters are written only on success */
  /* page 0 is still there */
  XT_OK(xm_mapping_read_slice_safe(m, buf, page, 0, &copied));
  assert_int_equal(copied, page);
  for (size_t i = 0; i < page; i++) assert_int_equal(buf[i], (unsigned char)(i * 7 + 3));
  /* a copy that starts in page 0 stops where the file ends */
  XT_STATUS(XM_E_FAULT, xm_mapping_read_slice_safe(m, buf, 2 * page, page / 2, &copied));
  expect_fault_at(page);
  char want[96];
  snprintf(want, sizeof want, "read of %zu bytes at offset %zu faulted", 2 * page, page / 2);
  xt_assert_errmsg_has(want);
  XT_STATUS(XM_E_FAULT, xm_mapping_write_slice_safe(m, buf, 16, page + 3, &copied));
  expect_fault_at(page + 3);
  xt_assert_errmsg_has("write of 16 bytes at offset");
  /* the clamped count: a copy reaching past the end is cut at the mapping's end, then faults */
  XT_STATUS(XM_E_FAULT, xm_mapping_read_slice_safe(m, buf, 10 * page, 2 * page + 1, &copied));
  expect_fault_at(2 * page + 1);
  XT_OK(xm_mapping_write_slice_safe(m, buf, 10, page - 10, &copied));
  assert_int_equal(copied, 10);
  free(buf);
  xm_mapping_free(m);
  xt_close(fd);
}
#else
/* ---- Windows: another vectored handler sees every fault the library does not take ---------- */
static volatile LONG chained_calls;
static void *volatile chained_page;
static LONG CALLBACK chained_veh(EXCEPTION_POINTERS *ep) {
  EXCEPTION_RECORD *r = ep->ExceptionRecord;
  if (r->ExceptionCode != EXCEPTION_ACCESS_VIOLATION || r->NumberParameters < 2 || !chained_page)
    return EXCEPTION_CONTINUE_SEARCH;
  uintptr_t addr = (uintptr_t)r->ExceptionInformation[1], p = (uintptr_t)chained_page;
  if (addr < p || addr - p >= 4096) return EXCEPTION_CONTINUE_SEARCH;
  /* make the page accessible again and let the instruction run once more */
  DWORD old;
  VirtualProtect(chained_page, 4096, PAGE_READWRITE, &old);
  InterlockedIncrement(&chained_calls);
  return EXCEPTION_CONTINUE_EXECUTION;
}

static void chained_handlers(void **state) {
  (void)state;
  xm_mapping *m = patterned(2);
  unsigned char buf[64];
  size_t copied;
  page_access(m, 1, 0);
  chained_page = (unsigned char *)xm_mapping_ptr(m) + page;
  /* the library's handler (called first) takes the safe copy's fault; the other one sees nothing */
  XT_STATUS(XM_E_FAULT, xm_mapping_read_slice_safe(m, buf, sizeof buf, page, &copied));
  assert_int_equal(chained_calls, 0);
  /* a raw access reaches the other handler, which repairs the page */
  unsigned char v = *(volatile unsigned char *)((unsigned char *)xm_mapping_ptr(m) + page + 5);
  assert_int_equal(chained_calls, 1);
  assert_int_equal(v, (unsigned char)((page + 5) * 13 + 5));
  chained_page = NULL;
  xm_mapping_free(m);
}

/* A child process (this program again) touches an inaccessible page without the safe API: the
   exception must reach the unhandled-exception filter, as without the library. The filter ends
   the child with a known code instead of starting a debugger. */
#define CHILD_UNHANDLED_CODE 77
static LONG WINAPI child_filter(EXCEPTION_POINTERS *ep) {
  (void)ep;
  TerminateProcess(GetCurrentProcess(), CHILD_UNHANDLED_CODE);
  return EXCEPTION_EXECUTE_HANDLER;
}
static int child_main(void) {
  SetUnhandledExceptionFilter(child_filter);
  xm_builder b = xm_builder_new(2 * page);
  xm_mapping *m = NULL;
  if (xm_builder_build(&b, &m) != XM_OK) return 10;
  DWORD old;
  if (!VirtualProtect(xm_mapping_ptr(m), page, PAGE_NOACCESS, &old)) return 11;
  unsigned char buf[16];
  size_t copied;
  if (xm_mapping_read_slice_safe(m, buf, sizeof buf, 0, &copied) != XM_E_FAULT) return 12;
  xt_touch(xm_mapping_ptr(m));
  return 13; /* survived: wrong */
}

static void fault_elsewhere_kills(void **state) {
  (void)state;
  wchar_t self[MAX_PATH], cmd[MAX_PATH + 32];
  assert_true(GetModuleFileNameW(NULL, self, MAX_PATH) > 0);
  _snwprintf(cmd, sizeof cmd / sizeof cmd[0], L"\"%ls\" --child-touch", self);
  STARTUPINFOW si;
  PROCESS_INFORMATION pi;
  memset(&si, 0, sizeof si);
  si.cb = sizeof si;
  assert_true(CreateProcessW(self, cmd, NULL, NULL, FALSE, 0, NULL, NULL, &si, &pi));
  assert_int_equal(WaitForSingleObject(pi.hProcess, 60000), WAIT_OBJECT_0);
  DWORD code = 0;
  assert_true(GetExitCodeProcess(pi.hProcess, &code));
  CloseHandle(pi.hThread);
  CloseHandle(pi.hProcess);
  if (code != CHILD_UNHANDLED_CODE) print_message("child exit code %lu\n", (unsigned long)code);
  assert_int_equal(code, CHILD_UNHANDLED_CODE);
}

static void own_fault_signals(void) {}
#endif

/* Portable: a page made inaccessible behind the library's back (the checked path would refuse
   an XM_PROT_NONE page with XM_E_ACCESS before copying). */
static void inaccessible_page(void **state) {
  (void)state;
  own_fault_signals();
  xm_mapping *m = patterned(4);
  page_access(m, 2, 0);
  unsigned char *buf = malloc(4 * page);
  assert_non_null(buf);
  size_t copied = 777;
  XT_STATUS(XM_E_FAULT, xm_mapping_read_slice_safe(m, buf, page, 2 * page, &copied));
  expect_fault_at(2 * page);
  assert_int_equal(copied, 777);
  XT_STATUS(XM_E_FAULT, xm_mapping_read_slice_safe(m, buf, 4 * page, 0, &copied));
  expect_fault_at(2 * page);
  char want[64];
  snprintf(want, sizeof want, "(%zu bytes copied)", 2 * page);
  xt_assert_errmsg_has(want);
  /* everything before the faulting page was copied */
  for (size_t i = 0; i < 2 * page; i++) assert_int_equal(buf[i], (unsigned char)(i * 13 + 5));
  XT_STATUS(XM_E_FAULT, xm_mapping_write_slice_safe(m, buf, page, 2 * page + 100, &copied));
  expect_fault_at(2 * page + 100);
  XT_STATUS(XM_E_FAULT, xm_mapping_write_slice_safe(m, buf, 2 * page, page + 1, &copied));
  expect_fault_at(2 * page);
  /* the pages around it still copy, both ways */
  XT_OK(xm_mapping_read_slice_safe(m, buf, 2 * page, 0, &copied));
  assert_int_equal(copied, 2 * page);
  XT_OK(xm_mapping_write_slice_safe(m, buf, page, 3 * page, &copied));
  assert_int_equal(copied, page);
  /* and a copy that faults many times over works every time */
  for (int i = 0; i < 200; i++) XT_STATUS(XM_E_FAULT, xm_mapping_read_slice_safe(m, buf, 64, 2 * page + 64, &copied));
  page_access(m, 2, 1);
  XT_OK(xm_mapping_read_slice_safe(m, buf, 4 * page, 0, &copied));
  assert_int_equal(copied, 4 * page);
  free(buf);
  xm_mapping_free(m);
}

/* The contract of read/write_slice: range, clamping, protection, empty and NULL cases. */
static void same_contract_as_slices(void **state) {
  (void)state;
  own_fault_signals();
  xm_mapping *m = patterned(2);
  unsigned char buf[32], back[32];
  size_t copied = 0;
  for (size_t i = 0; i < sizeof buf; i++) buf[i] = (unsigned char)(0xA0 + i);
  XT_OK(xm_mapping_write_slice_safe(m, buf, sizeof buf, 2 * page - 10, &copied));
  assert_int_equal(copied, 10); /* clamped */
  XT_OK(xm_mapping_read_slice_safe(m, back, sizeof back, 2 * page - 10, &copied));
  assert_int_equal(copied, 10);
  assert_memory_equal(back, buf, 10);
  XT_OK(xm_mapping_read_slice_safe(m, back, sizeof back, 2 * page, &copied));
  assert_int_equal(copied, 0);
  XT_STATUS(XM_E_INVALID_ADDRESS, xm_mapping_read_slice_safe(m, back, 1, 2 * page + 1, &copied));
  xt_assert_errmsg_has("requested memory out of range");
  XT_STATUS(XM_E_INVALID_ADDRESS, xm_mapping_write_slice_safe(m, buf, 1, SIZE_MAX, &copied));
  XT_OK(xm_mapping_read_slice_safe(m, back, 0, 5, NULL));
  XT_STATUS(XM_E_INVALID_ARGUMENT, xm_mapping_read_slice_safe(NULL, back, 1, 0, &copied));
  XT_STATUS(XM_E_INVALID_ARGUMENT, xm_mapping_read_slice_safe(m, NULL, 1, 0, &copied));
  XT_STATUS(XM_E_INVALID_ARGUMENT, xm_mapping_write_slice_safe(m, NULL, 1, 0, &copied));
  XT_OK(xm_mapping_write_slice_safe(m, NULL, 0, 0, &copied)); /* nothing to copy */
  /* the mapping's protection: XM_E_ACCESS before any copy, per page */
  XT_OK(xm_mapping_protect(m, page, page, XM_PROT_READ));
  XT_STATUS(XM_E_ACCESS, xm_mapping_write_slice_safe(m, buf, 8, page - 4, &copied));
  xt_assert_errmsg_has("write of 8 bytes at offset");
  XT_OK(xm_mapping_write_slice_safe(m, buf, 8, page - 8, &copied));
  XT_OK(xm_mapping_read_slice_safe(m, back, 8, page + 4, &copied));
  XT_OK(xm_mapping_protect(m, 0, 2 * page, XM_PROT_NONE));
  XT_STATUS(XM_E_ACCESS, xm_mapping_read_slice_safe(m, back, 8, 0, &copied));
  xm_mapping_free(m);

  xm_builder b = xm_builder_new(page);
  xm_builder_protection(&b, XM_PROT_WRITE);
  xm_mapping *wo = NULL;
  XT_OK(xm_builder_build(&b, &wo));
  XT_OK(xm_mapping_write_slice_safe(wo, buf, 8, 0, &copied));
  XT_STATUS(XM_E_ACCESS, xm_mapping_read_slice_safe(wo, back, 8, 0, &copied));
  xm_mapping_free(wo);

  xm_mapping *empty = xt_anon(0);
  XT_OK(xm_mapping_read_slice_safe(empty, back, 8, 0, &copied));
  assert_int_equal(copied, 0);
  XT_STATUS(XM_E_INVALID_ADDRESS, xm_mapping_write_slice_safe(empty, buf, 8, 1, &copied));
  xm_mapping_free(empty);
}

/* A file mapping with an unaligned offset: offsets stay relative to the mapping's pointer. */
static void offsets_are_mapping_relative(void **state) {
  (void)state;
  own_fault_signals();
  size_t gran = xm_allocation_granularity();
  size_t len = gran + 4 * page;
  unsigned char *data = malloc(len);
  assert_non_null(data);
  for (size_t i = 0; i < len; i++) data[i] = (unsigned char)(i * 3 + 1);
  xm_descriptor f = xt_temp_file(data, len, 1);
  xm_builder b = xm_builder_new(3 * page);
  xm_builder_from_file(&b, f);
  xm_builder_offset(&b, gran + 100);
  xm_mapping *m = NULL;
  XT_OK(xm_builder_build(&b, &m));
  unsigned char got[64];
  size_t copied;
  XT_OK(xm_mapping_read_slice_safe(m, got, sizeof got, 10, &copied));
  assert_memory_equal(got, data + gran + 110, sizeof got);
  /* the page holding mapping offset page + 50 (the view's second page) made inaccessible */
  unsigned char *p = (unsigned char *)xm_mapping_ptr(m) + page + 50;
  unsigned char *pg = (unsigned char *)((uintptr_t)p & ~(uintptr_t)(page - 1));
#ifdef _WIN32
  DWORD old;
  assert_true(VirtualProtect(pg, page, PAGE_NOACCESS, &old));
#else
  assert_int_equal(mprotect(pg, page, PROT_NONE), 0);
#endif
  size_t pg_offset = (size_t)(pg - (unsigned char *)xm_mapping_ptr(m));
  XT_STATUS(XM_E_FAULT, xm_mapping_read_slice_safe(m, got, sizeof got, page + 50, &copied));
  expect_fault_at(page + 50);
  unsigned char *big = malloc(3 * page);
  assert_non_null(big);
  XT_STATUS(XM_E_FAULT, xm_mapping_read_slice_safe(m, big, 3 * page, 0, &copied));
  expect_fault_at(pg_offset);
  free(big);
#ifdef _WIN32
  assert_true(VirtualProtect(pg, page, PAGE_READWRITE, &old));
#else
  assert_int_equal(mprotect(pg, page, PROT_READ | PROT_WRITE), 0);
#endif
  xm_mapping_free(m);
  xt_close(f);
  free(data);
}

int main(int argc, char **argv) {
  page = xm_page_size();
#ifdef _WIN32
  if (argc > 1 && strcmp(argv[1], "--child-touch") == 0) return child_main();
  /* Added before the library's (which goes first on its first use): the library must still
     pass every fault that is not its own on to this one. */
  void *veh = AddVectoredExceptionHandler(1, chained_veh);
#else
  (void)argc;
  (void)argv;
  probe_sigbus_address();
  run_children();
  /* installs the library's handler over the test's own; kept for own_fault_signals() */
  chained_result = chained_steps();
  sigaction(SIGBUS, NULL, &lib_sigbus);
  sigaction(SIGSEGV, NULL, &lib_sigsegv);
#endif
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(fault_elsewhere_kills),        cmocka_unit_test(chained_handlers),
#ifndef _WIN32
      cmocka_unit_test(truncated_file),
#endif
      cmocka_unit_test(inaccessible_page),            cmocka_unit_test(same_contract_as_slices),
      cmocka_unit_test(offsets_are_mapping_relative),
  };
  int rc = cmocka_run_group_tests(tests, NULL, NULL);
#ifdef _WIN32
  RemoveVectoredExceptionHandler(veh);
#endif
  return rc;
}
