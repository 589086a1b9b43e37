/* Fault-safe copies between a mapping and a caller's buffer: read/write_slice's checks, then a
   page-by-page copy that the back end runs with faults on the mapping's side recovered
   (src/os.h xm__os_run_guarded). */
#include <string.h>

#include "internal.h"

struct guarded_copy {
  struct xm__fault_guard guard; /* first: the back end hands it back to copy_pages */
  unsigned char *dst;
  const unsigned char *src;
  uintptr_t mapped; /* the first mapped byte copied (the guarded side) */
  size_t len;
  size_t chunk;             /* bytes per memcpy, aligned on the guarded side: a power of two >= the page, or 0
                   for the whole copy in one memcpy */
  volatile size_t progress; /* bytes copied; read after a recovered fault */
};

/* Chunk by chunk on the guarded side: memcpy may copy a chunk's bytes in any order, so after a
   fault only the chunks before the faulting one are known to be copied, and progress stands at
   the faulting chunk's start. */
static void copy_chunks(struct xm__fault_guard *g) {
  struct guarded_copy *c = (struct guarded_copy *)g;
  while (c->progress < c->len) {
    size_t at = c->progress;
    size_t n = c->chunk ? c->chunk - (size_t)((c->mapped + at) & (c->chunk - 1)) : c->len - at;
    if (n > c->len - at) n = c->len - at;
    memcpy(c->dst + at, c->src + at, n);
    c->progress = at + n;
  }
}

/* Copies n (> 0) bytes between at (memory that may fault) and buf, the mapped side at offset of
   its owner (for the message). */
static int guarded_copy(unsigned char *at, void *buf, size_t n, size_t offset, size_t *copied, bool write) {
  const char *what = write ? "write" : "read";
  /* The caller's buffer is not guarded (a fault there is the caller's bug and stays fatal), but
     NULL is cheap to refuse. */
  if (!buf) return xm__fail(XM_E_INVALID_ARGUMENT, "buffer must not be NULL for a %s of %zu bytes", what, n);
  const size_t page = xm__page_size();
  struct guarded_copy c = {
      .dst = write ? at : buf,
      .src = write ? buf : at,
      .mapped = (uintptr_t)at,
      .len = n,
  };
  /* Whole pages: memcpy may load the aligned word around an unaligned start or end (riscv64's and
     ppc64le's do), so a gone page can fault just outside the bytes asked for. */
  c.guard.lo = (uintptr_t)at & ~(uintptr_t)(page - 1);
  c.guard.len = (size_t)((((uintptr_t)at + n - 1) | (page - 1)) - c.guard.lo) + 1;
  c.guard.run = copy_chunks;
  /* One memcpy, as fast as the caller's own; only when it faults is the copy done again page by
     page (the same bytes again), so that it stops at the start of the faulting page. */
  c.chunk = 0;
  int rc = xm__os_run_guarded(&c.guard);
  if (rc == XM_E_FAULT) {
    c.chunk = page;
    rc = xm__os_run_guarded(&c.guard);
  }
  if (rc == XM_E_FAULT)
    return xm__fail(XM_E_FAULT, "%s of %zu bytes at offset %zu faulted at offset %zu (%zu bytes copied)", what, n,
                    offset, offset + c.progress, (size_t)c.progress);
  if (rc) return rc;
  if (copied) *copied = n;
  return XM_OK;
}

static int safe_slice(const xm_mapping *m, void *buf, size_t len, size_t offset, size_t *copied, bool write) {
  size_t n;
  int rc = xm__slice_check(m, len, offset, write ? XM_PROT_WRITE : XM_PROT_READ, &n);
  if (rc) return rc;
  if (n == 0) {
    if (copied) *copied = 0;
    return XM_OK;
  }
  return guarded_copy(m->pub.base + offset, buf, n, offset, copied, write);
}

/* Any region: its owner's protection is not checked here (an arena's differs piece by piece); a
   page that cannot be accessed faults and gives XM_E_FAULT like a gone one. */
static int safe_region(const xm_region *r, void *buf, size_t len, size_t offset, size_t *copied, bool write) {
  if (!r) return xm__fail(XM_E_INVALID_ARGUMENT, "region must not be NULL");
  if (offset > r->size) return xm__fail_address(offset, len, r->size);
  size_t n = len < r->size - offset ? len : r->size - offset;
  if (n == 0) {
    if (copied) *copied = 0;
    return XM_OK;
  }
  return guarded_copy((unsigned char *)r->ptr + offset, buf, n, offset, copied, write);
}

int xm_mapping_read_slice_safe(const xm_mapping *m, void *buf, size_t len, size_t offset, size_t *copied) {
  return safe_slice(m, buf, len, offset, copied, false);
}

int xm_mapping_write_slice_safe(const xm_mapping *m, const void *buf, size_t len, size_t offset, size_t *copied) {
  /* The buffer is only read (the copy goes from it); the cast keeps one helper. */
  return safe_slice(m, (void *)(uintptr_t)buf, len, offset, copied, true);
}

int xm_region_read_safe(const xm_region *r, void *buf, size_t len, size_t offset, size_t *copied) {
  return safe_region(r, buf, len, offset, copied, false);
}

int xm_region_write_safe(const xm_region *r, const void *buf, size_t len, size_t offset, size_t *copied) {
  return safe_region(r, (void *)(uintptr_t)buf, len, offset, copied, true);
}
