/* The builder and the mapping: validation, the checked accessors' slow paths, volatile access,
   msync, protection changes and advice. All OS work goes through src/os.h. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* ---- builder ------------------------------------------------------------------------------ */
xm_builder xm_builder_new(size_t size) {
  xm_builder b;
  memset(&b, 0, sizeof b);
  b._private.size = size;
  b._private.source = XM__SOURCE_ANON;
  b._private.descriptor = xm__os_no_descriptor();
  b._private.prot = XM_PROT_READ_WRITE;
  return b;
}

static void set_source(xm_builder *b, enum xm__source source, xm_descriptor d) {
  if (!b) return;
  b->_private.source = (unsigned)source;
  b->_private.descriptor = d;
  b->_private.shm = NULL;
}

void xm_builder_from_file(xm_builder *b, xm_descriptor file) { set_source(b, XM__SOURCE_FILE, file); }
void xm_builder_from_descriptor(xm_builder *b, xm_descriptor d) { set_source(b, XM__SOURCE_DESCRIPTOR, d); }
void xm_builder_from_shm(xm_builder *b, const xm_shm *shm) {
  set_source(b, XM__SOURCE_SHM, shm ? shm->descriptor : xm__os_no_descriptor());
  if (b) b->_private.shm = shm;
}
void xm_builder_offset(xm_builder *b, uint64_t offset) { if (b) b->_private.offset = offset; }
void xm_builder_protection(xm_builder *b, xm_prot prot) { if (b) b->_private.prot = prot; }
void xm_builder_align(xm_builder *b, uint64_t alignment) { if (b) b->_private.align = alignment; }
void xm_builder_populate(xm_builder *b) { if (b) b->_private.flags |= XM__OPT_POPULATE; }
void xm_builder_dontdump(xm_builder *b) { if (b) b->_private.flags |= XM__OPT_DONTDUMP; }
void xm_builder_private(xm_builder *b) { if (b) b->_private.flags |= XM__OPT_PRIVATE; }
void xm_builder_to_end_of_file(xm_builder *b) { if (b) b->_private.flags |= XM__OPT_TO_END_OF_FILE; }
void xm_builder_guard_pages(xm_builder *b, size_t pages) { if (b) b->_private.guard_pages = pages; }
void xm_builder_fixed_noreplace(xm_builder *b, void *addr) {
  if (!b) return;
  b->_private.flags |= XM__OPT_FIXED_NOREPLACE;
  b->_private.fixed_addr = addr;
}
void xm_builder_huge_pages(xm_builder *b, size_t page_size) {
  if (!b) return;
  b->_private.flags |= XM__OPT_HUGE_PAGES;
  b->_private.huge_page_size = page_size;
}

static const struct xm_region_ops mapping_region_ops;

/* The mapping's limits follow its protection: a limit of 0 sends accesses to the slow path. */
static void set_uniform_prot(xm_mapping *m, xm_prot prot) {
  m->prot = prot;
  m->pub.read_limit = (prot & XM_PROT_READ) ? m->pub.size : 0;
  m->pub.write_limit = (prot & XM_PROT_WRITE) ? m->pub.size : 0;
}

static xm_mapping *new_mapping_object(void) {
  xm_mapping *m = calloc(1, sizeof *m);
  if (!m) return NULL;
  m->region.ops = &mapping_region_ops;
  m->region.owner = m;
  m->view.file = xm__os_no_descriptor();
  return m;
}

int xm_builder_build(const xm_builder *b, xm_mapping **out) {
  if (!b || !out) return xm__fail(XM_E_INVALID_ARGUMENT, "builder and out must not be NULL");
  const size_t gran = xm__granularity(), page = xm__page_size();
  enum xm__source source = (enum xm__source)b->_private.source;
  unsigned flags = b->_private.flags;
  size_t size = b->_private.size;
  uint64_t offset = b->_private.offset;
  uint64_t align = b->_private.align;

  if (source > XM__SOURCE_DESCRIPTOR) return xm__fail(XM_E_INVALID_ARGUMENT, "builder is not initialised");
  if (b->_private.prot & ~XM_PROT_READ_WRITE)
    return xm__fail(XM_E_INVALID_ARGUMENT, "protection 0x%x has unknown bits", b->_private.prot);
  if (align != 0 && !xm__is_pow2(align))
    return xm__fail(XM_E_INVALID_ALIGNMENT, "%s: alignment 0x%llx is not a power of two",
                    xm_strerror(XM_E_INVALID_ALIGNMENT), (unsigned long long)align);
  if (align > SIZE_MAX / 2)
    return xm__fail(XM_E_INVALID_ALIGNMENT, "%s: alignment 0x%llx is larger than the address space",
                    xm_strerror(XM_E_INVALID_ALIGNMENT), (unsigned long long)align);
  if (offset > (uint64_t)INT64_MAX)
    return xm__fail(XM_E_INVALID_OFFSET, "%s: offset=%llu", xm_strerror(XM_E_INVALID_OFFSET),
                    (unsigned long long)offset);
  if (source == XM__SOURCE_SHM && !b->_private.shm)
    return xm__fail(XM_E_INVALID_ARGUMENT, "shared-memory object must not be NULL");
  if (source == XM__SOURCE_ANON && (offset != 0 || (flags & XM__OPT_TO_END_OF_FILE)))
    return xm__fail(XM_E_INVALID_ARGUMENT, "an offset or to_end_of_file needs a file or shared-memory source");
  if ((flags & XM__OPT_HUGE_PAGES) && b->_private.huge_page_size != 0 && !xm__is_pow2(b->_private.huge_page_size))
    return xm__fail(XM_E_INVALID_ARGUMENT, "huge page size %zu is not a power of two", b->_private.huge_page_size);
  if ((flags & XM__OPT_FIXED_NOREPLACE) && (uintptr_t)b->_private.fixed_addr % gran != 0)
    return xm__fail(XM_E_NOT_PAGE_ALIGNED, "%s: fixed address %p is not a multiple of %zu bytes",
                    xm_strerror(XM_E_NOT_PAGE_ALIGNED), b->_private.fixed_addr, gran);
  if (b->_private.guard_pages > SIZE_MAX / page / 4)
    return xm__fail(XM_E_INVALID_ARGUMENT, "%zu guard pages are too many", b->_private.guard_pages);

  /* A caller's descriptor is checked by an OS call on it; an xm_shm's was made by the library. */
  if (source == XM__SOURCE_FILE || source == XM__SOURCE_DESCRIPTOR) {
    int rc = xm__os_check_descriptor(source, b->_private.descriptor);
    if (rc) return rc;
  }
  if (flags & XM__OPT_TO_END_OF_FILE) {
    uint64_t file_size = source == XM__SOURCE_SHM ? b->_private.shm->size : 0;
    int rc = source == XM__SOURCE_SHM ? XM_OK : xm__os_descriptor_size(source, b->_private.descriptor, &file_size);
    if (rc) return rc;
    if (offset > file_size)
      return xm__fail(XM_E_INVALID_OFFSET, "%s: offset %llu is past the end of the file (%llu bytes)",
                      xm_strerror(XM_E_INVALID_OFFSET), (unsigned long long)offset, (unsigned long long)file_size);
    if (file_size - offset > SIZE_MAX)
      return xm__fail(XM_E_INVALID_RANGE, "%s: the file's %llu bytes past offset %llu do not fit in memory",
                      xm_strerror(XM_E_INVALID_RANGE), (unsigned long long)(file_size - offset),
                      (unsigned long long)offset);
    size = (size_t)(file_size - offset);
  }

  /* An unaligned offset maps from the boundary below it; the pointer skips the remainder. */
  size_t remainder = (size_t)(offset % gran);
  size_t mapped;
  if (xm__add_overflows(size, remainder, &mapped) || mapped > SIZE_MAX - page)
    return xm__fail(XM_E_OVERFLOW, "address 0x%zx offset by 0x%zx would overflow", size, remainder);

  xm_mapping *m = new_mapping_object();
  if (!m) return xm__fail(XM_E_NO_MEMORY, "out of memory for the mapping object");
  m->built_prot = b->_private.prot;
  if (size == 0) { /* a valid empty mapping: no OS call, pointer NULL */
    set_uniform_prot(m, b->_private.prot);
    *out = m;
    return XM_OK;
  }
  struct xm__map_request req = {
      .source = source,
      .descriptor = b->_private.descriptor,
      .offset = offset - remainder,
      .size = mapped,
      .align = align > gran ? (size_t)align : 0,
      .prot = b->_private.prot,
      .flags = flags,
      .fixed_addr = b->_private.fixed_addr,
      .guard_size = b->_private.guard_pages * page,
      .huge_page_size = b->_private.huge_page_size,
  };
  int rc = xm__os_map(&req, &m->view);
  if (rc) {
    free(m);
    return rc;
  }
  m->pub.base = (unsigned char *)m->view.base + remainder;
  m->pub.size = size;
  set_uniform_prot(m, b->_private.prot);
  m->region.ptr = m->pub.base;
  m->region.size = size;
  *out = m;
  return XM_OK;
}

void *xm_mapping_ptr(const xm_mapping *m) { return m ? m->pub.base : NULL; }
size_t xm_mapping_size(const xm_mapping *m) { return m ? m->pub.size : 0; }

void xm_mapping_free(xm_mapping *m) {
  if (!m) return;
  if (m->view.base) xm__os_unmap(&m->view);
  free(m->page_prot);
  free(m);
}

/* ---- protection bookkeeping ---------------------------------------------------------------- */
/* Offset of the mapping's pointer inside its view (the unaligned offset's remainder). */
static size_t view_skew(const xm_mapping *m) { return (size_t)(m->pub.base - (unsigned char *)m->view.base); }

/* Whether every page of the non-empty range [offset, offset + len) allows need. */
bool xm__range_allows(const xm_mapping *m, size_t offset, size_t len, xm_prot need) {
  if (!m->page_prot) return xm_prot_allows(m->prot, need);
  size_t page = xm__page_size(), skew = view_skew(m);
  size_t first = (skew + offset) / page, last = (skew + offset + len - 1) / page;
  for (size_t i = first; i <= last; i++)
    if (!xm_prot_allows(m->page_prot[i], need)) return false;
  return true;
}

static int fail_access(size_t offset, size_t len, xm_prot need) {
  return xm__fail(XM_E_ACCESS, "%s: %s of %zu bytes at offset %zu", xm_strerror(XM_E_ACCESS),
                  need == XM_PROT_READ ? "read" : "write", len, offset);
}

/* ---- checked accessors: the slow halves ---------------------------------------------------- */
int xm__slice_check(const xm_mapping *m, size_t len, size_t offset, xm_prot need, size_t *n) {
  if (!m) return xm__fail(XM_E_INVALID_ARGUMENT, "mapping must not be NULL");
  if (offset > m->pub.size) return xm__fail_address(offset, len, m->pub.size);
  *n = m->pub.size - offset < len ? m->pub.size - offset : len;
  if (*n && !xm__range_allows(m, offset, *n, need)) return fail_access(offset, *n, need);
  return XM_OK;
}

int xm__mapping_write_slice_slow(const xm_mapping *m, const void *buf, size_t len, size_t offset, size_t *copied) {
  size_t n;
  int rc = xm__slice_check(m, len, offset, XM_PROT_WRITE, &n);
  if (rc) return rc;
  if (n) memcpy(m->pub.base + offset, buf, n);
  if (copied) *copied = n;
  return XM_OK;
}

int xm__mapping_read_slice_slow(const xm_mapping *m, void *buf, size_t len, size_t offset, size_t *copied) {
  size_t n;
  int rc = xm__slice_check(m, len, offset, XM_PROT_READ, &n);
  if (rc) return rc;
  if (n) memcpy(buf, m->pub.base + offset, n);
  if (copied) *copied = n;
  return XM_OK;
}

/* The whole object [offset, offset + size) lies inside the mapping. */
static int obj_range_check(const xm_mapping *m, size_t size, size_t offset) {
  if (!m) return xm__fail(XM_E_INVALID_ARGUMENT, "mapping must not be NULL");
  size_t end;
  if (xm__add_overflows(offset, size, &end) || end > m->pub.size) return xm__fail_address(offset, size, m->pub.size);
  return XM_OK;
}

static int obj_check(const xm_mapping *m, size_t size, size_t offset, xm_prot need) {
  int rc = obj_range_check(m, size, offset);
  if (rc) return rc;
  if (size && !xm__range_allows(m, offset, size, need)) return fail_access(offset, size, need);
  return XM_OK;
}

int xm__mapping_check_obj(const xm_mapping *m, size_t size, size_t offset, xm_prot need) {
  int rc = obj_check(m, size, offset, need);
  return rc ? rc : size == 0 ? 1 : XM_OK;
}

int xm__mapping_get_slice_slow(const xm_mapping *m, size_t offset, size_t count, xm_slice *out) {
  if (!m) return xm__fail(XM_E_INVALID_ARGUMENT, "mapping must not be NULL");
  return xm__slice_range(m->pub.base, m->pub.size, offset, count, out);
}

/* ---- volatile access ------------------------------------------------------------------------ */
/* One access of 1, 2, 4 or 8 bytes at a naturally aligned address. __atomic keeps 8-byte accesses
   single on 32-bit targets too, without libatomic. */
static int volatile_check(const xm_mapping *m, size_t size, size_t offset, xm_prot need) {
  int rc = obj_range_check(m, size, offset); /* range beats alignment */
  if (rc) return rc;
  if ((size != 1 && size != 2 && size != 4 && size != 8) || ((uintptr_t)(m->pub.base + offset) % size) != 0)
    return xm__fail(XM_E_INVALID_ALIGNMENT, "%s: volatile access of %zu bytes at offset %zu needs size 1, 2, 4 "
                    "or 8 at a naturally aligned address", xm_strerror(XM_E_INVALID_ALIGNMENT), size, offset);
  if (!xm__range_allows(m, offset, size, need)) return fail_access(offset, size, need);
  return XM_OK;
}

int xm_mapping_write_obj_volatile(const xm_mapping *m, const void *obj, size_t size, size_t offset) {
  int rc = volatile_check(m, size, offset, XM_PROT_WRITE);
  if (rc) return rc;
  void *p = m->pub.base + offset;
  __atomic_thread_fence(__ATOMIC_SEQ_CST);
  switch (size) {
  case 1: { uint8_t v; memcpy(&v, obj, 1); __atomic_store_n((uint8_t *)p, v, __ATOMIC_RELAXED); break; }
  case 2: { uint16_t v; memcpy(&v, obj, 2); __atomic_store_n((uint16_t *)p, v, __ATOMIC_RELAXED); break; }
  case 4: { uint32_t v; memcpy(&v, obj, 4); __atomic_store_n((uint32_t *)p, v, __ATOMIC_RELAXED); break; }
  default: { uint64_t v; memcpy(&v, obj, 8); __atomic_store_n((uint64_t *)p, v, __ATOMIC_RELAXED); break; }
  }
  return XM_OK;
}

int xm_mapping_read_obj_volatile(const xm_mapping *m, void *obj, size_t size, size_t offset) {
  int rc = volatile_check(m, size, offset, XM_PROT_READ);
  if (rc) return rc;
  void *p = m->pub.base + offset;
  switch (size) {
  case 1: { uint8_t v = __atomic_load_n((uint8_t *)p, __ATOMIC_RELAXED); memcpy(obj, &v, 1); break; }
  case 2: { uint16_t v = __atomic_load_n((uint16_t *)p, __ATOMIC_RELAXED); memcpy(obj, &v, 2); break; }
  case 4: { uint32_t v = __atomic_load_n((uint32_t *)p, __ATOMIC_RELAXED); memcpy(obj, &v, 4); break; }
  default: { uint64_t v = __atomic_load_n((uint64_t *)p, __ATOMIC_RELAXED); memcpy(obj, &v, 8); break; }
  }
  return XM_OK;
}

/* ---- write-back ----------------------------------------------------------------------------- */
/* A range leaving the region: InvalidRange with its details, or crosvm's InvalidAddress. */
static int fail_outside(size_t offset, size_t len, size_t size, int range_status) {
  return range_status == XM_E_INVALID_RANGE ? xm__fail_range(offset, len, size) : xm__fail_address(offset, len, size);
}

int xm__sync_range(void *base, size_t size, size_t offset, size_t len, xm_sync mode,
                   const struct xm__os_view *view, int range_status) {
  if (!xm__range_inside(offset, len, size)) return fail_outside(offset, len, size, range_status);
  if (mode != XM_SYNC_ASYNC && mode != XM_SYNC_SYNC)
    return xm__fail(XM_E_INVALID_ARGUMENT, "unknown sync mode %d", (int)mode);
  if (len == 0) return XM_OK;
  uintptr_t start = (uintptr_t)base + offset;
  uintptr_t aligned = xm__align_down(start, xm__page_size()); /* FlushViewOfFile rounds further itself */
  return xm__os_sync(view, (void *)aligned, len + (size_t)(start - aligned), mode);
}

int xm_mapping_msync(const xm_mapping *m) {
  if (!m) return xm__fail(XM_E_INVALID_ARGUMENT, "mapping must not be NULL");
  if (!m->view.base) return XM_OK;
  return xm__os_sync(&m->view, m->view.base, m->view.size, XM_SYNC_SYNC);
}

int xm_mapping_sync_range(const xm_mapping *m, size_t offset, size_t len, xm_sync mode) {
  if (!m) return xm__fail(XM_E_INVALID_ARGUMENT, "mapping must not be NULL");
  return xm__sync_range(m->pub.base, m->pub.size, offset, len, mode, &m->view, XM_E_INVALID_RANGE);
}

/* ---- protection changes --------------------------------------------------------------------- */
int xm_mapping_protect(xm_mapping *m, size_t offset, size_t len, xm_prot prot) {
  if (!m) return xm__fail(XM_E_INVALID_ARGUMENT, "mapping must not be NULL");
  if (prot & ~XM_PROT_READ_WRITE) return xm__fail(XM_E_INVALID_ARGUMENT, "protection 0x%x has unknown bits", prot);
  if (!xm__range_inside(offset, len, m->pub.size)) return xm__fail_range(offset, len, m->pub.size);
  if (!xm_prot_allows(m->built_prot, prot))
    return xm__fail(XM_E_ACCESS, "%s: protection 0x%x is above the 0x%x the mapping was built with",
                    xm_strerror(XM_E_ACCESS), prot, m->built_prot);
  if (len == 0) return XM_OK;
  /* Protection is per page: every page the range touches changes. */
  size_t page = xm__page_size(), skew = view_skew(m);
  size_t first = (skew + offset) / page, last = (skew + offset + len - 1) / page;
  size_t npages = (m->view.size + page - 1) / page;
  bool whole = first == 0 && last + 1 == npages;
  unsigned char *pages = m->page_prot;
  if (!whole && !pages) { /* allocate before the OS call so failure changes nothing */
    pages = malloc(npages);
    if (!pages) return xm__fail(XM_E_NO_MEMORY, "out of memory for page protection bookkeeping");
    memset(pages, (int)m->prot, npages);
  }
  int rc = xm__os_protect(&m->view, (unsigned char *)m->view.base + first * page, (last - first + 1) * page, prot);
  if (rc) {
    if (pages != m->page_prot) free(pages);
    return rc;
  }
  if (whole) {
    free(m->page_prot);
    m->page_prot = NULL;
    set_uniform_prot(m, prot);
    return XM_OK;
  }
  memset(pages + first, (int)prot, last - first + 1);
  m->page_prot = pages;
  m->pub.read_limit = 0; /* mixed protection: every access takes the exact slow path */
  m->pub.write_limit = 0;
  return XM_OK;
}

/* ---- advice --------------------------------------------------------------------------------- */
const char *xm__advice_name(xm_advice advice) {
  static const char *const names[] = {"NORMAL", "RANDOM", "SEQUENTIAL", "WILLNEED", "DONTNEED", "REMOVE",
                                      "DONTFORK", "DOFORK", "HUGEPAGE", "NOHUGEPAGE", "DONTDUMP", "DODUMP",
                                      "MERGEABLE", "UNMERGEABLE", "COLD", "PAGEOUT", "POPULATE_READ",
                                      "POPULATE_WRITE"};
  return (unsigned)advice < sizeof names / sizeof names[0] ? names[advice] : "unknown";
}

int xm__advise_range(void *base, size_t size, size_t offset, size_t len, xm_advice advice,
                     const struct xm__os_view *view, int range_status) {
  if ((unsigned)advice > XM_ADVICE_POPULATE_WRITE) return xm__fail(XM_E_INVALID_ARGUMENT, "unknown advice %d", (int)advice);
  if (!xm__range_inside(offset, len, size)) return fail_outside(offset, len, size, range_status);
  if (len == 0) return XM_OK;
  size_t page = xm__page_size();
  uintptr_t start = (uintptr_t)base + offset;
  if (advice == XM_ADVICE_DONTNEED || advice == XM_ADVICE_REMOVE) {
    /* Destructive advice acts on whole pages: never widen it onto bytes the caller did not name. */
    bool end_ok = offset + len == size || (start + len) % page == 0;
    if (start % page != 0 || !end_ok)
      return xm__fail(XM_E_NOT_PAGE_ALIGNED, "%s: MADV_%s needs a page-aligned range, got offset=%zu count=%zu",
                      xm_strerror(XM_E_NOT_PAGE_ALIGNED), xm__advice_name(advice), offset, len);
  }
  uintptr_t aligned = xm__align_down(start, page);
  return xm__os_advise(view, (void *)aligned, len + (size_t)(start - aligned), advice);
}

int xm_mapping_advise(const xm_mapping *m, size_t offset, size_t len, xm_advice advice) {
  if (!m) return xm__fail(XM_E_INVALID_ARGUMENT, "mapping must not be NULL");
  return xm__advise_range(m->pub.base, m->pub.size, offset, len, advice, &m->view, XM_E_INVALID_RANGE);
}

int xm_mapping_use_hugepages(const xm_mapping *m) {
  if (!m) return xm__fail(XM_E_INVALID_ARGUMENT, "mapping must not be NULL");
  size_t pmd = xm__os_thp_size();
  if (pmd && m->pub.size < pmd) return XM_OK; /* too small for a huge page: nothing to ask */
  return xm_mapping_advise(m, 0, m->pub.size, XM_ADVICE_HUGEPAGE);
}

int xm_mapping_use_dontfork(const xm_mapping *m) {
  if (!m) return xm__fail(XM_E_INVALID_ARGUMENT, "mapping must not be NULL");
  return xm_mapping_advise(m, 0, m->pub.size, XM_ADVICE_DONTFORK);
}

int xm_mapping_remove_range(const xm_mapping *m, size_t offset, size_t count) {
  return xm_mapping_advise(m, offset, count, XM_ADVICE_REMOVE);
}

int xm_mapping_async_prefetch(const xm_mapping *m, size_t offset, size_t count) {
  return xm_mapping_advise(m, offset, count, XM_ADVICE_WILLNEED);
}

int xm_mapping_drop_page_cache(const xm_mapping *m, size_t offset, size_t count) {
  return xm_mapping_advise(m, offset, count, XM_ADVICE_DONTNEED);
}

/* Page-rounded [offset, offset + count) for locking; XM_OK with *len 0 for an empty range. */
static int lock_range(const xm_mapping *m, size_t offset, size_t count, void **addr, size_t *len) {
  if (!m) return xm__fail(XM_E_INVALID_ARGUMENT, "mapping must not be NULL");
  if (!xm__range_inside(offset, count, m->pub.size)) return xm__fail_range(offset, count, m->pub.size);
  uintptr_t start = (uintptr_t)m->pub.base + offset;
  uintptr_t aligned = xm__align_down(start, xm__page_size());
  *addr = (void *)aligned;
  *len = count ? count + (size_t)(start - aligned) : 0;
  return XM_OK;
}

int xm_mapping_lock_on_fault(const xm_mapping *m, size_t offset, size_t count) {
  void *addr = NULL;
  size_t len = 0;
  int rc = lock_range(m, offset, count, &addr, &len);
  if (rc || len == 0) return rc;
  return xm__os_lock(addr, len);
}

int xm_mapping_unlock(const xm_mapping *m, size_t offset, size_t count) {
  void *addr = NULL;
  size_t len = 0;
  int rc = lock_range(m, offset, count, &addr, &len);
  if (rc || len == 0) return rc;
  return xm__os_unlock(addr, len);
}

/* ---- the mapping as a region ---------------------------------------------------------------- */
static int mapping_region_msync(const xm_region *r, size_t offset, size_t size) {
  const xm_mapping *m = r->owner;
  return xm__sync_range(m->pub.base, m->pub.size, offset, size, XM_SYNC_SYNC, &m->view, XM_E_INVALID_ADDRESS);
}

static int mapping_region_advise(const xm_region *r, size_t offset, size_t size, xm_advice advice) {
  const xm_mapping *m = r->owner;
  return xm__advise_range(m->pub.base, m->pub.size, offset, size, advice, &m->view, XM_E_INVALID_ADDRESS);
}

static const struct xm_region_ops mapping_region_ops = {
    .msync = mapping_region_msync,
    .advise = mapping_region_advise,
};

xm_region *xm_mapping_region(xm_mapping *m) { return m ? &m->region : NULL; }
