/* JIT code buffers: one memory object mapped twice (W^X), one view that flips protection, or one
   read-write-execute view, chosen by probe; placed within rel32 reach of an address on request. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

struct xm_code {
  unsigned char *write, *exec; /* the views' first bytes (the same for one view) */
  size_t size;
  const char *strategy;
  xm_mapping *write_view; /* the only view, except for "dual view" */
  xm_mapping *exec_view;  /* "dual view": the read-execute view; else NULL */
  /* "toggle": how many begun, not yet ended writes each page has; a page turns executable when
     its count reaches 0. The mutex serializes begin/end. */
  unsigned *writers;
  struct xm__os_mutex mutex;
  bool coherent; /* instruction fetch sees stores by itself (x86): end_write has nothing to sync */
};

static const char *const strategy_names[] = {"dual view", "toggle", "rwx"}; /* best first */

/* ---- placement within rel32 reach ------------------------------------------------------------ */
/* Every byte of [at, at + size) lies within +-(2 GiB - 4 KiB) of near: a rel32 displacement from
   an instruction anywhere in the buffer (or in the program near `near`) reaches the other side. */
static bool in_reach(uintptr_t at, size_t size, uintptr_t near) {
  const uint64_t reach = ((uint64_t)1 << 31) - 4096;
  uint64_t lo = at, hi = (uint64_t)at + size, n = near;
  return (n >= lo ? n - lo : lo - n) <= reach && (n >= hi ? n - hi : hi - n) <= reach;
}

/* Builds b at a free address within reach of near: candidates alternate above and below it at
   growing distances (a failed no-replace probe is one system call); XM_E_NO_ADDRESS when none is
   free. On a 32-bit address space everything is within reach: no placement. */
static int build_near(xm_builder *b, size_t size, const void *near, xm_mapping **out) {
  if (!near || sizeof(void *) < 8) return xm_builder_build(b, out);
  const uintptr_t n = (uintptr_t)near;
  const size_t unit = 16u << 20; /* large enough to skip past most neighbours in one step */
  const size_t step = (size + unit - 1) & ~(unit - 1);
  const uintptr_t base = n & ~(uintptr_t)(unit - 1);
  for (size_t k = 1; (uint64_t)k * step < ((uint64_t)1 << 31); k++) {
    for (int side = 0; side < 2; side++) {
      uintptr_t at = side ? base - k * step : base + k * step;
      if ((side && at > base) || (!side && at < base) || !in_reach(at, size, n)) continue;
      xm_builder_fixed_noreplace(b, (void *)at);
      int rc = xm_builder_build(b, out);
      if (rc != XM_E_EXISTS && rc != XM_E_INVALID_ADDRESS) return rc;
    }
  }
  return xm__fail(XM_E_NO_ADDRESS, "no free range of %zu bytes within +-2 GiB of %p", size, near);
}

/* ---- strategies ------------------------------------------------------------------------------ */
static int make_dual(xm_code *c, const void *near) {
  xm_shm *shm;
  int rc = xm_shm_new_ex("xmmap-code", c->size, XM_SHM_EXEC, 0, &shm);
  if (rc) return rc;
  xm_builder b = xm_builder_new(c->size);
  xm_builder_from_shm(&b, shm);
  rc = xm_builder_build(&b, &c->write_view);
  if (rc == XM_OK) {
    b = xm_builder_new(c->size);
    xm_builder_from_shm(&b, shm);
    xm_builder_protection(&b, XM_PROT_READ | XM_PROT_EXEC);
    rc = build_near(&b, c->size, near, &c->exec_view);
    if (rc) {
      xm_mapping_free(c->write_view);
      c->write_view = NULL;
    }
  }
  xm_shm_free(shm); /* the views keep the object */
  return rc;
}

/* One view that starts read-write and may be made executable later; the probe makes one page
   executable and back, so that a system that forbids executable anonymous memory (SELinux
   execmem) is found now rather than at the first end_write. */
static int make_toggle(xm_code *c, const void *near) {
  c->writers = calloc(c->size / xm__page_size(), sizeof *c->writers);
  if (!c->writers) return xm__fail(XM_E_NO_MEMORY, "out of memory for the code buffer's page counts");
  xm_builder b = xm_builder_new(c->size);
  b._private.flags |= XM__OPT_EXEC_LATER;
  int rc = build_near(&b, c->size, near, &c->write_view);
  if (rc == XM_OK) {
    const struct xm__os_view *v = &c->write_view->view;
    rc = xm__os_protect(v, v->base, xm__page_size(), XM_PROT_READ | XM_PROT_EXEC);
    if (rc == XM_OK) rc = xm__os_protect(v, v->base, xm__page_size(), XM_PROT_READ_WRITE);
  }
  if (rc == XM_OK) rc = xm__os_mutex_init(&c->mutex);
  if (rc) {
    xm_mapping_free(c->write_view);
    c->write_view = NULL;
    free(c->writers);
    c->writers = NULL;
  }
  return rc;
}

static int make_rwx(xm_code *c, const void *near) {
  xm_builder b = xm_builder_new(c->size);
  xm_builder_protection(&b, XM_PROT_READ_WRITE | XM_PROT_EXEC);
  return build_near(&b, c->size, near, &c->write_view);
}

/* XMMAP_CODE=rwx makes buffers that allow rwx take it at once, so that the tests run the strategy
   a machine would pick only when nothing better works. Read once. */
static atomic_int force_once;
static bool force_rwx;
static void read_force(void) {
  const char *v = getenv("XMMAP_CODE");
  force_rwx = v && strcmp(v, "rwx") == 0;
}

int xm_code_new(size_t size, unsigned flags, const void *near_addr, xm_code **out) {
  if (!out) return xm__fail(XM_E_INVALID_ARGUMENT, "out must not be NULL");
  if (flags & ~(XM_CODE_DUAL_VIEW | XM_CODE_ALLOW_RWX | XM_CODE_TOGGLE))
    return xm__fail(XM_E_INVALID_ARGUMENT, "unknown code buffer flags 0x%x", flags);
  if ((flags & XM_CODE_DUAL_VIEW) && (flags & XM_CODE_TOGGLE))
    return xm__fail(XM_E_INVALID_ARGUMENT, "XM_CODE_DUAL_VIEW and XM_CODE_TOGGLE exclude each other");
  const size_t page = xm__page_size();
  if (size == 0 || size > SIZE_MAX / 4 - page)
    return xm__fail(XM_E_INVALID_ARGUMENT, "code buffer size %zu is 0 or too large", size);
  xm_code *c = calloc(1, sizeof *c);
  if (!c) return xm__fail(XM_E_NO_MEMORY, "out of memory for the code buffer");
  c->size = (size + page - 1) & ~(page - 1);
  /* Best first; a demanded strategy is the only one tried. */
  bool dual = !(flags & XM_CODE_TOGGLE), toggle = !(flags & XM_CODE_DUAL_VIEW);
  bool rwx = (flags & XM_CODE_ALLOW_RWX) && !(flags & (XM_CODE_DUAL_VIEW | XM_CODE_TOGGLE));
  xm__once(&force_once, read_force);
  if (rwx && force_rwx) dual = toggle = false;
  int (*const make[])(xm_code *, const void *) = {make_dual, make_toggle, make_rwx};
  const bool allowed[] = {dual, toggle, rwx};
  int rc = XM_E_NOT_IMPLEMENTED, which = 0;
  for (; which < 3; which++) {
    if (!allowed[which]) continue;
    rc = make[which](c, near_addr);
    if (rc == XM_OK || rc == XM_E_NO_ADDRESS) break; /* no address: no other strategy finds one */
  }
  if (rc) {
    free(c);
    return rc; /* the last strategy's failure, recorded */
  }
  c->strategy = strategy_names[which];
  c->write = xm_mapping_ptr(c->write_view);
  c->exec = c->exec_view ? xm_mapping_ptr(c->exec_view) : c->write;
  c->coherent = strcmp(xm_icache_method(), "coherent") == 0;
  *out = c;
  return XM_OK;
}

void *xm_code_write_ptr(const xm_code *c) { return c ? c->write : NULL; }
void *xm_code_exec_ptr(const xm_code *c) { return c ? c->exec : NULL; }
size_t xm_code_size(const xm_code *c) { return c ? c->size : 0; }
const char *xm_code_strategy(const xm_code *c) { return c ? c->strategy : NULL; }

void xm_code_free(xm_code *c) {
  if (!c) return;
  xm_mapping_free(c->exec_view);
  xm_mapping_free(c->write_view);
  if (c->writers) {
    xm__os_mutex_destroy(&c->mutex);
    free(c->writers);
  }
  free(c);
}

/* ---- writing code ---------------------------------------------------------------------------- */
static int check_write_range(const xm_code *c, size_t offset, size_t len) {
  if (!c) return xm__fail(XM_E_INVALID_ARGUMENT, "code buffer must not be NULL");
  if (!xm__range_inside(offset, len, c->size)) return xm__fail_range(offset, len, c->size);
  return XM_OK;
}

/* Changes the protection of pages [first, last] of the toggle view. */
static int protect_pages(xm_code *c, size_t first, size_t last, xm_prot prot) {
  const size_t page = xm__page_size();
  const struct xm__os_view *v = &c->write_view->view;
  return xm__os_protect(v, (unsigned char *)v->base + first * page, (last - first + 1) * page, prot);
}

int xm_code_begin_write(xm_code *c, size_t offset, size_t len) {
  int rc = check_write_range(c, offset, len);
  if (rc || len == 0 || !c->writers) return rc;
  const size_t page = xm__page_size(), first = offset / page, last = (offset + len - 1) / page;
  xm__os_mutex_lock(&c->mutex);
  rc = protect_pages(c, first, last, XM_PROT_READ_WRITE);
  if (rc == XM_OK)
    for (size_t i = first; i <= last; i++)
      c->writers[i]++;
  xm__os_mutex_unlock(&c->mutex);
  return rc;
}

/* "toggle": the pages whose last writer this was turn executable, run by run. */
static int end_toggle(xm_code *c, size_t first, size_t last) {
  int rc = XM_OK;
  xm__os_mutex_lock(&c->mutex);
  for (size_t i = first; i <= last; i++)
    if (c->writers[i] > 0) c->writers[i]--;
  for (size_t i = first; i <= last && rc == XM_OK;) {
    if (c->writers[i] != 0) {
      i++;
      continue;
    }
    size_t j = i;
    while (j < last && c->writers[j + 1] == 0)
      j++;
    rc = protect_pages(c, i, j, XM_PROT_READ | XM_PROT_EXEC);
    i = j + 1;
  }
  xm__os_mutex_unlock(&c->mutex);
  return rc;
}

int xm_code_end_write(xm_code *c, size_t offset, size_t len) {
  int rc = check_write_range(c, offset, len);
  if (rc || len == 0) return rc;
  if (c->writers) {
    const size_t page = xm__page_size();
    rc = end_toggle(c, offset / page, (offset + len - 1) / page);
    if (rc) return rc;
  }
  if (c->coherent) {
    atomic_signal_fence(memory_order_seq_cst); /* the stores that wrote the code come first */
    return XM_OK;
  }
  return xm_icache_sync(c->exec + offset, len);
}
