/* The xmmap tool's platform layer on Windows: clock, fault counter, system description, guard
   pages, raw protection and temporary files (platform_posix.c has the same functions). */
#define WIN32_LEAN_AND_MEAN
#include <windows.h>
#include <io.h>
#include <psapi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tool.h"

/* The checklist marks are UTF-8; a Windows console shows them only in the UTF-8 code page. */
void tool_console_init(void) { SetConsoleOutputCP(CP_UTF8); }

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
const char *tool_wine_version(void) {
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

const char *tool_qemu_name(void) { return NULL; }

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
  const char *wine = tool_wine_version();
  if (wine) {
    size_t n = strlen(buf);
    tool_format(buf + n, len - n, " (Wine %s)", wine);
  }
}

void tool_os_cpu_model(char *buf, size_t len) {
  char name[256];
  DWORD size = sizeof name;
  if (RegGetValueA(HKEY_LOCAL_MACHINE, "HARDWARE\\DESCRIPTION\\System\\CentralProcessor\\0", "ProcessorNameString",
                   RRF_RT_REG_SZ, NULL, name, &size) == ERROR_SUCCESS)
    tool_format(buf, len, "%s", name);
  else
    tool_format(buf, len, "unknown");
}

void tool_thp_mode(char *buf, size_t len) { tool_format(buf, len, "n/a"); }

void tool_setenv(const char *name, const char *value) {
  char assignment[256]; /* "NAME=value"; "NAME=" removes it */
  tool_format(assignment, sizeof assignment, "%s=%s", name, value ? value : "");
  _putenv(assignment);
}

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

/* A handle value no call of this process returned (handles are multiples of 4). */
xm_descriptor tool_closed_descriptor(void) { return (xm_descriptor)(uintptr_t)0x7ff4; }

/* Windows' errors name the failure precisely; none of them means "this build lacks it". */
bool tool_os_error_unsupported(int os_error) {
  (void)os_error;
  return false;
}

/* A few pages fit any working-set quota: a VirtualLock failure here is a real failure. */
bool tool_os_error_over_limit(int os_error) {
  (void)os_error;
  return false;
}

int tool_raw_protect(void *addr, size_t len, bool accessible) {
  DWORD old;
  return VirtualProtect(addr, len, accessible ? PAGE_READWRITE : PAGE_NOACCESS, &old) ? 0 : -1;
}

void tool_file_init(tool_file *f) {
  f->d = NULL;
  f->path[0] = '\0';
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
