/* A tiny emulator on xmmap: the memory layer of Dolphin, PCSX2 or yuzu, in miniature.
 *
 *  - Guest RAM is one shared-memory object (xm_shm) mapped into an arena (the guest's physical
 *    address space) twice: at guest address 0 and again as a mirror, as consoles mirror RAM.
 *  - A guest CPU with seven instructions runs in an interpreter; a loop that gets hot is
 *    translated to host code in a code buffer (xm_code, W^X) on the CPUs this file has a code
 *    generator for (x86-64, i686, aarch64, armhf, riscv64, ppc64le), the interpreter elsewhere.
 *  - Between RAM and the mirror is a hole: a device. Every guest access goes through a
 *    fault-safe copy (xm_region_read_safe / write_safe), so an access to the hole faults; a fault
 *    hook there counts it, and the copy's XM_E_FAULT sends the access to the device's emulation.
 *    (Fastmem JITs instead patch the faulting host instruction from the hook; that needs a
 *    decoder per CPU, out of scope here.)
 *  - Write tracking (xm_dirty) over the guest address space saves, after each frame, only the
 *    RAM pages written (through either view) to a snapshot file; one snapshot is restored and
 *    checked byte for byte against the RAM it was taken from, then the next frame is run again
 *    from it.
 *
 * Offsets are multiples of 64 KiB, the arena unit on Windows without placeholders (Wine).
 * Exits non-zero on any failure or mismatch.
 *
 * Build: cc -std=c11 tiny_emulator.c $(pkg-config --cflags --libs xmmap)
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xmmap/xmmap.h>

#ifdef _WIN32
#define WIN32_LEAN_AND_MEAN
#include <windows.h>
#endif

/* The guest's physical address map (guest address = arena offset). */
#define RAM_SIZE 0x40000u    /* 256 KiB of RAM at 0 */
#define DEVICE_BASE 0x40000u /* a hole: reads and writes here are device registers */
#define MIRROR_BASE 0x80000u /* the same RAM again */
#define GUEST_SIZE 0xC0000u
#define PROGRAM 0x1000u /* where the guest program is loaded */
#define FRAMES 4        /* runs of the program, one snapshot each */

/* The guest CPU: four 32-bit registers; instructions are op:8 rd:4 rs:4 imm:16. */
enum { OP_HALT, OP_LUI, OP_ADDI, OP_ADD, OP_LOAD, OP_STORE, OP_BNZ };
#define NREGS 4
#define INSN(op, rd, rs, imm)                                                                                          \
  ((uint32_t)(op) << 24 | (uint32_t)(rd) << 20 | (uint32_t)(rs) << 16 | ((uint32_t)(imm)&0xffffu))

/* Each frame: r0 = 1 + 2 + ... + r1 (the hot loop), stored at r2 through the RAM view, read back
   through the mirror, written through the mirror only at r2 + 128 KiB, then sent to the device's
   data register; r2 = the device's count register. */
static const uint32_t program[] = {
    INSN(OP_ADD, 0, 1, 0),       /* 0x1000: r0 += r1        <- the hot block */
    INSN(OP_ADDI, 1, 0, -1),     /* 0x1004: r1 -= 1 */
    INSN(OP_BNZ, 0, 1, PROGRAM), /* 0x1008: loop while r1 */
    INSN(OP_STORE, 0, 2, 0),     /* [r2] = r0 */
    INSN(OP_LUI, 3, 0, MIRROR_BASE >> 16),
    INSN(OP_ADD, 3, 2, 0),
    INSN(OP_LOAD, 1, 3, 0), /* r1 = [mirror + r2] */
    INSN(OP_LUI, 3, 0, (MIRROR_BASE + 0x20000) >> 16),
    INSN(OP_ADD, 3, 2, 0),
    INSN(OP_STORE, 1, 3, 0), /* [mirror + 128 KiB + r2] = r1 */
    INSN(OP_LUI, 3, 0, DEVICE_BASE >> 16),
    INSN(OP_STORE, 1, 3, 0), /* device data register */
    INSN(OP_LOAD, 2, 3, 4),  /* device count register */
    INSN(OP_HALT, 0, 0, 0),
};

typedef void (*block_fn)(uint32_t *regs);

struct emu {
  xm_region *bus; /* the arena's region: guest address space */
  unsigned char *ram;
  uint32_t regs[NREGS], pc;
  uint32_t device_data, device_count; /* the device's two registers */
  volatile unsigned hook_faults;      /* written by the fault hook */
  unsigned device_accesses;
  xm_code *code; /* NULL: no code generator for this CPU, or no code buffer */
  block_fn block;
  uint32_t block_start, block_end, loop_heat;
  unsigned long interpreted, block_runs;
};

static void check(int rc, const char *what) {
  if (rc != XM_OK) {
    fprintf(stderr, "tiny_emulator: %s failed: %s (%s)\n", what, xm_strerror(rc), xm_errmsg());
    exit(1);
  }
}

static void expect(bool ok, const char *what) {
  if (!ok) {
    fprintf(stderr, "tiny_emulator: %s\n", what);
    exit(1);
  }
}

/* ---- the code generator: ADD, ADDI and a closing BNZ to host code --------------------------- *
 * A translated block is a function run(regs) that loops until the BNZ falls through. */
#if defined(__x86_64__) || defined(_M_X64) || defined(__i386__) || defined(__aarch64__) || defined(__arm__) ||         \
    defined(__riscv) || (defined(__powerpc64__) && defined(_CALL_ELF) && _CALL_ELF == 2)
#define CODE_GENERATOR 1
struct emit {
  unsigned char *at;
  size_t n, cap;
};

static void put(struct emit *e, const void *bytes, size_t len) {
  if (e->n + len <= e->cap) memcpy(e->at + e->n, bytes, len);
  e->n += len; /* past cap: the caller sees n > cap and gives up */
}

static void word(struct emit *e, uint32_t insn) { put(e, &insn, sizeof insn); }

#if defined(__x86_64__) || defined(_M_X64) || defined(__i386__)
/* x86 works on the register file in memory, at [eax/rax + 4 * r]: the same bytes in both modes. */
#define HOST_CPU (sizeof(void *) == 8 ? "x86-64" : "i686")
#define IMM_MAX 32767
static void emit_prologue(struct emit *e) {
#if defined(_WIN64)
  static const unsigned char p[] = {0x48, 0x89, 0xc8}; /* mov rax, rcx (Windows x64 ABI) */
#elif defined(__x86_64__)
  static const unsigned char p[] = {0x48, 0x89, 0xf8}; /* mov rax, rdi (System V) */
#else
  static const unsigned char p[] = {0x8b, 0x44, 0x24, 0x04}; /* mov eax, [esp + 4] (cdecl) */
#endif
  put(e, p, sizeof p);
}
static void emit_add(struct emit *e, int rd, int rs) { /* mov ecx, [rax+4rs]; add [rax+4rd], ecx */
  const unsigned char c[] = {0x8b, 0x48, (unsigned char)(4 * rs), 0x01, 0x48, (unsigned char)(4 * rd)};
  put(e, c, sizeof c);
}
static void emit_addi(struct emit *e, int rd, int32_t imm) { /* add dword [rax+4rd], imm32 */
  const unsigned char c[] = {0x81, 0x40, (unsigned char)(4 * rd)};
  put(e, c, sizeof c);
  word(e, (uint32_t)imm); /* x86 is little-endian, like the imm32 */
}
static void emit_bnz(struct emit *e, int rs, size_t target) { /* cmp dword [rax+4rs], 0; jnz rel32 */
  const unsigned char c[] = {0x83, 0x78, (unsigned char)(4 * rs), 0, 0x0f, 0x85};
  put(e, c, sizeof c);
  word(e, (uint32_t)target - (uint32_t)(e->n + 4)); /* relative to the jump's end */
}
static void emit_epilogue(struct emit *e) { put(e, "\xc3", 1); /* ret */ }

#else
/* Load/store CPUs: the guest registers live in four host registers while the block runs. */
#if defined(__aarch64__)
#define HOST_CPU "aarch64"
#define IMM_MAX 4095
static const unsigned hreg[NREGS] = {9, 10, 11, 12}; /* w9-w12; the regs pointer in x0 */
#define LOAD(r, i) (0xb9400000u | (i) << 10 | (r))  /* ldr wR, [x0, #4i] */
#define STORE(r, i) (0xb9000000u | (i) << 10 | (r)) /* str wR, [x0, #4i] */
#define ADD(d, s) (0x0b000000u | (s) << 16 | (d) << 5 | (d))
#define ADDI(d, imm)                                                                                                   \
  ((imm) < 0 ? 0x51000000u | (uint32_t) - (imm) << 10 | (d) << 5 | (d)                                                 \
             : 0x11000000u | (uint32_t)(imm) << 10 | (d) << 5 | (d))
#define BNZ(s, delta) (0x35000000u | ((uint32_t)(delta) / 4 & 0x7ffff) << 5 | (s)) /* cbnz */
#define RET 0xd65f03c0u
#elif defined(__arm__) /* A32 code, called from Thumb code too: blx to an even address switches */
#define HOST_CPU "armhf"
#define IMM_MAX 255
static const unsigned hreg[NREGS] = {1, 2, 3, 12}; /* the regs pointer in r0 */
#define LOAD(r, i) (0xe5900000u | (r) << 12 | 4 * (i))
#define STORE(r, i) (0xe5800000u | (r) << 12 | 4 * (i))
#define ADD(d, s) (0xe0800000u | (d) << 16 | (d) << 12 | (s))
#define ADDI(d, imm)                                                                                                   \
  ((imm) < 0 ? 0xe2400000u | (d) << 16 | (d) << 12 | (uint32_t) - (imm)                                                \
             : 0xe2800000u | (d) << 16 | (d) << 12 | (uint32_t)(imm))
#define BNZ(s, delta) 0xe3500000u | (s) << 16, 0x1a000000u | (((uint32_t)(delta)-12u) >> 2 & 0xffffff) /* cmp; bne */
#define RET 0xe12fff1eu                                                                                /* bx lr */
#elif defined(__riscv)
#define HOST_CPU "riscv64"
#define IMM_MAX 2047
static const unsigned hreg[NREGS] = {5, 6, 7, 28}; /* t0-t3; the regs pointer in a0 */
#define LOAD(r, i) ((uint32_t)(4 * (i)) << 20 | 10u << 15 | 2u << 12 | (r) << 7 | 0x03u)  /* lw */
#define STORE(r, i) ((r) << 20 | 10u << 15 | 2u << 12 | (uint32_t)(4 * (i)) << 7 | 0x23u) /* sw */
#define ADD(d, s) ((s) << 20 | (d) << 15 | (d) << 7 | 0x3bu)                              /* addw */
#define ADDI(d, imm) (((uint32_t)(imm)&0xfff) << 20 | (d) << 15 | (d) << 7 | 0x1bu)       /* addiw */
#define BNZ(s, delta)                                                                                                  \
  (((uint32_t)(delta) >> 12 & 1) << 31 | ((uint32_t)(delta) >> 5 & 0x3f) << 25 | (s) << 15 | 1u << 12 |                \
   ((uint32_t)(delta) >> 1 & 0xf) << 8 | ((uint32_t)(delta) >> 11 & 1) << 7 | 0x63u)
#define RET 0x00008067u
#else /* ppc64le, ELFv2: no function descriptors */
#define HOST_CPU "ppc64le"
#define IMM_MAX 32767
static const unsigned hreg[NREGS] = {6, 7, 8, 9}; /* the regs pointer in r3 */
#define LOAD(r, i) (0x80000000u | (r) << 21 | 3u << 16 | 4 * (i))  /* lwz */
#define STORE(r, i) (0x90000000u | (r) << 21 | 3u << 16 | 4 * (i)) /* stw */
#define ADD(d, s) (0x7c000214u | (d) << 21 | (d) << 16 | (s) << 11)
#define ADDI(d, imm) (0x38000000u | (d) << 21 | (d) << 16 | ((uint32_t)(imm)&0xffff))
#define BNZ(s, delta) 0x2c000000u | (s) << 16, 0x40820000u | (((uint32_t)(delta)-4u) & 0xfffc) /* cmpwi; bne */
#define RET 0x4e800020u                                                                        /* blr */
#endif
static void emit_prologue(struct emit *e) {
  for (unsigned i = 0; i < NREGS; i++)
    word(e, LOAD(hreg[i], i));
}
static void emit_add(struct emit *e, int rd, int rs) { word(e, ADD(hreg[rd], hreg[rs])); }
static void emit_addi(struct emit *e, int rd, int32_t imm) { word(e, ADDI(hreg[rd], imm)); }
static void emit_bnz(struct emit *e, int rs, size_t target) {
  const uint32_t insns[] = {BNZ(hreg[rs], (int32_t)target - (int32_t)e->n)};
  put(e, insns, sizeof insns);
}
static void emit_epilogue(struct emit *e) {
  for (unsigned i = 0; i < NREGS; i++)
    word(e, STORE(hreg[i], i));
  word(e, RET);
}
#endif
#else
#define HOST_CPU "this CPU" /* no code generator: the interpreter runs everything */
#endif

/* ---- guest memory and the device ------------------------------------------------------------- */

/* The fault hook over the hole: it runs inside the fault (signal handler / exception dispatch),
   so it only counts and passes; the safe copy that faulted then returns XM_E_FAULT. */
static xm_fault_action device_hook(const xm_fault *fault, void *user) {
  (void)fault;
  ((struct emu *)user)->hook_faults++;
  return XM_FAULT_PASS;
}

/* The device's registers: +0 data (write), +4 count of data writes (read). */
static bool device_access(struct emu *e, uint32_t addr, uint32_t *value, bool write) {
  e->device_accesses++;
  if (write && addr == DEVICE_BASE) {
    e->device_data = *value;
    e->device_count++;
    return true;
  }
  if (!write && addr == DEVICE_BASE + 4) {
    *value = e->device_count;
    return true;
  }
  return false;
}

/* One aligned 32-bit guest access; false for a bus error. */
static bool guest_access(struct emu *e, uint32_t addr, uint32_t *value, bool write) {
  if (addr % 4 || addr > GUEST_SIZE - 4) return false;
  int rc =
      write ? xm_region_write_safe(e->bus, value, 4, addr, NULL) : xm_region_read_safe(e->bus, value, 4, addr, NULL);
  if (rc == XM_E_FAULT) return device_access(e, addr, value, write); /* not RAM: a device, or nothing */
  check(rc, write ? "xm_region_write_safe" : "xm_region_read_safe");
  return true;
}

/* ---- translation and the interpreter ---------------------------------------------------------- */

/* Translates [start, end] (end: the BNZ back to start) if it holds only ADD and ADDI. */
static void translate(struct emu *e, uint32_t start, uint32_t end) {
#ifdef CODE_GENERATOR
  unsigned char host_code[256];
  struct emit em = {host_code, 0, sizeof host_code};
  emit_prologue(&em);
  const size_t loop = em.n;
  for (uint32_t a = start; a <= end; a += 4) {
    uint32_t insn;
    if (!guest_access(e, a, &insn, false)) return;
    int op = (int)(insn >> 24), rd = (int)(insn >> 20 & 15), rs = (int)(insn >> 16 & 15);
    int32_t imm = (int16_t)(insn & 0xffff);
    if (rd >= NREGS || rs >= NREGS) return;
    if (op == OP_ADD)
      emit_add(&em, rd, rs);
    else if (op == OP_ADDI && imm >= -IMM_MAX && imm <= IMM_MAX)
      emit_addi(&em, rd, imm);
    else if (op == OP_BNZ && a == end)
      emit_bnz(&em, rs, loop);
    else
      return; /* not translatable: stay interpreted */
  }
  emit_epilogue(&em);
  if (em.n > em.cap || em.n > xm_code_size(e->code)) return;
  /* Into the code buffer: writable between begin and end; then executable, icache synced. */
  check(xm_code_begin_write(e->code, 0, em.n), "xm_code_begin_write");
  memcpy(xm_code_write_ptr(e->code), host_code, em.n);
  check(xm_code_end_write(e->code, 0, em.n), "xm_code_end_write");
  void *p = xm_code_exec_ptr(e->code);
  memcpy(&e->block, &p, sizeof p); /* object to function pointer, without a cast C forbids */
  e->block_start = start;
  e->block_end = end;
#else
  (void)e, (void)start, (void)end;
#endif
}

/* Runs from e->pc to HALT; false on a bus error or a bad instruction. */
static bool run(struct emu *e) {
  for (;;) {
    if (e->block && e->pc == e->block_start) { /* translated: run the whole loop natively */
      e->block(e->regs);
      e->block_runs++;
      e->pc = e->block_end + 4;
      continue;
    }
    uint32_t insn, v;
    if (!guest_access(e, e->pc, &insn, false)) return false;
    e->interpreted++;
    unsigned op = insn >> 24, rd = insn >> 20 & 15, rs = insn >> 16 & 15;
    uint32_t imm = insn & 0xffff, simm = (uint32_t)(int32_t)(int16_t)imm;
    if (rd >= NREGS || rs >= NREGS) return false;
    e->pc += 4;
    switch (op) {
    case OP_HALT: return true;
    case OP_LUI: e->regs[rd] = imm << 16; break;
    case OP_ADDI: e->regs[rd] += simm; break;
    case OP_ADD: e->regs[rd] += e->regs[rs]; break;
    case OP_LOAD:
      if (!guest_access(e, e->regs[rs] + simm, &v, false)) return false;
      e->regs[rd] = v;
      break;
    case OP_STORE:
      if (!guest_access(e, e->regs[rs] + simm, &e->regs[rd], true)) return false;
      break;
    case OP_BNZ:
      if (e->regs[rs] == 0) break;
      /* Backward branches taken 16 times: the loop is hot, translate it (once). */
      if (imm < e->pc && ++e->loop_heat == 16 && e->code && !e->block) translate(e, imm, e->pc - 4);
      e->pc = imm;
      break;
    default: return false;
    }
  }
}

/* One frame: sum 1..n, results at ram_addr; checks what the guest computed. */
static void frame(struct emu *e, uint32_t n, uint32_t ram_addr) {
  memset(e->regs, 0, sizeof e->regs);
  e->regs[1] = n;
  e->regs[2] = ram_addr;
  e->pc = PROGRAM;
  expect(run(e), "the guest stopped on a bus error or a bad instruction");
  const uint32_t sum = n * (n + 1) / 2;
  uint32_t direct, mirrored;
  memcpy(&direct, e->ram + ram_addr, 4);
  memcpy(&mirrored, e->ram + ram_addr + 0x20000, 4); /* written through the mirror only */
  expect(e->regs[1] == sum && direct == sum && mirrored == sum, "the mirror does not show RAM");
  expect(e->device_data == sum && e->regs[2] == e->device_count, "the device registers are wrong");
}

/* ---- snapshots: the dirty RAM pages of each frame, appended to a file ------------------------ */

struct record {
  uint32_t frame, page;
};

/* Appends RAM pages written since the last collect (page p is dirty through RAM or mirror). */
static size_t save(struct emu *e, xm_dirty *d, uint64_t *bits, size_t nbits, FILE *f, uint32_t fr) {
  check(xm_dirty_collect(d, bits, nbits, NULL), "xm_dirty_collect");
  const size_t page = xm_dirty_page_size(d), mirror = MIRROR_BASE / page;
  size_t saved = 0;
  for (size_t p = 0; p < RAM_SIZE / page; p++) {
    if (!(bits[p / 64] >> p % 64 & 1) && !(bits[(mirror + p) / 64] >> (mirror + p) % 64 & 1)) continue;
    struct record r = {fr, (uint32_t)p};
    expect(fwrite(&r, sizeof r, 1, f) == 1 && fwrite(e->ram + p * page, page, 1, f) == 1, "cannot write a snapshot");
    saved++;
  }
  return saved;
}

/* A temporary file for the snapshots, deleted when closed. Microsoft's C runtime makes tmpfile()
   in the root directory, where users may not write: Windows gets one in its temporary directory. */
static FILE *snapshot_file(void) {
#ifdef _WIN32
  char dir[MAX_PATH + 1], path[MAX_PATH + 1];
  DWORD n = GetTempPathA(sizeof dir, dir);
  if (n == 0 || n > sizeof dir || !GetTempFileNameA(dir, "snp", 0, path)) return NULL;
  return fopen(path, "w+bD"); /* D: delete on close */
#else
  return tmpfile();
#endif
}

/* RAM as it was after frame `upto`: zeros, then every saved page of frames 0..upto in order. */
static void restore(struct emu *e, FILE *f, uint32_t upto, size_t page) {
  memset(e->ram, 0, RAM_SIZE);
  rewind(f);
  struct record r;
  while (fread(&r, sizeof r, 1, f) == 1 && r.frame <= upto)
    expect(r.page < RAM_SIZE / page && fread(e->ram + (size_t)r.page * page, page, 1, f) == 1, "bad snapshot");
  fseek(f, 0, SEEK_END);
}

int main(void) {
  static struct emu e; /* static: zeroed */
  /* Guest RAM, and the guest address space with RAM at 0 and at MIRROR_BASE; the device hole
     between them stays reserved and inaccessible. */
  xm_shm *ram;
  xm_arena *arena;
  check(xm_shm_new("guest-ram", RAM_SIZE, &ram), "xm_shm_new");
  check(xm_arena_new(GUEST_SIZE, &arena), "xm_arena_new");
  expect(DEVICE_BASE % xm_arena_granularity(arena) == 0, "the arena unit is larger than 64 KiB");
  check(xm_arena_add_fd(arena, 0, RAM_SIZE, xm_shm_descriptor(ram), 0, XM_PROT_READ_WRITE), "xm_arena_add_fd");
  check(xm_arena_add_fd(arena, MIRROR_BASE, RAM_SIZE, xm_shm_descriptor(ram), 0, XM_PROT_READ_WRITE),
        "xm_arena_add_fd (mirror)");
  e.bus = xm_arena_region(arena);
  e.ram = xm_region_ptr(e.bus);

  xm_fault_hook *hook;
  check(xm_fault_hook_add(e.ram + DEVICE_BASE, MIRROR_BASE - DEVICE_BASE, device_hook, &e, &hook), "xm_fault_hook_add");
#ifdef CODE_GENERATOR /* no code buffer is no failure: the interpreter runs everything */
  if (xm_code_new(4096, 0, NULL, &e.code) != XM_OK) printf("no code buffer (%s): interpreter only\n", xm_errmsg());
#endif

  /* Track writes over the whole guest address space: a write through the mirror is a write to
     the mirror's pages, folded onto RAM's when saving. */
  xm_dirty *dirty;
  check(xm_dirty_new(e.bus, 0, GUEST_SIZE, 0, &dirty), "xm_dirty_new");
  const size_t page = xm_dirty_page_size(dirty), nbits = GUEST_SIZE / page;
  uint64_t *bits = calloc((nbits + 63) / 64, sizeof *bits);
  unsigned char *kept[FRAMES];
  FILE *snapshots = snapshot_file();
  expect(bits && snapshots, "out of memory or no temporary file");
  memcpy(e.ram + PROGRAM, program, sizeof program); /* loading the program is a write too */

  size_t pages_saved = 0;
  for (uint32_t fr = 0; fr < FRAMES; fr++) {
    frame(&e, 100 + 300 * fr, 0x2000 + 0x5000 * fr);
    pages_saved += save(&e, dirty, bits, nbits, snapshots, fr);
    kept[fr] = malloc(RAM_SIZE);
    expect(kept[fr] != NULL, "out of memory");
    memcpy(kept[fr], e.ram, RAM_SIZE);
  }
  /* Back to frame 1, checked byte for byte; then frame 2 again from there must give frame 2. */
  restore(&e, snapshots, 1, page);
  expect(memcmp(e.ram, kept[1], RAM_SIZE) == 0, "the restored RAM differs from frame 1's");
  frame(&e, 100 + 300 * 2, 0x2000 + 0x5000 * 2);
  expect(memcmp(e.ram, kept[2], RAM_SIZE) == 0, "frame 2 run again from the snapshot differs");
  /* Every device access reached the hook (a safe copy that faults is redone page by page to find
     where it stopped, so the hook sees each access fault twice). */
  expect(e.hook_faults >= e.device_accesses && e.device_accesses == 2 * (FRAMES + 1), "the hook missed a fault");

  printf("memory: %u KiB of guest RAM at 0x0 and mirrored at 0x%x, arena \"%s\" (unit %zu bytes)\n", RAM_SIZE / 1024,
         MIRROR_BASE, xm_arena_strategy(), xm_arena_granularity(arena));
  if (e.block)
    printf("cpu: hot loop 0x%x-0x%x translated to %s code (code buffer \"%s\"), run %lu times; %lu instructions "
           "interpreted\n",
           e.block_start, e.block_end, HOST_CPU, xm_code_strategy(e.code), e.block_runs, e.interpreted);
  else
    printf("cpu: interpreter only (no code %s for %s), %lu instructions\n",
           e.code ? "translated" : "buffer or generator", HOST_CPU, e.interpreted);
  printf("device: %u guest accesses to the hole at 0x%x emulated; the fault hook saw %u faults there\n",
         e.device_accesses, DEVICE_BASE, e.hook_faults);
  printf("snapshots: %d frames, %zu pages of %zu bytes saved (write tracking \"%s\"), frame 1 restored and matched, "
         "frame 2 replayed from it and matched\n",
         FRAMES, pages_saved, page, xm_dirty_strategy(dirty));

  for (int fr = 0; fr < FRAMES; fr++)
    free(kept[fr]);
  fclose(snapshots);
  free(bits);
  xm_dirty_free(dirty);
  xm_code_free(e.code);
  xm_fault_hook_remove(hook);
  xm_arena_free(arena);
  xm_shm_free(ram);
  return 0;
}
