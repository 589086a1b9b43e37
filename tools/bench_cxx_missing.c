/* Stands in for bench_cxx.cpp where the build has no C++ compiler for the target: the C++ rows of
   `xmmap bench` are n/a with this reason. */
#include "bench_cxx.h"

const char *const bench_cxx_missing =
    "built without a C++ compiler for this target (no g++/clang++ beside the C compiler)";

int bench_cxx_u64(xm_mapping *m, const uint32_t *offsets, uint64_t iters, uint64_t *acc) {
  (void)m, (void)offsets, (void)iters, (void)acc;
  return XM_E_NOT_IMPLEMENTED;
}
int bench_cxx_read_slice(xm_mapping *m, unsigned char *buf, size_t n, size_t span, uint64_t iters, size_t *total) {
  (void)m, (void)buf, (void)n, (void)span, (void)iters, (void)total;
  return XM_E_NOT_IMPLEMENTED;
}
int bench_cxx_write_slice(xm_mapping *m, const unsigned char *buf, size_t n, size_t span, uint64_t iters,
                          size_t *total) {
  (void)m, (void)buf, (void)n, (void)span, (void)iters, (void)total;
  return XM_E_NOT_IMPLEMENTED;
}
