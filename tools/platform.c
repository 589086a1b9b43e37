/* The xmmap tool's platform facts that read the same on every OS: the arch this binary was built
   for, the CPU (x86: from CPUID, elsewhere as the OS tells it) and the emulator it runs under. */
#include <string.h>

#include "tool.h"

#if defined(__i386__) || defined(__x86_64__)
#include <cpuid.h>
#define TOOL_X86 1
#endif

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
/* The brand string of CPUID leaves 0x80000002..4: the same text on every OS and under Wine. */
static void x86_brand(char *buf, size_t len) {
  unsigned regs[12];
  unsigned eax, ebx, ecx, edx;
  if (!__get_cpuid(0x80000000u, &eax, &ebx, &ecx, &edx) || eax < 0x80000004u) {
    tool_format(buf, len, "unknown x86");
    return;
  }
  for (unsigned i = 0; i < 3; i++)
    __get_cpuid(0x80000002u + i, &regs[4 * i], &regs[4 * i + 1], &regs[4 * i + 2], &regs[4 * i + 3]);
  char brand[49];
  memcpy(brand, regs, 48);
  brand[48] = '\0';
  const char *s = brand;
  while (*s == ' ')
    s++;
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
  while (n && buf[n - 1] == ' ')
    buf[--n] = '\0';
  if (!n) tool_format(buf, len, "none");
}
#endif

void tool_cpu_model(char *buf, size_t len) {
#ifdef TOOL_X86
  x86_brand(buf, len);
#else
  tool_os_cpu_model(buf, len);
#endif
}

void tool_cpu_flags(char *buf, size_t len) {
#ifdef TOOL_X86
  x86_flags(buf, len);
#else
  tool_format(buf, len, "n/a");
#endif
}

bool tool_under_qemu(void) { return tool_qemu_name() != NULL; }

const char *tool_emulator(void) {
  static char text[64];
  const char *wine = tool_wine_version(), *qemu = tool_qemu_name();
  if (wine)
    tool_format(text, sizeof text, "wine %s", wine);
  else if (qemu)
    tool_format(text, sizeof text, "qemu-user (%s)", qemu);
  else
    return NULL;
  return text;
}
