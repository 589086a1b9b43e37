/* Fault-safe copies between a mapping and a caller's buffer: read/write_slice's checks, then a
   copy through the back end's recovering primitive (src/os.h xm__os_safe_copy). */
#include "internal.h"

static int safe_slice(const xm_mapping *m, void *buf, size_t len, size_t offset, size_t *copied, bool write) {
  const char *what = write ? "write" : "read";
  size_t n;
  int rc = xm__slice_check(m, len, offset, write ? XM_PROT_WRITE : XM_PROT_READ, &n);
  if (rc) return rc;
  if (n == 0) {
    if (copied) *copied = 0;
    return XM_OK;
  }
  /* The caller's buffer is not guarded (a fault there is the caller's bug and stays fatal), but
     NULL is cheap to refuse. */
  if (!buf) return xm__fail(XM_E_INVALID_ARGUMENT, "buffer must not be NULL for a %s of %zu bytes", what, n);
  unsigned char *at = m->pub.base + offset;
  size_t done = 0;
  rc = write ? xm__os_safe_copy(at, buf, n, XM__SAFE_DST, &done) : xm__os_safe_copy(buf, at, n, XM__SAFE_SRC, &done);
  if (rc == XM_E_FAULT)
    return xm__fail(XM_E_FAULT, "%s: %s of %zu bytes at offset %zu faulted at offset %zu (%zu bytes copied)",
                    xm_strerror(XM_E_FAULT), what, n, offset, offset + done, done);
  if (rc) return rc;
  if (copied) *copied = n;
  return XM_OK;
}

int xm_mapping_read_slice_safe(const xm_mapping *m, void *buf, size_t len, size_t offset, size_t *copied) {
  return safe_slice(m, buf, len, offset, copied, false);
}

int xm_mapping_write_slice_safe(const xm_mapping *m, const void *buf, size_t len, size_t offset, size_t *copied) {
  /* The buffer is only read (the back end copies from it); the cast keeps one helper. */
  return safe_slice(m, (void *)(uintptr_t)buf, len, offset, copied, true);
}
