/* Front-end internals shared by the library's files: object layouts and the error helpers. */
#ifndef XMMAP_INTERNAL_H
#define XMMAP_INTERNAL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "xmmap/xmmap.h"

/* ---- errors (errors.c) ------------------------------------------------------------------- */
/* Records status with a formatted detail message for this thread and returns status. */
int xm__fail(int status, const char *fmt, ...)
#if defined(__MINGW32__)
    __attribute__((format(gnu_printf, 2, 3))) /* MinGW's printf family is C99 with __USE_MINGW_ANSI_STDIO */
#elif defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* Records a failed OS call: "<strerror(status)>: <os text> (os error N) (in <call>)". */
int xm__fail_os(int status, int os_error, const char *call);
/* The InvalidRange message with offset, count and region size. */
int xm__fail_range(size_t offset, size_t count, size_t region_size);
/* The InvalidAddress message with offset, count and size. */
int xm__fail_address(size_t offset, size_t count, size_t size);

/* ---- once-read facts (facts.c) ----------------------------------------------------------- */
size_t xm__page_size(void);
size_t xm__granularity(void);

/* ---- checked arithmetic ------------------------------------------------------------------ */
static inline bool xm__add_overflows(size_t a, size_t b, size_t *sum) {
  *sum = a + b;
  return *sum < a;
}
/* [offset, offset + count) lies inside [0, size): empty ranges at the end included. */
static inline bool xm__range_inside(size_t offset, size_t count, size_t size) {
  return offset <= size && count <= size - offset;
}
static inline uintptr_t xm__align_down(uintptr_t v, size_t unit) { return v & ~(uintptr_t)(unit - 1); }
static inline bool xm__is_pow2(uint64_t v) { return v != 0 && (v & (v - 1)) == 0; }

/* ---- regions (region.c) ------------------------------------------------------------------ */
/* The MappedRegion interface: a mapping, an external mapping and an arena each fill in what they
   support; a NULL entry gives the *_UNSUPPORTED status or the default behaviour. */
struct xm_region_ops {
  int (*add_fd_mapping)(xm_region *r, size_t offset, size_t size, xm_descriptor d, uint64_t d_offset,
                        xm_prot prot);
  int (*remove_mapping)(xm_region *r, size_t offset, size_t size);
  int (*msync)(const xm_region *r, size_t offset, size_t size);
  int (*advise)(const xm_region *r, size_t offset, size_t size, xm_advice advice);
};
struct xm_region {
  const struct xm_region_ops *ops;
  void *ptr;
  size_t size;
  void *owner; /* the mapping or arena; NULL for an external mapping */
};

#include "os.h"

/* ---- mappings (mapping.c) ---------------------------------------------------------------- */
struct xm_mapping {
  xm_mapping_prefix pub;   /* must stay first: the inline accessors read it */
  xm_prot built_prot;      /* the ceiling for xm_mapping_protect */
  xm_prot prot;            /* the whole mapping's protection when page_prot is NULL */
  unsigned char *page_prot; /* per-page protection after a partial xm_mapping_protect, else NULL */
  struct xm_region region;
  struct xm__os_view view; /* what the back end needs to sync, protect and unmap */
};

/* Whether every page of the non-empty range [offset, offset + len) allows need (the mapping's
   protection, or its per-page protection after a partial xm_mapping_protect). */
bool xm__range_allows(const xm_mapping *m, size_t offset, size_t len, xm_prot need);
/* The checks of read/write_slice: NULL, offset past the end (XM_E_INVALID_ADDRESS), protection
   (XM_E_ACCESS); *n gets the count to copy, min(len, size - offset). */
int xm__slice_check(const xm_mapping *m, size_t len, size_t offset, xm_prot need, size_t *n);

/* Builder option bits (xm_builder._private.flags). */
enum {
  XM__OPT_POPULATE = 1u << 0,
  XM__OPT_DONTDUMP = 1u << 1,
  XM__OPT_PRIVATE = 1u << 2,
  XM__OPT_TO_END_OF_FILE = 1u << 3,
  XM__OPT_FIXED_NOREPLACE = 1u << 4,
  XM__OPT_HUGE_PAGES = 1u << 5,
};

/* Shared-memory objects (shm.c). */
struct xm_shm {
  xm_descriptor descriptor;
  uint64_t size;
};

/* ---- shared helpers ---------------------------------------------------------------------- */
/* Checked slice [offset, offset + count) of [addr, addr + size) (slice.c). */
int xm__slice_range(void *addr, size_t size, size_t offset, size_t count, xm_slice *out);
/* Advice on [offset, offset + len) of the size bytes at base, which view maps (or NULL for memory
   the library does not own). A range leaving the region fails with range_status (crosvm uses
   XM_E_INVALID_RANGE for the named helpers and XM_E_INVALID_ADDRESS for region advice). */
int xm__advise_range(void *base, size_t size, size_t offset, size_t len, xm_advice advice,
                     const struct xm__os_view *view, int range_status);
/* "WILLNEED" etc., for messages. */
const char *xm__advice_name(xm_advice advice);
/* Durable write-back of [offset, offset + len) of the size bytes at base (start rounded down to
   the granularity); a range leaving the region fails with range_status. */
int xm__sync_range(void *base, size_t size, size_t offset, size_t len, xm_sync mode,
                   const struct xm__os_view *view, int range_status);

#endif /* XMMAP_INTERNAL_H */
