/* The loops of `xmmap bench`'s C++ rows: the checked accessors through xmmap.hpp's owner
   (xmmap::mapping), each the mirror of a C loop in bench_workloads.c, which is its baseline. They
   are in bench_cxx.cpp where the build has a C++ compiler for the target, else bench_cxx_missing.c
   stands in and the rows are n/a with that reason. Declared for C and C++. */
#ifndef XMMAP_TOOL_BENCH_CXX_H
#define XMMAP_TOOL_BENCH_CXX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "xmmap/xmmap.h"

#ifdef __cplusplus
extern "C" {
#endif

/* How many offsets the u64 loop cycles through (a power of two; bench.h's N_OFFSETS). */
#define BENCH_CXX_OFFSETS 1024u

/* NULL when the loops below are the C++ ones, else why there are none. */
extern const char *const bench_cxx_missing;

/* iters checked u64 read + add + write through mapping::read_obj / write_obj at
   offsets[i % BENCH_CXX_OFFSETS] of m; *acc gets the sum of the values written. XM_OK or the first
   failure's status. */
int bench_cxx_u64(xm_mapping *m, const uint32_t *offsets, uint64_t iters, uint64_t *acc);
/* iters copies of n bytes between buf and successive offsets of m (back to 0 before span), through
   mapping::read_slice / write_slice with byte views; *total gets the bytes copied. */
int bench_cxx_read_slice(xm_mapping *m, unsigned char *buf, size_t n, size_t span, uint64_t iters, size_t *total);
int bench_cxx_write_slice(xm_mapping *m, const unsigned char *buf, size_t n, size_t span, uint64_t iters,
                          size_t *total);

#ifdef __cplusplus
}
#endif
#endif /* XMMAP_TOOL_BENCH_CXX_H */
