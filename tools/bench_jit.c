/* The JIT-write workloads: write code into a buffer and make it executable. The baseline is what a
   JIT does without xmmap: memcpy into a read-write-execute buffer and the compiler's cache-clear
   builtin. */
#include <stdlib.h>
#include <string.h>

#include "bench.h"

int bench_setup_jit(struct bench *b, const struct workload *w) {
  unsigned flags = w->param & JIT_TOGGLE ? XM_CODE_TOGGLE : XM_CODE_DUAL_VIEW;
  size_t size = w->param & ~(size_t)JIT_TOGGLE;
  int rc = xm_code_new(size, flags, NULL, &b->code);
  if (rc == XM_E_NOT_IMPLEMENTED || rc == XM_E_SYSTEM_CALL) /* no such strategy here */
    return bench_fail(b, XM_E_NOT_IMPLEMENTED, "no %s code buffer: %s", flags & XM_CODE_TOGGLE ? "toggle" : "dual view",
                      xm_errmsg());
  if (rc) return bench_xm_failed(b, "xm_code_new", rc);
  b->param = size;
  rc = bench_raw_map_rwx(b, size);
  if (rc) return rc;
  b->buf_block = malloc(size);
  if (!b->buf_block) return bench_fail(b, XM_E_NO_MEMORY, "out of memory");
  b->buf = b->buf_block;
  for (size_t i = 0; i < size; i++)
    b->buf[i] = (unsigned char)(i * 7 + 1); /* stands for code */
  return 0;
}

int bench_xm_jit(struct bench *b, uint64_t iters, double *seconds) {
  const size_t n = b->param;
  unsigned char *w = xm_code_write_ptr(b->code);
  int rc = 0;
  double t0 = tool_now();
  for (uint64_t i = 0; i < iters && rc == 0; i++) {
    rc = xm_code_begin_write(b->code, 0, n);
    memcpy(w, b->buf, n);
    if (rc == 0) rc = xm_code_end_write(b->code, 0, n);
  }
  *seconds = tool_now() - t0;
  b->sink += w[0];
  return rc ? bench_xm_failed(b, "xm_code_begin_write / end_write", rc) : 0;
}

int bench_raw_jit(struct bench *b, uint64_t iters, double *seconds) {
  const size_t n = b->param;
  char *p = (char *)b->rwx;
  double t0 = tool_now();
  for (uint64_t i = 0; i < iters; i++) {
    memcpy(p, b->buf, n);
#if defined(_MSC_VER) /* no __builtin___clear_cache: the library's call, FlushInstructionCache where needed */
    (void)xm_icache_sync(p, n);
#else
    __builtin___clear_cache(p, p + n);
#endif
  }
  *seconds = tool_now() - t0;
  b->sink += b->rwx[0];
  return 0;
}
