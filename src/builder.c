/* The builder: a plain value that collects options, and xm_builder_build, which validates all of
   them before any OS call and hands one request to the back end. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

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
void xm_builder_offset(xm_builder *b, uint64_t offset) {
  if (b) b->_private.offset = offset;
}
void xm_builder_protection(xm_builder *b, xm_prot prot) {
  if (b) b->_private.prot = prot;
}
void xm_builder_align(xm_builder *b, uint64_t alignment) {
  if (b) b->_private.align = alignment;
}
void xm_builder_populate(xm_builder *b) {
  if (b) b->_private.flags |= XM__OPT_POPULATE;
}
void xm_builder_dontdump(xm_builder *b) {
  if (b) b->_private.flags |= XM__OPT_DONTDUMP;
}
void xm_builder_private(xm_builder *b) {
  if (b) b->_private.flags |= XM__OPT_PRIVATE;
}
void xm_builder_to_end_of_file(xm_builder *b) {
  if (b) b->_private.flags |= XM__OPT_TO_END_OF_FILE;
}
void xm_builder_guard_pages(xm_builder *b, size_t pages) {
  if (b) b->_private.guard_pages = pages;
}
void xm_builder_fixed_noreplace(xm_builder *b, void *addr) {
  if (!b) return;
  b->_private.flags |= XM__OPT_FIXED_NOREPLACE;
  b->_private.fixed_addr = addr;
}
void xm_builder_address_range(xm_builder *b, uintptr_t lo, uintptr_t hi) {
  if (!b) return;
  b->_private.flags |= XM__OPT_ADDRESS_RANGE;
  b->_range[0] = lo;
  b->_range[1] = hi;
}
void xm_builder_huge_pages(xm_builder *b, size_t page_size) {
  if (!b) return;
  b->_private.flags |= XM__OPT_HUGE_PAGES;
  b->_private.huge_page_size = page_size;
}

/* A fixed address: never NULL (which would read as "anywhere"), a multiple of the granularity
   and of the alignment, with room for the guard pages on both sides. Only the exact range,
   guards included, may then be refused as taken. */
static int check_fixed(const xm_builder *b, size_t gran, size_t page, uint64_t align) {
  uintptr_t at = (uintptr_t)b->_private.fixed_addr;
  size_t guard = b->_private.guard_pages * page, size = b->_private.size, end;
  if (at == 0) return xm__fail(XM_E_INVALID_ARGUMENT, "fixed address must not be NULL");
  if (at % gran != 0)
    return xm__fail(XM_E_NOT_PAGE_ALIGNED, "fixed address %p is not a multiple of %zu bytes", b->_private.fixed_addr,
                    gran);
  if (align != 0 && at % align != 0)
    return xm__fail(XM_E_INVALID_ALIGNMENT, "fixed address %p is not a multiple of the alignment 0x%llx",
                    b->_private.fixed_addr, (unsigned long long)align);
  if (at <= guard)
    return xm__fail(XM_E_INVALID_ADDRESS, "no room for %zu guard bytes below the fixed address %p", guard,
                    b->_private.fixed_addr);
  if (xm__add_overflows(size, 2 * guard + page, &end) || at > UINTPTR_MAX - end)
    return xm__fail(XM_E_INVALID_ADDRESS, "fixed address %p + %zu bytes and guards passes the address space",
                    b->_private.fixed_addr, size);
  return XM_OK;
}

/* An address range: not with a fixed address, not empty, and with room for the mapping and its
   guards in the whole granules inside it (*lo, *hi: those granules). The size is checked once
   known, in room_in_range. */
static int check_range(const xm_builder *b, unsigned flags, size_t gran, uintptr_t *lo, uintptr_t *hi) {
  const uint64_t want_lo = b->_range[0], want_hi = b->_range[1];
  if (flags & XM__OPT_FIXED_NOREPLACE)
    return xm__fail(XM_E_INVALID_ARGUMENT, "an address range and a fixed address exclude each other");
  if (want_lo >= want_hi || want_hi > UINTPTR_MAX)
    return xm__fail(XM_E_INVALID_ARGUMENT, "address range [0x%llx, 0x%llx) is empty or past the address space",
                    (unsigned long long)want_lo, (unsigned long long)want_hi);
  *lo = want_lo > UINTPTR_MAX - (gran - 1) ? 0 : xm__align_down((uintptr_t)want_lo + gran - 1, gran);
  *hi = xm__align_down((uintptr_t)want_hi, gran);
  if (*lo == 0 && want_lo != 0) *hi = 0;
  return XM_OK;
}

static int room_in_range(uintptr_t lo, uintptr_t hi, size_t mapped, size_t guard, size_t gran) {
  size_t need = mapped;
  if (need > SIZE_MAX - 2 * guard - gran) return xm__fail_overflow(mapped, 2 * guard);
  need = xm__align_down(need + gran - 1, gran) + 2 * guard;
  if (lo >= hi || hi - lo < need)
    return xm__fail(XM_E_INVALID_ARGUMENT,
                    "address range [%p, %p) holds no %zu bytes (guards included) in whole %zu-byte units", (void *)lo,
                    (void *)hi, need, gran);
  return XM_OK;
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
  if (b->_private.prot & ~XM__PROT_ALL)
    return xm__fail(XM_E_INVALID_ARGUMENT, "protection 0x%x has unknown bits", b->_private.prot);
  if (align != 0 && !xm__is_pow2(align))
    return xm__fail(XM_E_INVALID_ALIGNMENT, "alignment 0x%llx is not a power of two", (unsigned long long)align);
  if (align > SIZE_MAX / 2)
    return xm__fail(XM_E_INVALID_ALIGNMENT, "alignment 0x%llx is larger than the address space",
                    (unsigned long long)align);
  if (offset > (uint64_t)INT64_MAX ||
      (source != XM__SOURCE_ANON && !(flags & XM__OPT_TO_END_OF_FILE) && size > (uint64_t)INT64_MAX - offset))
    return xm__fail(XM_E_INVALID_OFFSET, "offset=%llu size=%zu passes the off_t range", (unsigned long long)offset,
                    size);
  if (source == XM__SOURCE_SHM && !b->_private.shm)
    return xm__fail(XM_E_INVALID_ARGUMENT, "shared-memory object must not be NULL");
  /* The library's exec policy (shared memory, guest RAM, runs no code unless made for it) and a
     read-only clone's (a private mapping writes a copy, which it allows). */
  if (source == XM__SOURCE_SHM) {
    int rc = xm__shm_check_policy(b->_private.shm->flags,
                                  (flags & XM__OPT_PRIVATE) ? b->_private.prot & ~XM_PROT_WRITE : b->_private.prot);
    if (rc) return rc;
  }
  if (source == XM__SOURCE_ANON && (offset != 0 || (flags & XM__OPT_TO_END_OF_FILE)))
    return xm__fail(XM_E_INVALID_ARGUMENT, "an offset or to_end_of_file needs a file or shared-memory source");
  if ((flags & XM__OPT_HUGE_PAGES) && b->_private.huge_page_size != 0 && !xm__is_pow2(b->_private.huge_page_size))
    return xm__fail(XM_E_INVALID_ARGUMENT, "huge page size %zu is not a power of two", b->_private.huge_page_size);
  if (b->_private.guard_pages > SIZE_MAX / page / 4)
    return xm__fail(XM_E_INVALID_ARGUMENT, "%zu guard pages are too many", b->_private.guard_pages);
  if (flags & XM__OPT_FIXED_NOREPLACE) {
    int rc = check_fixed(b, gran, page, align);
    if (rc) return rc;
  }
  uintptr_t range_lo = 0, range_hi = 0;
  if (flags & XM__OPT_ADDRESS_RANGE) {
    int rc = check_range(b, flags, gran, &range_lo, &range_hi);
    if (rc) return rc;
  }

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
      return xm__fail(XM_E_INVALID_OFFSET, "offset %llu is past the end of the file (%llu bytes)",
                      (unsigned long long)offset, (unsigned long long)file_size);
    if (file_size - offset > SIZE_MAX)
      return xm__fail(XM_E_INVALID_RANGE, "the file's %llu bytes past offset %llu do not fit in memory",
                      (unsigned long long)(file_size - offset), (unsigned long long)offset);
    size = (size_t)(file_size - offset);
  }

  /* A huge-page object maps in whole huge pages only. */
  const size_t huge = source == XM__SOURCE_SHM ? b->_private.shm->huge_page_size : 0;
  if (huge && (offset % huge != 0 || size % huge != 0))
    return xm__fail(XM_E_NOT_PAGE_ALIGNED, "offset %llu and size %zu: the object's huge page is %zu bytes",
                    (unsigned long long)offset, size, huge);

  /* An unaligned offset maps from the boundary below it; the pointer skips the remainder. */
  size_t remainder = (size_t)(offset % gran);
  size_t mapped;
  if (xm__add_overflows(size, remainder, &mapped) || mapped > SIZE_MAX - page)
    return xm__fail_overflow(size, remainder);

  if ((flags & XM__OPT_ADDRESS_RANGE) && size != 0) {
    int rc = room_in_range(range_lo, range_hi, mapped, b->_private.guard_pages * page, gran);
    if (rc) return rc;
  }

  xm_mapping *m = xm__mapping_new();
  if (!m) return xm__fail(XM_E_NO_MEMORY, "out of memory for the mapping object");
  m->built_prot = b->_private.prot;
  if (size == 0) { /* a valid empty mapping: no OS call, pointer NULL */
    xm__mapping_set_prot(m, b->_private.prot);
    *out = m;
    return XM_OK;
  }
  struct xm__map_request req = {
      .source = source,
      .descriptor = b->_private.descriptor,
      .offset = offset - remainder,
      .size = mapped,
      .align = align > gran && !(flags & XM__OPT_FIXED_NOREPLACE) ? (size_t)align : 0, /* a fixed address is aligned */
      .prot = b->_private.prot,
      .flags = flags,
      .fixed_addr = b->_private.fixed_addr,
      .guard_size = b->_private.guard_pages * page,
      .huge_page_size = b->_private.huge_page_size,
      .range_lo = range_lo,
      .range_hi = range_hi,
  };
  int rc = xm__os_map(&req, &m->view);
  if (rc) {
    free(m);
    return rc;
  }
  m->pub.base = (unsigned char *)m->view.base + remainder;
  m->pub.size = size;
  xm__mapping_set_prot(m, b->_private.prot);
  m->region.ptr = m->pub.base;
  m->region.size = size;
  *out = m;
  return XM_OK;
}
