/* `xmmap bench`'s raw baselines on POSIX: the same work as the xmmap side in plain mmap, memfd,
   msync and munmap calls (bench_windows.c has the same functions). */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "bench.h"

const char *const bench_raw_note = NULL;

int bench_raw_failed(struct bench *b, const char *call) {
  return bench_fail(b, XM_E_SYSTEM_CALL, "%s failed: %s", call, strerror(errno));
}

int bench_raw_anon_cycle(struct bench *b, uint64_t iters, double *seconds) {
  const size_t size = b->param;
  double t0 = tool_now();
  for (uint64_t i = 0; i < iters; i++) {
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return bench_raw_failed(b, "mmap");
    munmap(p, size);
  }
  *seconds = tool_now() - t0;
  return 0;
}

int bench_raw_shm_cycle(struct bench *b, uint64_t iters, double *seconds) {
  const size_t size = b->param;
  double t0 = tool_now();
  for (uint64_t i = 0; i < iters; i++) {
#if defined(__linux__)
    int fd = memfd_create("xmmap-bench", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0) return bench_raw_failed(b, "memfd_create");
#else
    char name[64];
    tool_format(name, sizeof name, "/xmmap-bench-%ld", (long)getpid());
    int fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0600);
    if (fd < 0) return bench_raw_failed(b, "shm_open");
    shm_unlink(name);
#endif
    if (ftruncate(fd, (off_t)size) != 0) {
      close(fd);
      return bench_raw_failed(b, "ftruncate");
    }
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
      close(fd);
      return bench_raw_failed(b, "mmap");
    }
    munmap(p, size);
    close(fd);
  }
  *seconds = tool_now() - t0;
  return 0;
}

int bench_raw_map_file(struct bench *b, bool huge_aligned, struct raw_view *v) {
  memset(v, 0, sizeof *v);
  if (!huge_aligned) {
    void *p = mmap(NULL, FILE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, b->file.d, 0);
    if (p == MAP_FAILED) return bench_raw_failed(b, "mmap");
    v->addr = p;
    v->release_addr = p;
    v->release_len = FILE_SIZE;
    return 0;
  }
  /* 2 MiB-aligned: reserve, then map the file over the aligned part. */
  const size_t huge = 2 * MIB, span = FILE_SIZE + huge;
  void *r = mmap(NULL, span, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (r == MAP_FAILED) return bench_raw_failed(b, "mmap");
  uintptr_t at = ((uintptr_t)r + huge - 1) & ~(uintptr_t)(huge - 1);
  void *p = mmap((void *)at, FILE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, b->file.d, 0);
  if (p == MAP_FAILED) {
    int rc = bench_raw_failed(b, "mmap");
    munmap(r, span);
    return rc;
  }
  v->addr = p;
  v->release_addr = r;
  v->release_len = span;
  return 0;
}

int bench_raw_sync(struct bench *b, const struct raw_view *v) {
  return msync(v->addr, FILE_SIZE, MS_SYNC) == 0 ? 0 : bench_raw_failed(b, "msync");
}

void bench_raw_unmap(struct raw_view *v) {
  munmap(v->release_addr, v->release_len);
  memset(v, 0, sizeof *v);
}

int bench_raw_map_rwx(struct bench *b, size_t size) {
  void *p = mmap(NULL, size, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return bench_raw_failed(b, "mmap(PROT_EXEC)");
  b->rwx = p;
  b->rwx_len = size;
  return 0;
}

void bench_raw_unmap_rwx(struct bench *b) {
  munmap(b->rwx, b->rwx_len);
  b->rwx = NULL;
}

/* ---- the fault baseline ---------------------------------------------------------------------- */
static unsigned char *fault_page;
static size_t fault_page_size;

static void raw_lift(int sig, siginfo_t *info, void *uc) {
  (void)sig;
  (void)info;
  (void)uc;
  mprotect(fault_page, fault_page_size, PROT_READ | PROT_WRITE);
}

int bench_raw_fault_setup(struct bench *b) {
  void *p = mmap(NULL, 2 * b->page, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return bench_raw_failed(b, "mmap");
  b->raw_page = p;
  return 0;
}

void bench_raw_fault_teardown(struct bench *b) {
  if (b->raw_page) munmap(b->raw_page, 2 * b->page);
  b->raw_page = NULL;
}

int bench_raw_fault(struct bench *b, uint64_t iters, double *seconds) {
  fault_page = b->raw_page;
  fault_page_size = b->page;
  struct sigaction sa, old;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = raw_lift;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESTART | SA_NODEFER; /* the library's flags */
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGSEGV, &sa, &old) != 0) return bench_raw_failed(b, "sigaction");
  volatile unsigned char *p = b->raw_page;
  int rc = 0;
  double t0 = tool_now();
  for (uint64_t i = 0; i < iters && rc == 0; i++) {
    if (mprotect(b->raw_page, b->page, PROT_NONE) != 0) rc = bench_raw_failed(b, "mprotect");
    p[0] = (unsigned char)i;
  }
  *seconds = tool_now() - t0;
  sigaction(SIGSEGV, &old, NULL);
  return rc;
}

/* ---- the arena baseline ---------------------------------------------------------------------- */
struct bench_raw_arena {
  unsigned char *base;
  size_t n, unit, next;
  int fd;
};

static const int raw_reserved_flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE;

int bench_raw_arena_new(struct bench *b, xm_descriptor d, size_t n, size_t unit, struct bench_raw_arena **out) {
  struct bench_raw_arena *r = calloc(1, sizeof *r);
  if (!r) return bench_fail(b, XM_E_NO_MEMORY, "out of memory");
  r->n = n;
  r->unit = unit;
  r->fd = d;
  void *p = mmap(NULL, n * unit, PROT_NONE, raw_reserved_flags, -1, 0);
  if (p == MAP_FAILED) {
    free(r);
    return bench_raw_failed(b, "mmap");
  }
  r->base = p;
  *out = r;
  for (size_t k = 0; k < n; k++)
    if (mmap(r->base + k * unit, unit, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, d, (off_t)(2 * k * unit)) ==
        MAP_FAILED)
      return bench_raw_failed(b, "mmap(MAP_FIXED)");
  return 0;
}

int bench_raw_arena_cycle(struct bench *b, struct bench_raw_arena *r, uint64_t iters, double *seconds) {
  int rc = 0;
  size_t k = r->next;
  double t0 = tool_now();
  for (uint64_t i = 0; i < iters && rc == 0; i++) {
    unsigned char *at = r->base + k * r->unit;
    if (mmap(at, r->unit, PROT_NONE, raw_reserved_flags | MAP_FIXED, -1, 0) == MAP_FAILED)
      rc = bench_raw_failed(b, "mmap(PROT_NONE)");
    else if (mmap(at, r->unit, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, r->fd, (off_t)(2 * k * r->unit)) ==
             MAP_FAILED)
      rc = bench_raw_failed(b, "mmap(MAP_FIXED | MAP_SHARED)");
    k = k + 7919 < r->n ? k + 7919 : (k + 7919) % r->n;
  }
  *seconds = tool_now() - t0;
  r->next = k;
  return rc;
}

void bench_raw_arena_free(struct bench_raw_arena *r) {
  if (!r) return;
  munmap(r->base, r->n * r->unit);
  free(r);
}
