/* Fault injection on every OS failure point of every public operation that calls the OS: the
   test seam (xm__test_fail_nth) makes the n-th OS primitive fail with a chosen error, for n = 1,
   2, ... until the operation makes fewer calls than n. Each failure must give the documented
   status (XM_E_SYSTEM_CALL unless the back end documents another), set xm_errmsg(), report the
   injected error through xm_os_error(), and leave nothing behind: no mapping or reservation
   (/proc/self/maps; Windows: a VirtualQuery walk), no descriptor (/proc/self/fd) or handle (the
   Windows back end's own count, since GetProcessHandleCount is 0 under Wine). Covered: builds
   with every option combination, shared memory, the arena, msync/sync_range, protect, advice,
   locking, code buffers and instruction-cache sync. Prints how many fault points it injected. */
#include "xmtest.h"

#ifdef _WIN32
/* ERROR_NOT_ENOUGH_MEMORY, ERROR_ACCESS_DENIED, ERROR_INVALID_HANDLE, ERROR_INVALID_PARAMETER */
static const int errors[] = {8, 5, 6, 87};
#define ERROR_NAME "GetLastError"
#else
#include <errno.h>
#include <sys/mman.h>
static const int errors[] = {ENOMEM, EACCES, EBADF, EINVAL};
#define ERROR_NAME "errno"
#endif
#define NERRORS (sizeof errors / sizeof errors[0])

static size_t page, gran;
static long points_injected, harmless, walks, skipped_walks;

/* ---- snapshots that can leave out one address range ------------------------------------------
   An arena on Windows keeps its reservation split where earlier changes split it (reservations
   cannot be merged again), so its own range is checked by test_arena, not counted here. */
static uintptr_t skip_lo, skip_hi;
static xt_snapshot snap(void) {
  if (skip_lo == skip_hi) return xt_snap();
  xt_snapshot s = xt_snap();
  s.mappings = 0;
#ifdef _WIN32
  MEMORY_BASIC_INFORMATION mbi;
  unsigned char *p = NULL;
  while (VirtualQuery(p, &mbi, sizeof mbi) == sizeof mbi) {
    uintptr_t lo = (uintptr_t)mbi.BaseAddress, hi = lo + mbi.RegionSize;
    if (mbi.State != MEM_FREE && (hi <= skip_lo || lo >= skip_hi)) s.mappings++;
    p = (unsigned char *)hi;
    if (hi < lo) break;
  }
#else
  FILE *f = fopen("/proc/self/maps", "r");
  if (f) {
    char line[512];
    while (fgets(line, sizeof line, f)) {
      unsigned long long lo = 0, hi = 0;
      if (sscanf(line, "%llx-%llx", &lo, &hi) == 2 && (hi <= skip_lo || lo >= skip_hi)) s.mappings++;
    }
    fclose(f);
  }
#endif
  return s;
}

/* ---- the walk --------------------------------------------------------------------------------- */
struct op {
  const char *name;
  int (*setup)(void *arg); /* before each run, not injected (may be NULL) */
  int (*run)(void *arg);   /* the operation; on success it has released what it made */
  void (*undo)(void *arg); /* after each run, not injected: back to the state before setup */
  void *arg;
  int (*expected)(int os_error); /* the documented status for an injected error; NULL: SYSTEM_CALL */
  /* after each run, before undo, not injected: what must hold for status rc (may be NULL); n is
     the OS call that failed (0: none was made to) */
  void (*check)(const char *name, void *arg, int rc, long n);
};

static int run_op(const struct op *op) {
  if (op->setup) {
    int rc = op->setup(op->arg);
    if (rc != XM_OK) return rc;
  }
  return op->run(op->arg);
}

/* Walks every failure point of op; fails the test on the first wrong outcome. */
static void walk(const struct op *op) {
  /* Un-injected first: the operation must work here (or the walk is skipped with the reason), and
     the state it leaves is the one every failure must leave too. */
  xm__test_fail_nth(0, 0);
  int rc = run_op(op);
  if (rc == XM_OK && op->check) op->check(op->name, op->arg, rc, 0);
  if (op->undo) op->undo(op->arg);
  if (rc != XM_OK) {
    skipped_walks++;
    if (rc != XM_E_NOT_IMPLEMENTED) /* what the platform lacks is not news; anything else is said */
      print_message("not walked: %s does not work here without injection: %s\n", op->name, xm_errmsg());
    return;
  }
  walks++;
  for (long n = 1;; n++) {
    int err = errors[(size_t)(n + walks) % NERRORS];
    xt_snapshot before = snap();
    if (op->setup) {
      rc = op->setup(op->arg);
      if (rc != XM_OK) fail_msg("%s: setup failed: %s", op->name, xm_errmsg());
    }
    xm__test_fail_nth(n, err);
    rc = op->run(op->arg);
    long calls = xm__test_os_calls();
    xm__test_fail_nth(0, 0);
    int os_error = xm_os_error();
    char msg[320];
    snprintf(msg, sizeof msg, "%s", xm_errmsg());
    if (op->check) op->check(op->name, op->arg, rc, calls < n ? 0 : n);
    if (op->undo) op->undo(op->arg);
    xt_snapshot after = snap();
    if (!xt_mappings_comparable()) after.mappings = before.mappings; /* see xmtest.h */
    if (calls < n) { /* the n-th call never came: every failure point has been walked */
      if (rc != XM_OK) fail_msg("%s: failed without an injected error: %d (%s)", op->name, rc, msg);
      break;
    }
    points_injected++;
    if (before.mappings != after.mappings || before.handles != after.handles)
      fail_msg("%s: OS call %ld failing with %s %d left mappings %ld -> %ld, handles %ld -> %ld (status %d: %s)",
               op->name, n, ERROR_NAME, err, before.mappings, after.mappings, before.handles, after.handles, rc, msg);
    if (rc == XM_OK) { /* a best-effort call (a placement hint, prefetch) failed harmlessly */
      harmless++;
      continue;
    }
    int want = op->expected ? op->expected(err) : XM_E_SYSTEM_CALL;
    if (rc != want || msg[0] == '\0' || os_error != err)
      fail_msg("%s: OS call %ld failing with %s %d gave status %d (want %d), xm_os_error() %d, xm_errmsg() \"%s\"",
               op->name, n, ERROR_NAME, err, rc, want, os_error, msg);
    if (n > 64) fail_msg("%s: more than 64 OS calls", op->name);
  }
}

/* Says how many fault points a group of walks injected; a group that injected none tested nothing. */
static void report_points(const char *group, long before) {
  print_message("%s: %ld fault points\n", group, points_injected - before);
  assert_true(points_injected > before);
}

/* ---- builds ------------------------------------------------------------------------------------ */
enum { SRC_ANON, SRC_FILE, SRC_SHM, SRC_COUNT };
static xm_descriptor big_file;
static xm_shm *big_shm;

struct build_case {
  int source;
  size_t size;
  uint64_t align;
  size_t guard;
  unsigned options; /* 1 populate, 2 private, 4 dontdump, 8 to end of file */
  xm_prot prot;
  char name[128];
};

static int build_run(void *arg) {
  struct build_case *c = arg;
  xm_builder b = xm_builder_new(c->size);
  if (c->source == SRC_FILE) xm_builder_from_file(&b, big_file);
  if (c->source == SRC_SHM) xm_builder_from_shm(&b, big_shm);
  if (c->align) xm_builder_align(&b, c->align);
  if (c->guard) xm_builder_guard_pages(&b, c->guard);
  if (c->options & 1) xm_builder_populate(&b);
  if (c->options & 2) xm_builder_private(&b);
  if (c->options & 4) xm_builder_dontdump(&b);
  if (c->options & 8) {
    xm_builder_to_end_of_file(&b);
    xm_builder_offset(&b, gran);
  }
  xm_builder_protection(&b, c->prot);
  xm_mapping *m = NULL;
  int rc = xm_builder_build(&b, &m);
  if (rc == XM_OK) {
    if ((c->prot & XM_PROT_READ) && xm_mapping_size(m) > 0) { /* the mapping is real and usable */
      uint8_t v;
      if (xm_mapping_read_obj(m, &v, 1, xm_mapping_size(m) - 1) != XM_OK) rc = XM_E_INVALID_ARGUMENT;
    }
    xm_mapping_free(m);
  }
  return rc;
}

static void builds(void **state) {
  (void)state;
  static const char *const src_names[] = {"anon", "file", "shm"};
  static const xm_prot prots[] = {XM_PROT_READ_WRITE, XM_PROT_READ, XM_PROT_NONE};
  const size_t sizes[] = {2 * page, (size_t)2 << 20};
  long before = points_injected;
  struct build_case c;
  for (int src = 0; src < SRC_COUNT; src++)
    for (size_t si = 0; si < 2; si++)
      for (int al = 0; al < 2; al++)
        for (size_t guard = 0; guard < 2; guard++)
          for (unsigned options = 0; options < 8; options++)
            for (size_t pi = 0; pi < 3; pi++) {
              memset(&c, 0, sizeof c);
              c.source = src;
              c.size = sizes[si];
              c.align = al ? 4 * gran : 0;
              c.guard = guard;
              c.options = options;
              c.prot = prots[pi];
              snprintf(c.name, sizeof c.name, "build %s size=%lu align=%lu guard=%lu%s%s%s prot=%u", src_names[src],
                       (unsigned long)c.size, (unsigned long)c.align, (unsigned long)guard,
                       options & 1 ? " populate" : "", options & 2 ? " private" : "", options & 4 ? " dontdump" : "",
                       c.prot);
              struct op op = {c.name, NULL, build_run, NULL, &c, NULL, NULL};
              walk(&op);
            }
  /* whole-file mappings of a file and of a shared-memory object (the size comes from the OS) */
  for (int src = SRC_FILE; src <= SRC_SHM; src++)
    for (size_t pi = 0; pi < 3; pi++) {
      memset(&c, 0, sizeof c);
      c.source = src;
      c.options = 8;
      c.prot = prots[pi];
      snprintf(c.name, sizeof c.name, "build %s to_end_of_file prot=%u", src_names[src], c.prot);
      struct op op = {c.name, NULL, build_run, NULL, &c, NULL, NULL};
      walk(&op);
    }
  report_points("builds", before);
}

/* ---- shared memory ----------------------------------------------------------------------------- */
static int shm_new_run(void *arg) {
  (void)arg;
  xm_shm *s = NULL;
  int rc = xm_shm_new("fault-injection", 3 * page, &s);
  xm_shm_free(s);
  return rc;
}
static int shm_clone_run(void *arg) {
  xm_shm *s = NULL;
  int rc = xm_shm_clone(arg, &s);
  xm_shm_free(s);
  return rc;
}
static int shm_add_seals_run(void *arg) { return xm_shm_add_seals(arg, XM_SEAL_GROW); }
static int shm_get_seals_run(void *arg) {
  unsigned seals = 0;
  return xm_shm_get_seals(arg, &seals);
}
/* A descriptor that is not a sealable memfd reads as "no seals here": EINVAL is documented as
   XM_E_NOT_IMPLEMENTED (with the error number kept). */
static int get_seals_expected(int os_error) {
#ifdef _WIN32
  (void)os_error;
  return XM_E_SYSTEM_CALL;
#else
  return os_error == EINVAL ? XM_E_NOT_IMPLEMENTED : XM_E_SYSTEM_CALL;
#endif
}

/* xm_shm_from_descriptor adopts the descriptor on success; on a failed OS call the caller still
   holds it (the function made no copy), so the test closes it then. */
static int shm_adopt_run(void *arg) {
  xm_descriptor d;
#ifdef _WIN32
  if (!DuplicateHandle(GetCurrentProcess(), xm_shm_descriptor(arg), GetCurrentProcess(), &d, 0, FALSE,
                       DUPLICATE_SAME_ACCESS))
    return XM_E_INVALID_ARGUMENT;
#else
  d = fcntl(xm_shm_descriptor(arg), F_DUPFD_CLOEXEC, 0);
  if (d < 0) return XM_E_INVALID_ARGUMENT;
#endif
  xm_shm *s = NULL;
  int rc = xm_shm_from_descriptor(d, 0, &s);
  if (rc == XM_OK)
    xm_shm_free(s);
  else
    xt_close(d);
  return rc;
}

static void shared_memory(void **state) {
  (void)state;
  long before = points_injected;
  xm_shm *s = NULL;
  XT_OK(xm_shm_new("fault-injection-fixture", page, &s));
  const struct op ops[] = {
      {"shm_new", NULL, shm_new_run, NULL, NULL, NULL, NULL},
      {"shm_clone", NULL, shm_clone_run, NULL, s, NULL, NULL},
      {"shm_add_seals", NULL, shm_add_seals_run, NULL, s, NULL, NULL},
      {"shm_get_seals", NULL, shm_get_seals_run, NULL, s, get_seals_expected, NULL},
      {"shm_from_descriptor", NULL, shm_adopt_run, NULL, s, NULL, NULL},
  };
  for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++)
    walk(&ops[i]);
  xm_shm_free(s);
  report_points("shared memory", before);
}

/* ---- the arena -------------------------------------------------------------------------------
   Nothing lost: before each run two pieces hold a fresh pattern, an anonymous one at [1, 5) and
   a shared-memory one at [6, 7) (in units), both read-write. After each run the bytes the
   operation did not target must still be there, readable and writable; after a failed run the
   targeted bytes too (a failed add or remove leaves the arena as it was). */
static xm_arena *arena;
static xm_shm *arena_shm;
static unsigned arena_seed;

struct arena_case {
  int what;
  size_t lo, hi; /* the targeted range, in units */
};
enum {
  A_ADD_ANON_RESERVED,
  A_ADD_FD_RESERVED,
  A_ADD_ANON_INSIDE,
  A_ADD_FD_INSIDE,
  A_REMOVE,
  A_ADD_ANON_ACROSS,
  A_REMOVE_ACROSS,
  A_MSYNC
};

static int arena_new_run(void *arg) {
  (void)arg;
  xm_arena *a = NULL;
  int rc = xm_arena_new(8 * gran, &a);
  xm_arena_free(a);
  return rc;
}

static int arena_run(void *arg) {
  const struct arena_case *c = arg;
  size_t at = c->lo * gran, len = (c->hi - c->lo) * gran;
  xm_descriptor shm = xm_shm_descriptor(arena_shm);
  switch (c->what) {
  case A_ADD_ANON_RESERVED: return xm_arena_add_anon(arena, at, len, XM_PROT_READ_WRITE);
  case A_ADD_FD_RESERVED: return xm_arena_add_fd(arena, at, len, shm, gran, XM_PROT_READ);
  case A_ADD_ANON_INSIDE: return xm_arena_add_anon(arena, at, len, XM_PROT_READ);
  case A_ADD_FD_INSIDE: return xm_arena_add_fd(arena, at, len, shm, gran, XM_PROT_READ);
  case A_REMOVE:
  case A_REMOVE_ACROSS: return xm_arena_remove(arena, at, len);
  case A_ADD_ANON_ACROSS: return xm_arena_add_anon(arena, at, len, XM_PROT_READ_WRITE);
  default: return xm_region_msync(xm_arena_region(arena), 0, 8 * gran);
  }
}

static unsigned char arena_byte(size_t offset) { return (unsigned char)(offset * 13 + arena_seed * 29 + 7); }
static bool arena_piece_at(size_t offset) {
  return (offset >= gran && offset < 5 * gran) || (offset >= 6 * gran && offset < 7 * gran);
}

static int arena_setup(void *arg) {
  (void)arg;
  int rc = xm_arena_add_anon(arena, gran, 4 * gran, XM_PROT_READ_WRITE);
  if (rc == XM_OK) rc = xm_arena_add_fd(arena, 6 * gran, gran, xm_shm_descriptor(arena_shm), 0, XM_PROT_READ_WRITE);
  if (rc) return rc;
  arena_seed++;
  unsigned char *base = xm_region_ptr(xm_arena_region(arena));
  for (size_t i = 0; i < 8 * gran; i++)
    if (arena_piece_at(i)) base[i] = arena_byte(i);
  return XM_OK;
}

/* Whether p[0, len) can be read, and written when write is set, asked without touching it. */
#ifdef _WIN32
static bool accessible(void *p, size_t len, bool write) {
  const DWORD readable = PAGE_READONLY | PAGE_READWRITE | PAGE_WRITECOPY | PAGE_EXECUTE_READ | PAGE_EXECUTE_READWRITE |
                         PAGE_EXECUTE_WRITECOPY;
  const DWORD writable = PAGE_READWRITE | PAGE_WRITECOPY | PAGE_EXECUTE_READWRITE | PAGE_EXECUTE_WRITECOPY;
  unsigned char *q = p, *end = q + len;
  while (q < end) {
    MEMORY_BASIC_INFORMATION mbi;
    if (VirtualQuery(q, &mbi, sizeof mbi) != sizeof mbi || mbi.State != MEM_COMMIT || (mbi.Protect & PAGE_GUARD) ||
        !(mbi.Protect & (write ? writable : readable)))
      return false;
    q = (unsigned char *)mbi.BaseAddress + mbi.RegionSize;
  }
  return true;
}
#else
/* The kernel (and qemu-user) checks a buffer given to write()/read(): EFAULT, not a signal. */
static int scratch = -1;
static bool accessible(void *p, size_t len, bool write) {
  if (pwrite(scratch, p, len, 0) != (ssize_t)len) return false;
  return !write || pread(scratch, p, len, 0) == (ssize_t)len; /* the same bytes back */
}
#endif

static void arena_check(const char *name, void *arg, int rc, long n) {
  const struct arena_case *c = arg;
  unsigned char *base = xm_region_ptr(xm_arena_region(arena));
  for (size_t unit = 0; unit < 8; unit++) {
    size_t at = unit * gran;
    bool targeted = unit >= c->lo && unit < c->hi;
    if (!arena_piece_at(at) || (targeted && rc == XM_OK)) continue; /* a change that worked replaced it */
    const char *what = targeted ? "targeted by the failed change" : "not targeted";
    if (!accessible(base + at, gran, true))
      fail_msg("%s, OS call %ld failing (status %d): unit %lu (%s) is no longer read-write", name, n, rc,
               (unsigned long)unit, what);
    for (size_t i = at; i < at + gran; i++)
      if (base[i] != arena_byte(i))
        fail_msg("%s, OS call %ld failing (status %d): byte %lu (%s) is 0x%02x, not 0x%02x", name, n, rc,
                 (unsigned long)i, what, base[i], arena_byte(i));
  }
}

static void arena_undo(void *arg) {
  (void)arg;
  (void)xm_arena_remove(arena, 0, 8 * gran);
}

static void arena_operations(void **state) {
  (void)state;
  long before = points_injected;
  XT_OK(xm_shm_new("fault-injection-arena", 4 * gran, &arena_shm));
  struct arena_case cases[] = {
      {A_ADD_ANON_RESERVED, 0, 1}, {A_ADD_FD_RESERVED, 5, 6}, {A_ADD_ANON_INSIDE, 2, 3},
      {A_ADD_FD_INSIDE, 2, 4},     {A_REMOVE, 2, 4},          {A_ADD_ANON_ACROSS, 4, 7},
      {A_REMOVE_ACROSS, 4, 7},     {A_MSYNC, 0, 0},
  };
  static const char *const names[] = {"arena_add_anon into reserved space", "arena_add_fd into reserved space",
                                      "arena_add_anon inside a piece",      "arena_add_fd inside a piece",
                                      "arena_remove inside a piece",        "arena_add_anon across pieces",
                                      "arena_remove across pieces",         "arena region msync"};
  const struct op create = {"arena_new", NULL, arena_new_run, NULL, NULL, NULL, NULL};
  walk(&create);
  XT_OK(xm_arena_new(8 * gran, &arena));
  skip_lo = (uintptr_t)xm_region_ptr(xm_arena_region(arena));
  skip_hi = skip_lo + 8 * gran;
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const struct op op = {names[i], arena_setup, arena_run, arena_undo, &cases[i], NULL, arena_check};
    walk(&op);
  }
  skip_lo = skip_hi = 0;
  xm_arena_free(arena);
  xm_shm_free(arena_shm);
  report_points("arena", before);
}

/* ---- operations on a mapping --------------------------------------------------------------- */
struct mapping_case {
  xm_mapping *m;
  xm_advice advice;
  int what;
  char name[96];
};
enum {
  M_MSYNC,
  M_SYNC_ASYNC,
  M_SYNC_SYNC,
  M_REGION_MSYNC,
  M_PROTECT_ALL,
  M_PROTECT_PART,
  M_ADVISE,
  M_REGION_ADVISE,
  M_LOCK,
  M_UNLOCK,
  M_HUGEPAGES,
  M_DONTFORK,
  M_REMOVE_RANGE,
  M_PREFETCH,
  M_DROP,
  M_COUNT
};
static const char *const m_names[M_COUNT] = {"msync",         "sync_range async", "sync_range sync", "region msync",
                                             "protect whole", "protect part",     "advise",          "region advise",
                                             "lock_on_fault", "unlock",           "use_hugepages",   "use_dontfork",
                                             "remove_range",  "async_prefetch",   "drop_page_cache"};

static int mapping_run(void *arg) {
  struct mapping_case *c = arg;
  size_t size = xm_mapping_size(c->m);
  switch (c->what) {
  case M_MSYNC: return xm_mapping_msync(c->m);
  case M_SYNC_ASYNC: return xm_mapping_sync_range(c->m, 1, size - 2, XM_SYNC_ASYNC);
  case M_SYNC_SYNC: return xm_mapping_sync_range(c->m, page, page, XM_SYNC_SYNC);
  case M_REGION_MSYNC: return xm_region_msync(xm_mapping_region(c->m), 0, size);
  case M_PROTECT_ALL: return xm_mapping_protect(c->m, 0, size, XM_PROT_READ);
  case M_PROTECT_PART: return xm_mapping_protect(c->m, page, page, XM_PROT_NONE);
  case M_ADVISE: return xm_mapping_advise(c->m, 0, size, c->advice);
  case M_REGION_ADVISE: return xm_region_advise(xm_mapping_region(c->m), 0, size, c->advice);
  case M_LOCK: return xm_mapping_lock_on_fault(c->m, 0, page);
  case M_UNLOCK: return xm_mapping_unlock(c->m, 0, page);
  case M_HUGEPAGES: return xm_mapping_use_hugepages(c->m);
  case M_DONTFORK: return xm_mapping_use_dontfork(c->m);
  case M_REMOVE_RANGE: return xm_mapping_remove_range(c->m, 0, page);
  case M_PREFETCH: return xm_mapping_async_prefetch(c->m, 0, size);
  default: return xm_mapping_drop_page_cache(c->m, 0, page);
  }
}
static void mapping_undo(void *arg) {
  struct mapping_case *c = arg;
  if (c->what == M_PROTECT_ALL || c->what == M_PROTECT_PART)
    (void)xm_mapping_protect(c->m, 0, xm_mapping_size(c->m), XM_PROT_READ_WRITE);
  if (c->what == M_LOCK) (void)xm_mapping_unlock(c->m, 0, page);
  if (c->what == M_ADVISE || c->what == M_REGION_ADVISE) {
    if (c->advice == XM_ADVICE_DONTFORK) (void)xm_mapping_advise(c->m, 0, xm_mapping_size(c->m), XM_ADVICE_DOFORK);
    if (c->advice == XM_ADVICE_DONTDUMP) (void)xm_mapping_advise(c->m, 0, xm_mapping_size(c->m), XM_ADVICE_DODUMP);
  }
}

static void mapping_operations(void **state) {
  (void)state;
  long before = points_injected;
  xm_mapping *anon = xt_anon(4 * page);
  xm_builder b = xm_builder_new(4 * page);
  xm_builder_from_file(&b, big_file);
  xm_mapping *file = NULL;
  XT_OK(xm_builder_build(&b, &file));
  xm_mapping *targets[2] = {anon, file};
  static const char *const target_names[2] = {"anon", "file"};
  struct mapping_case c;
  for (int t = 0; t < 2; t++)
    for (int what = 0; what < M_COUNT; what++) {
      int advices = (what == M_ADVISE || what == M_REGION_ADVISE) ? XM_ADVICE_POPULATE_WRITE + 1 : 1;
      for (int a = 0; a < advices; a++) {
        memset(&c, 0, sizeof c);
        c.m = targets[t];
        c.what = what;
        c.advice = (xm_advice)a;
        if (advices > 1)
          snprintf(c.name, sizeof c.name, "%s %s advice %d", target_names[t], m_names[what], a);
        else
          snprintf(c.name, sizeof c.name, "%s %s", target_names[t], m_names[what]);
        struct op op = {c.name, NULL, mapping_run, mapping_undo, &c, NULL, NULL};
        walk(&op);
      }
    }
  xm_mapping_free(anon);
  xm_mapping_free(file);
  report_points("mapping operations", before);
}

/* ---- code buffers ----------------------------------------------------------------------------- */
struct code_case {
  unsigned flags;
  bool near_program; /* placed within rel32 reach of this file's code */
  char name[64];
};
static int code_new_run(void *arg) {
  const struct code_case *c = arg;
  int (*const program)(void *) = code_new_run;
  void *near_addr = NULL;
  if (c->near_program) memcpy(&near_addr, &program, sizeof near_addr);
  xm_code *code = NULL;
  int rc = xm_code_new(3 * page, c->flags, near_addr, &code);
  xm_code_free(code);
  return rc;
}

/* A "toggle" buffer whose pages are all executable between runs: a write over a page boundary
   flips two pages and back, and the undo makes every page executable again. */
static xm_code *toggle_code;
static int code_write_run(void *arg) {
  (void)arg;
  int rc = xm_code_begin_write(toggle_code, page - 8, 16);
  return rc ? rc : xm_code_end_write(toggle_code, page - 8, 16);
}
static void code_write_undo(void *arg) {
  (void)arg;
  (void)xm_code_end_write(toggle_code, 0, 3 * page);
}
static int icache_sync_run(void *arg) { return xm_icache_sync(arg, 64); }

static void code_buffers(void **state) {
  (void)state;
  long before = points_injected;
  static const unsigned flags[] = {0, XM_CODE_DUAL_VIEW, XM_CODE_TOGGLE, XM_CODE_ALLOW_RWX};
  struct code_case c;
  for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++)
    for (int near_program = 0; near_program < 2; near_program++) {
      memset(&c, 0, sizeof c);
      c.flags = flags[i];
      c.near_program = near_program != 0;
      snprintf(c.name, sizeof c.name, "code_new flags=%u%s", c.flags, near_program ? " near the program" : "");
      struct op op = {c.name, NULL, code_new_run, NULL, &c, NULL, NULL};
      walk(&op);
    }
  if (xm_code_new(3 * page, XM_CODE_TOGGLE, NULL, &toggle_code) == XM_OK) {
    XT_OK(xm_code_end_write(toggle_code, 0, 3 * page));
    const struct op op = {
        "code begin_write + end_write (toggle)", NULL, code_write_run, code_write_undo, NULL, NULL, NULL};
    walk(&op);
    const struct op sync = {"icache_sync", NULL, icache_sync_run, NULL, xm_code_exec_ptr(toggle_code), NULL, NULL};
    walk(&sync);
    xm_code_free(toggle_code);
  }
  report_points("code buffers", before);
}

/* The handle count the Windows leak checks rely on moves with a handle the library holds (and
   GetProcessHandleCount is reported for comparison: 0 under Wine 8). */
static void handle_count_moves(void **state) {
  (void)state;
#ifdef _WIN32
  long before = xm__test_open_handles();
  xm_shm *s = NULL;
  XT_OK(xm_shm_new("leak-probe", page, &s));
  assert_int_equal(xm__test_open_handles(), before + 1);
  DWORD process_count = 0;
  /* Looked up: Wine's headers (the msvc leg) do not declare it. */
  typedef BOOL(WINAPI * handle_count_fn)(HANDLE, DWORD *);
  handle_count_fn handle_count =
      (handle_count_fn)(void (*)(void))GetProcAddress(GetModuleHandleW(L"kernel32.dll"), "GetProcessHandleCount");
  if (handle_count) handle_count(GetCurrentProcess(), &process_count);
  xm_shm_free(s);
  assert_int_equal(xm__test_open_handles(), before);
  print_message("handle count: the back end's moved by 1 for a shm object; GetProcessHandleCount says %lu\n",
                (unsigned long)process_count);
#else
  xt_snapshot before = xt_snap();
  xm_shm *s = NULL;
  XT_OK(xm_shm_new("leak-probe", page, &s));
  assert_int_equal(xt_snap().handles, before.handles + 1);
  xm_shm_free(s);
  assert_int_equal(xt_snap().handles, before.handles);
#endif
}

static int setup(void **state) {
  (void)state;
  page = xm_page_size();
  gran = xm_allocation_granularity();
  /* big enough for every build (2 MiB past the granularity offset of to_end_of_file) */
  size_t len = ((size_t)2 << 20) + 2 * gran;
  unsigned char *data = calloc(1, len);
  assert_non_null(data);
  big_file = xt_temp_file(data, len, 1);
  free(data);
  assert_int_equal(xm_shm_new("fault-injection-big", len, &big_shm), XM_OK);
#ifndef _WIN32
  scratch = xt_temp_file(NULL, 0, 1);
#endif
  /* warm up what the C library and the back end do once (a first mapping, a first message) */
  xm_mapping *m = xt_anon(page);
  xm_mapping_free(m);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  xm_shm_free(big_shm);
  xt_close(big_file);
#ifndef _WIN32
  close(scratch);
#endif
  print_message("fault points injected: %ld (%ld harmless to a best-effort call) in %ld walks; %ld operations "
                "not available here\n",
                points_injected, harmless, walks, skipped_walks);
  return 0;
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(handle_count_moves), cmocka_unit_test(builds),
      cmocka_unit_test(shared_memory),      cmocka_unit_test(arena_operations),
      cmocka_unit_test(mapping_operations), cmocka_unit_test(code_buffers),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
