/* Faults that are not a safe copy's behave as without the library: handlers installed before
   the library's still get them (chained handlers), and a fault outside an active safe copy still
   kills the process (default death), also under SIG_DFL, SIG_IGN and when the caller's own buffer
   faults. POSIX: signal handlers and forked children; Windows: another vectored handler and a
   child process's unhandled-exception filter. Safe copies' own faults: test_safe_copy.c. */
#include "xmtest_faults.h"

static size_t page;

#ifndef _WIN32
/* See xt_sigbus_reports_address: where SIGBUS has no true address SIGSEGV stands in for it. */
static int sigbus_addr_ok = 1;
static uintptr_t sigbus_addr_seen, sigbus_addr_expected;

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

/* Children die holding their mappings: kept reachable, so that valgrind does not call them lost. */
static xm_mapping *child_objects[4];
static xm_mapping *kept(xm_mapping *m) {
  for (size_t i = 0; i < sizeof child_objects / sizeof child_objects[0]; i++)
    if (!child_objects[i]) return child_objects[i] = m;
  return m;
}

/* The child's body; returning at all is wrong (the exit status, 100 + the value, says where it
   survived). */
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
    xm_mapping *m = kept(xt_truncated_file_mapping(page, &fd));
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
    xm_mapping *m = kept(xt_truncated_file_mapping(page, &fd));
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
  default: return 99;
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
                  "SIGSEGV stands in for it\n",
                  (void *)sigbus_addr_seen, (void *)sigbus_addr_expected);
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
  xm_mapping *gone = xt_truncated_file_mapping(page, &fd);
  xm_mapping *m = xt_anon(2 * page);
  if (!gone || !m || mprotect((unsigned char *)xm_mapping_ptr(m) + page, page, PROT_NONE) != 0) return 3;
  /* the safe copies recover their own faults (the first one installs the library's handler) */
  if (xm_mapping_read_slice_safe(m, buf, sizeof buf, page, &copied) != XM_E_FAULT) return 4;
  if (sigbus_addr_ok && xm_mapping_read_slice_safe(gone, buf, sizeof buf, 2 * page, &copied) != XM_E_FAULT) return 5;
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
  xm_mapping *m = xt_anon_patterned(2 * page);
  unsigned char buf[64];
  size_t copied;
  xt_raw_protect((unsigned char *)xm_mapping_ptr(m) + 1 * page, page, 0);
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
#endif

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
  uintptr_t seen = 0, expected = 0;
  sigbus_addr_ok = xt_sigbus_reports_address(page, &seen, &expected);
  sigbus_addr_seen = seen;
  sigbus_addr_expected = expected;
  run_children();
  /* installs the library's handler over the test's own */
  chained_result = chained_steps();
#endif
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(fault_elsewhere_kills),
      cmocka_unit_test(chained_handlers),
  };
  int rc = cmocka_run_group_tests(tests, NULL, NULL);
#ifdef _WIN32
  RemoveVectoredExceptionHandler(veh);
#endif
  return rc;
}
