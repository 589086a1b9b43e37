/* The xmmap tool's platform layer on POSIX: clock, fault counter, system description, guard
   pages, raw protection and temporary files (platform_windows.c has the same functions). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>
#if defined(__linux__)
#include <sys/vfs.h>
#endif

#include "tool.h"

void tool_console_init(void) {}

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

const char *tool_wine_version(void) { return NULL; }

/* qemu-user passes /proc/self/comm through: it names the emulator, not the guest program. */
const char *tool_qemu_name(void) {
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
    while (klen && (line[klen - 1] == ' ' || line[klen - 1] == '\t'))
      klen--;
    for (const char *const *k = keys; *k; k++) {
      if (strlen(*k) == klen && strncmp(line, *k, klen) == 0) {
        char *v = colon + 1;
        while (*v == ' ')
          v++;
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

void tool_os_cpu_model(char *buf, size_t len) {
  static const char *const keys[] = {"model name", "cpu", "uarch", "Processor", "CPU part", NULL};
  if (!cpuinfo_value(keys, buf, len)) tool_format(buf, len, "unknown");
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

void tool_setenv(const char *name, const char *value) {
  if (value)
    setenv(name, value, 1);
  else
    unsetenv(name);
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
      {0xEF53ul, "ext4"},          {0x01021994ul, "tmpfs"}, {0x58465342ul, "xfs"},   {0x9123683Eul, "btrfs"},
      {0x794c7630ul, "overlayfs"}, {0x6969ul, "nfs"},       {0x2fc12fc1ul, "zfs"},   {0xF2F52010ul, "f2fs"},
      {0x65735546ul, "fuse"},      {0x01021997ul, "9p"},    {0x858458f6ul, "ramfs"}, {0xca451a4eul, "bcachefs"},
      {0x73717368ul, "squashfs"},  {0xFF534D42ul, "cifs"},  {0xFE534D42ul, "smb2"},  {0x2011BAB0ul, "exfat"},
      {0x4d44ul, "vfat"},          {0x5346544eul, "ntfs"},  {0x7366746eul, "ntfs3"}, {0x52654973ul, "reiserfs"},
      {0x3153464aul, "jfs"},       {0x00c36400ul, "ceph"},  {0x47504653ul, "gpfs"},  {0x0BD00BD0ul, "lustre"},
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

/* A descriptor far above any this process opens. */
xm_descriptor tool_closed_descriptor(void) { return 1 << 20; }

bool tool_os_error_unsupported(int os_error) { return os_error == EINVAL; }

bool tool_os_error_over_limit(int os_error) { return os_error == EPERM || os_error == ENOMEM || os_error == EAGAIN; }

int tool_raw_protect(void *addr, size_t len, bool accessible) {
  return mprotect(addr, len, accessible ? PROT_READ | PROT_WRITE : PROT_NONE);
}

void tool_file_init(tool_file *f) {
  f->d = -1;
  f->path[0] = '\0';
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
