/* Machine code for tests: a function for the running CPU that returns a small constant, and a call
   through a data pointer. */
#ifndef XMMAP_XMTEST_CODE_H
#define XMMAP_XMTEST_CODE_H

#include <stdint.h>
#include <string.h>

typedef int (*xt_fn)(void);

/* Writes a function that returns imm (0 < imm < 256); returns its size. */
static inline size_t emit_return(unsigned char *at, unsigned imm) {
#if defined(__x86_64__) || defined(__i386__) || defined(_M_X64)
  const unsigned char code[] = {0xb8, (unsigned char)imm, 0, 0, 0, 0xc3}; /* mov eax, imm; ret */
  memcpy(at, code, sizeof code);
  return sizeof code;
#else
  uint32_t insn[2];
#if defined(__aarch64__)
  insn[0] = 0x52800000u | (imm << 5); /* movz w0, #imm */
  insn[1] = 0xd65f03c0u;              /* ret */
#elif defined(__arm__)
  insn[0] = 0xe3a00000u | imm; /* ARM state: mov r0, #imm */
  insn[1] = 0xe12fff1eu;       /* bx lr */
#elif defined(__riscv)
  insn[0] = 0x00000513u | (imm << 20); /* addi a0, zero, imm */
  insn[1] = 0x00008067u;               /* ret */
#elif defined(__powerpc64__)
  insn[0] = 0x38600000u | imm; /* li r3, imm */
  insn[1] = 0x4e800020u;       /* blr */
#else
#error "no test code for this CPU"
#endif
  memcpy(at, insn, sizeof insn);
  return sizeof insn;
#endif
}

static inline int call_ptr(void *p) {
  xt_fn fn;
  memcpy(&fn, &p, sizeof fn); /* object to function pointer, without a cast the standard forbids */
  return fn();
}

#endif /* XMMAP_XMTEST_CODE_H */
