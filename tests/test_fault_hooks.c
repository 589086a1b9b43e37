/* Fault hooks: what a hook sees (address, instruction, access kind) for reads, writes and
   instruction fetches on no-access pages, arena holes and truncated file pages; RETRY after a fix
   resumes; PASS goes on to older hooks (newest first), then to the safe copy; a safe copy inside a
   hook. The dispatcher's machinery (threads, removal, 10,000 hooks, previous handlers, the
   alternate stack, check and reinstall): test_fault_dispatch.c. */
#include "xmtest_code.h"
#include "xmtest_faults.h"

#include <stdatomic.h>

static size_t page;

/* Whether this target must report the access kind: x86-64 Linux (the page-fault error code) and
   Windows (the exception record). Elsewhere 0 is allowed (see the README's table), but a reported
   kind must be right. */
#if (defined(__x86_64__) && defined(__linux__)) || defined(_WIN32)
#define ACCESS_REPORTED 1
#else
#define ACCESS_REPORTED 0
#endif
static void assert_access(xm_prot got, xm_prot want) {
  if (ACCESS_REPORTED || got != 0) assert_int_equal(got, want);
}

/* cmocka puts its own fault handlers in front around each test; the library's goes back in front. */
static void own_faults(void) {
#ifndef _WIN32
  xt_own_fault_signals();
#endif
}

/* ---- a hook that records what it saw and lifts the protection of the faulting page ----------- */
struct fixer {
  xm_mapping *m;
  xm_prot fix; /* the protection the hook gives the faulting page */
  xm_fault_action action;
  atomic_int calls;
  xm_fault seen;
};

static xm_fault_action fix_page(const xm_fault *f, void *user) {
  struct fixer *x = user;
  atomic_fetch_add(&x->calls, 1);
  x->seen = *f;
  if (x->action == XM_FAULT_RETRY) {
    size_t at = ((uintptr_t)f->addr - (uintptr_t)xm_mapping_ptr(x->m)) & ~(page - 1);
    if (xm_mapping_protect(x->m, at, page, x->fix) != XM_OK) return XM_FAULT_PASS;
  }
  return x->action;
}

static void bad_input(void **state) {
  (void)state;
  xm_fault_hook *h = (xm_fault_hook *)&h;
  static char spot[16];
  XT_STATUS(XM_E_INVALID_ARGUMENT, xm_fault_hook_add(spot, sizeof spot, fix_page, NULL, NULL));
  xt_assert_errmsg_has("out must not be NULL");
  XT_STATUS(XM_E_INVALID_ARGUMENT, xm_fault_hook_add(spot, sizeof spot, NULL, NULL, &h));
  xt_assert_errmsg_has("function must not be NULL");
  XT_STATUS(XM_E_INVALID_ARGUMENT, xm_fault_hook_add(spot, 0, fix_page, NULL, &h));
  xt_assert_errmsg_has("len must be > 0");
  XT_STATUS(XM_E_OVERFLOW, xm_fault_hook_add((void *)(UINTPTR_MAX - 15), 32, fix_page, NULL, &h));
  xt_assert_errmsg_has("would overflow");
  assert_ptr_equal(h, (xm_fault_hook *)&h); /* *out untouched on failure */
  xm_fault_hook_remove(NULL);               /* a no-op */
  /* The very top of the address space is a valid range. */
  XT_OK(xm_fault_hook_add((void *)(UINTPTR_MAX - 15), 16, fix_page, NULL, &h));
  xm_fault_hook_remove(h);
}

/* A read and a write of a no-access page: the exact address, the instruction, the kind; RETRY after
   lifting the protection resumes the access, which then completes. */
static void read_and_write_of_a_no_access_page(void **state) {
  (void)state;
  XT_SKIP_IF_RETRIED_FAULTS_ARE_REPORTED();
  own_faults();
  xm_mapping *m = xt_anon(4 * page);
  unsigned char *p = xm_mapping_ptr(m);
  p[2 * page + 5] = 77;
  struct fixer x = {.m = m, .fix = XM_PROT_READ, .action = XM_FAULT_RETRY};
  xm_fault_hook *h;
  XT_OK(xm_fault_hook_add(p, 4 * page, fix_page, &x, &h));
  XT_OK(xm_mapping_protect(m, 2 * page, page, XM_PROT_NONE));
  assert_int_equal(xt_touch(p + 2 * page + 5), 77);
  assert_int_equal(atomic_load(&x.calls), 1);
  assert_ptr_equal(x.seen.addr, p + 2 * page + 5);
  assert_access(x.seen.access, XM_PROT_READ);
  assert_non_null(x.seen.pc);
  assert_non_null(x.seen.context);
  /* Now readable, not writable: a write faults once more; the hook makes it writable. */
  x.fix = XM_PROT_READ_WRITE;
  ((volatile unsigned char *)p)[2 * page + 9] = 99;
  assert_int_equal(atomic_load(&x.calls), 2);
  assert_ptr_equal(x.seen.addr, p + 2 * page + 9);
  assert_access(x.seen.access, XM_PROT_WRITE);
  assert_int_equal(p[2 * page + 9], 99);
  /* No fault, no call. */
  p[0] = 1;
  assert_int_equal(atomic_load(&x.calls), 2);
  xm_fault_hook_remove(h);
  xm_mapping_free(m);
}

/* An instruction fetch from a no-access page: the hook sees the code's address, makes the page
   executable, and the call returns what the code returns. */
static int exec_fault_run(void) {
  xm_builder b = xm_builder_new(page);
  xm_builder_protection(&b, XM_PROT_READ | XM_PROT_WRITE | XM_PROT_EXEC);
  xm_mapping *m = NULL;
  if (xm_builder_build(&b, &m) != XM_OK) return -1;
  unsigned char *code = xm_mapping_ptr(m);
  size_t n = emit_return(code + 64, 42);
  if (xm_icache_sync(code + 64, n) != XM_OK) return -2;
  struct fixer x = {.m = m, .fix = XM_PROT_READ | XM_PROT_EXEC, .action = XM_FAULT_RETRY};
  xm_fault_hook *h;
  if (xm_fault_hook_add(code, page, fix_page, &x, &h) != XM_OK) return -3;
  if (xm_mapping_protect(m, 0, page, XM_PROT_NONE) != XM_OK) return -4;
  int got = call_ptr(code + 64);
  xm_fault_hook_remove(h);
  int ok = got == 42 && atomic_load(&x.calls) == 1 && x.seen.addr == code + 64 &&
           (x.seen.access == XM_PROT_EXEC || (!ACCESS_REPORTED && x.seen.access == 0)) &&
           (x.seen.pc == NULL || x.seen.pc == code + 64);
  xm_mapping_free(m);
  return ok ? 0 : -5;
}

#ifndef _WIN32
/* Whether an instruction fetch fault reports the instruction's address in si_addr (qemu-ppc64le
   reports NULL), probed with a handler of the child's own before the library's. */
static sigjmp_buf fetch_probe_env;
static void *fetch_probe_addr;
static void fetch_probe_handler(int sig, siginfo_t *info, void *uc) {
  (void)sig;
  (void)uc;
  fetch_probe_addr = info->si_addr;
  siglongjmp(fetch_probe_env, 1);
}

static int exec_fault_child(int out) {
  unsigned char *raw = mmap(NULL, page, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) return xt_say(out, 1, "mmap failed");
  struct sigaction sa, old;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = fetch_probe_handler;
  sa.sa_flags = SA_SIGINFO | SA_NODEFER;
  sigaction(SIGSEGV, &sa, &old);
  if (sigsetjmp(fetch_probe_env, 1) == 0) call_ptr(raw + 64);
  sigaction(SIGSEGV, &old, NULL);
  munmap(raw, page);
  if (fetch_probe_addr != raw + 64)
    return xt_say(out, XT_CHILD_SKIP, "an instruction-fetch fault reports si_addr %p for code at %p here",
                  fetch_probe_addr, (void *)(raw + 64));
  xt_own_fault_signals(); /* the child inherited cmocka's handler in front */
  int rc = exec_fault_run();
  return rc == 0 ? xt_say(out, 0, "the hook saw the fetch and the code ran") : xt_say(out, 2, "step %d", -rc);
}
#endif

static void instruction_fetch_from_a_no_access_page(void **state) {
  (void)state;
  XT_SKIP_IF_RETRIED_FAULTS_ARE_REPORTED();
#ifdef _WIN32
  assert_int_equal(exec_fault_run(), 0);
#else
  xt_child c = xt_run_child(exec_fault_child, 60);
  xt_assert_child_passed(&c);
#endif
}

/* ---- arena holes: demand paging ----------------------------------------------------------------- */
struct pager {
  xm_arena *a;
  size_t unit;
  atomic_int calls;
};

/* Maps the touched unit of the arena (zero-filled memory) and retries: demand paging. */
static xm_fault_action page_in(const xm_fault *f, void *user) {
  struct pager *pg = user;
  atomic_fetch_add(&pg->calls, 1);
  size_t at = ((uintptr_t)f->addr - (uintptr_t)xt_arena_base(pg->a)) & ~(pg->unit - 1);
  return xm_arena_add_anon(pg->a, at, pg->unit, XM_PROT_READ_WRITE) == XM_OK ? XM_FAULT_RETRY : XM_FAULT_PASS;
}

static void arena_holes_paged_in_on_first_touch(void **state) {
  (void)state;
  XT_SKIP_IF_RETRIED_FAULTS_ARE_REPORTED();
  own_faults();
  struct pager pg = {.a = xt_arena(16 * xm_allocation_granularity()), .unit = xm_allocation_granularity()};
  unsigned char *base = xt_arena_base(pg.a);
  xm_fault_hook *h;
  XT_OK(xm_fault_hook_add(base, 16 * pg.unit, page_in, &pg, &h));
  /* A read of a hole: paged in, reads zero. */
  assert_int_equal(xt_touch(base + 3 * pg.unit + 7), 0);
  assert_int_equal(atomic_load(&pg.calls), 1);
  /* A write of another: paged in, written. */
  base[9 * pg.unit + 1] = 5;
  assert_int_equal(atomic_load(&pg.calls), 2);
  assert_int_equal(base[9 * pg.unit + 1], 5);
  /* A safe copy across two holes and a paged-in unit completes: the hook fills the holes first. */
  unsigned char buf[64];
  memset(buf, 0xab, sizeof buf);
  size_t copied = 0;
  XT_OK(xm_region_write_safe(xm_arena_region(pg.a), buf, sizeof buf, 5 * pg.unit - 32, &copied));
  assert_int_equal(copied, sizeof buf);
  assert_int_equal(atomic_load(&pg.calls), 4);
  unsigned char back[2 * 64];
  XT_OK(xm_region_read_safe(xm_arena_region(pg.a), back, sizeof back, 5 * pg.unit - 64, &copied));
  assert_int_equal(copied, sizeof back);
  for (size_t i = 0; i < sizeof back; i++)
    assert_int_equal(back[i], i < 32 || i >= 96 ? 0 : 0xab);
  /* Without the hook, a hole is XM_E_FAULT for a safe copy, with the offset. */
  xm_fault_hook_remove(h);
  XT_STATUS(XM_E_FAULT, xm_region_read_safe(xm_arena_region(pg.a), back, sizeof back, 12 * pg.unit, &copied));
  xt_assert_errmsg_has("faulted at offset");
  /* Bad input of the region copies. */
  XT_STATUS(XM_E_INVALID_ARGUMENT, xm_region_read_safe(NULL, back, 1, 0, &copied));
  XT_STATUS(XM_E_INVALID_ADDRESS, xm_region_read_safe(xm_arena_region(pg.a), back, 1, 17 * pg.unit, &copied));
  XT_STATUS(XM_E_INVALID_ARGUMENT, xm_region_write_safe(xm_arena_region(pg.a), NULL, 1, 0, &copied));
  xm_arena_free(pg.a);
}

#ifndef _WIN32
/* A page of a file truncated under its mapping (SIGBUS): the hook sees its address; growing the
   file again and retrying reads zeros. */
static xm_descriptor truncated_fd;
static xm_fault_action grow_file(const xm_fault *f, void *user) {
  struct fixer *x = user;
  atomic_fetch_add(&x->calls, 1);
  x->seen = *f;
  return ftruncate(truncated_fd, (off_t)(3 * page)) == 0 ? XM_FAULT_RETRY : XM_FAULT_PASS;
}

/* See xt_sigbus_reports_address, probed in main() before the library's handler exists. */
static int sigbus_addr_ok;
static uintptr_t sigbus_addr_seen, sigbus_addr_expected;

static void truncated_file_page(void **state) {
  (void)state;
  XT_SKIP_IF_RETRIED_FAULTS_ARE_REPORTED();
  if (!sigbus_addr_ok)
    XT_SKIP("SIGBUS reports address 0x%lx for 0x%lx here (qemu-user, 32-bit guest)", (unsigned long)sigbus_addr_seen,
            (unsigned long)sigbus_addr_expected);
  own_faults();
  xm_mapping *m = xt_truncated_file_mapping(page, &truncated_fd);
  if (!m) XT_SKIP("cannot truncate a mapped file here");
  unsigned char *p = xm_mapping_ptr(m);
  struct fixer x = {.m = m};
  xm_fault_hook *h;
  XT_OK(xm_fault_hook_add(p, 3 * page, grow_file, &x, &h));
  assert_int_equal(xt_touch(p + 2 * page + 3), 0);
  assert_int_equal(atomic_load(&x.calls), 1);
  assert_ptr_equal(x.seen.addr, p + 2 * page + 3);
  assert_access(x.seen.access, XM_PROT_READ);
  xm_fault_hook_remove(h);
  xm_mapping_free(m);
  xt_close(truncated_fd);
}
#endif

/* ---- order: hooks newest first, then the safe copy ----------------------------------------------- */
static char order[8];
static atomic_int order_len;
struct named {
  char name;
  xm_fault_action action;
  struct fixer *fixer; /* fixes the page when the action is RETRY */
};
static xm_fault_action record(const xm_fault *f, void *user) {
  struct named *n = user;
  int i = atomic_fetch_add(&order_len, 1);
  if (i < (int)sizeof order - 1) order[i] = n->name;
  if (n->action == XM_FAULT_RETRY) return fix_page(f, n->fixer);
  return XM_FAULT_PASS;
}

static void overlapping_hooks_newest_first(void **state) {
  (void)state;
  XT_SKIP_IF_RETRIED_FAULTS_ARE_REPORTED();
  own_faults();
  xm_mapping *m = xt_anon(4 * page);
  unsigned char *p = xm_mapping_ptr(m);
  struct fixer x = {.m = m, .fix = XM_PROT_READ_WRITE, .action = XM_FAULT_RETRY};
  struct named a = {'a', XM_FAULT_RETRY, &x}, b = {'b', XM_FAULT_PASS, NULL}, c = {'c', XM_FAULT_PASS, NULL},
               d = {'d', XM_FAULT_RETRY, &x};
  xm_fault_hook *ha, *hb, *hc, *hd;
  XT_OK(xm_fault_hook_add(p, 4 * page, record, &a, &ha));        /* oldest, all of it */
  XT_OK(xm_fault_hook_add(p + page, 2 * page, record, &b, &hb)); /* pages 1-2 */
  XT_OK(xm_fault_hook_add(p + 2 * page, page, record, &c, &hc)); /* page 2 */
  XT_OK(xm_fault_hook_add(p + 3 * page, page, record, &d, &hd)); /* page 3: does not cover 2 */
  XT_OK(xm_mapping_protect(m, 0, 4 * page, XM_PROT_NONE));
  p[2 * page] = 1; /* c, b pass; a fixes */
  assert_int_equal(atomic_load(&order_len), 3);
  assert_memory_equal(order, "cba", 3);
  atomic_store(&order_len, 0);
  p[3 * page] = 1; /* d fixes: a is not asked */
  assert_int_equal(atomic_load(&order_len), 1);
  assert_int_equal(order[0], 'd');
  xm_fault_hook_remove(ha);
  xm_fault_hook_remove(hd);
  xm_fault_hook_remove(hb);
  xm_fault_hook_remove(hc);
  xm_mapping_free(m);
}

/* A safe copy into pages the OS protects but the mapping allows (a tracker's or an emulator's own
   protection): a hook that lifts it lets the copy complete; hooks that pass leave XM_E_FAULT. */
static void safe_copy_after_the_hooks(void **state) {
  (void)state;
  XT_SKIP_IF_RETRIED_FAULTS_ARE_REPORTED();
  own_faults();
  xm_arena *a = xt_arena(4 * xm_allocation_granularity());
  const size_t unit = xm_allocation_granularity();
  XT_OK(xm_arena_add_anon(a, 0, 4 * unit, XM_PROT_READ_WRITE));
  unsigned char *base = xt_arena_base(a);
  struct pager pg = {.a = a, .unit = unit};
  XT_OK(xm_arena_remove(a, unit, unit));
  struct named pass = {'p', XM_FAULT_PASS, NULL};
  xm_fault_hook *hp, *hg;
  XT_OK(xm_fault_hook_add(base, 4 * unit, record, &pass, &hp));
  atomic_store(&order_len, 0);
  unsigned char buf[32] = {1, 2, 3};
  size_t copied = 0;
  XT_STATUS(XM_E_FAULT, xm_region_write_safe(xm_arena_region(a), buf, sizeof buf, unit + 8, &copied));
  assert_true(atomic_load(&order_len) >= 1); /* asked before the copy gave up */
  /* An older hook that pages in: the newer one passes, the older fixes, the copy completes. */
  xm_fault_hook_remove(hp);
  XT_OK(xm_fault_hook_add(base, 4 * unit, page_in, &pg, &hg));
  XT_OK(xm_fault_hook_add(base, 4 * unit, record, &pass, &hp));
  atomic_store(&order_len, 0);
  XT_OK(xm_region_write_safe(xm_arena_region(a), buf, sizeof buf, unit + 8, &copied));
  assert_int_equal(copied, sizeof buf);
  assert_int_equal(atomic_load(&order_len), 1);
  assert_int_equal(atomic_load(&pg.calls), 1);
  assert_int_equal(base[unit + 10], 3);
  xm_fault_hook_remove(hp);
  xm_fault_hook_remove(hg);
  xm_arena_free(a);
}

/* A hook doing a safe copy of its own that faults: the copy inside the hook gets XM_E_FAULT, and
   the outer access is then fixed and completes. */
struct nested {
  xm_mapping *gone; /* a no-access mapping the hook copies from */
  struct fixer *fixer;
  int inner_rc;
};
static xm_fault_action copy_then_fix(const xm_fault *f, void *user) {
  struct nested *n = user;
  unsigned char b[8];
  size_t copied;
  n->inner_rc = xm_region_read_safe(xm_mapping_region(n->gone), b, sizeof b, 0, &copied);
  return fix_page(f, n->fixer);
}

static void safe_copy_inside_a_hook(void **state) {
  (void)state;
  XT_SKIP_IF_RETRIED_FAULTS_ARE_REPORTED();
  own_faults();
  xm_mapping *m = xt_anon(page), *gone = xt_anon(page);
  XT_OK(xm_mapping_protect(gone, 0, page, XM_PROT_NONE));
  struct fixer x = {.m = m, .fix = XM_PROT_READ_WRITE, .action = XM_FAULT_RETRY};
  struct nested n = {gone, &x, 1};
  xm_fault_hook *h;
  XT_OK(xm_fault_hook_add(xm_mapping_ptr(m), page, copy_then_fix, &n, &h));
  XT_OK(xm_mapping_protect(m, 0, page, XM_PROT_NONE));
  ((volatile unsigned char *)xm_mapping_ptr(m))[1] = 4;
  assert_int_equal(n.inner_rc, XM_E_FAULT);
  assert_int_equal(((unsigned char *)xm_mapping_ptr(m))[1], 4);
  xm_fault_hook_remove(h);
  xm_mapping_free(m);
  xm_mapping_free(gone);
}

int main(void) {
  page = xm_page_size();
#ifndef _WIN32
  sigbus_addr_ok = xt_sigbus_reports_address(page, &sigbus_addr_seen, &sigbus_addr_expected);
  assert_int_equal(xt_capture_library_handler(), XM_OK);
#endif
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(bad_input),
      cmocka_unit_test(read_and_write_of_a_no_access_page),
      cmocka_unit_test(instruction_fetch_from_a_no_access_page),
      cmocka_unit_test(arena_holes_paged_in_on_first_touch),
#ifndef _WIN32
      cmocka_unit_test(truncated_file_page),
#endif
      cmocka_unit_test(overlapping_hooks_newest_first),
      cmocka_unit_test(safe_copy_after_the_hooks),
      cmocka_unit_test(safe_copy_inside_a_hook),
  };
  return XT_RUN_TESTS_AFTER_A_SNAPSHOT(tests);
}
