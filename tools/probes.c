/* The probes behind `xmmap info` and `xmmap selftest`: each tries one optional feature the
   cheapest way it can and says whether this system offers it, how, or why not. */
#include <stdlib.h>
#include <string.h>

#include "os.h" /* xm__os_wp_available: why the kernel's write tracking is not offered */
#include "probes.h"

void tool_found(struct tool_finding *f, enum tool_probe_state state, const char *detail) {
  f->state = state;
  tool_format(f->detail, sizeof f->detail, "%s", detail ? detail : "");
}

/* A status as a finding: XM_OK is "yes, how"; the library's "not here" answers (not implemented,
   or an OS that does not know the request) are absent; anything else is a defect. The library's
   message says why. */
static void settle(struct tool_finding *f, int rc, const char *how) {
  if (rc == XM_OK)
    tool_found(f, TOOL_PROBE_YES, how);
  else if (rc == XM_E_NOT_IMPLEMENTED || (rc == XM_E_SYSTEM_CALL && tool_os_error_unsupported(xm_os_error())))
    tool_found(f, TOOL_PROBE_ABSENT, xm_errmsg());
  else
    tool_found(f, TOOL_PROBE_BROKEN, xm_errmsg());
}

/* Like settle, but rc is this system's configuration (a limit, an empty pool), not a defect. */
static void settle_configured(struct tool_finding *f, int rc, bool configured, const char *why, const char *how) {
  if (rc != XM_OK && configured) {
    char d[sizeof f->detail];
    tool_format(d, sizeof d, "%s: %s", why, xm_errmsg());
    tool_found(f, TOOL_PROBE_ABSENT, d);
    return;
  }
  settle(f, rc, how);
}

static xm_mapping *scratch(size_t size) {
  xm_builder b = xm_builder_new(size);
  xm_mapping *m = NULL;
  return xm_builder_build(&b, &m) == XM_OK ? m : NULL;
}

static int build_and_free(xm_builder *b) {
  xm_mapping *m = NULL;
  int rc = xm_builder_build(b, &m);
  xm_mapping_free(m);
  return rc;
}

/* ---- shared memory --------------------------------------------------------------------------- */
static void probe_shm(struct tool_finding *f) {
  xm_shm *s = NULL;
  int rc = xm_shm_new("xmmap-info", xm_page_size(), &s);
  unsigned seals = 0;
  bool sealable = rc == XM_OK && xm_shm_get_seals(s, &seals) == XM_OK;
  settle(f, rc, sealable ? tool_os_words.shm_with_seals : tool_os_words.shm_without_seals);
  xm_shm_free(s);
}

static void probe_seals(struct tool_finding *f) {
  xm_shm *s = NULL;
  if (xm_shm_new("xmmap-info", xm_page_size(), &s) != XM_OK) {
    tool_found(f, TOOL_PROBE_ABSENT, "no shared memory");
    return;
  }
  unsigned current = 0;
  int rc = xm_shm_get_seals(s, &current);
  char d[64];
  tool_format(d, sizeof d, "memfd seals (new object: 0x%x)", current);
  settle(f, rc, d);
  xm_shm_free(s);
}

/* ---- shared-memory options (xm_shm_new_ex, xm_shm_clone_readonly) --------------------------- */
static void probe_shm_lazy_commit(struct tool_finding *f) {
  const size_t g = xm_allocation_granularity();
  xm_shm *s = NULL;
  xm_mapping *m = NULL;
  int rc = xm_shm_new_ex("xmmap-info", 2 * g, XM_SHM_LAZY_COMMIT, 0, &s);
  if (rc == XM_OK) {
    xm_builder b = xm_builder_new(2 * g);
    xm_builder_from_shm(&b, s);
    rc = xm_builder_build(&b, &m);
  }
  /* Whether an uncommitted page refuses a write (a fault-safe copy: XM_E_FAULT), where the
     flag means something: Wine keeps the commit state as bookkeeping only. */
  const unsigned char one = 1;
  bool enforced = rc == XM_OK && xm_mapping_write_slice_safe(m, &one, 1, g, NULL) == XM_E_FAULT;
  if (rc == XM_OK) rc = xm_region_commit(xm_mapping_region(m), 0, g, XM_PROT_READ_WRITE);
  if (rc == XM_OK) {
    ((volatile unsigned char *)xm_mapping_ptr(m))[0] = 1;
    rc = xm_region_decommit(xm_mapping_region(m), 0, g);
  }
  char how[240];
  tool_format(how, sizeof how, "%s%s", tool_os_words.lazy_commit,
              enforced || strcmp(xm_backend_name(), "windows") != 0 ? ""
                                                                    : "; uncommitted pages take writes here (Wine)");
  settle(f, rc, how);
  xm_mapping_free(m);
  xm_shm_free(s);
}

/* The default huge page is not known in advance: the sizes in use (2 MiB x86/arm64 with 4 KiB
   pages, 16 MiB ppc64, 32 MiB arm64 16K, 512 MiB arm64 64K, 1 GiB) are tried until one fits. A
   hugetlb memfd takes no pages until it is mapped. */
static void probe_shm_huge(struct tool_finding *f) {
  static const size_t mib[] = {2, 16, 32, 512, 1024};
  int rc = XM_E_NOT_PAGE_ALIGNED;
  size_t size = 0;
  for (size_t i = 0; i < sizeof mib / sizeof mib[0] && rc == XM_E_NOT_PAGE_ALIGNED; i++) {
    xm_shm *s = NULL;
    size = mib[i] << 20;
    if (size == 0 || size / mib[i] != (size_t)1 << 20) break; /* past a 32-bit size_t */
    rc = xm_shm_new_ex("xmmap-info", size, XM_SHM_HUGE, 0, &s);
    xm_shm_free(s);
  }
  char how[160];
  tool_format(how, sizeof how, "%s (a %zu MiB object with the default page size)", tool_os_words.huge_shm, size >> 20);
  settle(f, rc, how); /* XM_E_NOT_IMPLEMENTED (no pool, no such pages) is absent, with the reason */
}

static void probe_shm_exec(struct tool_finding *f) {
  xm_shm *s = NULL;
  int rc = xm_shm_new_ex("xmmap-info", xm_allocation_granularity(), XM_SHM_EXEC, 0, &s);
  if (rc == XM_OK) {
    xm_builder b = xm_builder_new(xm_page_size());
    xm_builder_from_shm(&b, s);
    xm_builder_protection(&b, XM_PROT_READ | XM_PROT_EXEC);
    rc = build_and_free(&b);
  }
  settle(f, rc, "mapped read-execute (without XM_SHM_EXEC that is refused)");
  xm_shm_free(s);
}

static void probe_shm_read_only(struct tool_finding *f) {
  xm_shm *s = NULL, *ro = NULL;
  int rc = xm_shm_new("xmmap-info", xm_allocation_granularity(), &s);
  if (rc == XM_OK) rc = xm_shm_clone_readonly(s, &ro);
  settle(f, rc, tool_os_words.read_only);
  xm_shm_free(ro);
  xm_shm_free(s);
}

/* ---- building mappings ----------------------------------------------------------------------- */
static void probe_huge_pages(struct tool_finding *f) {
  xm_builder b = xm_builder_new((size_t)2 << 20);
  xm_builder_huge_pages(&b, 0);
  int rc = build_and_free(&b);
  /* No huge pages reserved (hugetlb pool empty, no SeLockMemoryPrivilege) is this system's
     configuration, not a defect. */
  settle_configured(f, rc, rc == XM_E_SYSTEM_CALL, "no huge pages available here",
                    "2 MiB mapping with the default huge page size");
}

static void probe_fixed_noreplace(struct tool_finding *f) {
  const size_t size = xm_allocation_granularity();
  xm_mapping *taken = scratch(size), *m = NULL;
  if (!taken) {
    settle(f, XM_E_SYSTEM_CALL, NULL);
    return;
  }
  xm_builder b = xm_builder_new(size);
  xm_builder_fixed_noreplace(&b, xm_mapping_ptr(taken));
  int rc = xm_builder_build(&b, &m);
  if (rc == XM_E_EXISTS) {
    /* The occupied range was refused; now the same address once it is free. */
    void *addr = xm_mapping_ptr(taken);
    xm_mapping_free(taken);
    taken = NULL;
    xm_builder_fixed_noreplace(&b, addr);
    rc = xm_builder_build(&b, &m);
    if (rc == XM_OK && xm_mapping_ptr(m) != addr)
      tool_found(f, TOOL_PROBE_BROKEN, "the mapping did not land at the requested address");
    else
      settle(f, rc, "an occupied range is refused, a free one is taken exactly");
  } else if (rc == XM_OK) {
    tool_found(f, TOOL_PROBE_BROKEN, "an occupied range was not refused");
  } else {
    settle(f, rc, NULL);
  }
  xm_mapping_free(m);
  xm_mapping_free(taken);
}

static void probe_arena(struct tool_finding *f) {
  const size_t g = xm_allocation_granularity();
  xm_arena *a = NULL;
  int rc = xm_arena_new(2 * g, &a);
  if (rc == XM_OK) rc = xm_arena_add_anon(a, 0, g, XM_PROT_READ_WRITE);
  if (rc == XM_OK) rc = xm_arena_remove(a, 0, g);
  char how[96];
  tool_format(how, sizeof how, "%s, pieces in units of %zu bytes", xm_arena_strategy(), xm_arena_granularity(a));
  settle(f, rc, how);
  xm_arena_free(a);
}

/* The mapping count and its limit: n/a where the OS has no such limit (Windows), absent where it
   cannot be known (QEMU user mode emulates /proc/self/maps). */
static void probe_map_count(struct tool_finding *f) {
  size_t used = 0, limit = 0;
  int rc = xm_map_count(&used, &limit);
  if (rc == XM_E_NOT_IMPLEMENTED && strcmp(xm_backend_name(), "windows") == 0) {
    tool_found(f, TOOL_PROBE_NOT_APPLICABLE, xm_errmsg());
    return;
  }
  char d[96];
  tool_format(d, sizeof d, "%zu mappings in use, vm.max_map_count %zu", used, limit);
  settle(f, rc, d);
}

/* An arena placed in the low 4 GiB (the middle of a 32-bit address space), as emulators with
   32-bit guest pointers ask. No free range there is this process's layout, not a defect. */
static void probe_address_range(struct tool_finding *f) {
  const size_t g = xm_allocation_granularity();
  const uintptr_t lo = (uintptr_t)16 << 20;
  const uintptr_t hi = sizeof(void *) >= 8 ? (uintptr_t)((uint64_t)4 << 30) : (uintptr_t)3 << 30;
  xm_arena *a = NULL;
  int rc = xm_arena_new_in(16 * g, lo, hi, (uint64_t)1 << 20, &a);
  char d[96];
  tool_format(d, sizeof d, "arena in [16 MiB, %s) at %p", sizeof(void *) >= 8 ? "4 GiB" : "3 GiB",
              rc == XM_OK ? xm_region_ptr(xm_arena_region(a)) : NULL);
  settle_configured(f, rc, rc == XM_E_NO_ADDRESS, "no free range there in this process", d);
  xm_arena_free(a);
}

static void probe_unaligned_offset(struct tool_finding *f) {
  xm_shm *s = NULL;
  int rc = xm_shm_new("xmmap-info", 2 * xm_allocation_granularity(), &s);
  if (rc == XM_OK) {
    xm_builder b = xm_builder_new(64);
    xm_builder_from_shm(&b, s);
    xm_builder_offset(&b, xm_allocation_granularity() + 1);
    rc = build_and_free(&b);
  }
  xm_shm_free(s);
  settle_configured(f, rc, rc == XM_E_INVALID_OFFSET, "unaligned offsets are not supported by this build",
                    "mapped from the boundary below, pointer adjusted");
}

static void probe_private(struct tool_finding *f) {
  xm_builder b = xm_builder_new(xm_page_size());
  xm_builder_private(&b);
  settle(f, build_and_free(&b), "copy-on-write (MAP_PRIVATE / FILE_MAP_COPY)");
}

static void probe_guard_pages(struct tool_finding *f) {
  xm_builder b = xm_builder_new(xm_page_size());
  xm_builder_guard_pages(&b, 1);
  settle(f, build_and_free(&b), "inaccessible pages before and after");
}

/* ---- what a mapping can do ------------------------------------------------------------------- */
/* Runs op on a fresh anonymous mapping of size bytes. */
static int on_scratch(size_t size, int (*op)(xm_mapping *m)) {
  xm_mapping *m = scratch(size);
  if (!m) return XM_E_SYSTEM_CALL;
  int rc = op(m);
  xm_mapping_free(m);
  return rc;
}

static int populate_write(xm_mapping *m) { return xm_mapping_advise(m, 0, xm_page_size(), XM_ADVICE_POPULATE_WRITE); }
static void probe_populate_write(struct tool_finding *f) {
  settle(f, on_scratch(xm_page_size(), populate_write), "madvise(MADV_POPULATE_WRITE)");
}

static void probe_thp(struct tool_finding *f) {
  char mode[64], d[96];
  tool_thp_mode(mode, sizeof mode);
  if (strcmp(mode, "n/a") == 0) {
    tool_found(f, TOOL_PROBE_NOT_APPLICABLE, tool_os_words.no_thp);
    return;
  }
  tool_format(d, sizeof d, "mode: %s", mode);
  tool_found(f, strcmp(mode, "never") == 0 ? TOOL_PROBE_ABSENT : TOOL_PROBE_YES, d);
}

static int prefetch(xm_mapping *m) { return xm_mapping_async_prefetch(m, 0, xm_mapping_size(m)); }
static void probe_prefetch(struct tool_finding *f) {
  settle(f, on_scratch(xm_allocation_granularity(), prefetch), tool_os_words.prefetch);
}

static int lock(xm_mapping *m) {
  int rc = xm_mapping_lock_on_fault(m, 0, xm_page_size());
  if (rc == XM_OK) (void)xm_mapping_unlock(m, 0, xm_page_size());
  return rc;
}
static void probe_lock(struct tool_finding *f) {
  int rc = on_scratch(xm_page_size(), lock);
  settle_configured(f, rc, rc == XM_E_SYSTEM_CALL && tool_os_error_over_limit(xm_os_error()),
                    "the locked-memory limit does not allow it here", tool_os_words.lock);
}

static int protect(xm_mapping *m) {
  int rc = xm_mapping_protect(m, 0, xm_page_size(), XM_PROT_READ);
  return rc ? rc : xm_mapping_protect(m, 0, xm_page_size(), XM_PROT_READ_WRITE);
}
static void probe_protect(struct tool_finding *f) {
  settle(f, on_scratch(2 * xm_page_size(), protect), "lower and raise again up to the built protection");
}

static int sync_modes(xm_mapping *m) {
  int rc = xm_mapping_sync_range(m, 0, 1, XM_SYNC_ASYNC);
  return rc ? rc : xm_mapping_sync_range(m, 0, 1, XM_SYNC_SYNC);
}
static void probe_sync_modes(struct tool_finding *f) {
  settle(f, on_scratch(xm_page_size(), sync_modes), "XM_SYNC_ASYNC and XM_SYNC_SYNC");
}

static void probe_fault_safe(struct tool_finding *f) {
  const size_t page = xm_page_size();
  xm_mapping *m = scratch(2 * page);
  if (!m) {
    settle(f, XM_E_SYSTEM_CALL, NULL);
    return;
  }
  /* The page is made inaccessible behind the library's back: a page gone from under a mapping. */
  unsigned char buf[64];
  size_t copied = 0;
  unsigned char *second = (unsigned char *)xm_mapping_ptr(m) + page;
  if (tool_raw_protect(second, page, false) != 0) {
    tool_found(f, TOOL_PROBE_BROKEN, "could not make a probe page inaccessible");
  } else {
    int rc = xm_mapping_read_slice_safe(m, buf, sizeof buf, page, &copied);
    if (rc == XM_OK)
      tool_found(f, TOOL_PROBE_BROKEN, "an inaccessible page was read without a fault");
    else if (rc == XM_E_FAULT)
      tool_found(f, TOOL_PROBE_YES, "a fault inside the mapping gives XM_E_FAULT");
    else
      settle(f, rc, NULL);
    (void)tool_raw_protect(second, page, true);
  }
  xm_mapping_free(m);
}

/* ---- the table ------------------------------------------------------------------------------- */
/* ---- executable memory ----------------------------------------------------------------------- */
/* The code-buffer strategy this system gives (best first) and how the instruction cache is synced. */
static void probe_code_buffers(struct tool_finding *f) {
  xm_code *c = NULL;
  int rc = xm_code_new(xm_page_size(), 0, NULL, &c);
  char how[160];
  tool_format(how, sizeof how, "%s, instruction cache: %s", rc == XM_OK ? xm_code_strategy(c) : "none",
              xm_icache_method());
  settle(f, rc, how);
  xm_code_free(c);
}

/* A hook lifts a no-access page on the first write to it: the dispatcher works, and what it learns
   of a fault here. Then whether the library's handler is still in front. */
struct probe_hook {
  xm_mapping *m;
  int calls;
  xm_prot access;
  bool pc_known;
};
static xm_fault_action probe_lift(const xm_fault *fault, void *user) {
  struct probe_hook *p = user;
  p->calls++;
  p->access = fault->access;
  p->pc_known = fault->pc != NULL;
  return xm_mapping_protect(p->m, 0, xm_page_size(), XM_PROT_READ_WRITE) == XM_OK ? XM_FAULT_RETRY : XM_FAULT_PASS;
}

static void probe_fault_dispatcher(struct tool_finding *f) {
  struct probe_hook p = {0};
  xm_builder b = xm_builder_new(xm_page_size());
  xm_fault_hook *h = NULL;
  int rc = xm_builder_build(&b, &p.m);
  if (rc == XM_OK) rc = xm_fault_hook_add(xm_mapping_ptr(p.m), xm_page_size(), probe_lift, &p, &h);
  if (rc == XM_OK) rc = xm_mapping_protect(p.m, 0, xm_page_size(), XM_PROT_NONE);
  if (rc == XM_OK) {
    ((volatile unsigned char *)xm_mapping_ptr(p.m))[0] = 1;
    if (p.calls != 1) rc = xm_fault_handler_check(); /* the hook was not reached: say why */
  }
  xm_fault_hook_remove(h);
  xm_mapping_free(p.m);
  if (rc != XM_OK) {
    settle(f, rc, NULL);
    return;
  }
  char how[200];
  int front = xm_fault_handler_check();
  tool_format(how, sizeof how, "hooks dispatched; access kind %s, instruction address %s; handler %s",
              p.access == XM_PROT_WRITE ? "reported"
              : p.access == 0           ? "not reported"
                                        : "WRONG",
              p.pc_known ? "reported" : "not reported", front == XM_OK ? "in front" : xm_errmsg());
  tool_found(f, p.access & ~(unsigned)XM_PROT_WRITE ? TOOL_PROBE_BROKEN : TOOL_PROBE_YES, how);
}

/* ---- write tracking -------------------------------------------------------------------------- */
/* The strategy a tracker gets here (one written page must come back from a collect), and why not
   the kernel's (uffd-wp) when it is "protect". */
static void probe_write_tracking(struct tool_finding *f) {
  const size_t page = xm_page_size();
  xm_mapping *m = scratch(4 * page);
  if (!m) {
    settle(f, XM_E_SYSTEM_CALL, NULL);
    return;
  }
  xm_dirty *d = NULL;
  int rc = xm_dirty_new(xm_mapping_region(m), 0, 4 * page, 0, &d);
  uint64_t bitmap = 0;
  size_t count = 0;
  if (rc == XM_OK) {
    ((volatile unsigned char *)xm_mapping_ptr(m))[2 * page] = 1;
    rc = xm_dirty_collect(d, &bitmap, 64, &count);
  }
  const char *why = NULL, *forced = getenv("XMMAP_DIRTY");
  bool kernel = xm__os_wp_available(&why);
  char how[sizeof f->detail];
  if (rc == XM_OK && !(bitmap & 4)) {
    tool_format(how, sizeof how, "%s missed a write (bitmap 0x%llx, %zu pages)", xm_dirty_strategy(d),
                (unsigned long long)bitmap, count);
    tool_found(f, TOOL_PROBE_BROKEN, how);
  } else if (rc == XM_OK && strcmp(xm_dirty_strategy(d), "uffd-wp") == 0) {
    tool_found(f, TOOL_PROBE_YES, "uffd-wp (userfaultfd write protection, collected by PAGEMAP_SCAN)");
  } else if (rc == XM_OK) {
    if (kernel && forced && *forced)
      tool_format(how, sizeof how, "%s (XMMAP_DIRTY=%s; uffd-wp is offered)", xm_dirty_strategy(d), forced);
    else
      tool_format(how, sizeof how, "%s (no uffd-wp: %s)", xm_dirty_strategy(d), kernel ? "not chosen" : why);
    tool_found(f, kernel && !(forced && *forced) ? TOOL_PROBE_BROKEN : TOOL_PROBE_YES, how);
  } else if (rc == XM_E_NOT_IMPLEMENTED && !kernel) {
    tool_format(how, sizeof how, "no uffd-wp: %s; %s", why, xm_errmsg());
    tool_found(f, TOOL_PROBE_ABSENT, how);
  } else {
    settle(f, rc, NULL);
  }
  xm_dirty_free(d);
  xm_mapping_free(m);
}

const struct tool_probe tool_probes[] = {
    {"shared_memory", "shared memory", probe_shm},
    {"memfd_seals", "memfd + seals", probe_seals},
    {"shm_lazy_commit", "shm: lazy commit", probe_shm_lazy_commit},
    {"shm_huge_pages", "shm: huge pages", probe_shm_huge},
    {"shm_exec", "shm: executable", probe_shm_exec},
    {"shm_read_only", "shm: read-only clones", probe_shm_read_only},
    {"madv_populate_write", "MADV_POPULATE_WRITE", probe_populate_write},
    {"transparent_huge_pages", "transparent huge pages", probe_thp},
    {"huge_pages", "huge pages", probe_huge_pages},
    {"fixed_noreplace", "fixed no-replace", probe_fixed_noreplace},
    {"arena", "arena", probe_arena},
    {"map_count", "mapping count", probe_map_count},
    {"address_range", "placement in a range", probe_address_range},
    {"windows_placeholders", "Windows placeholders", tool_probe_placeholders},
    {"async_prefetch", "async prefetch", probe_prefetch},
    {"lock_on_fault", "lock on fault", probe_lock},
    {"fault_safe_copy", "fault-safe copies", probe_fault_safe},
    {"unaligned_offsets", "unaligned offsets", probe_unaligned_offset},
    {"private_mappings", "private mappings", probe_private},
    {"guard_pages", "guard pages", probe_guard_pages},
    {"protection_changes", "protection changes", probe_protect},
    {"sync_modes", "async/sync write-back", probe_sync_modes},
    {"code_buffers", "JIT code buffers", probe_code_buffers},
    {"fault_dispatcher", "fault hooks", probe_fault_dispatcher},
    {"write_tracking", "write tracking", probe_write_tracking},
};
const size_t tool_probe_count = sizeof tool_probes / sizeof tool_probes[0];

bool tool_probe_run(const char *key, struct tool_finding *f) {
  for (size_t i = 0; i < tool_probe_count; i++) {
    if (strcmp(tool_probes[i].key, key) == 0) {
      tool_probes[i].run(f);
      return true;
    }
  }
  return false;
}
