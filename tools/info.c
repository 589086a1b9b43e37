/* `xmmap info`: the system facts the library reads and the optional features this system offers,
   each found by trying it (a probe), never assumed from the platform's name. */
#include <stdio.h>
#include <string.h>

#include "tool.h"

#ifdef _WIN32
#define WIN32_LEAN_AND_MEAN
#include <windows.h>
#endif

static const char info_help[] =
    "usage: xmmap info [--json]\n"
    "\n"
    "Prints the back end, OS and arch, page size, allocation granularity, cache-line size and\n"
    "where it came from, the flush method, the library version, and which optional features\n"
    "this system offers (each probed by trying it: shared memory, memfd seals,\n"
    "MADV_POPULATE_WRITE, transparent huge pages, huge pages, fixed no-replace mappings, the\n"
    "arena's strategy, Windows placeholders, async prefetch, lock-on-fault, fault-safe copies).\n"
    "\n"
    "options:\n"
    "  --json      one JSON object instead of aligned text\n"
    "  -h, --help  this text\n"
    "\n"
    "exit status: 0 success, 2 usage error\n";

enum state { NO, YES, NOT_APPLICABLE };

struct feature {
  const char *key;   /* JSON name */
  const char *label; /* text label */
  enum state state;
  char detail[240];
};

static void set(struct feature *f, enum state s, const char *detail) {
  f->state = s;
  tool_format(f->detail, sizeof f->detail, "%s", detail ? detail : "");
}

/* A feature the probe found missing: the library's message says why. */
static void set_missing(struct feature *f) { set(f, NO, xm_errmsg()); }

static xm_mapping *scratch(size_t size) {
  xm_builder b = xm_builder_new(size);
  xm_mapping *m = NULL;
  return xm_builder_build(&b, &m) == XM_OK ? m : NULL;
}

static void probe_shm(struct feature *shm, struct feature *seals) {
  xm_shm *s = NULL;
  if (xm_shm_new("xmmap-info", xm_page_size(), &s) != XM_OK) {
    set_missing(shm);
    set(seals, NO, "no shared memory");
    return;
  }
  unsigned current = 0;
  int rc = xm_shm_get_seals(s, &current);
#ifdef _WIN32
  set(shm, YES, "pagefile-backed section");
#else
  set(shm, YES, rc == XM_OK ? "memfd" : "shm_open");
#endif
  if (rc == XM_OK) {
    char d[64];
    tool_format(d, sizeof d, "memfd seals (new object: 0x%x)", current);
    set(seals, YES, d);
  } else {
    set_missing(seals);
  }
  xm_shm_free(s);
}

static void probe_thp(struct feature *f) {
  char mode[64];
  tool_thp_mode(mode, sizeof mode);
  if (strcmp(mode, "n/a") == 0) {
#ifdef _WIN32
    set(f, NOT_APPLICABLE, "Windows has no transparent huge pages");
#else
    set(f, NOT_APPLICABLE, "no /sys/kernel/mm/transparent_hugepage");
#endif
    return;
  }
  char d[96];
  tool_format(d, sizeof d, "mode: %s", mode);
  set(f, strcmp(mode, "never") == 0 ? NO : YES, d);
}

static void probe_fixed_noreplace(struct feature *f) {
  const size_t size = xm_allocation_granularity();
  xm_mapping *taken = scratch(size);
  if (!taken) {
    set_missing(f);
    return;
  }
  xm_builder b = xm_builder_new(size);
  xm_builder_fixed_noreplace(&b, xm_mapping_ptr(taken));
  xm_mapping *m = NULL;
  int rc = xm_builder_build(&b, &m);
  if (rc == XM_E_EXISTS) {
    /* The occupied range was refused; now the same address once it is free. */
    void *addr = xm_mapping_ptr(taken);
    xm_mapping_free(taken);
    taken = NULL;
    xm_builder_fixed_noreplace(&b, addr);
    rc = xm_builder_build(&b, &m);
    if (rc == XM_OK && xm_mapping_ptr(m) == addr)
      set(f, YES, "an occupied range is refused, a free one is taken exactly");
    else if (rc == XM_OK)
      set(f, NO, "the mapping did not land at the requested address");
    else
      set_missing(f);
  } else if (rc == XM_OK) {
    set(f, NO, "an occupied range was not refused");
  } else {
    set_missing(f);
  }
  xm_mapping_free(m);
  xm_mapping_free(taken);
}

static void probe_arena(struct feature *f) {
  const size_t g = xm_allocation_granularity();
  xm_arena *a = NULL;
  int rc = xm_arena_new(2 * g, &a);
  if (rc == XM_OK) rc = xm_arena_add_anon(a, 0, g, XM_PROT_READ_WRITE);
  if (rc == XM_OK) rc = xm_arena_remove(a, 0, g);
  if (rc == XM_OK)
    set(f, YES, xm_arena_strategy());
  else
    set_missing(f);
  xm_arena_free(a);
}

static void probe_placeholders(struct feature *f) {
#ifdef _WIN32
  /* VirtualAlloc2 with MEM_RESERVE_PLACEHOLDER (Windows 10 1803+; Wine 8 refuses it). */
  typedef PVOID(WINAPI * virtual_alloc2_fn)(HANDLE, PVOID, SIZE_T, ULONG, ULONG, void *, ULONG);
  HMODULE kb = GetModuleHandleA("kernelbase.dll");
  FARPROC p = kb ? GetProcAddress(kb, "VirtualAlloc2") : NULL;
  if (!p) {
    set(f, NO, "kernelbase.dll has no VirtualAlloc2");
    return;
  }
  virtual_alloc2_fn va2;
  memcpy(&va2, &p, sizeof va2);
  const ULONG reserve_placeholder = 0x00040000; /* MEM_RESERVE_PLACEHOLDER */
  void *r = va2(NULL, NULL, xm_allocation_granularity(), MEM_RESERVE | reserve_placeholder, PAGE_NOACCESS, NULL, 0);
  if (r) {
    VirtualFree(r, 0, MEM_RELEASE);
    set(f, YES, "VirtualAlloc2(MEM_RESERVE_PLACEHOLDER)");
  } else {
    char d[96];
    tool_format(d, sizeof d, "VirtualAlloc2(MEM_RESERVE_PLACEHOLDER) failed (error %lu)", (unsigned long)GetLastError());
    set(f, NO, d);
  }
#else
  set(f, NOT_APPLICABLE, "Windows only");
#endif
}

static void probe_fault_safe(struct feature *f) {
  const size_t page = xm_page_size();
  xm_mapping *m = scratch(2 * page);
  if (!m) {
    set_missing(f);
    return;
  }
  /* The page is made inaccessible behind the library's back: a page gone from under a mapping. */
  unsigned char buf[64];
  size_t copied = 0;
  unsigned char *second = (unsigned char *)xm_mapping_ptr(m) + page;
  if (tool_raw_protect(second, page, false) != 0) {
    set(f, NO, "could not make a probe page inaccessible");
  } else {
    int rc = xm_mapping_read_slice_safe(m, buf, sizeof buf, page, &copied);
    if (rc == XM_E_FAULT)
      set(f, YES, "a fault inside the mapping gives XM_E_FAULT");
    else if (rc == XM_OK)
      set(f, NO, "an inaccessible page was read without a fault");
    else
      set_missing(f);
    (void)tool_raw_protect(second, page, true);
  }
  xm_mapping_free(m);
}

/* The probes that only need a status: each builds what the feature needs and reports it. */
static int try_populate_write(void) {
  xm_mapping *m = scratch(xm_page_size());
  if (!m) return XM_E_SYSTEM_CALL;
  int rc = xm_mapping_advise(m, 0, xm_page_size(), XM_ADVICE_POPULATE_WRITE);
  xm_mapping_free(m);
  return rc;
}

static int try_huge_pages(void) {
  xm_builder b = xm_builder_new((size_t)2 << 20);
  xm_builder_huge_pages(&b, 0);
  xm_mapping *m = NULL;
  int rc = xm_builder_build(&b, &m);
  xm_mapping_free(m);
  return rc;
}

static int try_prefetch(void) {
  xm_mapping *m = scratch(xm_allocation_granularity());
  if (!m) return XM_E_SYSTEM_CALL;
  int rc = xm_mapping_async_prefetch(m, 0, xm_mapping_size(m));
  xm_mapping_free(m);
  return rc;
}

static int try_lock(void) {
  xm_mapping *m = scratch(xm_page_size());
  if (!m) return XM_E_SYSTEM_CALL;
  int rc = xm_mapping_lock_on_fault(m, 0, xm_page_size());
  if (rc == XM_OK) (void)xm_mapping_unlock(m, 0, xm_page_size());
  xm_mapping_free(m);
  return rc;
}

static int try_unaligned_offset(void) {
  xm_shm *s = NULL;
  int rc = xm_shm_new("xmmap-info", 2 * xm_allocation_granularity(), &s);
  if (rc) return rc;
  xm_builder b = xm_builder_new(64);
  xm_builder_from_shm(&b, s);
  xm_builder_offset(&b, xm_allocation_granularity() + 1);
  xm_mapping *m = NULL;
  rc = xm_builder_build(&b, &m);
  xm_mapping_free(m);
  xm_shm_free(s);
  return rc;
}

static int try_private(void) {
  xm_builder b = xm_builder_new(xm_page_size());
  xm_builder_private(&b);
  xm_mapping *m = NULL;
  int rc = xm_builder_build(&b, &m);
  xm_mapping_free(m);
  return rc;
}

static int try_guard_pages(void) {
  xm_builder b = xm_builder_new(xm_page_size());
  xm_builder_guard_pages(&b, 1);
  xm_mapping *m = NULL;
  int rc = xm_builder_build(&b, &m);
  xm_mapping_free(m);
  return rc;
}

static int try_protect(void) {
  xm_mapping *m = scratch(2 * xm_page_size());
  if (!m) return XM_E_SYSTEM_CALL;
  int rc = xm_mapping_protect(m, 0, xm_page_size(), XM_PROT_READ);
  if (!rc) rc = xm_mapping_protect(m, 0, xm_page_size(), XM_PROT_READ_WRITE);
  xm_mapping_free(m);
  return rc;
}

static int try_sync_modes(void) {
  xm_mapping *m = scratch(xm_page_size());
  if (!m) return XM_E_SYSTEM_CALL;
  int rc = xm_mapping_sync_range(m, 0, 1, XM_SYNC_ASYNC);
  if (!rc) rc = xm_mapping_sync_range(m, 0, 1, XM_SYNC_SYNC);
  xm_mapping_free(m);
  return rc;
}

static void probe_with(struct feature *f, int (*try_it)(void), const char *how) {
  if (try_it() == XM_OK)
    set(f, YES, how);
  else
    set_missing(f);
}

int tool_info(int argc, char **argv) {
  bool json = false;
  for (int i = 1; i < argc; i++) {
    if (tool_is_help(argv[i])) {
      fputs(info_help, stdout);
      return TOOL_EXIT_OK;
    }
    if (strcmp(argv[i], "--json") == 0)
      json = true;
    else
      return tool_usage_error("info", "unknown option '%s'", argv[i]);
  }

  char os[256];
  tool_os_description(os, sizeof os);
  const char *emulator = tool_emulator();

  struct feature features[] = {
      {"shared_memory", "shared memory", NO, ""},
      {"memfd_seals", "memfd + seals", NO, ""},
      {"madv_populate_write", "MADV_POPULATE_WRITE", NO, ""},
      {"transparent_huge_pages", "transparent huge pages", NO, ""},
      {"huge_pages", "huge pages", NO, ""},
      {"fixed_noreplace", "fixed no-replace", NO, ""},
      {"arena", "arena", NO, ""},
      {"windows_placeholders", "Windows placeholders", NO, ""},
      {"async_prefetch", "async prefetch", NO, ""},
      {"lock_on_fault", "lock on fault", NO, ""},
      {"fault_safe_copy", "fault-safe copies", NO, ""},
      {"unaligned_offsets", "unaligned offsets", NO, ""},
      {"private_mappings", "private mappings", NO, ""},
      {"guard_pages", "guard pages", NO, ""},
      {"protection_changes", "protection changes", NO, ""},
      {"sync_modes", "async/sync write-back", NO, ""},
  };
  probe_shm(&features[0], &features[1]);
  probe_with(&features[2], try_populate_write, "madvise(MADV_POPULATE_WRITE)");
  probe_thp(&features[3]);
  probe_with(&features[4], try_huge_pages, "2 MiB mapping with the default huge page size");
  probe_fixed_noreplace(&features[5]);
  probe_arena(&features[6]);
  probe_placeholders(&features[7]);
#ifdef _WIN32
  probe_with(&features[8], try_prefetch, "PrefetchVirtualMemory");
  probe_with(&features[9], try_lock, "VirtualLock (locks at once)");
#else
  probe_with(&features[8], try_prefetch, "madvise(MADV_WILLNEED)");
  probe_with(&features[9], try_lock, "mlock2(MLOCK_ONFAULT) or mlock");
#endif
  probe_fault_safe(&features[10]);
  probe_with(&features[11], try_unaligned_offset, "mapped from the boundary below, pointer adjusted");
  probe_with(&features[12], try_private, "copy-on-write (MAP_PRIVATE / FILE_MAP_COPY)");
  probe_with(&features[13], try_guard_pages, "inaccessible pages before and after");
  probe_with(&features[14], try_protect, "lower and raise again up to the built protection");
  probe_with(&features[15], try_sync_modes, "XM_SYNC_ASYNC and XM_SYNC_SYNC");
  const size_t nfeatures = sizeof features / sizeof features[0];

  if (json) {
    printf("{\"version\": ");
    tool_json_string(stdout, xm_version());
    printf(", \"backend\": ");
    tool_json_string(stdout, xm_backend_name());
    printf(", \"os\": ");
    tool_json_string(stdout, os);
    printf(", \"arch\": ");
    tool_json_string(stdout, tool_arch());
    printf(", \"emulator\": ");
    tool_json_string(stdout, emulator);
    printf(", \"page_size\": %llu, \"allocation_granularity\": %llu, \"cacheline_size\": %llu",
           (unsigned long long)xm_page_size(), (unsigned long long)xm_allocation_granularity(),
           (unsigned long long)xm_cacheline_size());
    printf(", \"cacheline_source\": ");
    tool_json_string(stdout, xm_cacheline_source());
    printf(", \"flush_method\": ");
    tool_json_string(stdout, xm_flush_method());
    printf(", \"features\": {");
    for (size_t i = 0; i < nfeatures; i++) {
      printf("%s\n  ", i ? "," : "");
      tool_json_string(stdout, features[i].key);
      printf(": {\"available\": %s, \"detail\": ",
             features[i].state == YES ? "true" : features[i].state == NO ? "false" : "null");
      tool_json_string(stdout, features[i].detail);
      printf("}");
    }
    printf("}}\n");
    return TOOL_EXIT_OK;
  }

  printf("xmmap %s\n", xm_version());
  printf("  %-24s %s\n", "back end", xm_backend_name());
  printf("  %-24s %s\n", "os", os);
  printf("  %-24s %s\n", "arch", tool_arch());
  if (emulator) printf("  %-24s %s (what it emulates is what the probes see)\n", "emulator", emulator);
  printf("  %-24s %llu\n", "page size", (unsigned long long)xm_page_size());
  printf("  %-24s %llu\n", "allocation granularity", (unsigned long long)xm_allocation_granularity());
  printf("  %-24s %llu (%s)\n", "cache line", (unsigned long long)xm_cacheline_size(), xm_cacheline_source());
  printf("  %-24s %s\n", "flush method", xm_flush_method());
  printf("features\n");
  for (size_t i = 0; i < nfeatures; i++) {
    const struct feature *f = &features[i];
    printf("  %-24s %-4s %s\n", f->label, f->state == YES ? "yes" : f->state == NO ? "no" : "n/a", f->detail);
  }
  return TOOL_EXIT_OK;
}
