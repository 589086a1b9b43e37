/* The mapping object: the checked accessors' slow paths, volatile access, msync, protection
   changes, advice and locking. All OS work goes through src/os.h. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "plain_atomic.h"

static const struct xm_region_ops mapping_region_ops;

/* The mapping's limits follow its protection: a limit of 0 sends accesses to the slow path. */
void xm__mapping_set_prot(xm_mapping *m, xm_prot prot) {
  m->prot = (unsigned char)prot;
  m->pub.read_limit = (prot & XM_PROT_READ) ? m->pub.size : 0;
  m->pub.write_limit = (prot & XM_PROT_WRITE) ? m->pub.size : 0;
}

xm_mapping *xm__mapping_new(void) {
  xm_mapping *m = calloc(1, sizeof *m);
  if (!m) return NULL;
  m->region.ops = &mapping_region_ops;
  m->region.owner = m;
  m->view.file = xm__os_no_descriptor();
  return m;
}

void *xm_mapping_ptr(const xm_mapping *m) { return m ? m->pub.base : NULL; }
size_t xm_mapping_size(const xm_mapping *m) { return m ? m->pub.size : 0; }

void xm_mapping_free(xm_mapping *m) {
  if (!m) return;
  if (m->view.base) xm__os_unmap(&m->view);
  free(m->page_prot);
  free(m);
}

/* ---- checked accessors: the slow halves ---------------------------------------------------- */
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
  if (size && !xm__range_allows(m, offset, size, need)) return xm__fail_access(offset, size, need);
  return XM_OK;
}

int xm__mapping_check_obj(const xm_mapping *m, size_t size, size_t offset, xm_prot need) {
  int rc = obj_check(m, size, offset, need);
  return rc ? rc : size == 0 ? 1 : XM_OK;
}

/* A slice is plain memory to whoever holds it: it needs read access to every byte (a slice of
   memory that faults on reading would make xm_slice_copy_to crash). */
int xm__mapping_get_slice_slow(const xm_mapping *m, size_t offset, size_t count, xm_slice *out) {
  if (!m || !out) return xm__fail(XM_E_INVALID_ARGUMENT, "mapping and out must not be NULL");
  xm_slice s;
  int rc = xm__slice_range(m->pub.base, m->pub.size, offset, count, &s);
  if (rc) return rc;
  if (count && !xm__range_allows(m, offset, count, XM_PROT_READ)) return xm__fail_access(offset, count, XM_PROT_READ);
  *out = s;
  return XM_OK;
}

/* ---- volatile access ------------------------------------------------------------------------ */
/* One access of 1, 2, 4 or 8 bytes at a naturally aligned address. With gcc and clang __atomic
   keeps 8-byte accesses single on 32-bit targets too, without libatomic (src/plain_atomic.h). */
static int volatile_check(const xm_mapping *m, const void *obj, size_t size, size_t offset, xm_prot need) {
  int rc = obj_range_check(m, size, offset); /* range beats alignment */
  if (rc) return rc;
  if (!obj) return xm__fail(XM_E_INVALID_ARGUMENT, "object must not be NULL");
  if ((size != 1 && size != 2 && size != 4 && size != 8) || ((uintptr_t)(m->pub.base + offset) % size) != 0)
    return xm__fail(XM_E_INVALID_ALIGNMENT,
                    "volatile access of %zu bytes at offset %zu needs size 1, 2, 4 or 8 at a "
                    "naturally aligned address",
                    size, offset);
  if (!xm__range_allows(m, offset, size, need)) return xm__fail_access(offset, size, need);
  return XM_OK;
}

int xm_mapping_write_obj_volatile(const xm_mapping *m, const void *obj, size_t size, size_t offset) {
  int rc = volatile_check(m, obj, size, offset, XM_PROT_WRITE);
  if (rc) return rc;
  void *p = m->pub.base + offset;
  atomic_thread_fence(memory_order_seq_cst);
  switch (size) {
  case 1: {
    uint8_t v;
    memcpy(&v, obj, 1);
    XM__PLAIN_RELAXED_STORE(uint8_t, p, v);
    break;
  }
  case 2: {
    uint16_t v;
    memcpy(&v, obj, 2);
    XM__PLAIN_RELAXED_STORE(uint16_t, p, v);
    break;
  }
  case 4: {
    uint32_t v;
    memcpy(&v, obj, 4);
    XM__PLAIN_RELAXED_STORE(uint32_t, p, v);
    break;
  }
  default: {
    uint64_t v;
    memcpy(&v, obj, 8);
    xm__plain_store_u64(p, v);
    break;
  }
  }
  return XM_OK;
}

int xm_mapping_read_obj_volatile(const xm_mapping *m, void *obj, size_t size, size_t offset) {
  int rc = volatile_check(m, obj, size, offset, XM_PROT_READ);
  if (rc) return rc;
  void *p = m->pub.base + offset;
  switch (size) {
  case 1: {
    uint8_t v = XM__PLAIN_RELAXED_LOAD(uint8_t, p);
    memcpy(obj, &v, 1);
    break;
  }
  case 2: {
    uint16_t v = XM__PLAIN_RELAXED_LOAD(uint16_t, p);
    memcpy(obj, &v, 2);
    break;
  }
  case 4: {
    uint32_t v = XM__PLAIN_RELAXED_LOAD(uint32_t, p);
    memcpy(obj, &v, 4);
    break;
  }
  default: {
    uint64_t v = xm__plain_load_u64(p);
    memcpy(obj, &v, 8);
    break;
  }
  }
  return XM_OK;
}

/* ---- write-back ----------------------------------------------------------------------------- */
int xm_mapping_msync(const xm_mapping *m) {
  if (!m) return xm__fail(XM_E_INVALID_ARGUMENT, "mapping must not be NULL");
  if (!m->view.base) return XM_OK;
  return xm__os_sync(&m->view, m->view.base, m->view.size, XM_SYNC_SYNC);
}

int xm_mapping_sync_range(const xm_mapping *m, size_t offset, size_t len, xm_sync mode) {
  if (!m) return xm__fail(XM_E_INVALID_ARGUMENT, "mapping must not be NULL");
  return xm__sync_range(m->pub.base, m->pub.size, offset, len, mode, &m->view, XM_E_INVALID_RANGE);
}

/* ---- protection changes ------------------------------------------------------------------------
   Other threads may read the bookkeeping while it changes (accessors, safe copies): it is lowered
   before the OS protection is lowered and raised only after the OS raised it, so it never allows
   more than the OS does; a safe copy racing a lowering gets XM_E_ACCESS or XM_E_FAULT. */
static void store_prot(unsigned char *at, xm_prot prot) {
  XM__PLAIN_RELAXED_STORE(unsigned char, at, (unsigned char)prot);
}

/* The inline accessors' limits: the whole size where the uniform protection allows, else 0 (the
   slow path, which checks each page). */
static void update_limits(xm_mapping *m) {
  bool uniform = !XM__PLAIN_RELAXED_LOAD(bool, &m->mixed);
  xm_prot prot = m->prot;
  XM__PLAIN_RELAXED_STORE(size_t, &m->pub.read_limit, uniform && (prot & XM_PROT_READ) ? m->pub.size : 0);
  XM__PLAIN_RELAXED_STORE(size_t, &m->pub.write_limit, uniform && (prot & XM_PROT_WRITE) ? m->pub.size : 0);
}

/* One change at a time (hooks on several threads lift pages of one mapping at once). The holder
   only makes OS calls, never touches mapped memory, so no fault hook can wait for itself here. */
static void protect_lock(xm_mapping *m) {
  while (atomic_flag_test_and_set_explicit(&m->protect_lock, memory_order_acquire))
    xm__os_yield();
}
static void protect_unlock(xm_mapping *m) { atomic_flag_clear_explicit(&m->protect_lock, memory_order_release); }

static int protect_locked(xm_mapping *m, size_t offset, size_t len, xm_prot prot);

int xm_mapping_protect(xm_mapping *m, size_t offset, size_t len, xm_prot prot) {
  if (!m) return xm__fail(XM_E_INVALID_ARGUMENT, "mapping must not be NULL");
  if (prot & ~XM__PROT_ALL) return xm__fail(XM_E_INVALID_ARGUMENT, "protection 0x%x has unknown bits", prot);
  if (!xm__range_inside(offset, len, m->pub.size)) return xm__fail_range(offset, len, m->pub.size);
  if (!xm_prot_allows(m->built_prot, prot))
    return xm__fail(XM_E_ACCESS, "protection 0x%x is above the 0x%x the mapping was built with", prot, m->built_prot);
  if (len == 0) return XM_OK;
  protect_lock(m);
  int rc = protect_locked(m, offset, len, prot);
  protect_unlock(m);
  return rc;
}

static int protect_locked(xm_mapping *m, size_t offset, size_t len, xm_prot prot) {
  /* Protection is per page: every page the range touches changes. */
  size_t page = xm__page_size(), skew = xm__view_skew(m);
  size_t first = (skew + offset) / page, last = (skew + offset + len - 1) / page;
  size_t npages = (m->view.size + page - 1) / page, n = last - first + 1;
  bool whole = n == npages, was_mixed = m->mixed;
  /* Everything that can fail before the OS call, so that a failure changes nothing. The page
     table's second half keeps the old values for a rollback: only the first partial change of a
     mapping allocates (a fault hook's later changes do not). */
  if (!whole && !m->page_prot) {
    m->page_prot = malloc(2 * npages);
    if (!m->page_prot) return xm__fail(XM_E_NO_MEMORY, "out of memory for page protection bookkeeping");
  }
  unsigned char *saved = was_mixed ? m->page_prot + npages : NULL;
  xm_prot old = m->prot;
  if (was_mixed) {
    for (size_t i = 0; i < n; i++)
      saved[i] = m->page_prot[first + i];
  } else if (!whole) {
    for (size_t i = 0; i < npages; i++)
      store_prot(&m->page_prot[i], old); /* unread while uniform */
  }
  /* Lower first: what both the old and the new protection allow. */
  if (was_mixed || !whole) {
    for (size_t i = 0; i < n; i++)
      store_prot(&m->page_prot[first + i], m->page_prot[first + i] & prot);
    XM__PLAIN_RELEASE_STORE(bool, &m->mixed, true);
  } else {
    store_prot(&m->prot, old & prot);
  }
  update_limits(m);
  int rc = xm__protect_tracked(&m->view, (unsigned char *)m->view.base + first * page, n * page, prot);
  if (rc) { /* put back what was there */
    if (was_mixed)
      for (size_t i = 0; i < n; i++)
        store_prot(&m->page_prot[first + i], saved[i]);
    else if (!whole)
      XM__PLAIN_RELAXED_STORE(bool, &m->mixed, false);
    store_prot(&m->prot, old);
  } else if (whole) { /* uniform again: prot before mixed, so that a reader never sees stale prot */
    store_prot(&m->prot, prot);
    XM__PLAIN_RELEASE_STORE(bool, &m->mixed, false);
  } else {
    for (size_t i = 0; i < n; i++)
      store_prot(&m->page_prot[first + i], prot);
  }
  update_limits(m);
  return rc;
}

/* ---- advice --------------------------------------------------------------------------------- */
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

static int mapping_region_protect(xm_region *r, size_t offset, size_t len, xm_prot prot) {
  return xm_mapping_protect(r->owner, offset, len, prot);
}

/* Under the protection lock, so that no xm_mapping_protect runs between reading the bookkeeping
   and the tracker's start (lock order: this lock, then the tracker registry). */
static void mapping_page_prots(xm_region *r, size_t offset, size_t npages, unsigned char *prot,
                               const struct xm__os_view **view, void (*with_lock_held)(void *ctx), void *ctx) {
  xm_mapping *m = r->owner;
  const size_t page = xm__page_size(), first = (xm__view_skew(m) + offset) / page;
  protect_lock(m);
  for (size_t i = 0; i < npages; i++)
    prot[i] = m->mixed ? m->page_prot[first + i] : m->prot;
  if (first == 0) prot[0] |= XM__PAGE_VIEW_START;
  *view = &m->view;
  with_lock_held(ctx);
  protect_unlock(m);
}

/* Whether every page of [offset, offset + len) has exactly protection prot. */
static bool range_has_prot(const xm_mapping *m, size_t offset, size_t len, xm_prot prot) {
  if (!xm__plain_acquire_load_bool(&m->mixed)) return XM__PLAIN_RELAXED_LOAD(unsigned char, &m->prot) == prot;
  size_t page = xm__page_size(), skew = xm__view_skew(m);
  for (size_t i = (skew + offset) / page; i <= (skew + offset + len - 1) / page; i++)
    if (XM__PLAIN_RELAXED_LOAD(unsigned char, &m->page_prot[i]) != prot) return false;
  return true;
}

/* Windows gives committed pages prot: anything but the protection the mapping's accessors check
   would make them fault or let the OS allow more than they do. */
static int mapping_region_commit(xm_region *r, size_t offset, size_t size, xm_prot prot) {
  const xm_mapping *m = r->owner;
  if (!range_has_prot(m, offset, size, prot))
    return xm__fail(XM_E_ACCESS,
                    "commit with protection 0x%x: the mapping's pages at offset=%zu len=%zu have another "
                    "one (commit with the protection the pages have)",
                    prot, offset, size);
  bool held = xm__dirty_begin_touch(m->pub.base + offset, size);
  int rc = xm__os_commit(&m->view, m->pub.base + offset, size, prot);
  xm__dirty_end_touch(held, m->pub.base + offset, size);
  return rc;
}

static int mapping_region_decommit(xm_region *r, size_t offset, size_t size) {
  const xm_mapping *m = r->owner;
  bool held = xm__dirty_begin_touch(m->pub.base + offset, size);
  int rc = xm__os_decommit(&m->view, m->pub.base + offset, size);
  xm__dirty_end_touch(held, m->pub.base + offset, size);
  return rc;
}

static const struct xm_region_ops mapping_region_ops = {
    .msync = mapping_region_msync,
    .advise = mapping_region_advise,
    .protect = mapping_region_protect,
    .page_prots = mapping_page_prots,
    .commit = mapping_region_commit,
    .decommit = mapping_region_decommit,
};

xm_region *xm_mapping_region(xm_mapping *m) { return m ? &m->region : NULL; }
