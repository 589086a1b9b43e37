/* Fuzzes a mapping's checked accessors (read/write_obj, read/write_slice and their fault-safe
   forms, get_slice, the volatile pair), flush_region's validation and protect, against a
   reference model: the mapping's size, the protection of each page and a shadow copy of its bytes.
   Every status, copied count, slice and byte read must match the model. */
#include <xmmap/xmmap.h>

#include "fuzz_input.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_PAGES 4

static size_t page;
static unsigned char shadow[MAX_PAGES * 65536];
static xm_prot page_prot[MAX_PAGES];
static unsigned char buf[MAX_PAGES * 65536 + 64], back[MAX_PAGES * 65536 + 64];

struct model {
  size_t size;
  xm_prot built;
};

/* end = offset + count, false when it overflows */
static int add_ok(size_t a, size_t b, size_t *end) {
  *end = a + b;
  return *end >= a;
}

static int allows(const struct model *mo, size_t offset, size_t len, xm_prot need) {
  (void)mo; /* page_prot is the model's per-page half */
  for (size_t p = offset / page; p <= (offset + len - 1) / page; p++)
    if ((need & ~page_prot[p]) != 0) return 0;
  return 1;
}

/* The status the slice accessors must give, and the count they copy. */
static int slice_status(const struct model *mo, size_t len, size_t offset, xm_prot need, size_t *n) {
  if (offset > mo->size) return XM_E_INVALID_ADDRESS;
  *n = mo->size - offset < len ? mo->size - offset : len;
  if (*n && !allows(mo, offset, *n, need)) return XM_E_ACCESS;
  return XM_OK;
}

static int obj_status(const struct model *mo, size_t size, size_t offset, xm_prot need) {
  size_t end;
  if (!add_ok(offset, size, &end) || end > mo->size) return XM_E_INVALID_ADDRESS;
  if (size && !allows(mo, offset, size, need)) return XM_E_ACCESS;
  return XM_OK;
}

static int volatile_status(const struct model *mo, const unsigned char *base, size_t size, size_t offset,
                           xm_prot need) {
  size_t end;
  if (!add_ok(offset, size, &end) || end > mo->size) return XM_E_INVALID_ADDRESS;
  if ((size != 1 && size != 2 && size != 4 && size != 8) || (((uintptr_t)base + offset) % size) != 0)
    return XM_E_INVALID_ALIGNMENT;
  if (!allows(mo, offset, size, need)) return XM_E_ACCESS;
  return XM_OK;
}

static void expect(int got, int want, const char *what, size_t a, size_t b) {
  FUZZ_CHECK(got == want, "%s(%zu, %zu): status %d, model %d (%s)", what, a, b, got, want, xm_errmsg());
  if (got != XM_OK) FUZZ_CHECK(xm_errmsg()[0] != '\0', "%s: a failure without xm_errmsg()", what);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct fuzz_input in = {data, size, 0};
  if (!page) page = xm_page_size();
  if (page > 65536) return 0;
  struct model mo;
  size_t pages = fuzz_u8(&in) % (MAX_PAGES + 1);
  size_t cut = pages ? fuzz_u16(&in) % page : 0;
  mo.size = pages * page - cut;
  static const xm_prot prots[] = {XM_PROT_READ_WRITE, XM_PROT_READ_WRITE, XM_PROT_READ, XM_PROT_WRITE, XM_PROT_NONE};
  mo.built = prots[fuzz_u8(&in) % 5];
  xm_builder b = xm_builder_new(mo.size);
  xm_builder_protection(&b, mo.built);
  xm_mapping *m = NULL;
  int rc = xm_builder_build(&b, &m);
  FUZZ_CHECK(rc == XM_OK, "build of %zu bytes: %s", mo.size, xm_errmsg());
  unsigned char *base = xm_mapping_ptr(m);
  memset(shadow, 0, mo.size);
  for (size_t p = 0; p < MAX_PAGES; p++)
    page_prot[p] = mo.built;

  for (int ops = 0; ops < 48 && !fuzz_done(&in); ops++) {
    uint8_t op = fuzz_u8(&in) % 11;
    size_t offset = fuzz_size_near(&in, mo.size, page);
    size_t len = fuzz_size_near(&in, mo.size, page);
    size_t n = 0, copied = 7;
    switch (op) {
    case 0: { /* write_obj: the bytes come from the input */
      int want = obj_status(&mo, len, offset, XM_PROT_WRITE);
      for (size_t i = 0; want == XM_OK && i < len; i++)
        buf[i] = fuzz_u8(&in);
      expect(xm_mapping_write_obj(m, buf, len, offset), want, "write_obj", offset, len);
      if (want == XM_OK && len) memcpy(shadow + offset, buf, len);
      break;
    }
    case 1: { /* read_obj */
      int want = obj_status(&mo, len, offset, XM_PROT_READ);
      expect(xm_mapping_read_obj(m, back, len, offset), want, "read_obj", offset, len);
      if (want == XM_OK && len)
        FUZZ_CHECK(memcmp(back, shadow + offset, len) == 0, "read_obj(%zu, %zu) bytes", offset, len);
      break;
    }
    case 2:
    case 3: { /* write_slice, and its fault-safe form */
      int want = slice_status(&mo, len, offset, XM_PROT_WRITE, &n);
      uint8_t fill = fuzz_u8(&in);
      memset(buf, fill, n < sizeof buf ? n : sizeof buf);
      rc = op == 2 ? xm_mapping_write_slice(m, buf, len, offset, &copied)
                   : xm_mapping_write_slice_safe(m, buf, len, offset, &copied);
      expect(rc, want, op == 2 ? "write_slice" : "write_slice_safe", offset, len);
      if (want == XM_OK) {
        FUZZ_CHECK(copied == n, "write_slice copied %zu, model %zu", copied, n);
        if (n) memset(shadow + offset, fill, n);
      } else {
        FUZZ_CHECK(copied == 7, "write_slice wrote copied on failure");
      }
      break;
    }
    case 4:
    case 5: { /* read_slice, and its fault-safe form */
      int want = slice_status(&mo, len, offset, XM_PROT_READ, &n);
      rc = op == 4 ? xm_mapping_read_slice(m, back, len, offset, &copied)
                   : xm_mapping_read_slice_safe(m, back, len, offset, &copied);
      expect(rc, want, op == 4 ? "read_slice" : "read_slice_safe", offset, len);
      if (want == XM_OK) {
        FUZZ_CHECK(copied == n, "read_slice copied %zu, model %zu", copied, n);
        if (n) FUZZ_CHECK(memcmp(back, shadow + offset, n) == 0, "read_slice(%zu, %zu) bytes", offset, len);
      } else {
        FUZZ_CHECK(copied == 7, "read_slice wrote copied on failure");
      }
      break;
    }
    case 6: { /* get_slice: crosvm's order, overflow before bounds; then read access to every byte */
      size_t end;
      int want = !add_ok(offset, len, &end)                       ? XM_E_OVERFLOW
                 : end > mo.size                                  ? XM_E_OUT_OF_BOUNDS
                 : len && !allows(&mo, offset, len, XM_PROT_READ) ? XM_E_ACCESS
                                                                  : XM_OK;
      xm_slice s = {NULL, 12345};
      expect(xm_mapping_get_slice(m, offset, len, &s), want, "get_slice", offset, len);
      if (want == XM_OK)
        FUZZ_CHECK((uintptr_t)s.addr == (uintptr_t)base + offset && s.size == len, "get_slice(%zu, %zu) gave %p+%zu",
                   offset, len, s.addr, s.size);
      else
        FUZZ_CHECK(s.addr == NULL && s.size == 12345, "get_slice wrote out on failure");
      break;
    }
    case 7: { /* volatile write of size len % 10 */
      size_t vs = len % 10;
      uint64_t v = fuzz_u64(&in);
      int want = volatile_status(&mo, base, vs, offset, XM_PROT_WRITE);
      expect(xm_mapping_write_obj_volatile(m, &v, vs, offset), want, "write_obj_volatile", offset, vs);
      if (want == XM_OK) memcpy(shadow + offset, &v, vs);
      break;
    }
    case 8: { /* volatile read */
      size_t vs = len % 10;
      uint64_t v = 0;
      int want = volatile_status(&mo, base, vs, offset, XM_PROT_READ);
      expect(xm_mapping_read_obj_volatile(m, &v, vs, offset), want, "read_obj_volatile", offset, vs);
      if (want == XM_OK) FUZZ_CHECK(memcmp(&v, shadow + offset, vs) == 0, "volatile read(%zu, %zu) bytes", offset, vs);
      break;
    }
    case 9: { /* flush_region: range, empty, readability (the host's unit always flushes) */
      size_t end;
      int want = (!add_ok(offset, len, &end) || end > mo.size) ? XM_E_INVALID_RANGE
                 : len == 0                                    ? XM_OK
                 : !allows(&mo, offset, len, XM_PROT_READ)     ? XM_E_ACCESS
                                                               : XM_OK;
      if (want == XM_OK && len && strcmp(xm_flush_method(), "none") == 0) want = XM_E_NOT_IMPLEMENTED;
      expect(xm_mapping_flush_region(m, offset, len), want, "flush_region", offset, len);
      break;
    }
    default: { /* protect: lower, or raise again up to the built protection */
      xm_prot prot = fuzz_u8(&in) % 5;
      if (prot == 4) prot = 8; /* an unknown bit (4 is XM_PROT_EXEC) */
      size_t end;
      int want = prot > XM_PROT_READ_WRITE                       ? XM_E_INVALID_ARGUMENT
                 : (!add_ok(offset, len, &end) || end > mo.size) ? XM_E_INVALID_RANGE
                 : (prot & ~mo.built) != 0                       ? XM_E_ACCESS
                                                                 : XM_OK;
      expect(xm_mapping_protect(m, offset, len, prot), want, "protect", offset, len);
      if (want == XM_OK && len)
        for (size_t p = offset / page; p <= (offset + len - 1) / page; p++)
          page_prot[p] = prot;
      break;
    }
    }
  }
  xm_mapping_free(m);
  return 0;
}
