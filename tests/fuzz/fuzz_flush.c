/* Fuzzes the flush range walk (xm__flush_range, src/flush.h) with a recording fake unit against
   a model in wider arithmetic: validation, the empty range, and exactly one clean call covering
   every line that [offset, offset + len) touches, from the line holding offset, for any base
   (up to the top of the address space) and any power-of-two line. Nothing is dereferenced. */
#include <xmmap/xmmap.h>

#include "arch.h"
#include "flush.h"
#include "fuzz_input.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#if defined(__SIZEOF_INT128__) && UINTPTR_MAX > 0xffffffffu
typedef unsigned __int128 wide;
#else
typedef uint64_t wide;
#endif
#define SPACE ((wide)UINTPTR_MAX + 1) /* the size of the address space */

static struct {
  int calls;
  uintptr_t first, end;
  size_t line;
} rec;

static void record_clean(uintptr_t first, uintptr_t end, size_t line) {
  rec.calls++;
  rec.first = first;
  rec.end = end;
  rec.line = line;
}

static const struct xm__flush_unit unit = {"fake", NULL, 64, "fake", record_clean};
static const struct xm__flush_unit unsupported = {"none", "fake unit cannot flush", 0, NULL, NULL};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct fuzz_input in = {data, size, 0};
  while (!fuzz_done(&in)) {
    size_t line = (size_t)4 << (fuzz_u8(&in) % 7); /* 4 .. 256 */
    uint8_t how = fuzz_u8(&in);
    size_t region = fuzz_size_near(&in, 4096, line);
    uintptr_t base =
        (how & 1) ? (uintptr_t)fuzz_u64(&in) : (uintptr_t)(UINTPTR_MAX - fuzz_size_near(&in, region, line));
    /* a region never wraps: base + size may reach 2^N exactly, not beyond */
    if ((wide)base + region > SPACE) region = (size_t)(SPACE - base);
    size_t offset = fuzz_size_near(&in, region, line), len = fuzz_size_near(&in, region, line);
    const struct xm__flush_unit *u = (how & 6) == 6 ? &unsupported : &unit;

    int want;
    wide end = (wide)offset + len;
    if (end > region)
      want = XM_E_INVALID_RANGE;
    else if (len == 0)
      want = XM_OK;
    else if (u == &unsupported)
      want = XM_E_NOT_IMPLEMENTED;
    else
      want = XM_OK;
    memset(&rec, 0, sizeof rec);
    int rc = xm__flush_range(u, line, base, region, offset, len);
    FUZZ_CHECK(rc == want, "flush_range(base %p, size %zu, offset %zu, len %zu, line %zu): %d, model %d (%s)",
               (void *)base, region, offset, len, line, rc, want, xm_errmsg());
    if (want == XM_E_INVALID_RANGE) {
      char text[160];
      snprintf(text, sizeof text, "offset=%zu count=%zu region_size=%zu", offset, len, region);
      FUZZ_CHECK(strstr(xm_errmsg(), text) != NULL, "flush_range message \"%s\" lacks \"%s\"", xm_errmsg(), text);
    }
    if (want != XM_OK || len == 0) {
      FUZZ_CHECK(rec.calls == 0, "flush_range cleaned %d times for status %d / len 0", rec.calls, want);
      continue;
    }
    wide start = (wide)base + offset, last = start + len - 1;
    wide first = start / line * line, stop = (last / line + 1) * line; /* may be 2^N: end 0 */
    FUZZ_CHECK(rec.calls == 1, "flush_range cleaned %d times", rec.calls);
    FUZZ_CHECK(rec.first == (uintptr_t)first && rec.end == (uintptr_t)(stop % SPACE) && rec.line == line,
               "flush_range(base %p, offset %zu, len %zu, line %zu) cleaned [%p, %p), model [%p, %p)", (void *)base,
               offset, len, line, (void *)rec.first, (void *)rec.end, (void *)(uintptr_t)first,
               (void *)(uintptr_t)(stop % SPACE));
  }
  return 0;
}
