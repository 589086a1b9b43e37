/* The MappedRegion interface and external mappings (memory the caller owns). */
#include <stdlib.h>

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

/* External memory has no view of ours: the back end acts on the addresses alone. */
static int external_msync(const xm_region *r, size_t offset, size_t size) {
  return xm__sync_range(r->ptr, r->size, offset, size, XM_SYNC_SYNC, NULL, XM_E_INVALID_ADDRESS);
}

static int external_advise(const xm_region *r, size_t offset, size_t size, xm_advice advice) {
  return xm__advise_range(r->ptr, r->size, offset, size, advice, NULL, XM_E_INVALID_ADDRESS);
}

static const struct xm_region_ops external_ops = {.msync = external_msync, .advise = external_advise};

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
