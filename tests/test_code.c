/* Executable memory: XM_PROT_EXEC, JIT code buffers by every strategy the machine offers, W^X,
   placement near an address, instruction-cache sync and the aarch64 sequence choice. */
#include "xmtest.h"
#include "xmtest_code.h"

#include "arch/aarch64_icache.h"

#ifndef _WIN32
#include <signal.h>
#include <sys/wait.h>
#endif

static int call_at(const xm_code *c, size_t offset) { return call_ptr((unsigned char *)xm_code_exec_ptr(c) + offset); }

/* A buffer by the strategy flags demand, or a skip that says why (the probe is the attempt). */
static xm_code *code_or_skip(unsigned flags, const char *strategy) {
  xm_code *c = NULL;
  int rc = xm_code_new(8192, flags, NULL, &c);
  if (rc != XM_OK) XT_SKIP("no \"%s\" code buffer here: %s", strategy, xm_errmsg());
  assert_string_equal(xm_code_strategy(c), strategy);
  return c;
}

/* Runs the function at offset, rewrites it to return `second`, and returns what runs then. */
static int rewrite_seen(xm_code *c, size_t offset, unsigned first, unsigned second) {
  unsigned char *w = xm_code_write_ptr(c);
  assert_int_equal(xm_code_begin_write(c, offset, 8), XM_OK);
  size_t n = emit_return(w + offset, first);
  assert_int_equal(xm_code_end_write(c, offset, n), XM_OK);
  assert_int_equal(call_at(c, offset), (int)first);
  assert_int_equal(xm_code_begin_write(c, offset, n), XM_OK);
  emit_return(w + offset, second);
  assert_int_equal(xm_code_end_write(c, offset, n), XM_OK);
  return call_at(c, offset);
}

/* Whether rewrites at the executing address (a "toggle" buffer, through the same xm_icache_sync)
   are always seen. When they are and a rewrite through the dual view's alias was not, instruction
   fetch here watches only the executing address for new code: the mark of a translating emulator
   (QEMU user mode). A real instruction-cache bug would miss both. */
static bool in_place_rewrites_seen(void) {
  xm_code *same = NULL;
  if (xm_code_new(8192, XM_CODE_TOGGLE, NULL, &same) != XM_OK) return false;
  bool seen = true;
  for (unsigned k = 0; k < 8; k++)
    seen &= rewrite_seen(same, k * 512, 7, 8) == 8;
  xm_code_free(same);
  return seen;
}

static void run_and_rewrite(xm_code *c) {
  unsigned char *w = xm_code_write_ptr(c);
  size_t n = emit_return(w + 64, 42);
  XT_STATUS(XM_OK, xm_code_end_write(c, 64, n));
  assert_int_equal(call_at(c, 64), 42);
  XT_STATUS(XM_OK, xm_code_begin_write(c, 64, n));
  emit_return(w + 64, 99);
  XT_STATUS(XM_OK, xm_code_end_write(c, 64, n));
  int got = call_at(c, 64);
  if (got == 42 && strcmp(xm_code_strategy(c), "dual view") == 0 && in_place_rewrites_seen()) {
    print_message("[  SKIP    ] rewrite through the write view: instruction fetch here sees rewrites only at the "
                  "executing address (a translating emulator such as QEMU user mode)\n");
    return;
  }
  assert_int_equal(got, 99);
}

static void dual_view_runs_and_rewrites(void **state) {
  (void)state;
  xm_code *c = code_or_skip(XM_CODE_DUAL_VIEW, "dual view");
  assert_ptr_not_equal(xm_code_write_ptr(c), xm_code_exec_ptr(c));
  assert_int_equal(xm_code_size(c), 8192);
  run_and_rewrite(c);
  xm_code_free(c);
}

static void toggle_runs_and_rewrites(void **state) {
  (void)state;
  xm_code *c = code_or_skip(XM_CODE_TOGGLE, "toggle");
  assert_ptr_equal(xm_code_write_ptr(c), xm_code_exec_ptr(c));
  run_and_rewrite(c);
  /* Overlapping writers: the page turns executable only when the last one ends. */
  XT_STATUS(XM_OK, xm_code_begin_write(c, 0, 16));
  XT_STATUS(XM_OK, xm_code_begin_write(c, 64, 16));
  emit_return((unsigned char *)xm_code_write_ptr(c) + 64, 17);
  XT_STATUS(XM_OK, xm_code_end_write(c, 0, 16));
  ((volatile unsigned char *)xm_code_write_ptr(c))[4000] = 1; /* still writable: the other writer is open */
  XT_STATUS(XM_OK, xm_code_end_write(c, 64, 16));
  assert_int_equal(call_at(c, 64), 17);
  xm_code_free(c);
}

static void rwx_only_when_allowed(void **state) {
  (void)state;
  xm_code *c = NULL;
  int rc = xm_code_new(4096, XM_CODE_ALLOW_RWX, NULL, &c);
  if (rc != XM_OK) XT_SKIP("no code buffer at all here: %s", xm_errmsg());
  const char *force = getenv("XMMAP_CODE");
  if (force && strcmp(force, "rwx") == 0) { /* the strategy forced, as a machine without better would pick it */
    assert_string_equal(xm_code_strategy(c), "rwx");
    assert_ptr_equal(xm_code_write_ptr(c), xm_code_exec_ptr(c));
    run_and_rewrite(c);
    xm_code_free(c);
    return;
  }
  /* The best strategy the machine offers comes first; rwx only when nothing else works. */
  xm_code *best = NULL;
  if (xm_code_new(4096, 0, NULL, &best) == XM_OK) {
    assert_string_equal(xm_code_strategy(c), xm_code_strategy(best));
    assert_string_not_equal(xm_code_strategy(best), "rwx");
    xm_code_free(best);
  }
  run_and_rewrite(c);
  xm_code_free(c);
}

/* The "rwx" strategy's view, made as make_rwx makes it (xm_code picks it only when nothing better
   works, which is never where the tests run): one anonymous read-write-execute mapping runs code
   and sees it rewritten in place. */
static void rwx_mapping_runs_code(void **state) {
  (void)state;
  xm_builder b = xm_builder_new(4096);
  xm_builder_protection(&b, XM_PROT_READ_WRITE | XM_PROT_EXEC);
  xm_mapping *m = NULL;
  if (xm_builder_build(&b, &m) != XM_OK) XT_SKIP("read-write-execute memory refused here: %s", xm_errmsg());
  unsigned char *p = xm_mapping_ptr(m);
#ifdef _WIN32
  assert_int_equal(xt_query(p).Protect, PAGE_EXECUTE_READWRITE);
#endif
  size_t n = emit_return(p, 11);
  XT_OK(xm_icache_sync(p, n));
  assert_int_equal(call_ptr(p), 11);
  emit_return(p, 12);
  XT_OK(xm_icache_sync(p, n));
  assert_int_equal(call_ptr(p), 12);
  xm_mapping_free(m);
}

/* ---- W^X ------------------------------------------------------------------------------------- */
#ifdef _WIN32
#if defined(__x86_64__)
/* The probes' faults, recovered by a vectored handler that knows exactly two: the write of
   write_faults' one instruction to probe_addr (skipped), and an instruction fetch at probe_addr by
   a call (returned from, as the function would). Everything else goes on to the next handler. */
static void *volatile probe_addr;
static volatile bool probe_faulted;

static LONG CALLBACK probe_handler(EXCEPTION_POINTERS *e) {
  const EXCEPTION_RECORD *r = e->ExceptionRecord;
  CONTEXT *c = e->ContextRecord;
  if (!probe_addr || r->ExceptionCode != EXCEPTION_ACCESS_VIOLATION || r->NumberParameters < 2 ||
      r->ExceptionInformation[1] != (ULONG_PTR)probe_addr)
    return EXCEPTION_CONTINUE_SEARCH;
  if (r->ExceptionInformation[0] == 1) { /* a write: movb $0xc3, (%rcx) is 3 bytes */
    c->Rip += 3;
  } else if (r->ExceptionInformation[0] == 8 && c->Rip == (DWORD64)(uintptr_t)probe_addr) { /* DEP */
    c->Rip = *(const DWORD64 *)(uintptr_t)c->Rsp; /* the return address the call pushed */
    c->Rsp += 8;
  } else {
    return EXCEPTION_CONTINUE_SEARCH;
  }
  probe_faulted = true;
  return EXCEPTION_CONTINUE_EXECUTION;
}

static bool write_faults(void *p) {
  probe_faulted = false;
  probe_addr = p;
  __asm__ volatile("movb $0xc3, (%0)" : : "c"(p) : "memory");
  probe_addr = NULL;
  return probe_faulted;
}

/* p holds a valid function, so a CPU that does not enforce no-execute just runs it. */
static bool exec_faults(void *p) {
  probe_faulted = false;
  probe_addr = p;
  (void)call_ptr(p);
  probe_addr = NULL;
  return probe_faulted;
}

/* Writing through the execute view faults; executing from the write view faults where the OS
   enforces no-execute, probed first on an ordinary read-write page holding a valid function. */
static void probe_w_xor_x(unsigned char *w, unsigned char *x) {
  void *handler = AddVectoredExceptionHandler(1, probe_handler);
  assert_non_null(handler);
  assert_true(write_faults(x));
  unsigned char *rw_page = VirtualAlloc(NULL, 4096, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE);
  assert_non_null(rw_page);
  emit_return(rw_page, 1);
  bool nx = exec_faults(rw_page);
  VirtualFree(rw_page, 0, MEM_RELEASE);
  if (nx)
    assert_true(exec_faults(w));
  else
    print_message("[  SKIP    ] execute from the write view: this system does not enforce no-execute\n");
  RemoveVectoredExceptionHandler(handler);
}
#else
static void probe_w_xor_x(unsigned char *w, unsigned char *x) {
  (void)w;
  (void)x;
  print_message("[  SKIP    ] fault probes of the views: written for x86-64 Windows only\n");
}
#endif
#else
/* The permissions /proc/self/maps shows for the mapping holding p ("r-x"), or "" without /proc. */
static void permissions_of(const void *p, char perms[4]) {
  perms[0] = 0;
  FILE *f = fopen("/proc/self/maps", "r");
  if (!f) return;
  char line[512];
  while (fgets(line, sizeof line, f)) {
    unsigned long long a, b;
    char rwx[5];
    if (sscanf(line, "%llx-%llx %4s", &a, &b, rwx) == 3 && (uintptr_t)p >= a && (uintptr_t)p < b) {
      memcpy(perms, rwx, 3);
      perms[3] = 0;
    }
  }
  fclose(f);
}

/* Runs probe in a child process: true when it died of SIGSEGV/SIGBUS. */
static bool child_faults(void (*probe)(void *), void *arg) {
  fflush(NULL);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    signal(SIGSEGV, SIG_DFL);
    signal(SIGBUS, SIG_DFL);
    probe(arg);
    _exit(0);
  }
  int status = 0;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  return WIFSIGNALED(status) && (WTERMSIG(status) == SIGSEGV || WTERMSIG(status) == SIGBUS);
}
static void write_probe(void *p) { *(volatile unsigned char *)p = 0xc3; }
static void exec_probe(void *p) {
  xt_fn fn;
  memcpy(&fn, &p, sizeof fn);
  (void)fn();
}
#endif

static void dual_views_are_w_xor_x(void **state) {
  (void)state;
  xm_code *c = code_or_skip(XM_CODE_DUAL_VIEW, "dual view");
  unsigned char *w = xm_code_write_ptr(c), *x = xm_code_exec_ptr(c);
  emit_return(w, 5);
  XT_STATUS(XM_OK, xm_code_end_write(c, 0, 16));
#ifdef _WIN32
  assert_int_equal(xt_query(w).Protect, PAGE_READWRITE);
  assert_int_equal(xt_query(x).Protect, PAGE_EXECUTE_READ);
  probe_w_xor_x(w, x);
#else
  char pw[4], px[4];
  permissions_of(w, pw);
  permissions_of(x, px);
  if (pw[0]) {
    assert_string_equal(pw, "rw-");
    assert_string_equal(px, "r-x");
  }
  if (xt_under_valgrind()) {
    xm_code_free(c);
    XT_SKIP("faults in a forked child are not probed under valgrind");
  }
  assert_true(child_faults(write_probe, x)); /* writing through the execute view faults */
  /* Executing from the write view faults where the OS enforces no-execute: probe it first on an
     ordinary read-write page holding a valid function. */
  static unsigned char *rw_page;
  xm_mapping *m = xt_anon(4096);
  rw_page = xm_mapping_ptr(m);
  emit_return(rw_page, 1);
  bool nx = child_faults(exec_probe, rw_page);
  xm_mapping_free(m);
  if (nx)
    assert_true(child_faults(exec_probe, w));
  else
    print_message("[  SKIP    ] execute from the write view: this CPU (or emulator) does not enforce no-execute\n");
#endif
  xm_code_free(c);
}

/* ---- placement near an address ---------------------------------------------------------------- */
static int forty_two(void) { return 42; }

static void exec_view_near_address(void **state) {
  (void)state;
  void *program; /* not `near`: <windows.h> defines that as an empty macro */
  xt_fn target = forty_two;
  memcpy(&program, &target, sizeof program);
  xm_code *c = NULL;
  int rc = xm_code_new(65536, 0, program, &c);
  if (rc != XM_OK) XT_SKIP("no code buffer here: %s", xm_errmsg());
  uintptr_t x = (uintptr_t)xm_code_exec_ptr(c), n = (uintptr_t)program;
  if (sizeof(void *) == 8) {
    uint64_t lo = x > n ? x - n : n - x, hi = x + 65536 > n ? x + 65536 - n : n - x - 65536;
    assert_true(lo < ((uint64_t)1 << 31) && hi < ((uint64_t)1 << 31));
  }
#if defined(__x86_64__) || defined(_M_X64)
  /* sub rsp, 40; call rel32 forty_two; add rsp, 40; ret (40: Win64's home area, alignment) */
  unsigned char *w = xm_code_write_ptr(c);
  const unsigned char pre[] = {0x48, 0x83, 0xec, 0x28, 0xe8};
  memcpy(w, pre, sizeof pre);
  int32_t rel = (int32_t)((intptr_t)n - (intptr_t)(x + 9));
  memcpy(w + 5, &rel, 4);
  const unsigned char post[] = {0x48, 0x83, 0xc4, 0x28, 0xc3};
  memcpy(w + 9, post, sizeof post);
  XT_STATUS(XM_OK, xm_code_end_write(c, 0, 14));
  assert_int_equal(call_at(c, 0), 42);
#endif
  xm_code_free(c);
}

/* ---- bad input, statuses, leaks ---------------------------------------------------------------- */
static void code_bad_input(void **state) {
  (void)state;
  xm_code *c = NULL;
  XT_STATUS(XM_E_INVALID_ARGUMENT, xm_code_new(0, 0, NULL, &c));
  XT_STATUS(XM_E_INVALID_ARGUMENT, xm_code_new(4096, 8, NULL, &c));
  xt_assert_errmsg_has("0x8");
  XT_STATUS(XM_E_INVALID_ARGUMENT, xm_code_new(4096, XM_CODE_DUAL_VIEW | XM_CODE_TOGGLE, NULL, &c));
  XT_STATUS(XM_E_INVALID_ARGUMENT, xm_code_new(4096, 0, NULL, NULL));
  assert_null(c);
  XT_STATUS(XM_E_INVALID_ARGUMENT, xm_code_begin_write(NULL, 0, 1));
  XT_STATUS(XM_E_INVALID_ARGUMENT, xm_icache_sync(NULL, 1));
  XT_STATUS(XM_OK, xm_icache_sync(NULL, 0));
  if (xm_code_new(4096, 0, NULL, &c) != XM_OK) XT_SKIP("no code buffer here: %s", xm_errmsg());
  size_t size = xm_code_size(c);
  XT_STATUS(XM_E_INVALID_RANGE, xm_code_begin_write(c, size - 8, 16));
  xt_assert_errmsg_has("offset=4088 count=16");
  XT_STATUS(XM_E_INVALID_RANGE, xm_code_end_write(c, SIZE_MAX, 2));
  XT_STATUS(XM_OK, xm_code_end_write(c, size, 0));
  xm_code_free(c);
  xm_code_free(NULL);
  assert_null(xm_code_exec_ptr(NULL));
}

static void code_frees_everything(void **state) {
  (void)state;
  xt_snapshot before = xt_snap();
  for (unsigned flags = 0; flags <= XM_CODE_TOGGLE; flags++) {
    xm_code *c = NULL;
    if (flags == 3 || xm_code_new(20000, flags, NULL, &c) != XM_OK) continue;
    xm_code_free(c);
  }
  xt_assert_no_leak(before);
}

static void prot_exec_policy(void **state) {
  (void)state;
  xm_shm *ram, *code;
  XT_STATUS(XM_OK, xm_shm_new("guest-ram", 4096, &ram));
  xm_builder b = xm_builder_new(4096);
  xm_builder_from_shm(&b, ram);
  xm_builder_protection(&b, XM_PROT_READ | XM_PROT_EXEC);
  xm_mapping *m = NULL;
  xt_build_refused_before_os(&b, XM_E_ACCESS); /* guest RAM runs no code unless made for it */
  xt_assert_errmsg_has("XM_SHM_EXEC");
  XT_STATUS(XM_E_INVALID_ARGUMENT, xm_shm_new_ex("x", 4096, 64, 0, &code));
  XT_STATUS(XM_E_INVALID_ARGUMENT, xm_shm_new_ex("x", 4096, XM_SHM_HUGE | XM_SHM_LAZY_COMMIT, 0, &code));
  XT_STATUS(XM_OK, xm_shm_new_ex("code", 4096, XM_SHM_EXEC, 0, &code));
  xm_builder_from_shm(&b, code);
  int rc = xm_builder_build(&b, &m);
  if (rc == XM_OK) {
    /* protect never raises above what was built, exec included */
    XT_STATUS(XM_E_ACCESS, xm_mapping_protect(m, 0, 4096, XM_PROT_READ_WRITE | XM_PROT_EXEC));
    XT_STATUS(XM_OK, xm_mapping_protect(m, 0, 4096, XM_PROT_READ));
    XT_STATUS(XM_OK, xm_mapping_protect(m, 0, 4096, XM_PROT_READ | XM_PROT_EXEC));
    xm_mapping_free(m);
  } else {
    print_message("executable shared memory refused here: %s\n", xm_errmsg());
  }
  assert_true(xm_prot_allows(XM_PROT_READ | XM_PROT_EXEC, XM_PROT_EXEC));
  assert_false(xm_prot_allows(XM_PROT_READ_WRITE, XM_PROT_EXEC));
  xm_shm_free(code);
  xm_shm_free(ram);
}

#ifdef _WIN32
/* Builds a view of section (NULL: anonymous memory) with prot. */
static int build_view(HANDLE section, xm_prot prot, xm_mapping **m) {
  xm_builder b = xm_builder_new(4096);
  if (section) xm_builder_from_descriptor(&b, section);
  xm_builder_protection(&b, prot);
  *m = NULL;
  return xm_builder_build(&b, m);
}

/* Windows execute rights come from the section (PAGE_EXECUTE_*) and from the handle
   (SECTION_MAP_EXECUTE): a view without either is the OS's refusal, recorded with
   ERROR_ACCESS_DENIED and a call name that says execute rights were asked for, in mappings and
   arenas alike. With both, the pages are what was asked, and protect moves between them. */
static void windows_execute_rights(void **state) {
  (void)state;
  xt_snapshot before = xt_snap();
  xm_shm *plain = xt_shm("plain", 65536), *code = NULL;
  XT_OK(xm_shm_new_ex("code", 65536, XM_SHM_EXEC, 0, &code));
  HANDLE no_right;
  assert_true(DuplicateHandle(GetCurrentProcess(), xm_shm_descriptor(code), GetCurrentProcess(), &no_right,
                              FILE_MAP_READ | FILE_MAP_WRITE, FALSE, 0));
  xm_arena *arena = NULL;
  XT_OK(xm_arena_new(4 * 65536, &arena));
  const HANDLE refused[] = {xm_shm_descriptor(plain), no_right};
  for (size_t i = 0; i < 2; i++) {
    xm_mapping *m;
    XT_STATUS(XM_E_SYSTEM_CALL, build_view(refused[i], XM_PROT_READ | XM_PROT_EXEC, &m));
    assert_int_equal(xm_os_error(), ERROR_ACCESS_DENIED);
    xt_assert_errmsg_has("FILE_MAP_EXECUTE");
    assert_null(m);
    if (i == 0) { /* the arena knows the library's own object: its policy refuses before the OS */
      XT_STATUS(XM_E_ACCESS, xm_arena_add_fd(arena, 0, 65536, refused[i], 0, XM_PROT_READ | XM_PROT_EXEC));
      xt_assert_errmsg_has("without XM_SHM_EXEC");
    } else {
      XT_STATUS(XM_E_SYSTEM_CALL, xm_arena_add_fd(arena, 0, 65536, refused[i], 0, XM_PROT_READ | XM_PROT_EXEC));
      assert_int_equal(xm_os_error(), ERROR_ACCESS_DENIED);
      xt_assert_errmsg_has("execute rights");
    }
    XT_OK(build_view(refused[i], XM_PROT_READ_WRITE, &m)); /* without execute, the same handle maps */
    xm_mapping_free(m);
  }
  static const struct {
    xm_prot prot;
    DWORD protection;
  } cases[] = {{XM_PROT_READ | XM_PROT_EXEC, PAGE_EXECUTE_READ},
               {XM_PROT_EXEC, PAGE_EXECUTE},
               {XM_PROT_READ_WRITE | XM_PROT_EXEC, PAGE_EXECUTE_READWRITE}};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    for (int anon = 0; anon < 2; anon++) {
      xm_mapping *m;
      XT_OK(build_view(anon ? NULL : xm_shm_descriptor(code), cases[i].prot, &m));
      assert_int_equal(xt_query(xm_mapping_ptr(m)).Protect, cases[i].protection);
      XT_OK(xm_mapping_protect(m, 0, 4096, XM_PROT_NONE));
      assert_int_equal(xt_query(xm_mapping_ptr(m)).Protect, PAGE_NOACCESS);
      XT_OK(xm_mapping_protect(m, 0, 4096, cases[i].prot));
      assert_int_equal(xt_query(xm_mapping_ptr(m)).Protect, cases[i].protection);
      xm_mapping_free(m);
    }
    XT_OK(xm_arena_add_fd(arena, 65536, 65536, xm_shm_descriptor(code), 0, cases[i].prot));
    XT_OK(xm_arena_add_anon(arena, 2 * 65536, 65536, cases[i].prot));
    unsigned char *base = xm_region_ptr(xm_arena_region(arena));
    assert_int_equal(xt_query(base + 65536).Protect, cases[i].protection);
    assert_int_equal(xt_query(base + 2 * 65536).Protect, cases[i].protection);
    XT_OK(xm_arena_remove(arena, 65536, 2 * 65536));
  }
  /* a read-write-execute view of the code section runs what it holds */
  xm_mapping *m;
  XT_OK(build_view(xm_shm_descriptor(code), XM_PROT_READ_WRITE | XM_PROT_EXEC, &m));
  size_t n = emit_return(xm_mapping_ptr(m), 23);
  XT_OK(xm_icache_sync(xm_mapping_ptr(m), n));
  assert_int_equal(call_ptr(xm_mapping_ptr(m)), 23);
  xm_mapping_free(m);
  xm_arena_free(arena);
  CloseHandle(no_right);
  xm_shm_free(code);
  xm_shm_free(plain);
  xt_assert_no_leak(before);
}
#endif

/* ---- the instruction cache --------------------------------------------------------------------- */
static void icache_method_is_named(void **state) {
  (void)state;
  const char *known[] = {"coherent", "dc cvau + ic ivau",     "cacheflush", "riscv_flush_icache",
                         "icbi",     "FlushInstructionCache", "builtin"};
  const char *m = xm_icache_method();
  bool found = false;
  for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
    found |= m && strcmp(m, known[i]) == 0;
  if (!found) print_message("unknown icache method \"%s\"\n", m ? m : "(null)");
  assert_true(found);
  static unsigned char buf[256];
  XT_STATUS(XM_OK, xm_icache_sync(buf, sizeof buf));
}

/* The aarch64 sequence is chosen from CTR_EL0 on every target, since QEMU cannot show an
   instruction-cache bug. */
static void aarch64_icache_plan_follows_ctr(void **state) {
  (void)state;
  /* A typical Cortex-A72: IminLine 4 (64 B), DminLine 4 (64 B), neither IDC nor DIC. */
  struct xm__aarch64_icache_plan p = xm__aarch64_icache_plan(0x8444c004u);
  assert_true(p.clean_data && p.invalidate_insn);
  assert_int_equal(p.dline, 64);
  assert_int_equal(p.iline, 64);
  /* IDC: no data-cache clean; DIC: no invalidate. Neoverse N1 reports both. */
  p = xm__aarch64_icache_plan(0x8444c004u | (1u << 28));
  assert_false(p.clean_data);
  assert_true(p.invalidate_insn);
  p = xm__aarch64_icache_plan(0x8444c004u | (3u << 28));
  assert_false(p.clean_data || p.invalidate_insn);
  /* Different line sizes: DminLine 3 (32 B), IminLine 5 (128 B). */
  p = xm__aarch64_icache_plan((3u << 16) | 5u);
  assert_int_equal(p.dline, 32);
  assert_int_equal(p.iline, 128);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(dual_view_runs_and_rewrites),
      cmocka_unit_test(toggle_runs_and_rewrites),
      cmocka_unit_test(rwx_only_when_allowed),
      cmocka_unit_test(rwx_mapping_runs_code),
      cmocka_unit_test(dual_views_are_w_xor_x),
      cmocka_unit_test(exec_view_near_address),
      cmocka_unit_test(code_bad_input),
      cmocka_unit_test(code_frees_everything),
      cmocka_unit_test(prot_exec_policy),
#ifdef _WIN32
      cmocka_unit_test(windows_execute_rights),
#endif
      cmocka_unit_test(icache_method_is_named),
      cmocka_unit_test(aarch64_icache_plan_follows_ctr),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
