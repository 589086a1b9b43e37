/* The xmmap tool's platform layer: clocks, fault counters, system description, temporary files. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tool.h"

#ifdef _WIN32
#define WIN32_LEAN_AND_MEAN
#include <windows.h>
#include <io.h>
#include <psapi.h>
#else
#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>
#if defined(__linux__)
#include <sys/vfs.h>
#endif
#endif

#if defined(__i386__) || defined(__x86_64__)
#include <cpuid.h>
#define TOOL_X86 1
#endif

/* ---- output -------------------------------------------------------------------------------- */
void tool_format(char *buf, size_t len, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf, len, fmt, ap);
  va_end(ap);
  if (n < 0 && len) buf[0] = '\0';
}

void tool_json_string(FILE *out, const char *s) {
  if (!s) {
    fputs("null", out);
    return;
  }
  fputc('"', out);
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    switch (*p) {
    case '"': fputs("\\\"", out); break;
    case '\\': fputs("\\\\", out); break;
    case '\n': fputs("\\n", out); break;
    case '\r': fputs("\\r", out); break;
    case '\t': fputs("\\t", out); break;
    default:
      if (*p < 0x20)
        fprintf(out, "\\u%04x", (unsigned)*p);
      else
        fputc(*p, out);
    }
  }
  fputc('"', out);
}

void tool_json_number(FILE *out, double v) {
  if (v != v || v > 1e300 || v < -1e300)
    fputs("null", out);
  else
    fprintf(out, "%.6g", v);
}

/* ---- common facts ------------------------------------------------------------------------ */
const char *tool_arch(void) {
#if defined(__x86_64__) || defined(_M_X64)
  return "x86_64";
#elif defined(__i386__) || defined(_M_IX86)
  return "i686";
#elif defined(__aarch64__) || defined(_M_ARM64)
  return "aarch64";
#elif defined(__arm__)
  return "arm";
#elif defined(__riscv) && __riscv_xlen == 64
  return "riscv64";
#elif defined(__powerpc64__) && defined(__LITTLE_ENDIAN__)
  return "ppc64le";
#elif defined(__powerpc64__)
  return "ppc64";
#else
  return "unknown";
#endif
}

#ifdef TOOL_X86
static void x86_brand(char *buf, size_t len) {
  unsigned regs[12];
  unsigned eax, ebx, ecx, edx;
  if (!__get_cpuid(0x80000000u, &eax, &ebx, &ecx, &edx) || eax < 0x80000004u) {
    tool_format(buf, len, "unknown x86");
    return;
  }
  for (unsigned i = 0; i < 3; i++) __get_cpuid(0x80000002u + i, &regs[4 * i], &regs[4 * i + 1], &regs[4 * i + 2], &regs[4 * i + 3]);
  char brand[49];
  memcpy(brand, regs, 48);
  brand[48] = '\0';
  const char *s = brand;
  while (*s == ' ') s++;
  tool_format(buf, len, "%s", s);
}

static void x86_flags(char *buf, size_t len) {
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  bool clflush = false, clflushopt = false, clwb = false;
  if (__get_cpuid(1, &eax, &ebx, &ecx, &edx)) clflush = (edx & (1u << 19)) != 0;
  if (__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) {
    clflushopt = (ebx & (1u << 23)) != 0;
    clwb = (ebx & (1u << 24)) != 0;
  }
  tool_format(buf, len, "%s%s%s", clflush ? "clflush " : "", clflushopt ? "clflushopt " : "", clwb ? "clwb" : "");
  size_t n = strlen(buf);
  while (n && buf[n - 1] == ' ') buf[--n] = '\0';
  if (!n) tool_format(buf, len, "none");
}
#endif

void tool_cpu_flags(char *buf, size_t len) {
#ifdef TOOL_X86
  x86_flags(buf, len);
#else
  tool_format(buf, len, "n/a");
#endif
}

#ifdef _WIN32
/* ---- Windows ----------------------------------------------------------------------------- */
double tool_now(void) {
  static LARGE_INTEGER freq;
  LARGE_INTEGER now;
  if (!freq.QuadPart) QueryPerformanceFrequency(&freq);
  QueryPerformanceCounter(&now);
  return (double)now.QuadPart / (double)freq.QuadPart;
}

uint64_t tool_page_faults(void) {
  PROCESS_MEMORY_COUNTERS pmc;
  memset(&pmc, 0, sizeof pmc);
  pmc.cb = sizeof pmc;
  /* K32GetProcessMemoryInfo lives in kernel32 (PSAPI_VERSION 2): no psapi.dll needed. */
  if (!K32GetProcessMemoryInfo(GetCurrentProcess(), &pmc, sizeof pmc)) return 0;
  return pmc.PageFaultCount;
}

bool tool_stderr_is_terminal(void) { return _isatty(_fileno(stderr)) != 0; }

/* The Wine version when running under Wine (ntdll's wine_get_version), else NULL; probed once. */
static const char *wine_version(void) {
  typedef const char *(__cdecl * wine_version_fn)(void);
  static const char *version;
  static bool probed;
  if (!probed) {
    probed = true;
    HMODULE ntdll = GetModuleHandleA("ntdll.dll");
    FARPROC p = ntdll ? GetProcAddress(ntdll, "wine_get_version") : NULL;
    if (p) {
      wine_version_fn fn;
      memcpy(&fn, &p, sizeof fn);
      version = fn();
    }
  }
  return version;
}

static const char *qemu_name(void) { return NULL; }

void tool_os_description(char *buf, size_t len) {
  /* GetVersionEx lies to unmanifested programs; RtlGetVersion does not. */
  typedef LONG(WINAPI * rtl_get_version_fn)(OSVERSIONINFOW *);
  OSVERSIONINFOW v;
  memset(&v, 0, sizeof v);
  v.dwOSVersionInfoSize = sizeof v;
  FARPROC p = GetProcAddress(GetModuleHandleA("ntdll.dll"), "RtlGetVersion");
  rtl_get_version_fn fn = NULL;
  if (p) memcpy(&fn, &p, sizeof fn);
  if (fn && fn(&v) == 0)
    tool_format(buf, len, "Windows %lu.%lu.%lu", (unsigned long)v.dwMajorVersion, (unsigned long)v.dwMinorVersion,
                (unsigned long)v.dwBuildNumber);
  else
    tool_format(buf, len, "Windows");
  const char *wine = wine_version();
  if (wine) {
    size_t n = strlen(buf);
    tool_format(buf + n, len - n, " (Wine %s)", wine);
  }
}

void tool_cpu_model(char *buf, size_t len) {
#ifdef TOOL_X86
  x86_brand(buf, len);
#else
  char name[256];
  DWORD size = sizeof name;
  if (RegGetValueA(HKEY_LOCAL_MACHINE, "HARDWARE\\DESCRIPTION\\System\\CentralProcessor\\0", "ProcessorNameString",
                   RRF_RT_REG_SZ, NULL, name, &size) == ERROR_SUCCESS)
    tool_format(buf, len, "%s", name);
  else
    tool_format(buf, len, "unknown");
#endif
}

void tool_thp_mode(char *buf, size_t len) { tool_format(buf, len, "n/a"); }

const char *tool_temp_dir(void) {
  static char dir[MAX_PATH + 1];
  if (!dir[0]) {
    DWORD n = GetTempPathA(sizeof dir, dir);
    if (n == 0 || n >= sizeof dir) tool_format(dir, sizeof dir, ".\\");
  }
  return dir;
}

void tool_fs_type(const char *dir, char *buf, size_t len) {
  char root[MAX_PATH + 1], fs[64];
  if (!GetVolumePathNameA(dir, root, sizeof root) ||
      !GetVolumeInformationA(root, NULL, 0, NULL, NULL, NULL, fs, sizeof fs))
    tool_format(buf, len, "unknown");
  else
    tool_format(buf, len, "%s", fs);
}

bool tool_page_below_is_guard(const void *addr) {
  MEMORY_BASIC_INFORMATION mbi;
  const unsigned char *below = (const unsigned char *)addr - 1;
  if (VirtualQuery(below, &mbi, sizeof mbi) != sizeof mbi) return false;
  if (mbi.State == MEM_FREE) return false;
  /* Reserved address space or a committed PAGE_NOACCESS page both fault on access. */
  return mbi.State == MEM_RESERVE || (mbi.Protect & (PAGE_NOACCESS | PAGE_GUARD)) != 0;
}

int tool_raw_protect(void *addr, size_t len, bool accessible) {
  DWORD old;
  return VirtualProtect(addr, len, accessible ? PAGE_READWRITE : PAGE_NOACCESS, &old) ? 0 : -1;
}

int tool_file_create(tool_file *f, const char *dir, uint64_t size) {
  char path[MAX_PATH + 1];
  if (!GetTempFileNameA(dir, "xmm", 0, path)) {
    fprintf(stderr, "xmmap: GetTempFileName in %s failed (error %lu)\n", dir, (unsigned long)GetLastError());
    return -1;
  }
  HANDLE h = CreateFileA(path, GENERIC_READ | GENERIC_WRITE, FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE,
                         NULL, CREATE_ALWAYS, FILE_ATTRIBUTE_NORMAL, NULL);
  if (h == INVALID_HANDLE_VALUE) {
    fprintf(stderr, "xmmap: cannot create %s (error %lu)\n", path, (unsigned long)GetLastError());
    DeleteFileA(path);
    return -1;
  }
  LARGE_INTEGER end;
  end.QuadPart = (LONGLONG)size;
  if (!SetFilePointerEx(h, end, NULL, FILE_BEGIN) || !SetEndOfFile(h)) {
    fprintf(stderr, "xmmap: cannot size %s (error %lu)\n", path, (unsigned long)GetLastError());
    CloseHandle(h);
    DeleteFileA(path);
    return -1;
  }
  f->d = h;
  tool_format(f->path, sizeof f->path, "%s", path);
  return 0;
}

void tool_file_close(tool_file *f) {
  if (f->d && f->d != INVALID_HANDLE_VALUE) CloseHandle(f->d);
  f->d = NULL;
  if (f->path[0]) DeleteFileA(f->path);
  f->path[0] = '\0';
}

static int file_io(const tool_file *f, void *buf, size_t len, uint64_t offset, bool write) {
  OVERLAPPED ov;
  memset(&ov, 0, sizeof ov);
  ov.Offset = (DWORD)offset;
  ov.OffsetHigh = (DWORD)(offset >> 32);
  DWORD done = 0;
  BOOL ok = write ? WriteFile(f->d, buf, (DWORD)len, &done, &ov) : ReadFile(f->d, buf, (DWORD)len, &done, &ov);
  return ok && done == len ? 0 : -1;
}
int tool_file_pread(const tool_file *f, void *buf, size_t len, uint64_t offset) {
  return file_io(f, buf, len, offset, false);
}
int tool_file_pwrite(const tool_file *f, const void *buf, size_t len, uint64_t offset) {
  return file_io(f, (void *)(uintptr_t)buf, len, offset, true);
}

#else
/* ---- POSIX ------------------------------------------------------------------------------- */
double tool_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

uint64_t tool_page_faults(void) {
  struct rusage ru;
  if (getrusage(RUSAGE_SELF, &ru) != 0) return 0;
  return (uint64_t)ru.ru_minflt + (uint64_t)ru.ru_majflt;
}

bool tool_stderr_is_terminal(void) { return isatty(STDERR_FILENO) != 0; }

static const char *wine_version(void) { return NULL; }

/* qemu-user passes /proc/self/comm through: it names the emulator, not the guest program. */
static const char *qemu_name(void) {
  static char comm[32];
  static int probed;
  if (!probed) {
    probed = 1;
    FILE *f = fopen("/proc/self/comm", "r");
    if (f) {
      if (!fgets(comm, sizeof comm, f)) comm[0] = '\0';
      fclose(f);
    }
    comm[strcspn(comm, "\n")] = '\0';
    if (strncmp(comm, "qemu-", 5) != 0) comm[0] = '\0';
  }
  return comm[0] ? comm : NULL;
}

void tool_os_description(char *buf, size_t len) {
  struct utsname u;
  if (uname(&u) == 0)
    tool_format(buf, len, "%s %s %s", u.sysname, u.release, u.machine);
  else
    tool_format(buf, len, "unknown");
}

#ifndef TOOL_X86
/* The value of the first "key<spaces>: value" line of /proc/cpuinfo whose key is one of keys. */
static bool cpuinfo_value(const char *const *keys, char *buf, size_t len) {
  FILE *f = fopen("/proc/cpuinfo", "r");
  if (!f) return false;
  char line[512];
  bool found = false;
  while (!found && fgets(line, sizeof line, f)) {
    char *colon = strchr(line, ':');
    if (!colon) continue;
    size_t klen = (size_t)(colon - line);
    while (klen && (line[klen - 1] == ' ' || line[klen - 1] == '\t')) klen--;
    for (const char *const *k = keys; *k; k++) {
      if (strlen(*k) == klen && strncmp(line, *k, klen) == 0) {
        char *v = colon + 1;
        while (*v == ' ') v++;
        v[strcspn(v, "\n")] = '\0';
        if (*v) {
          tool_format(buf, len, "%s", v);
          found = true;
        }
        break;
      }
    }
  }
  fclose(f);
  return found;
}
#endif

void tool_cpu_model(char *buf, size_t len) {
#ifdef TOOL_X86
  x86_brand(buf, len);
#else
  static const char *const keys[] = {"model name", "cpu", "uarch", "Processor", "CPU part", NULL};
  if (!cpuinfo_value(keys, buf, len)) tool_format(buf, len, "unknown");
#endif
}

void tool_thp_mode(char *buf, size_t len) {
  char text[256];
  FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
  if (!f) {
    tool_format(buf, len, "n/a");
    return;
  }
  if (!fgets(text, sizeof text, f)) text[0] = '\0';
  fclose(f);
  char *open = strchr(text, '['), *close = open ? strchr(open, ']') : NULL;
  if (open && close) {
    *close = '\0';
    tool_format(buf, len, "%s", open + 1);
  } else {
    text[strcspn(text, "\n")] = '\0';
    tool_format(buf, len, "%s", text[0] ? text : "unknown");
  }
}

const char *tool_temp_dir(void) {
  const char *dir = getenv("TMPDIR");
  return dir && *dir ? dir : "/tmp";
}

void tool_fs_type(const char *dir, char *buf, size_t len) {
#if defined(__linux__)
  static const struct {
    unsigned long magic;
    const char *name;
  } names[] = {
      {0xEF53ul, "ext4"},        {0x01021994ul, "tmpfs"},   {0x58465342ul, "xfs"},      {0x9123683Eul, "btrfs"},
      {0x794c7630ul, "overlayfs"}, {0x6969ul, "nfs"},       {0x2fc12fc1ul, "zfs"},      {0xF2F52010ul, "f2fs"},
      {0x65735546ul, "fuse"},    {0x01021997ul, "9p"},      {0x858458f6ul, "ramfs"},    {0xca451a4eul, "bcachefs"},
      {0x73717368ul, "squashfs"}, {0xFF534D42ul, "cifs"},   {0xFE534D42ul, "smb2"},     {0x2011BAB0ul, "exfat"},
      {0x4d44ul, "vfat"},        {0x5346544eul, "ntfs"},    {0x7366746eul, "ntfs3"},    {0x52654973ul, "reiserfs"},
      {0x3153464aul, "jfs"},     {0x00c36400ul, "ceph"},    {0x47504653ul, "gpfs"},     {0x0BD00BD0ul, "lustre"},
  };
  struct statfs st;
  if (statfs(dir, &st) != 0) {
    tool_format(buf, len, "unknown (%s)", strerror(errno));
    return;
  }
  unsigned long magic = (unsigned long)st.f_type & 0xffffffffu;
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    if (names[i].magic == magic) {
      tool_format(buf, len, "%s", names[i].name);
      return;
    }
  }
  tool_format(buf, len, "unknown (0x%lx)", magic);
#else
  (void)dir;
  tool_format(buf, len, "unknown");
#endif
}

bool tool_page_below_is_guard(const void *addr) {
  uintptr_t page = (uintptr_t)xm_page_size();
  uintptr_t below = ((uintptr_t)addr & ~(page - 1)) - page;
#if defined(__linux__)
  /* /proc/self/maps names the protection of whatever holds the page below. */
  FILE *f = fopen("/proc/self/maps", "r");
  if (f) {
    char line[512];
    bool guard = false, seen = false;
    while (!seen && fgets(line, sizeof line, f)) {
      unsigned long long lo, hi;
      char perms[8];
      if (sscanf(line, "%llx-%llx %7s", &lo, &hi, perms) != 3) continue;
      if (below >= lo && below < hi) {
        seen = true;
        guard = perms[0] == '-' && perms[1] == '-' && perms[2] == '-';
      }
    }
    fclose(f);
    return guard;
  }
#endif
  /* Elsewhere: mincore fails with ENOMEM on unmapped pages; a mapped page must then refuse
     access, which msync cannot tell, so the answer is "mapped" only. */
  unsigned char vec = 0;
  return mincore((void *)below, (size_t)page, (void *)&vec) == 0;
}

int tool_raw_protect(void *addr, size_t len, bool accessible) {
  return mprotect(addr, len, accessible ? PROT_READ | PROT_WRITE : PROT_NONE);
}

int tool_file_create(tool_file *f, const char *dir, uint64_t size) {
  tool_format(f->path, sizeof f->path, "%s/xmmap-tool-XXXXXX", dir);
  int fd = mkstemp(f->path);
  if (fd < 0) {
    fprintf(stderr, "xmmap: cannot create a file in %s: %s\n", dir, strerror(errno));
    f->path[0] = '\0';
    return -1;
  }
  if (ftruncate(fd, (off_t)size) != 0) {
    fprintf(stderr, "xmmap: cannot size %s: %s\n", f->path, strerror(errno));
    close(fd);
    unlink(f->path);
    f->path[0] = '\0';
    return -1;
  }
  f->d = fd;
  return 0;
}

void tool_file_close(tool_file *f) {
  if (f->d >= 0) close(f->d);
  f->d = -1;
  if (f->path[0]) unlink(f->path);
  f->path[0] = '\0';
}

int tool_file_pread(const tool_file *f, void *buf, size_t len, uint64_t offset) {
  return pread(f->d, buf, len, (off_t)offset) == (ssize_t)len ? 0 : -1;
}
int tool_file_pwrite(const tool_file *f, const void *buf, size_t len, uint64_t offset) {
  return pwrite(f->d, buf, len, (off_t)offset) == (ssize_t)len ? 0 : -1;
}
#endif

/* ---- the emulator --------------------------------------------------------------------------- */
bool tool_under_qemu(void) { return qemu_name() != NULL; }

const char *tool_emulator(void) {
  static char text[64];
  const char *wine = wine_version(), *qemu = qemu_name();
  if (wine)
    tool_format(text, sizeof text, "wine %s", wine);
  else if (qemu)
    tool_format(text, sizeof text, "qemu-user (%s)", qemu);
  else
    return NULL;
  return text;
}
