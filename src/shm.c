/* Shared-memory objects: a descriptor and its size; the OS work is in the back end. */
#include <stdlib.h>

#include "internal.h"

/* Wraps d; on failure d stays the caller's. */
static int wrap(xm_descriptor d, uint64_t size, unsigned flags, size_t huge_page_size, xm_shm **out) {
  xm_shm *shm = malloc(sizeof *shm);
  if (!shm) return xm__fail(XM_E_NO_MEMORY, "out of memory for the shared-memory object");
  shm->descriptor = d;
  shm->size = size;
  shm->flags = flags;
  shm->huge_page_size = huge_page_size;
  shm->known = NULL;
  *out = shm;
  return XM_OK;
}

/* wrap, and the object in the table of known objects; on failure d is closed. */
static int wrap_known(xm_descriptor d, uint64_t size, unsigned flags, size_t huge_page_size, xm_shm **out) {
  xm_shm *shm = NULL;
  int rc = wrap(d, size, flags, huge_page_size, &shm);
  if (rc) {
    xm__os_close(d);
    return rc;
  }
  if ((rc = xm__shm_know(shm)) != XM_OK) {
    xm_shm_free(shm);
    return rc;
  }
  *out = shm;
  return XM_OK;
}

int xm_shm_new_ex(const char *debug_name, uint64_t size, unsigned flags, size_t huge_page_size, xm_shm **out) {
  if (!out) return xm__fail(XM_E_INVALID_ARGUMENT, "out must not be NULL");
  if (flags & ~(XM_SHM_LAZY_COMMIT | XM_SHM_HUGE | XM_SHM_EXEC))
    return xm__fail(XM_E_INVALID_ARGUMENT, "unknown shared-memory flags 0x%x", flags);
  /* Windows large-page sections are committed when made: nothing is left to commit lazily. */
  if ((flags & XM_SHM_LAZY_COMMIT) && (flags & XM_SHM_HUGE))
    return xm__fail(XM_E_INVALID_ARGUMENT, "XM_SHM_LAZY_COMMIT and XM_SHM_HUGE exclude each other (huge pages are "
                                           "committed at once)");
  if (huge_page_size != 0 && !(flags & XM_SHM_HUGE))
    return xm__fail(XM_E_INVALID_ARGUMENT, "huge page size %zu needs XM_SHM_HUGE", huge_page_size);
  if (huge_page_size != 0 && !xm__is_pow2(huge_page_size))
    return xm__fail(XM_E_INVALID_ARGUMENT, "huge page size %zu is not a power of two", huge_page_size);
  if (size > (uint64_t)INT64_MAX)
    return xm__fail(XM_E_INVALID_ARGUMENT, "size %llu is past the off_t range", (unsigned long long)size);
  xm_descriptor d;
  size_t page_size = huge_page_size;
  int rc = xm__os_shm_create(debug_name ? debug_name : "xmmap", size, flags, &page_size, &d);
  return rc ? rc : wrap_known(d, size, flags, page_size, out);
}

int xm_shm_new(const char *debug_name, uint64_t size, xm_shm **out) {
  return xm_shm_new_ex(debug_name, size, 0, 0, out);
}

int xm_shm_clone(const xm_shm *shm, xm_shm **out) {
  if (!shm || !out) return xm__fail(XM_E_INVALID_ARGUMENT, "shm and out must not be NULL");
  xm_descriptor d;
  int rc = xm__os_dup(shm->descriptor, &d);
  return rc ? rc : wrap_known(d, shm->size, shm->flags, shm->huge_page_size, out);
}

/* The object first: the OS step seals the object (Linux), which cannot be undone afterwards. */
int xm_shm_clone_readonly(const xm_shm *shm, xm_shm **out) {
  if (!shm || !out) return xm__fail(XM_E_INVALID_ARGUMENT, "shm and out must not be NULL");
  xm_shm *ro = malloc(sizeof *ro);
  if (!ro) return xm__fail(XM_E_NO_MEMORY, "out of memory for the shared-memory object");
  int rc = xm__shm_reserve_slot(ro);
  if (!rc) rc = xm__os_shm_clone_readonly(shm->descriptor, &ro->descriptor);
  if (rc) {
    xm__shm_forget(ro);
    free(ro);
    return rc;
  }
  ro->size = shm->size;
  ro->flags = shm->flags | XM__SHM_READ_ONLY;
  ro->huge_page_size = shm->huge_page_size;
  xm__shm_publish(ro);
  *out = ro;
  return XM_OK;
}

int xm_shm_from_descriptor(xm_descriptor d, uint64_t size, xm_shm **out) {
  if (!out) return xm__fail(XM_E_INVALID_ARGUMENT, "out must not be NULL");
  if (size > (uint64_t)INT64_MAX) /* as xm_shm_new: no mapping of it could reach past off_t */
    return xm__fail(XM_E_INVALID_ARGUMENT, "size %llu is past the off_t range", (unsigned long long)size);
  int rc = xm__os_check_descriptor(XM__SOURCE_SHM, d);
  if (rc) return rc;
  if (size == 0) {
    rc = xm__os_descriptor_size(XM__SOURCE_SHM, d, &size);
    if (rc) return rc;
  }
  /* Not in the table of known objects: what the descriptor is (a hugetlbfs file?) was not the
     library's doing, and arena adds check it as any descriptor. */
  return wrap(d, size, 0, 0, out);
}

uint64_t xm_shm_size(const xm_shm *shm) { return shm ? shm->size : 0; }
xm_descriptor xm_shm_descriptor(const xm_shm *shm) { return shm ? shm->descriptor : xm__os_no_descriptor(); }

void xm_shm_free(xm_shm *shm) {
  if (!shm) return;
  xm__shm_forget(shm); /* before the number can be reused */
  xm__os_close(shm->descriptor);
  free(shm);
}

int xm_shm_get_seals(const xm_shm *shm, unsigned *seals) {
  if (!shm || !seals) return xm__fail(XM_E_INVALID_ARGUMENT, "shm and seals must not be NULL");
  return xm__os_shm_get_seals(shm->descriptor, seals);
}

int xm_shm_add_seals(xm_shm *shm, unsigned seals) {
  if (!shm) return xm__fail(XM_E_INVALID_ARGUMENT, "shm must not be NULL");
  if (seals & ~(XM_SEAL_SEAL | XM_SEAL_SHRINK | XM_SEAL_GROW | XM_SEAL_WRITE | XM_SEAL_FUTURE_WRITE))
    return xm__fail(XM_E_INVALID_ARGUMENT, "unknown seal bits 0x%x", seals);
  return xm__os_shm_add_seals(shm->descriptor, seals);
}
