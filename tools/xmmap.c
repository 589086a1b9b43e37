/* The `xmmap` command-line tool: what this system offers (info), whether it works (selftest), and
   how fast it is against raw system calls (bench). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "tool.h"

static const char usage_text[] =
    "usage: xmmap <command> [options]\n"
    "\n"
    "The xmmap library's companion tool.\n"
    "\n"
    "commands:\n"
    "  info [--json]                 back end, OS, arch, page size, granularity, cache line,\n"
    "                                flush method and the optional features this system offers\n"
    "  selftest [--ascii]            exercise every feature on this machine; prints a checklist\n"
    "  bench [--quick] [--json]      fixed workloads against raw system-call baselines\n"
    "  help [command]                this text, or a command's\n"
    "\n"
    "options:\n"
    "  -h, --help                    this text (after a command: that command's help)\n"
    "  --version                     the library version\n"
    "\n"
    "exit status:\n"
    "  0  success\n"
    "  1  a selftest check or a benchmark failed\n"
    "  2  usage error (unknown command or option)\n";

void tool_format(char *buf, size_t len, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf, len, fmt, ap);
  va_end(ap);
  if (n < 0 && len) buf[0] = '\0';
}

bool tool_is_help(const char *arg) { return strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0; }

int tool_usage_error(const char *command, const char *fmt, ...) {
  va_list ap;
  fprintf(stderr, "xmmap%s%s: ", command ? " " : "", command ? command : "");
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  if (command)
    fprintf(stderr, "Try 'xmmap %s --help'.\n", command);
  else
    fputs(usage_text, stderr);
  return TOOL_EXIT_USAGE;
}

struct command {
  const char *name;
  int (*run)(int argc, char **argv);
};

static const struct command commands[] = {
    {"info", tool_info},
    {"selftest", tool_selftest},
    {"bench", tool_bench},
};

static const struct command *find_command(const char *name) {
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
    if (strcmp(commands[i].name, name) == 0) return &commands[i];
  return NULL;
}

int main(int argc, char **argv) {
  tool_console_init();
  if (argc < 2) return tool_usage_error(NULL, "missing command");
  const char *name = argv[1];
  if (tool_is_help(name)) {
    fputs(usage_text, stdout);
    return TOOL_EXIT_OK;
  }
  if (strcmp(name, "--version") == 0) {
    printf("xmmap %s\n", xm_version());
    return TOOL_EXIT_OK;
  }
  if (strcmp(name, "help") == 0) {
    if (argc == 2) {
      fputs(usage_text, stdout);
      return TOOL_EXIT_OK;
    }
    if (argc > 3) return tool_usage_error(NULL, "help takes at most one command");
    const struct command *c = find_command(argv[2]);
    if (!c) return tool_usage_error(NULL, "unknown command '%s'", argv[2]);
    char help[] = "--help";
    char *args[] = {argv[2], help, NULL};
    return c->run(2, args);
  }
  if (name[0] == '-') return tool_usage_error(NULL, "unknown option '%s'", name);
  const struct command *c = find_command(name);
  if (!c) return tool_usage_error(NULL, "unknown command '%s'", name);
  int rc = c->run(argc - 1, argv + 1);
  fflush(stdout);
  return rc;
}
