/* The xmmap tool's shared declarations: commands, output helpers and the platform layer. */
#ifndef XMMAP_TOOL_H
#define XMMAP_TOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "xmmap/xmmap.h"

#if defined(__MINGW32__)
/* MinGW's printf is the C99 one (__USE_MINGW_ANSI_STDIO, on for C11): check formats like it. */
#define TOOL_PRINTF(fmt, args) __attribute__((format(gnu_printf, fmt, args)))
#elif defined(__GNUC__)
#define TOOL_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#define TOOL_PRINTF(fmt, args)
#endif

/* Exit statuses, documented in `xmmap --help`. */
enum { TOOL_EXIT_OK = 0, TOOL_EXIT_FAILED = 1, TOOL_EXIT_USAGE = 2 };

/* ---- commands (argv[0] is the command name) -------------------------------------------------- */
int tool_info(int argc, char **argv);
int tool_selftest(int argc, char **argv);
int tool_bench(int argc, char **argv);
/* Prints "xmmap <command>: <message>" and the command's usage hint on stderr; returns 2. */
int tool_usage_error(const char *command, const char *fmt, ...) TOOL_PRINTF(2, 3);
bool tool_is_help(const char *arg);

/* ---- output (xmmap.c, json.c) ---------------------------------------------------------------- */
/* snprintf that always terminates and never warns about truncation. */
void tool_format(char *buf, size_t len, const char *fmt, ...) TOOL_PRINTF(3, 4);
/* s as a JSON string literal (quotes included); NULL prints null. */
void tool_json_string(FILE *out, const char *s);
/* A number as JSON: finite values with %.*g, anything else as null. */
void tool_json_number(FILE *out, double v);
/* `, "key": ` then value as a JSON string or number: the shape of most fields the tool prints. */
void tool_json_field(FILE *out, const char *key, const char *value);
void tool_json_number_field(FILE *out, const char *key, double v);

/* ---- platform facts: platform.c (the same everywhere) ---------------------------------------- */
/* "x86_64", "i686", "aarch64", "arm", "riscv64", "ppc64le", ... (what this binary was built for). */
const char *tool_arch(void);
/* The CPU's model name ("unknown" when the system does not say). */
void tool_cpu_model(char *buf, size_t len);
/* Cache-flush related CPU flags present, e.g. "clflush clflushopt clwb", or "n/a". */
void tool_cpu_flags(char *buf, size_t len);
/* The emulator this process runs under: "wine 8.0", "qemu-user (qemu-aarch64)", or NULL. */
const char *tool_emulator(void);
/* Whether that emulator is qemu-user, which ignores some advice and shows a partial
   /proc/self/maps. */
bool tool_under_qemu(void);

/* ---- platform facts: platform_posix.c / platform_windows.c (one is compiled) ----------------- */
/* Whatever the console needs before the first line (Windows: the UTF-8 code page). */
void tool_console_init(void);
/* Seconds from an arbitrary monotonic origin. */
double tool_now(void);
/* Minor + major page faults of this process so far (Windows: PageFaultCount). */
uint64_t tool_page_faults(void);
bool tool_stderr_is_terminal(void);
/* The Wine version under Wine, else NULL; the qemu-user program name under qemu-user, else NULL. */
const char *tool_wine_version(void);
const char *tool_qemu_name(void);
/* Kernel / OS name and version, e.g. "Linux 6.1.0-18-amd64 x86_64" or "Windows 10.0.19045". */
void tool_os_description(char *buf, size_t len);
/* The CPU's model name as the OS tells it (for CPUs without a brand string of their own). */
void tool_os_cpu_model(char *buf, size_t len);
/* The transparent-huge-page mode ("always", "madvise", "never") or "n/a". */
void tool_thp_mode(char *buf, size_t len);
/* Sets the environment variable name to value for this process (the C runtime's getenv sees
   it), or removes it when value is NULL. */
void tool_setenv(const char *name, const char *value);
/* The directory for temporary files (TMPDIR, else /tmp; GetTempPath on Windows). */
const char *tool_temp_dir(void);
/* The file-system type of dir, e.g. "ext4", "tmpfs", "NTFS", or "unknown (0x...)". */
void tool_fs_type(const char *dir, char *buf, size_t len);
/* Whether the page just below addr is mapped but inaccessible (a guard page). */
bool tool_page_below_is_guard(const void *addr);
/* A descriptor value that names nothing open, for checks that the library reports it. */
xm_descriptor tool_closed_descriptor(void);
/* Whether an xm_os_error() value says the OS does not know the request (Linux: EINVAL from a
   kernel built without it), or that a resource limit refused it (the locked-memory limit). */
bool tool_os_error_unsupported(int os_error);
bool tool_os_error_over_limit(int os_error);

/* Makes [addr, addr + len) inaccessible, or read-write again, behind the library's back
   (mprotect / VirtualProtect): how a fault-safe copy is made to meet a fault portably. */
int tool_raw_protect(void *addr, size_t len, bool accessible);

/* A temporary file, zero-filled to size bytes, read-write; removed by tool_file_close. */
typedef struct tool_file {
  xm_descriptor d;
  char path[1024];
} tool_file;
/* No file yet: what tool_file_close may be given before (or without) tool_file_create. */
void tool_file_init(tool_file *f);
int tool_file_create(tool_file *f, const char *dir, uint64_t size); /* 0 or -1 (message on stderr) */
void tool_file_close(tool_file *f);
/* Ordinary file I/O (not through a mapping): 0 when exactly len bytes moved. */
int tool_file_pread(const tool_file *f, void *buf, size_t len, uint64_t offset);
int tool_file_pwrite(const tool_file *f, const void *buf, size_t len, uint64_t offset);

#endif /* XMMAP_TOOL_H */
