/* `xmmap bench`'s C++ rows: the checked accessors through xmmap.hpp's mapping owner, written as a
   C++ user writes them (results tested, byte views), against the same loops written with the C
   calls in bench_workloads.c. The owner adopts the bench's mapping for the loop and releases it
   after: the bench keeps owning it. */
#include "bench_cxx.h"

#include "xmmap/xmmap.hpp"

const char *const bench_cxx_missing = nullptr;

int bench_cxx_u64(xm_mapping *raw, const uint32_t *offsets, uint64_t iters, uint64_t *acc_out) {
  xmmap::mapping m(raw);
  std::uint64_t acc = 0;
  int rc = XM_OK;
  for (std::uint64_t i = 0; i < iters; i++) {
    const std::size_t off = offsets[i & (BENCH_CXX_OFFSETS - 1)];
    std::uint64_t v = 0;
    if (auto r = m.read_obj(off, v); !r) {
      rc = r.status();
      break;
    }
    v += i;
    if (auto r = m.write_obj(off, v); !r) {
      rc = r.status();
      break;
    }
    acc += v;
  }
  m.release();
  *acc_out = acc;
  return rc;
}

/* The C loop ORs the statuses and sums the counts without a branch; so does this one. */
template <bool Write, class Buffer>
static int slice_loop(xm_mapping *raw, Buffer *buf, std::size_t n, std::size_t span, std::uint64_t iters,
                      std::size_t *total_out) {
  xmmap::mapping m(raw);
  const auto view = xmmap::bytes_of(buf, n);
  std::size_t off = 0, total = 0;
  int rc = XM_OK;
  for (std::uint64_t i = 0; i < iters; i++) {
    xmmap::result<std::size_t> r = [&] {
      if constexpr (Write)
        return m.write_slice(off, view);
      else
        return m.read_slice(off, view);
    }();
    rc |= r.status();
    total += *r;
    off = off + n < span ? off + n : 0;
  }
  m.release();
  *total_out = total;
  return rc;
}

int bench_cxx_read_slice(xm_mapping *m, unsigned char *buf, size_t n, size_t span, uint64_t iters, size_t *total) {
  return slice_loop<false>(m, buf, n, span, iters, total);
}
int bench_cxx_write_slice(xm_mapping *m, const unsigned char *buf, size_t n, size_t span, uint64_t iters,
                          size_t *total) {
  return slice_loop<true>(m, buf, n, span, iters, total);
}
