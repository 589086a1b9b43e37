/* Volatile slices: bounds-checked views of mapped memory that other parties may change. */
#include <string.h>

#include "internal.h"

/* Checked [offset, offset + count) of [addr, addr + size), with crosvm's error details. */
static int slice_range(uintptr_t addr, size_t size, size_t offset, size_t count, xm_slice *out) {
  size_t end;
  if (xm__add_overflows(offset, count, &end)) return xm__fail_overflow(offset, count);
  if (end > size) return xm__fail_out_of_bounds(end);
  if (addr + offset < addr) return xm__fail_overflow((size_t)addr, offset);
  out->addr = (void *)(addr + offset);
  out->size = count;
  return XM_OK;
}

int xm__slice_range(void *addr, size_t size, size_t offset, size_t count, xm_slice *out) {
  if (!out) return xm__fail(XM_E_INVALID_ARGUMENT, "out must not be NULL");
  return slice_range((uintptr_t)addr, size, offset, count, out);
}

int xm_slice_sub(xm_slice s, size_t offset, size_t count, xm_slice *out) {
  return xm__slice_range(s.addr, s.size, offset, count, out);
}

int xm_slice_offset(xm_slice s, size_t count, xm_slice *out) {
  uintptr_t addr = (uintptr_t)s.addr;
  if (!out) return xm__fail(XM_E_INVALID_ARGUMENT, "out must not be NULL");
  if (addr + count < addr) return xm__fail_overflow((size_t)addr, count);
  if (count > s.size) return xm__fail_out_of_bounds((size_t)(addr + count));
  out->addr = (void *)(addr + count);
  out->size = s.size - count;
  return XM_OK;
}

void xm_slice_write_bytes(xm_slice s, uint8_t value) {
  if (s.size) memset(s.addr, value, s.size);
}

size_t xm_slice_copy_to(xm_slice s, void *buf, size_t len) {
  size_t n = s.size < len ? s.size : len;
  if (n) memcpy(buf, s.addr, n);
  return n;
}

size_t xm_slice_copy_from(xm_slice s, const void *buf, size_t len) {
  size_t n = s.size < len ? s.size : len;
  if (n) memcpy(s.addr, buf, n);
  return n;
}

size_t xm_slice_copy_to_slice(xm_slice src, xm_slice dst) {
  size_t n = src.size < dst.size ? src.size : dst.size;
  if (n) memmove(dst.addr, src.addr, n);
  return n;
}

bool xm_slice_is_all_zero(xm_slice s) {
  if (s.size == 0) return true;
  const unsigned char *p = s.addr, *end = p + s.size;
  /* Bytes up to a word boundary, whole words, then the tail. */
  while (p < end && ((uintptr_t)p % sizeof(uintptr_t)) != 0)
    if (*p++) return false;
  for (; (size_t)(end - p) >= sizeof(uintptr_t); p += sizeof(uintptr_t)) {
    uintptr_t w;
    memcpy(&w, p, sizeof w);
    if (w) return false;
  }
  while (p < end)
    if (*p++) return false;
  return true;
}
