/* `xmmap info`: the system facts the library reads and the optional features this system offers,
   each found by trying it (the probe table in probes.c), never assumed from the platform's name. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "probes.h"

static const char info_help[] =
    "usage: xmmap info [--json]\n"
    "\n"
    "Prints the back end, OS and arch, page size, allocation granularity, cache-line size and\n"
    "where it came from, the flush method, the library version, and which optional features\n"
    "this system offers (each probed by trying it: shared memory, memfd seals,\n"
    "MADV_POPULATE_WRITE, transparent huge pages, huge pages, fixed no-replace mappings, the\n"
    "arena's strategy, Windows placeholders, async prefetch, lock-on-fault, fault-safe copies,\n"
    "the write-tracking strategy, and why not uffd-wp where it is \"protect\").\n"
    "\n"
    "options:\n"
    "  --json      one JSON object instead of aligned text\n"
    "  -h, --help  this text\n"
    "\n"
    "exit status: 0 success, 2 usage error\n";

/* info shows yes / no / n/a: whether absent or broken, the feature is not there to use. */
static const char *state_word(enum tool_probe_state s, bool json) {
  switch (s) {
  case TOOL_PROBE_YES: return json ? "true" : "yes";
  case TOOL_PROBE_NOT_APPLICABLE: return json ? "null" : "n/a";
  case TOOL_PROBE_ABSENT:
  case TOOL_PROBE_BROKEN: break;
  }
  return json ? "false" : "no";
}

static void print_json(const char *os, const char *emulator, const struct tool_finding *found) {
  printf("{\"version\": ");
  tool_json_string(stdout, xm_version());
  tool_json_field(stdout, "backend", xm_backend_name());
  tool_json_field(stdout, "os", os);
  tool_json_field(stdout, "arch", tool_arch());
  tool_json_field(stdout, "emulator", emulator);
  printf(", \"page_size\": %llu, \"allocation_granularity\": %llu, \"cacheline_size\": %llu",
         (unsigned long long)xm_page_size(), (unsigned long long)xm_allocation_granularity(),
         (unsigned long long)xm_cacheline_size());
  tool_json_field(stdout, "cacheline_source", xm_cacheline_source());
  tool_json_field(stdout, "flush_method", xm_flush_method());
  printf(", \"features\": {");
  for (size_t i = 0; i < tool_probe_count; i++) {
    printf("%s\n  ", i ? "," : "");
    tool_json_string(stdout, tool_probes[i].key);
    printf(": {\"available\": %s, \"detail\": ", state_word(found[i].state, true));
    tool_json_string(stdout, found[i].detail);
    printf("}");
  }
  printf("}}\n");
}

static void print_text(const char *os, const char *emulator, const struct tool_finding *found) {
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
  for (size_t i = 0; i < tool_probe_count; i++)
    printf("  %-24s %-4s %s\n", tool_probes[i].label, state_word(found[i].state, false), found[i].detail);
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
  struct tool_finding *found = calloc(tool_probe_count, sizeof *found);
  if (!found) {
    fprintf(stderr, "xmmap info: out of memory\n");
    return TOOL_EXIT_FAILED;
  }
  for (size_t i = 0; i < tool_probe_count; i++)
    tool_probes[i].run(&found[i]);
  if (json)
    print_json(os, emulator, found);
  else
    print_text(os, emulator, found);
  free(found);
  return TOOL_EXIT_OK;
}
