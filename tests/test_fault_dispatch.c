/* The fault dispatcher's machinery: removal waits for a running call and works from inside the
   hook; 10,000 hooks each get their own faults; threads fault while others add and remove hooks;
   PASS reaches the handler the program had before the library; the alternate signal stack; a
   handler installed over the library's is reported by xm_fault_handler_check and
   xm_fault_handler_reinstall restores dispatch without a loop. */
#include "xmtest_faults.h"

#include <stdatomic.h>

static size_t page;

static void own_faults(void) {
#ifndef _WIN32
  xt_own_fault_signals();
#endif
}

static void pause_briefly(void) {
#ifdef _WIN32
  Sleep(1);
#else
  usleep(1000);
#endif
}

/* Lifts the faulting page of the mapping in user to read-write. */
static xm_fault_action lift(const xm_fault *f, void *user) {
  xm_mapping *m = user;
  size_t at = ((uintptr_t)f->addr - (uintptr_t)xm_mapping_ptr(m)) & ~(page - 1);
  return xm_mapping_protect(m, at, page, XM_PROT_READ_WRITE) == XM_OK ? XM_FAULT_RETRY : XM_FAULT_PASS;
}

/* ---- removal waits for a running call ------------------------------------------------------- */
struct blocking {
  xm_mapping *m;
  atomic_int entered, release, removed;
  xm_fault_hook *h;
};

static xm_fault_action block_until_released(const xm_fault *f, void *user) {
  struct blocking *b = user;
  atomic_store(&b->entered, 1);
  while (!atomic_load(&b->release))
    pause_briefly();
  return lift(f, b->m);
}

static XT_THREAD_RET fault_once(void *arg) {
  struct blocking *b = arg;
  own_faults();
  ((volatile unsigned char *)xm_mapping_ptr(b->m))[0] = 1;
  return 0;
}

static XT_THREAD_RET remove_hook(void *arg) {
  struct blocking *b = arg;
  xm_fault_hook_remove(b->h);
  atomic_store(&b->removed, 1);
  return 0;
}

static void removal_waits_for_a_running_call(void **state) {
  (void)state;
  XT_SKIP_IF_RETRIED_FAULTS_ARE_REPORTED();
  XT_SKIP_UNLESS_THREADS_RESUME_AFTER_FAULTS();
  struct blocking b = {.m = xt_anon(page)};
  XT_OK(xm_fault_hook_add(xm_mapping_ptr(b.m), page, block_until_released, &b, &b.h));
  XT_OK(xm_mapping_protect(b.m, 0, page, XM_PROT_NONE));
  xt_thread faulter, remover;
  xt_thread_start(&faulter, fault_once, &b);
  while (!atomic_load(&b.entered))
    pause_briefly();
  xt_thread_start(&remover, remove_hook, &b);
  /* The hook is running: however long we wait, removal has not returned. */
  for (int i = 0; i < 50; i++) {
    pause_briefly();
    assert_int_equal(atomic_load(&b.removed), 0);
  }
  atomic_store(&b.release, 1);
  xt_thread_join(remover);
  assert_int_equal(atomic_load(&b.removed), 1);
  xt_thread_join(faulter);
  assert_int_equal(((unsigned char *)xm_mapping_ptr(b.m))[0], 1);
  xm_mapping_free(b.m);
}

/* ---- a hook removing itself ------------------------------------------------------------------ */
struct self_removing {
  xm_mapping *m;
  xm_fault_hook *h;
  atomic_int calls;
};
static xm_fault_action remove_myself(const xm_fault *f, void *user) {
  struct self_removing *s = user;
  atomic_fetch_add(&s->calls, 1);
  xm_fault_hook_remove(s->h); /* returns at once: only this call of it runs */
  return lift(f, s->m);
}

static void a_hook_removes_itself(void **state) {
  (void)state;
  XT_SKIP_IF_RETRIED_FAULTS_ARE_REPORTED();
  own_faults();
  struct self_removing s = {.m = xt_anon(2 * page)};
  struct blocking fallback = {.m = s.m, .release = 1}; /* an older hook that just lifts */
  xm_fault_hook *older;
  XT_OK(xm_fault_hook_add(xm_mapping_ptr(s.m), 2 * page, block_until_released, &fallback, &older));
  XT_OK(xm_fault_hook_add(xm_mapping_ptr(s.m), 2 * page, remove_myself, &s, &s.h));
  XT_OK(xm_mapping_protect(s.m, 0, 2 * page, XM_PROT_NONE));
  unsigned char *p = xm_mapping_ptr(s.m);
  p[0] = 1;
  assert_int_equal(atomic_load(&s.calls), 1);
  p[page] = 2; /* gone: the older hook takes it */
  assert_int_equal(atomic_load(&s.calls), 1);
  assert_int_equal(atomic_load(&fallback.entered), 1);
  xm_fault_hook_remove(older);
  /* The retired hook is freed by a later change (valgrind and ASan see no leak at exit). */
  xm_fault_hook *h;
  XT_OK(xm_fault_hook_add(p, page, lift, s.m, &h));
  xm_fault_hook_remove(h);
  xm_mapping_free(s.m);
}

/* ---- 10,000 hooks ----------------------------------------------------------------------------- */
#define MANY 10000
struct numbered {
  xm_mapping *m;
  size_t index;
  atomic_int *hits;
};
static xm_fault_action count_and_lift(const xm_fault *f, void *user) {
  struct numbered *n = user;
  size_t index = ((uintptr_t)f->addr - (uintptr_t)xm_mapping_ptr(n->m)) / page;
  if (index != n->index) return XM_FAULT_PASS; /* never: a hook is asked only for its own page */
  atomic_fetch_add(&n->hits[index], 1);
  return lift(f, n->m);
}

static void ten_thousand_hooks(void **state) {
  (void)state;
  XT_SKIP_IF_RETRIED_FAULTS_ARE_REPORTED();
  own_faults();
  xm_mapping *m = xt_anon(MANY * page);
  unsigned char *p = xm_mapping_ptr(m);
  struct numbered *n = calloc(MANY, sizeof *n);
  xm_fault_hook **h = calloc(MANY, sizeof *h);
  atomic_int *hits = calloc(MANY, sizeof *hits);
  assert_non_null(n);
  assert_non_null(h);
  assert_non_null(hits);
  /* The oldest hook covers everything; each page's own hook, newer, takes its page first. */
  struct blocking fallback = {.m = m, .release = 1};
  xm_fault_hook *all;
  XT_OK(xm_fault_hook_add(p, MANY * page, block_until_released, &fallback, &all));
  /* Added in a scattered order, so the table is built from unsorted adds. */
  for (size_t k = 0; k < MANY; k++) {
    size_t i = (k * 7919) % MANY;
    n[i] = (struct numbered){m, i, hits};
    XT_OK(xm_fault_hook_add(p + i * page, page, count_and_lift, &n[i], &h[i]));
  }
  XT_OK(xm_mapping_protect(m, 0, MANY * page, XM_PROT_NONE));
  for (size_t k = 0; k < 500; k++)
    p[((k * 104729) % MANY) * page + k % page] = 1;
  for (size_t i = 0; i < MANY; i++) {
    int want = 0;
    for (size_t k = 0; k < 500; k++)
      want |= (k * 104729) % MANY == i;
    assert_int_equal(atomic_load(&hits[i]), want);
  }
  assert_int_equal(atomic_load(&fallback.entered), 0);
  /* Half removed: faults there reach the oldest hook; the others still their own. */
  for (size_t i = 0; i < MANY; i += 2)
    xm_fault_hook_remove(h[i]);
  XT_OK(xm_mapping_protect(m, 0, MANY * page, XM_PROT_NONE));
  for (size_t i = 0; i < MANY; i++)
    atomic_store(&hits[i], 0);
  p[4243 * page] = 1; /* odd: its own hook */
  assert_int_equal(atomic_load(&hits[4243]), 1);
  assert_int_equal(atomic_load(&fallback.entered), 0);
  p[4242 * page] = 1; /* even: removed, the oldest takes it */
  assert_int_equal(atomic_load(&hits[4242]), 0);
  assert_int_equal(atomic_load(&fallback.entered), 1);
  xm_fault_hook_remove(all);
  for (size_t i = 1; i < MANY; i += 2)
    xm_fault_hook_remove(h[i]);
  free(n);
  free(h);
  free(hits);
  xm_mapping_free(m);
}

/* ---- threads fault while hooks come and go ---------------------------------------------------- */
struct racer {
  xm_mapping *m;
  size_t first_page;
  atomic_int *stop;
  atomic_int rounds_done;
};

static XT_THREAD_RET fault_repeatedly(void *arg) {
  struct racer *r = arg;
  own_faults();
  volatile unsigned char *p = (unsigned char *)xm_mapping_ptr(r->m) + r->first_page * page;
  while (!atomic_load(r->stop)) {
    if (xm_mapping_protect(r->m, r->first_page * page, page, XM_PROT_NONE) != XM_OK) break;
    p[0] = 1; /* faults; the thread's hook lifts it */
    atomic_fetch_add(&r->rounds_done, 1);
  }
  return 0;
}

static void threads_fault_while_hooks_change(void **state) {
  (void)state;
  XT_SKIP_IF_RETRIED_FAULTS_ARE_REPORTED();
  XT_SKIP_UNLESS_THREADS_RESUME_AFTER_FAULTS();
  enum { THREADS = 4 };
  xm_mapping *m = xt_anon((THREADS + 64) * page);
  xm_fault_hook *own[THREADS];
  atomic_int stop = 0;
  struct racer r[THREADS];
  xt_thread t[THREADS];
  for (int i = 0; i < THREADS; i++) {
    XT_OK(xm_fault_hook_add((unsigned char *)xm_mapping_ptr(m) + (size_t)i * page, page, lift, m, &own[i]));
    r[i].m = m;
    r[i].first_page = (size_t)i;
    r[i].stop = &stop;
    atomic_init(&r[i].rounds_done, 0);
    xt_thread_start(&t[i], fault_repeatedly, &r[i]);
  }
  /* Unrelated hooks, some overlapping the faulting pages (they pass), added and removed, until
     every thread has faulted a few times during it. */
  const int rounds = xt_rounds(300);
  for (int k = 0;; k++) {
    int slowest = INT32_MAX;
    for (int i = 0; i < THREADS; i++)
      if (atomic_load(&r[i].rounds_done) < slowest) slowest = atomic_load(&r[i].rounds_done);
    if (k >= rounds && slowest >= 20) break;
    xm_fault_hook *other;
    struct numbered never = {m, SIZE_MAX, NULL};
    XT_OK(xm_fault_hook_add((unsigned char *)xm_mapping_ptr(m) + (size_t)(k % (THREADS + 64)) * page, page,
                            count_and_lift, &never, &other));
    xm_fault_hook_remove(other);
  }
  atomic_store(&stop, 1);
  for (int i = 0; i < THREADS; i++) {
    xt_thread_join(t[i]);
    assert_true(atomic_load(&r[i].rounds_done) >= 20);
    xm_fault_hook_remove(own[i]);
  }
  xm_mapping_free(m);
}

#ifdef _WIN32
/* ---- Windows: PASS reaches the next vectored handler; reinstall puts the library's in front --- */
static xm_mapping *veh_mapping;
static atomic_int veh_calls;
static LONG CALLBACK other_handler(EXCEPTION_POINTERS *info) {
  const EXCEPTION_RECORD *rec = info->ExceptionRecord;
  uintptr_t at = (uintptr_t)rec->ExceptionInformation[1], base = (uintptr_t)xm_mapping_ptr(veh_mapping);
  if (rec->ExceptionCode != EXCEPTION_ACCESS_VIOLATION || at - base >= page) return EXCEPTION_CONTINUE_SEARCH;
  atomic_fetch_add(&veh_calls, 1);
  DWORD old;
  VirtualProtect((void *)base, page, PAGE_READWRITE, &old);
  return EXCEPTION_CONTINUE_EXECUTION;
}
static xm_fault_action always_pass(const xm_fault *f, void *user) {
  (void)f;
  atomic_fetch_add((atomic_int *)user, 1);
  return XM_FAULT_PASS;
}

static void pass_reaches_the_next_handler_and_reinstall(void **state) {
  (void)state;
  XT_SKIP_IF_RETRIED_FAULTS_ARE_REPORTED();
  veh_mapping = xt_anon(page);
  atomic_int hook_calls = 0;
  xm_fault_hook *h;
  XT_OK(xm_fault_hook_add(xm_mapping_ptr(veh_mapping), page, always_pass, &hook_calls, &h));
  XT_OK(xm_fault_handler_check());
  void *behind = AddVectoredExceptionHandler(0, other_handler); /* last: behind the library's */
  assert_non_null(behind);
  XT_OK(xm_mapping_protect(veh_mapping, 0, page, XM_PROT_NONE));
  ((volatile unsigned char *)xm_mapping_ptr(veh_mapping))[0] = 1;
  assert_int_equal(atomic_load(&hook_calls), 1);
  assert_int_equal(atomic_load(&veh_calls), 1);
  RemoveVectoredExceptionHandler(behind);
  /* A handler added in front takes the fault first; after reinstall the library's is first. */
  void *front = AddVectoredExceptionHandler(1, other_handler);
  assert_non_null(front);
  XT_OK(xm_mapping_protect(veh_mapping, 0, page, XM_PROT_NONE));
  ((volatile unsigned char *)xm_mapping_ptr(veh_mapping))[0] = 2;
  assert_int_equal(atomic_load(&hook_calls), 1);
  assert_int_equal(atomic_load(&veh_calls), 2);
  XT_OK(xm_fault_handler_reinstall());
  XT_OK(xm_fault_handler_check());
  XT_OK(xm_mapping_protect(veh_mapping, 0, page, XM_PROT_NONE));
  ((volatile unsigned char *)xm_mapping_ptr(veh_mapping))[0] = 3;
  assert_int_equal(atomic_load(&hook_calls), 2);
  assert_int_equal(atomic_load(&veh_calls), 3);
  RemoveVectoredExceptionHandler(front);
  xm_fault_hook_remove(h);
  xm_mapping_free(veh_mapping);
}
#else
/* ---- POSIX children: the handler the program had before the library -------------------------- */
static sigjmp_buf previous_env;
static atomic_int previous_calls;
static struct sigaction saved_by_newcomer;
static void previous_handler(int sig, siginfo_t *info, void *uc) {
  (void)sig;
  (void)info;
  (void)uc;
  atomic_fetch_add(&previous_calls, 1);
  siglongjmp(previous_env, 1);
}
static xm_fault_action pass_counting(const xm_fault *f, void *user) {
  (void)f;
  atomic_fetch_add((atomic_int *)user, 1);
  return XM_FAULT_PASS;
}

static void install(void (*fn)(int, siginfo_t *, void *), struct sigaction *old) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = fn;
  sa.sa_flags = SA_SIGINFO | SA_NODEFER;
  sigaction(SIGSEGV, &sa, old);
}

/* The program's handler installed before the library's gets what every hook passes. */
static int previous_handler_child(int out) {
  install(previous_handler, NULL);
  xm_mapping *m = xt_anon(page);
  atomic_int hook_calls = 0;
  xm_fault_hook *h;
  if (xm_fault_hook_add(xm_mapping_ptr(m), page, pass_counting, &hook_calls, &h) != XM_OK)
    return xt_say(out, 1, "%s", xm_errmsg());
  /* The child's handler is in front (the library was installed in the parent): reinstall puts the
     library's in front of it, chaining to it, as if it had been there before the library. */
  if (xm_fault_handler_reinstall() != XM_OK) return xt_say(out, 2, "%s", xm_errmsg());
  if (xm_mapping_protect(m, 0, page, XM_PROT_NONE) != XM_OK) return xt_say(out, 3, "%s", xm_errmsg());
  /* Twice: the previous handler jumps out, and the same fault again still goes to the hooks
     first (nothing of the first pass is left behind). */
  for (int round = 1; round <= 2; round++) {
    if (sigsetjmp(previous_env, 1) == 0) ((volatile unsigned char *)xm_mapping_ptr(m))[0] = 1;
    if (hook_calls != round || previous_calls != round)
      return xt_say(out, 4, "round %d: hook %d, previous handler %d calls", round, (int)hook_calls,
                    (int)previous_calls);
  }
  return xt_say(out, 0, "the hook passed, the previous handler took the fault (twice, jumping out)");
}

static void pass_reaches_the_previous_handler(void **state) {
  (void)state;
  XT_SKIP_IF_RETRIED_FAULTS_ARE_REPORTED();
  xt_child c = xt_run_child(previous_handler_child, 60);
  xt_assert_child_passed(&c);
}

/* A newcomer installed over the library without chaining: check reports it, faults go to it, and
   reinstall restores dispatch (the newcomer is then chained to). */
static atomic_int newcomer_calls;
static xm_mapping *newcomer_mapping;
static void newcomer(int sig, siginfo_t *info, void *uc) {
  (void)sig;
  (void)uc;
  atomic_fetch_add(&newcomer_calls, 1);
  mprotect((void *)((uintptr_t)info->si_addr & ~(uintptr_t)(page - 1)), page, PROT_READ | PROT_WRITE);
}

static int check_and_reinstall_child(int out) {
  xt_own_fault_signals();
  if (xm_fault_handler_check() != XM_OK) return xt_say(out, 1, "%s", xm_errmsg());
  xm_mapping *m = newcomer_mapping = xt_anon(page);
  atomic_int hook_calls = 0;
  xm_fault_hook *h;
  if (xm_fault_hook_add(xm_mapping_ptr(m), page, pass_counting, &hook_calls, &h) != XM_OK)
    return xt_say(out, 2, "%s", xm_errmsg());
  install(newcomer, NULL);
  if (xm_fault_handler_check() != XM_E_EXISTS || !strstr(xm_errmsg(), "SIGSEGV"))
    return xt_say(out, 3, "check after a newcomer: %s", xm_errmsg());
  xm_mapping_protect(m, 0, page, XM_PROT_NONE);
  ((volatile unsigned char *)xm_mapping_ptr(m))[0] = 1;
  if (hook_calls != 0 || newcomer_calls != 1) return xt_say(out, 4, "before reinstall: hook %d", (int)hook_calls);
  if (xm_fault_handler_reinstall() != XM_OK || xm_fault_handler_check() != XM_OK)
    return xt_say(out, 5, "%s", xm_errmsg());
  xm_mapping_protect(m, 0, page, XM_PROT_NONE);
  ((volatile unsigned char *)xm_mapping_ptr(m))[0] = 2; /* hook passes, newcomer fixes */
  if (hook_calls != 1 || newcomer_calls != 2)
    return xt_say(out, 6, "after reinstall: hook %d, newcomer %d", (int)hook_calls, (int)newcomer_calls);
  return xt_say(out, 0, "check saw the newcomer; reinstall restored the hooks and chains to it");
}

static void handler_check_and_reinstall(void **state) {
  (void)state;
  XT_SKIP_IF_RETRIED_FAULTS_ARE_REPORTED();
  xt_child c = xt_run_child(check_and_reinstall_child, 60);
  xt_assert_child_passed(&c);
}

/* A newcomer that chains back to the handler it replaced (the library's): after reinstall a fault
   nobody handles goes library -> newcomer -> library -> the default action, and kills the child
   with SIGSEGV instead of recursing forever. */
static void chaining_newcomer(int sig, siginfo_t *info, void *uc) {
  atomic_fetch_add(&newcomer_calls, 1);
  if (saved_by_newcomer.sa_flags & SA_SIGINFO) saved_by_newcomer.sa_sigaction(sig, info, uc);
}

static int no_loop_child(int out) {
  (void)out;
  xt_own_fault_signals(); /* the parent installed the library over SIG_DFL */
  install(chaining_newcomer, &saved_by_newcomer);
  if (xm_fault_handler_reinstall() != XM_OK) return 10;
  xm_mapping *m = xt_anon(page);
  xm_mapping_protect(m, 0, page, XM_PROT_NONE);
  ((volatile unsigned char *)xm_mapping_ptr(m))[0] = 1; /* nobody fixes it */
  return 11;
}

static void reinstall_over_a_chaining_handler_makes_no_loop(void **state) {
  (void)state;
  XT_SKIP_IF_RETRIED_FAULTS_ARE_REPORTED();
  xt_child c = xt_run_child(no_loop_child, 60);
#ifdef XT_SANITIZER
  /* The sanitizer's runtime takes the default action's place: it reports the fault and exits or
     aborts. */
  if (WIFEXITED(c.status) && WEXITSTATUS(c.status) != 10 && WEXITSTATUS(c.status) != 11 && WEXITSTATUS(c.status) != 0)
    return;
  if (WIFSIGNALED(c.status) && WTERMSIG(c.status) == SIGABRT) return; /* its report ends in abort() */
#endif
  if (WIFEXITED(c.status)) fail_msg("the child survived an unhandled fault (status %d)", WEXITSTATUS(c.status));
  assert_true(WIFSIGNALED(c.status));
  assert_int_equal(WTERMSIG(c.status), SIGSEGV);
}

/* ---- the alternate signal stack --------------------------------------------------------------- */
struct on_alt_stack {
  xm_arena *a;
  unsigned char *lo, *hi; /* the alternate stack */
  int on_it;
  int added;
};
static xm_fault_action check_stack_and_page_in(const xm_fault *f, void *user) {
  struct on_alt_stack *s = user;
  /* The frame, not a local's address: ASan may keep locals on a heap "fake stack". */
  unsigned char *here = __builtin_frame_address(0);
  s->on_it = here >= s->lo && here < s->hi;
  size_t unit = xm_allocation_granularity();
  size_t at = ((uintptr_t)f->addr - (uintptr_t)xt_arena_base(s->a)) & ~(unit - 1);
  s->added = xm_arena_add_anon(s->a, at, unit, XM_PROT_READ_WRITE) == XM_OK;
  return s->added ? XM_FAULT_RETRY : XM_FAULT_PASS;
}

#define ALT_STACK_SIZE (64 * 1024)
static XT_THREAD_RET touch_on_alt_stack(void *arg) {
  struct on_alt_stack *s = arg;
  own_faults();
  stack_t ss = {.ss_sp = s->lo, .ss_size = ALT_STACK_SIZE, .ss_flags = 0};
  if (sigaltstack(&ss, NULL) != 0) return 0;
  xt_touch(xt_arena_base(s->a) + 5);
  ss.ss_flags = SS_DISABLE;
  sigaltstack(&ss, NULL);
  return 0;
}

static void hooks_run_on_the_alternate_stack(void **state) {
  (void)state;
  XT_SKIP_IF_RETRIED_FAULTS_ARE_REPORTED();
  XT_SKIP_UNLESS_THREADS_RESUME_AFTER_FAULTS();
  struct on_alt_stack s = {.a = xt_arena(xm_allocation_granularity())};
  s.lo = malloc(ALT_STACK_SIZE);
  assert_non_null(s.lo);
  s.hi = s.lo + ALT_STACK_SIZE;
  xm_fault_hook *h;
  XT_OK(xm_fault_hook_add(xt_arena_base(s.a), xm_allocation_granularity(), check_stack_and_page_in, &s, &h));
  xt_thread t;
  xt_thread_start(&t, touch_on_alt_stack, &s);
  xt_thread_join(t);
  assert_true(s.added);
  assert_true(s.on_it);
  xm_fault_hook_remove(h);
  xm_arena_free(s.a);
  free(s.lo);
}
#endif

int main(void) {
  page = xm_page_size();
#ifndef _WIN32
  assert_int_equal(xt_capture_library_handler(), XM_OK);
#endif
  /* Faults in other threads come last: under qemu-i386 7.2 a fault in the main thread is not always
     delivered once other threads have faulted. */
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(a_hook_removes_itself),
      cmocka_unit_test(ten_thousand_hooks),
#ifdef _WIN32
      cmocka_unit_test(pass_reaches_the_next_handler_and_reinstall),
#else
      cmocka_unit_test(pass_reaches_the_previous_handler),
      cmocka_unit_test(handler_check_and_reinstall),
      cmocka_unit_test(reinstall_over_a_chaining_handler_makes_no_loop),
#endif
      cmocka_unit_test(removal_waits_for_a_running_call),
      cmocka_unit_test(threads_fault_while_hooks_change),
#ifndef _WIN32
      cmocka_unit_test(hooks_run_on_the_alternate_stack),
#endif
  };
  return XT_RUN_TESTS_AFTER_A_SNAPSHOT(tests);
}
