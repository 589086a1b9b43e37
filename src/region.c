/* The MappedRegion interface and external mappings (memory the caller owns). */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

void *xm_region_ptr(const xm_region *r) { return r ? r->ptr : NULL; }
size_t xm_region_size(const xm_region *r) { return r ? r->size : 0; }

int xm_region_add_fd_mapping(xm_region *r, size_t offset, size_t size, xm_descriptor d, uint64_t d_offset,
                             xm_prot prot) {
  if (!r) return xm__fail(XM_E_INVALID_ARGUMENT, "region must not be NULL");
  if (!r->ops->add_fd_mapping) return xm__fail(XM_E_ADD_FD_MAPPING_UNSUPPORTED, NULL);
  return r->ops->add_fd_mapping(r, offset, size, d, d_offset, prot);
}

int xm_region_remove_mapping(xm_region *r, size_t offset, size_t size) {
  if (!r) return xm__fail(XM_E_INVALID_ARGUMENT, "region must not be NULL");
  if (!r->ops->remove_mapping) return xm__fail(XM_E_REMOVE_MAPPING_UNSUPPORTED, NULL);
  return r->ops->remove_mapping(r, offset, size);
}

int xm_region_msync(const xm_region *r, size_t offset, size_t size) {
  if (!r) return xm__fail(XM_E_INVALID_ARGUMENT, "region must not be NULL");
  return r->ops->msync(r, offset, size);
}

int xm_region_advise(const xm_region *r, size_t offset, size_t len, xm_advice advice) {
  if (!r) return xm__fail(XM_E_INVALID_ARGUMENT, "region must not be NULL");
  return r->ops->advise(r, offset, len, advice);
}

int xm_region_protect(xm_region *r, size_t offset, size_t len, xm_prot prot) {
  if (!r) return xm__fail(XM_E_INVALID_ARGUMENT, "region must not be NULL");
  return r->ops->protect(r, offset, len, prot);
}

/* Commit and decommit: whole pages inside the region, checked here for every kind of region. */
static int check_commit_range(const xm_region *r, size_t offset, size_t len, const char *what) {
  if (!r) return xm__fail(XM_E_INVALID_ARGUMENT, "region must not be NULL");
  const size_t page = xm__page_size();
  uintptr_t start = (uintptr_t)r->ptr + offset;
  if (start % page != 0 || len % page != 0)
    return xm__fail(XM_E_NOT_PAGE_ALIGNED, "%s needs whole pages of %zu bytes, got offset=%zu len=%zu", what, page,
                    offset, len);
  if (!xm__range_inside(offset, len, r->size)) return xm__fail_address(offset, len, r->size);
  return XM_OK;
}

int xm_region_commit(xm_region *r, size_t offset, size_t len, xm_prot prot) {
  int rc = check_commit_range(r, offset, len, "commit");
  if (rc) return rc;
  if (prot & ~XM__PROT_ALL) return xm__fail(XM_E_INVALID_ARGUMENT, "protection 0x%x has unknown bits", prot);
  if (len == 0) return XM_OK;
  return r->ops->commit(r, offset, len, prot);
}

int xm_region_decommit(xm_region *r, size_t offset, size_t len) {
  int rc = check_commit_range(r, offset, len, "decommit");
  if (rc || len == 0) return rc;
  return r->ops->decommit(r, offset, len);
}

/* External memory has no view of ours: the back end acts on the addresses alone. */
static int external_msync(const xm_region *r, size_t offset, size_t size) {
  return xm__sync_range(r->ptr, r->size, offset, size, XM_SYNC_SYNC, NULL, XM_E_INVALID_ADDRESS);
}

static int external_advise(const xm_region *r, size_t offset, size_t size, xm_advice advice) {
  return xm__advise_range(r->ptr, r->size, offset, size, advice, NULL, XM_E_INVALID_ADDRESS);
}

/* As asked, on every page the range touches: the caller owns the memory and its protection (there
   is no ceiling to check); the OS refuses what the memory cannot take. */
static int external_protect(xm_region *r, size_t offset, size_t len, xm_prot prot) {
  if (prot & ~XM__PROT_ALL) return xm__fail(XM_E_INVALID_ARGUMENT, "protection 0x%x has unknown bits", prot);
  if (!xm__range_inside(offset, len, r->size)) return xm__fail_address(offset, len, r->size);
  if (len == 0) return XM_OK;
  uintptr_t start = (uintptr_t)r->ptr + offset;
  uintptr_t aligned = xm__align_down(start, xm__page_size());
  size_t page = xm__page_size(), span = len + (size_t)(start - aligned);
  span = (span + page - 1) & ~(page - 1);
  return xm__protect_tracked(NULL, (void *)aligned, span, prot);
}

/* The library cannot know what the caller did to its own memory: a tracker takes it as readable and
   writable, and follows what xm_region_protect changes afterwards. */
static void external_page_prots(xm_region *r, size_t offset, size_t npages, unsigned char *prot,
                                const struct xm__os_view **view, void (*with_lock_held)(void *ctx), void *ctx) {
  (void)r;
  (void)offset;
  memset(prot, XM_PROT_READ_WRITE, npages);
  *view = NULL;
  with_lock_held(ctx);
}

static int external_commit(xm_region *r, size_t offset, size_t size, xm_prot prot) {
  unsigned char *addr = (unsigned char *)r->ptr + offset;
  bool held = xm__dirty_begin_touch(addr, size);
  int rc = xm__os_commit(NULL, addr, size, prot);
  xm__dirty_end_touch(held, addr, size);
  return rc;
}

static int external_decommit(xm_region *r, size_t offset, size_t size) {
  unsigned char *addr = (unsigned char *)r->ptr + offset;
  bool held = xm__dirty_begin_touch(addr, size);
  int rc = xm__os_decommit(NULL, addr, size);
  xm__dirty_end_touch(held, addr, size);
  return rc;
}

static const struct xm_region_ops external_ops = {
    .msync = external_msync,
    .advise = external_advise,
    .protect = external_protect,
    .page_prots = external_page_prots,
    .commit = external_commit,
    .decommit = external_decommit,
};

int xm_external_mapping_new(uint64_t ptr, size_t size, xm_region **out) {
  if (!out) return xm__fail(XM_E_INVALID_ARGUMENT, "out must not be NULL");
  if (ptr > UINTPTR_MAX || (uintptr_t)ptr + size < (uintptr_t)ptr)
    return xm__fail(XM_E_INVALID_ADDRESS, "0x%llx + %zu does not fit the address space", (unsigned long long)ptr, size);
  xm_region *r = calloc(1, sizeof *r);
  if (!r) return xm__fail(XM_E_NO_MEMORY, "out of memory for the region");
  r->ops = &external_ops;
  r->ptr = (void *)(uintptr_t)ptr;
  r->size = size;
  *out = r;
  return XM_OK;
}

void xm_region_free(xm_region *r) {
  if (r && r->ops == &external_ops) free(r);
}
