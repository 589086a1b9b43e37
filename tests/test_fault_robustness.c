/* Nothing crashes (issue 12, "Crashes and memory safety"):
   - xm_mapping_protect racing fault-safe copies of the same mapping: no crash, no freed memory
     touched (run under ASan and TSan), each copy XM_OK, XM_E_ACCESS or XM_E_FAULT.
   - A fault the library passed on to the program's own handler, which jumped out of it, leaves
     no safe-copy state behind: a later fault outside any copy reaches the program's handler
     again instead of being "recovered" into the dead copy's frame.
   - Safe copies work in a thread that blocks every signal (its mask is the same afterwards),
     inside a signal handler, also one whose mask blocks SIGBUS and SIGSEGV, and inside the
     program's fault handler that the library chained to.
   POSIX: a gone page is a file truncated under its mapping (SIGBUS) where SIGBUS reports its
   address; elsewhere (qemu-user with a 32-bit guest) a page made inaccessible behind the
   library's back (SIGSEGV) stands in. Run one test: test_fault_robustness <name pattern>. */
#include "xmtest.h"
#include "xmtest_faults.h"

#include <stdatomic.h>

#ifdef _WIN32
static double now_ms(void) { return (double)GetTickCount64(); }
#else
#include <signal.h>
#include <sys/mman.h>
#include <time.h>
static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}
#endif

static size_t page;

#ifndef _WIN32
/* cmocka swaps its own SIGSEGV/SIGBUS handler in around every test; each test that needs the
   library's puts it back (captured in main() right after the library installed it). */
static void own_fault_signals(void) { xt_own_fault_signals(); }
#else
static void own_fault_signals(void) {}
#endif

/* ---- 4. protect racing safe copies ----------------------------------------------------------
   One thread lowers page 3 to no access and raises the whole mapping again, two threads copy
   all 8 pages out with the fault-safe copy: 20,000 rounds, or as many as fit in a few seconds
   where everything is slower (emulators, sanitizers). */
#define RACE_PAGES 8
#define RACE_ROUNDS 20000
#define RACE_BUDGET_MS 4000.0

struct race {
  xm_mapping *m;
  atomic_int stop;
  atomic_long copies, ok, access, fault;
  atomic_int failed;
  long rounds;
  char error[256];
};

static XT_THREAD_RET race_protector(void *arg) {
  struct race *r = arg;
  double start = now_ms();
  for (long i = 0; i < RACE_ROUNDS; i++) {
    int a = xm_mapping_protect(r->m, 3 * page, page, XM_PROT_NONE);
    int b = xm_mapping_protect(r->m, 0, RACE_PAGES * page, XM_PROT_READ_WRITE);
    if ((a || b) && !atomic_exchange(&r->failed, 1)) {
      snprintf(r->error, sizeof r->error, "protect: %d / %d (%s)", a, b, xm_errmsg());
      break;
    }
    r->rounds = i + 1;
    if (i % 64 == 0 && now_ms() - start > RACE_BUDGET_MS) break;
  }
  atomic_store(&r->stop, 1);
  return 0;
}

static XT_THREAD_RET race_copier(void *arg) {
  struct race *r = arg;
  unsigned char *buf = malloc(RACE_PAGES * page);
  if (!buf) {
    atomic_store(&r->failed, 1);
    return 0;
  }
  while (!atomic_load(&r->stop)) {
    size_t copied = 0;
    int rc = xm_mapping_read_slice_safe(r->m, buf, RACE_PAGES * page, 0, &copied);
    atomic_fetch_add(&r->copies, 1);
    if (rc == XM_OK) {
      atomic_fetch_add(&r->ok, 1);
      if (copied != RACE_PAGES * page || buf[5 * page + 7] != (unsigned char)(5 * page + 7)) rc = 1;
    } else if (rc == XM_E_ACCESS) {
      atomic_fetch_add(&r->access, 1);
    } else if (rc == XM_E_FAULT) {
      atomic_fetch_add(&r->fault, 1);
    }
    if (rc != XM_OK && rc != XM_E_ACCESS && rc != XM_E_FAULT) {
      if (!atomic_exchange(&r->failed, 1))
        snprintf(r->error, sizeof r->error, "safe copy: %d (%s), %zu copied", rc, xm_errmsg(), copied);
      break;
    }
  }
  free(buf);
  return 0;
}

static void protect_races_safe_copies(void **state) {
  (void)state;
  own_fault_signals();
  struct race *r = calloc(1, sizeof *r);
  assert_non_null(r);
  r->m = xt_anon(RACE_PAGES * page);
  unsigned char *p = xm_mapping_ptr(r->m);
  for (size_t i = 0; i < RACE_PAGES * page; i++)
    p[i] = (unsigned char)i;
  xt_thread t[3];
  xt_thread_start(&t[1], race_copier, r);
  xt_thread_start(&t[2], race_copier, r);
  xt_thread_start(&t[0], race_protector, r);
  for (int i = 0; i < 3; i++)
    xt_thread_join(t[i]);
  print_message("%ld protect rounds against %ld safe copies: %ld XM_OK, %ld XM_E_ACCESS, %ld XM_E_FAULT\n", r->rounds,
                (long)r->copies, (long)r->ok, (long)r->access, (long)r->fault);
  if (r->failed) fail_msg("%s", r->error);
  assert_true(r->rounds > 0);
  assert_true(r->copies > 0);
  /* the last raise left everything readable and unchanged */
  unsigned char *buf = malloc(RACE_PAGES * page);
  assert_non_null(buf);
  size_t copied = 0;
  XT_OK(xm_mapping_read_slice_safe(r->m, buf, RACE_PAGES * page, 0, &copied));
  assert_memory_equal(buf, p, RACE_PAGES * page);
  free(buf);
  xm_mapping_free(r->m);
  free(r);
}

#ifndef _WIN32
/* ---- POSIX: a gone page --------------------------------------------------------------------- */
static int sigbus_addr_ok; /* SIGBUS reports the faulting address here (probed in main) */

struct gone {
  xm_mapping *m; /* 3 pages; page 2 faults */
  xm_descriptor fd;
  int sig; /* what touching page 2 raises */
};

static void gone_make(struct gone *g) {
  g->fd = XT_NO_FILE;
  if (sigbus_addr_ok) {
    unsigned char *data = xt_pattern(3 * page, 7, 3);
    g->fd = xt_temp_file(data, 3 * page, 1);
    free(data);
    xm_builder b = xm_builder_new(3 * page);
    xm_builder_from_file(&b, g->fd);
    g->m = NULL;
    XT_OK(xm_builder_build(&b, &g->m));
    assert_int_equal(ftruncate(g->fd, (off_t)page), 0); /* pages 1 and 2 are gone */
    g->sig = SIGBUS;
  } else {
    g->m = xt_anon(3 * page);
    unsigned char *p = xm_mapping_ptr(g->m);
    for (size_t i = 0; i < 3 * page; i++)
      p[i] = (unsigned char)(i * 7 + 3);
    assert_int_equal(mprotect(p + 2 * page, page, PROT_NONE), 0);
    g->sig = SIGSEGV;
  }
}

static void gone_free(struct gone *g) {
  xm_mapping_free(g->m);
  if (g->fd != XT_NO_FILE) xt_close(g->fd);
}

/* ---- the program's own fault handler, installed before the library's ---------------------- */
enum { PROGRAM_DIES, PROGRAM_JUMPS, PROGRAM_COPIES };
static volatile sig_atomic_t program_mode = PROGRAM_DIES;
static volatile sig_atomic_t program_calls, program_sig;
static void *volatile program_addr;
static sigjmp_buf program_env;
/* PROGRAM_COPIES: the safe copy the handler makes, and its status */
static xm_mapping *volatile nested_mapping;
static volatile size_t nested_offset;
static volatile int nested_rc;

static void program_handler(int sig, siginfo_t *info, void *uc) {
  (void)uc;
  program_calls++;
  program_sig = sig;
  program_addr = info ? info->si_addr : NULL;
  if (program_mode == PROGRAM_COPIES) {
    unsigned char buf[64];
    size_t copied = 0;
    nested_rc = xm_mapping_read_slice_safe(nested_mapping, buf, sizeof buf, nested_offset, &copied);
    siglongjmp(program_env, 1);
  }
  if (program_mode == PROGRAM_JUMPS) siglongjmp(program_env, 1);
  /* not expected: die of it, as without a handler (the fault recurs on return) */
  signal(sig, SIG_DFL);
}

static void install_program_handler(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = program_handler;
  sa.sa_flags = SA_SIGINFO;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGSEGV, &sa, NULL);
  sigaction(SIGBUS, &sa, NULL);
}

/* ---- 5. a fault passed on leaves no frame behind ------------------------------------------- */
static void passed_on_fault_leaves_no_frame(void **state) {
  (void)state;
  if (xt_under_valgrind()) XT_SKIP("valgrind reports the deliberate fault in the caller's buffer as an invalid write");
  own_fault_signals();
  struct gone g;
  gone_make(&g);
  /* the caller's buffer faults: not the library's to recover, the program's handler gets it */
  unsigned char *nobuf = mmap(NULL, 3 * page, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  assert_true(nobuf != MAP_FAILED);
  int calls = program_calls;
  volatile int rc = 12345;
  size_t copied = 0;
  program_mode = PROGRAM_JUMPS;
  if (sigsetjmp(program_env, 1) == 0) rc = xm_mapping_read_slice_safe(g.m, nobuf, 3 * page, 0, &copied);
  program_mode = PROGRAM_DIES;
  assert_int_equal(rc, 12345); /* the copy never returned: the program's handler jumped out of it */
  assert_int_equal(program_calls, calls + 1);
  assert_int_equal(program_sig, SIGSEGV);
  assert_true((uintptr_t)program_addr - (uintptr_t)nobuf < 3 * page); /* somewhere in the buffer */

  /* A plain read of the gone page, outside any safe copy but inside the dead copy's range: the
     program's handler gets it (before the fix the library jumped into the copy's dead frame). */
  unsigned char *target = (unsigned char *)xm_mapping_ptr(g.m) + 2 * page + 5;
  program_mode = PROGRAM_JUMPS;
  if (sigsetjmp(program_env, 1) == 0) xt_touch(target);
  program_mode = PROGRAM_DIES;
  assert_int_equal(program_calls, calls + 2);
  assert_int_equal(program_sig, g.sig);
  assert_ptr_equal(program_addr, target);

  /* and the library still recovers its own faults, without the program's handler */
  unsigned char buf[64];
  XT_STATUS(XM_E_FAULT, xm_mapping_read_slice_safe(g.m, buf, sizeof buf, 2 * page, &copied));
  XT_OK(xm_mapping_read_slice_safe(g.m, buf, sizeof buf, 0, &copied));
  assert_int_equal(buf[9], (unsigned char)(9 * 7 + 3));
  assert_int_equal(program_calls, calls + 2);
  munmap(nobuf, 3 * page);
  gone_free(&g);
}

/* ---- 6. blocked signals and nested handlers -------------------------------------------------- */
static bool same_mask(const sigset_t *a, const sigset_t *b) {
  for (int s = 1; s < 65; s++)
    if (sigismember(a, s) != sigismember(b, s)) return false;
  return true;
}

struct masked {
  struct gone *g;
  int blocked; /* the thread really blocked both fault signals */
  int fault_rc, ok_rc;
  bool same_after_fault, same_after_ok;
  char msg[256];
};

static void *masked_thread(void *arg) {
  struct masked *w = arg;
  sigset_t all, before, after;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, NULL);
  pthread_sigmask(SIG_SETMASK, NULL, &before);
  w->blocked = sigismember(&before, SIGBUS) == 1 && sigismember(&before, SIGSEGV) == 1;
  unsigned char buf[64];
  size_t copied = 0;
  w->fault_rc = xm_mapping_read_slice_safe(w->g->m, buf, sizeof buf, 2 * page, &copied);
  snprintf(w->msg, sizeof w->msg, "%s", xm_errmsg());
  pthread_sigmask(SIG_SETMASK, NULL, &after);
  w->same_after_fault = same_mask(&before, &after);
  w->ok_rc = xm_mapping_read_slice_safe(w->g->m, buf, sizeof buf, 0, &copied);
  pthread_sigmask(SIG_SETMASK, NULL, &after);
  w->same_after_ok = same_mask(&before, &after);
  return NULL;
}

static void safe_copy_with_signals_blocked(void **state) {
  (void)state;
  own_fault_signals();
  struct gone g;
  gone_make(&g);
  struct masked w;
  memset(&w, 0, sizeof w);
  w.g = &g;
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, masked_thread, &w), 0);
  assert_int_equal(pthread_join(t, NULL), 0);
  assert_true(w.blocked);
  if (w.fault_rc != XM_E_FAULT) print_message("safe copy of a gone page: %d (%s)\n", w.fault_rc, w.msg);
  assert_int_equal(w.fault_rc, XM_E_FAULT);
  assert_int_equal(w.ok_rc, XM_OK);
  assert_true(w.same_after_fault);
  assert_true(w.same_after_ok);
  gone_free(&g);
}

/* A safe copy inside a SIGUSR1 handler: one with the default mask, one whose mask blocks every
   signal (SIGBUS and SIGSEGV too) while it runs. */
static struct gone *usr1_gone;
static volatile int usr1_fault_rc, usr1_ok_rc;
static volatile int usr1_calls;
static void usr1_handler(int sig) {
  (void)sig;
  unsigned char buf[64];
  size_t copied = 0;
  usr1_fault_rc = xm_mapping_read_slice_safe(usr1_gone->m, buf, sizeof buf, 2 * page, &copied);
  usr1_ok_rc = xm_mapping_read_slice_safe(usr1_gone->m, buf, sizeof buf, 0, &copied);
  usr1_calls++;
}

static volatile int probe_calls;
static void probe_usr1(int sig) {
  (void)sig;
  probe_calls++;
}

/* Raises SIGUSR1 with handler installed; true once the handler ran. A sanitizer runtime defers
   an asynchronous signal to its next interception point; after a signal handler was left with
   siglongjmp from inside an intercepted call (TSan), it may never deliver one again. */
static bool usr1_delivered(void (*handler)(int), bool full_mask, volatile int *calls) {
  struct sigaction sa, old;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = handler;
  if (full_mask)
    sigfillset(&sa.sa_mask);
  else
    sigemptyset(&sa.sa_mask);
  assert_int_equal(sigaction(SIGUSR1, &sa, &old), 0);
  int before = *calls;
  raise(SIGUSR1);
  for (int i = 0; i < 2000 && *calls == before; i++)
    usleep(1000);
  sigaction(SIGUSR1, &old, NULL);
  return *calls != before;
}

static void safe_copy_in_signal_handler(void **state) {
  (void)state;
  if (xt_under_valgrind()) XT_SKIP("valgrind cannot deliver a fault signal on a signal handler's stack");
  if (!usr1_delivered(probe_usr1, false, &probe_calls))
    XT_SKIP("a raised SIGUSR1 never reached its handler here (a sanitizer runtime that defers asynchronous signals)");
  own_fault_signals();
  struct gone g;
  gone_make(&g);
  usr1_gone = &g;
  for (int full_mask = 0; full_mask < 2; full_mask++) {
    usr1_fault_rc = usr1_ok_rc = 12345;
    assert_true(usr1_delivered(usr1_handler, full_mask, &usr1_calls));
    if (usr1_fault_rc != XM_E_FAULT)
      print_message("in a handler (mask %s): %d\n", full_mask ? "full" : "default", usr1_fault_rc);
    assert_int_equal(usr1_fault_rc, XM_E_FAULT);
    assert_int_equal(usr1_ok_rc, XM_OK);
  }
  gone_free(&g);
}

/* A safe copy inside the program's own SIGSEGV handler, which the library chained to for a fault
   that was not a safe copy's. */
static void safe_copy_in_chained_fault_handler(void **state) {
  (void)state;
  if (xt_under_valgrind()) XT_SKIP("valgrind cannot deliver a fault signal on a signal handler's stack");
  own_fault_signals();
  struct gone g;
  gone_make(&g);
  unsigned char *trap = mmap(NULL, page, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  assert_true(trap != MAP_FAILED);
  int calls = program_calls;
  nested_mapping = g.m;
  nested_offset = 2 * page;
  nested_rc = 12345;
  program_mode = PROGRAM_COPIES;
  if (sigsetjmp(program_env, 1) == 0) xt_touch(trap + 3);
  program_mode = PROGRAM_DIES;
  assert_int_equal(program_calls, calls + 1);
  assert_int_equal(program_sig, SIGSEGV);
  assert_ptr_equal(program_addr, trap + 3);
  assert_int_equal(nested_rc, XM_E_FAULT);
  /* and once more, the outer fault being the gone page itself */
  nested_rc = 12345;
  nested_offset = 0; /* a copy that works */
  program_mode = PROGRAM_COPIES;
  if (sigsetjmp(program_env, 1) == 0) xt_touch((unsigned char *)xm_mapping_ptr(g.m) + 2 * page);
  program_mode = PROGRAM_DIES;
  assert_int_equal(program_calls, calls + 2);
  assert_int_equal(program_sig, g.sig);
  assert_int_equal(nested_rc, XM_OK);
  munmap(trap, page);
  gone_free(&g);
}
#endif

int main(int argc, char **argv) {
  page = xm_page_size();
  if (argc > 1) cmocka_set_test_filter(argv[1]);
#ifndef _WIN32
  uintptr_t seen, expected; /* before any handler is installed (xmtest_faults.h) */
  sigbus_addr_ok = xt_sigbus_reports_address(page, &seen, &expected);
  if (!sigbus_addr_ok)
    print_message("SIGBUS does not report the faulting address here (qemu-user with a 32-bit guest): an "
                  "inaccessible page (SIGSEGV) stands in for a truncated file\n");
  /* The program's handler first; the library's goes in over it on the first safe copy. */
  install_program_handler();
  if (xt_capture_library_handler() != XM_OK) return 1;
#endif
  const struct CMUnitTest tests[] = {
  /* This order: under TSan, once a handler has been left with siglongjmp from inside the library's
     (intercepted) memcpy, as passed_on_fault_leaves_no_frame does, the runtime delivers no further
     signal to that thread; under qemu-i386 7.2, after threads have faulted (the race), a fault in
     the main thread's signal handler is not delivered. */
#ifndef _WIN32
      cmocka_unit_test(safe_copy_in_signal_handler),        cmocka_unit_test(safe_copy_with_signals_blocked),
      cmocka_unit_test(safe_copy_in_chained_fault_handler), cmocka_unit_test(passed_on_fault_leaves_no_frame),
#endif
      cmocka_unit_test(protect_races_safe_copies),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
