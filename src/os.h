/* The OS contract: the few primitives each back end (src/posix, src/windows) implements.
 *
 * The front end validates every argument before it calls down here, so these functions assume
 * their documented pre-conditions. Every function that returns int returns XM_OK or a status that
 * it has already recorded with xm__fail_os() / xm__fail() (so xm_errmsg() and xm_os_error() are
 * set), and on failure it has released everything it took. Nothing here allocates front-end
 * objects. Modelled on mimalloc's prim.h. */
#ifndef XMMAP_OS_H
#define XMMAP_OS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "xmmap/xmmap.h"

/* ---- facts: called once by facts.c, which caches them ---------------------------------------- */
size_t xm__os_page_size(void);
/* The unit of mapping offsets and fixed addresses (64 KiB on Windows, the page size on POSIX). */
size_t xm__os_granularity(void);
const char *xm__os_backend_name(void);
/* The data-cache line size the OS reports, or 0 when it reports none; *source names where it
   came from (a static string). */
size_t xm__os_cacheline(const char **source);
/* The errno / GetLastError() value of the calling thread's last failed OS call. */
int xm__os_last_error(void);
/* The OS's text for an error number, without trailing newline or period. */
void xm__os_error_text(int os_error, char *buf, size_t len);
/* The value meaning "no descriptor" (-1 / NULL). */
xm_descriptor xm__os_no_descriptor(void);

/* ---- mappings ---------------------------------------------------------------------------------- */
enum xm__source {
  XM__SOURCE_ANON,       /* anonymous shared memory */
  XM__SOURCE_FILE,       /* a regular file: fd, or a file HANDLE on Windows */
  XM__SOURCE_SHM,        /* an xm_shm's descriptor (fd / section handle) */
  XM__SOURCE_DESCRIPTOR, /* POSIX: any fd; Windows: a section handle */
};

struct xm__map_request {
  enum xm__source source;
  xm_descriptor descriptor; /* unused for XM__SOURCE_ANON */
  uint64_t offset;          /* a multiple of xm__os_granularity(), <= INT64_MAX */
  size_t size;              /* > 0: bytes mapped from offset (whole pages are mapped) */
  size_t align;             /* 0, or a power of two > the granularity: alignment of the base */
  xm_prot prot;
  unsigned flags;           /* XM__OPT_* of internal.h: populate, dontdump, private, noreplace, huge */
  void *fixed_addr;         /* with XM__OPT_FIXED_NOREPLACE: granularity-aligned address */
  size_t guard_size;        /* bytes of inaccessible guard space before and after (page multiple) */
  size_t huge_page_size;    /* with XM__OPT_HUGE_PAGES: 0 = the default huge page size */
};

/* What the back end needs to sync, protect, advise and unmap a mapping. */
struct xm__os_view {
  void *base;               /* the first mapped byte (granularity-aligned) */
  size_t size;              /* the mapped length */
  void *reservation;        /* the whole address range taken, guard pages included */
  size_t reservation_size;
  xm_descriptor file;       /* Windows: the mapping's own duplicate of the file handle, else none */
  void *section;            /* Windows: the section handle when the view owns it, else NULL */
  unsigned flags;           /* back-end bits, e.g. the view is file-backed, the file is writable */
};

/* Checks that the caller's descriptor is valid for this source by an OS call on the descriptor
   itself (fstat / DuplicateHandle), before anything else is tried. */
int xm__os_check_descriptor(enum xm__source source, xm_descriptor d);
/* The size of a file or shared-memory object. */
int xm__os_descriptor_size(enum xm__source source, xm_descriptor d, uint64_t *size);
/* Maps what req asks for; on success *view describes it. */
int xm__os_map(const struct xm__map_request *req, struct xm__os_view *view);
/* Unmaps and releases everything view holds; never fails (errors are ignored). */
void xm__os_unmap(struct xm__os_view *view);
/* Writes [addr, addr + len) back to the file. addr is page-aligned and inside the view. */
int xm__os_sync(const struct xm__os_view *view, void *addr, size_t len, xm_sync mode);
/* Changes the protection of [addr, addr + len); addr and len are page multiples. */
int xm__os_protect(const struct xm__os_view *view, void *addr, size_t len, xm_prot prot);
/* Applies advice to [addr, addr + len); addr page-aligned. view may be NULL (external memory).
   XM_E_NOT_IMPLEMENTED where the OS has no equivalent, never a silent success. */
int xm__os_advise(const struct xm__os_view *view, void *addr, size_t len, xm_advice advice);
/* Locks [addr, addr + len) in memory: on fault where the OS can (mlock2 MLOCK_ONFAULT), else at
   once (VirtualLock). */
int xm__os_lock(void *addr, size_t len);
int xm__os_unlock(void *addr, size_t len);
/* The huge-page (PMD) size of transparent huge pages, 0 when there are none. */
size_t xm__os_thp_size(void);

/* ---- shared memory ----------------------------------------------------------------------------- */
/* A new close-on-exec / non-inheritable shared-memory object; name has no NUL inside, size is
   <= INT64_MAX. */
int xm__os_shm_create(const char *name, uint64_t size, xm_descriptor *out);
/* Duplicates a descriptor, close-on-exec / non-inheritable. */
int xm__os_dup(xm_descriptor d, xm_descriptor *out);
void xm__os_close(xm_descriptor d);
int xm__os_shm_get_seals(xm_descriptor d, unsigned *seals);
int xm__os_shm_add_seals(xm_descriptor d, unsigned seals);

/* ---- fault-injection seam (test builds only) --------------------------------------------------- */
/* Back ends call this before each OS primitive; when it returns true they act as if the call
   failed with *os_error (set errno / SetLastError to it). Release builds compile it away. */
#ifdef XMMAP_TEST_HOOKS
bool xm__os_inject_failure(int *os_error);
#else
static inline bool xm__os_inject_failure(int *os_error) {
  (void)os_error;
  return false;
}
#endif

#endif /* XMMAP_OS_H */
