/* Fuzzes xm_slice_sub and xm_slice_offset over arbitrary addresses and sizes (nothing is
   dereferenced) against a model in wider arithmetic: crosvm's order of checks, overflow of the
   end offset, then bounds, then overflow of the address. */
#include <xmmap/xmmap.h>

#include "fuzz_input.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#if defined(__SIZEOF_INT128__) && UINTPTR_MAX > 0xffffffffu
typedef unsigned __int128 wide;
#define WIDE_MAX ((wide)UINTPTR_MAX)
#else
typedef uint64_t wide;
#define WIDE_MAX ((wide)UINTPTR_MAX)
#endif

static void check_sub(xm_slice s, size_t offset, size_t count) {
  int want;
  wide end = (wide)offset + count, addr = (wide)(uintptr_t)s.addr + offset;
  if (end > (wide)SIZE_MAX)
    want = XM_E_OVERFLOW;
  else if (end > s.size)
    want = XM_E_OUT_OF_BOUNDS;
  else if (addr > WIDE_MAX)
    want = XM_E_OVERFLOW;
  else
    want = XM_OK;
  xm_slice out = {NULL, 777};
  int rc = xm_slice_sub(s, offset, count, &out);
  FUZZ_CHECK(rc == want, "slice_sub({%p, %zu}, %zu, %zu): %d, model %d (%s)", s.addr, s.size, offset, count, rc, want,
             xm_errmsg());
  if (want == XM_OK)
    FUZZ_CHECK((uintptr_t)out.addr == (uintptr_t)addr && out.size == count, "slice_sub result {%p, %zu}", out.addr,
               out.size);
  else
    FUZZ_CHECK(out.addr == NULL && out.size == 777 && xm_errmsg()[0], "slice_sub failure wrote out or no message");
  if (want == XM_E_OUT_OF_BOUNDS) { /* crosvm's text: the end offset */
    char text[64];
    snprintf(text, sizeof text, "address 0x%zx is out of bounds", (size_t)end);
    FUZZ_CHECK(strcmp(xm_errmsg(), text) == 0, "slice_sub message \"%s\", want \"%s\"", xm_errmsg(), text);
  }
}

static void check_offset(xm_slice s, size_t count) {
  int want;
  wide addr = (wide)(uintptr_t)s.addr + count;
  if (addr > WIDE_MAX)
    want = XM_E_OVERFLOW;
  else if (count > s.size)
    want = XM_E_OUT_OF_BOUNDS;
  else
    want = XM_OK;
  xm_slice out = {NULL, 777};
  int rc = xm_slice_offset(s, count, &out);
  FUZZ_CHECK(rc == want, "slice_offset({%p, %zu}, %zu): %d, model %d (%s)", s.addr, s.size, count, rc, want,
             xm_errmsg());
  if (want == XM_OK)
    FUZZ_CHECK((uintptr_t)out.addr == (uintptr_t)addr && out.size == s.size - count, "slice_offset result {%p, %zu}",
               out.addr, out.size);
  else
    FUZZ_CHECK(out.addr == NULL && out.size == 777 && xm_errmsg()[0], "slice_offset failure wrote out or no message");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct fuzz_input in = {data, size, 0};
  while (!fuzz_done(&in)) {
    xm_slice s;
    uint8_t how = fuzz_u8(&in);
    size_t len = fuzz_size_near(&in, 4096, 64);
    /* an address anywhere, often near the top, where the sum wraps */
    uintptr_t addr = (how & 1) ? (uintptr_t)fuzz_u64(&in) : UINTPTR_MAX - (uintptr_t)fuzz_size_near(&in, len, 64);
    s.addr = (void *)addr;
    s.size = len;
    size_t offset = fuzz_size_near(&in, len, 64), count = fuzz_size_near(&in, len, 64);
    if (how & 2)
      check_sub(s, offset, count);
    else
      check_offset(s, count);
  }
  return 0;
}
