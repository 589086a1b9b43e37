/* `xmmap selftest`: every feature exercised quickly on this machine, as a checklist. A check is
   skipped (with the reason) where the platform does not offer the feature, failed when the
   library misbehaves; the exit status is 1 iff a check failed. The checks are in
   selftest_use.c and selftest_build.c. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "probes.h"
#include "selftest.h"

static const char selftest_help[] =
    "usage: xmmap selftest [--ascii]\n"
    "\n"
    "Exercises every feature of the library on this machine: system facts, errors, anonymous,\n"
    "file, private, unaligned-offset and shared-memory mappings, seals, the arena, slices,\n"
    "cache-line flush, msync, advice, protection, guard pages, fault-safe copies, locking, fixed\n"
    "addresses, alignment, huge pages and external regions. Prints one line per check:\n"
    "  \xE2\x9C\x93 passed   \xE2\x9C\x97 failed (with what went wrong)   - skipped (with why: the feature is not\n"
    "  available here, e.g. XM_E_NOT_IMPLEMENTED with the library's message)\n"
    "\n"
    "options:\n"
    "  --ascii     ok/FAIL/skip instead of the UTF-8 marks\n"
    "  -h, --help  this text\n"
    "\n"
    "exit status: 0 no check failed, 1 a check failed, 2 usage error\n";

void selftest_outcome(struct check *c, enum outcome o, const char *fmt, ...) {
  if (c->outcome != PASSED) return;
  c->outcome = o;
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(c->note, sizeof c->note, fmt, ap);
  va_end(ap);
  if (n < 0) c->note[0] = '\0';
}

const char *selftest_status_name(int rc) {
  static const char *const names[] = {"XM_OK",
                                      "XM_E_ADD_FD_MAPPING_UNSUPPORTED",
                                      "XM_E_INVALID_ADDRESS",
                                      "XM_E_INVALID_ALIGNMENT",
                                      "XM_E_INVALID_ARGUMENT",
                                      "XM_E_INVALID_OFFSET",
                                      "XM_E_INVALID_RANGE",
                                      "XM_E_NOT_IMPLEMENTED",
                                      "XM_E_NOT_PAGE_ALIGNED",
                                      "XM_E_READ_TO_MEMORY",
                                      "XM_E_REMOVE_MAPPING_UNSUPPORTED",
                                      "XM_E_SYSTEM_CALL",
                                      "XM_E_WRITE_FROM_MEMORY",
                                      "XM_E_OUT_OF_BOUNDS",
                                      "XM_E_OVERFLOW",
                                      "XM_E_NO_MEMORY",
                                      "XM_E_FAULT",
                                      "XM_E_EXISTS",
                                      "XM_E_ACCESS"};
  return rc <= 0 && -rc < (int)(sizeof names / sizeof names[0]) ? names[-rc] : "unknown status";
}

void selftest_call_failed(struct check *c, const char *call, int rc) {
  if (rc == XM_E_NOT_IMPLEMENTED)
    selftest_outcome(c, SKIPPED, "%s", xm_errmsg());
  else
    selftest_outcome(c, FAILED, "%s -> %s: %s", call, selftest_status_name(rc), xm_errmsg());
}

void selftest_fill(unsigned char *p, size_t n, unsigned seed) {
  uint32_t x = seed * 2654435761u + 1u;
  for (size_t i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    p[i] = (unsigned char)x;
  }
}

int selftest_anon(size_t size, xm_mapping **m) {
  xm_builder b = xm_builder_new(size);
  return xm_builder_build(&b, m);
}

bool selftest_file_open(struct check *c, struct pattern_file *pf, size_t size, unsigned seed) {
  tool_file_init(&pf->f);
  pf->data = malloc(size);
  if (!pf->data || tool_file_create(&pf->f, tool_temp_dir(), size) != 0) {
    selftest_outcome(c, FAILED, "cannot create a %zu-byte temporary file in %s", size, tool_temp_dir());
    return false;
  }
  selftest_fill(pf->data, size, seed);
  if (tool_file_pwrite(&pf->f, pf->data, size, 0) != 0) {
    selftest_outcome(c, FAILED, "cannot write the temporary file %s", pf->f.path);
    return false;
  }
  return true;
}

void selftest_file_close(struct pattern_file *pf) {
  tool_file_close(&pf->f);
  free(pf->data);
  pf->data = NULL;
}

/* Each check names the probe (probes.c) that says whether its feature is here: a feature that is
   absent skips the check with the probe's reason, one the probe found broken fails it. */
static const struct {
  const char *name;
  const char *probe; /* NULL: every system has the feature */
  void (*run)(struct check *c);
} checks[] = {
    {"system facts", NULL, check_facts},
    {"errors", NULL, check_errors},
    {"anonymous mapping", NULL, check_anonymous},
    {"slices", NULL, check_slices},
    {"file mapping", NULL, check_file},
    {"private (copy-on-write) mapping", "private_mappings", check_private},
    {"unaligned offset", "unaligned_offsets", check_unaligned_offset},
    {"shared memory", "shared_memory", check_shm},
    {"seals", "memfd_seals", check_seals},
    {"read-only shm clone", "shm_read_only", check_shm_read_only},
    {"arena", "arena", check_arena},
    {"flush", NULL, check_flush},
    {"msync", "sync_modes", check_msync},
    {"advice", NULL, check_advice},
    {"protection", "protection_changes", check_protect},
    {"guard pages", "guard_pages", check_guard_pages},
    {"fault-safe copies", "fault_safe_copy", check_fault_safe},
    {"locking", "lock_on_fault", check_lock},
    {"fixed address (no-replace)", "fixed_noreplace", check_fixed},
    {"alignment", NULL, check_align},
    {"huge pages", "huge_pages", check_huge_pages},
    {"external region", NULL, check_external},
};

/* The check's probe first (if any); the check itself only where the feature is here. */
static void run_check(size_t i, struct check *c) {
  struct tool_finding f;
  if (checks[i].probe && tool_probe_run(checks[i].probe, &f) && f.state != TOOL_PROBE_YES) {
    selftest_outcome(c, f.state == TOOL_PROBE_BROKEN ? FAILED : SKIPPED, "%s", f.detail);
    return;
  }
  checks[i].run(c);
}

int tool_selftest(int argc, char **argv) {
  bool ascii = false;
  for (int i = 1; i < argc; i++) {
    if (tool_is_help(argv[i])) {
      fputs(selftest_help, stdout);
      return TOOL_EXIT_OK;
    }
    if (strcmp(argv[i], "--ascii") == 0)
      ascii = true;
    else
      return tool_usage_error("selftest", "unknown option '%s'", argv[i]);
  }
  const char *marks[3] = {"\xE2\x9C\x93", "\xE2\x9C\x97", "-"};
  if (ascii) {
    marks[0] = "ok  ";
    marks[1] = "FAIL";
    marks[2] = "skip";
  }
  char os[256];
  tool_os_description(os, sizeof os);
  printf("xmmap selftest: xmmap %s, %s back end, %s, %s\n", xm_version(), xm_backend_name(), tool_arch(), os);
  fflush(stdout);
  size_t counts[3] = {0, 0, 0};
  for (size_t i = 0; i < sizeof checks / sizeof checks[0]; i++) {
    struct check c = {PASSED, ""};
    run_check(i, &c);
    counts[c.outcome]++;
    const char *prefix = c.outcome == SKIPPED ? "skipped: " : "";
    printf("  %s %-32s %s%s\n", marks[c.outcome], checks[i].name, prefix, c.note);
    fflush(stdout);
  }
  printf("%zu checks: %zu passed, %zu failed, %zu skipped\n", sizeof checks / sizeof checks[0], counts[PASSED],
         counts[FAILED], counts[SKIPPED]);
  return counts[FAILED] ? TOOL_EXIT_FAILED : TOOL_EXIT_OK;
}
