/* The front end of cache flushing: picks the flush unit and the line size once, then cleans the
   lines of a range with one indirect call. */
#include <stdatomic.h>

#include "flush.h"
#include "internal.h"

/* Written once by choose(), published by xm__once. */
static atomic_int state;
static struct xm__flush_unit unit;
static size_t line_size;
static const char *line_source;

/* A granule the flush loops can step by. Real lines are 16..256 bytes; 4 is the smallest that
   aarch64's CTR_EL0 can express. Anything else means the source is broken: try the next one. */
static bool line_usable(size_t v) { return v >= 4 && v <= 256 && xm__is_pow2(v); }

static void choose(void) {
  xm__arch_flush_unit(&unit);
  if (unit.method == NULL || unit.clean == NULL) {
    unit.method = "none";
    unit.clean = NULL;
    if (unit.unsupported == NULL) unit.unsupported = "no flush unit for this architecture";
  }
  /* The architecture's own granule first: it is what the instructions operate on. */
  if (line_usable(unit.line) && unit.line_source != NULL) {
    line_size = unit.line;
    line_source = unit.line_source;
    return;
  }
  const char *source = NULL;
  size_t os_line = xm__os_cacheline(&source);
  if (line_usable(os_line) && source != NULL) {
    line_size = os_line;
    line_source = source;
    return;
  }
  line_size = 64;
  line_source = "assumed";
}

static void init_once(void) { xm__once(&state, choose); }

size_t xm_cacheline_size(void) {
  init_once();
  return line_size;
}

const char *xm_cacheline_source(void) {
  init_once();
  return line_source;
}

const char *xm_flush_method(void) {
  init_once();
  return unit.method;
}

int xm__flush_range(const struct xm__flush_unit *u, size_t line, uintptr_t base, size_t size, size_t offset,
                    size_t len) {
  if (!xm__range_inside(offset, len, size)) return xm__fail_range(offset, len, size);
  if (len == 0) return XM_OK;
  if (u->clean == NULL) return xm__fail(XM_E_NOT_IMPLEMENTED, "%s", u->unsupported ? u->unsupported : "no flush unit");
  /* Work with the first and the last byte: base + offset + len may be 2^N, which a uintptr_t
     cannot hold, while the last byte always can. */
  uintptr_t start = base + offset;
  uintptr_t last = start + (len - 1);
  uintptr_t first = xm__align_down(start, line);
  uintptr_t end = xm__align_down(last, line) + line; /* 0 when the last line is the top one */
  u->clean(first, end, line);
  return XM_OK;
}

/* The flush instructions fault on pages that cannot be read (they are treated as loads). */
static int check_readable(const xm_mapping *m, size_t offset, size_t len) {
  if (m->pub.read_limit != 0 || xm__range_allows(m, offset, len, XM_PROT_READ)) return XM_OK;
  return xm__fail(XM_E_ACCESS, "flush (which needs read access) of %zu bytes at offset %zu", len, offset);
}

int xm_mapping_flush_region(const xm_mapping *m, size_t offset, size_t len) {
  if (m == NULL) return xm__fail(XM_E_INVALID_ARGUMENT, "mapping must not be NULL");
  if (!xm__range_inside(offset, len, m->pub.size)) return xm__fail_range(offset, len, m->pub.size);
  if (len == 0) return XM_OK;
  int rc = check_readable(m, offset, len);
  if (rc != XM_OK) return rc;
  init_once();
  return xm__flush_range(&unit, line_size, (uintptr_t)m->pub.base, m->pub.size, offset, len);
}

int xm_mapping_flush_all(const xm_mapping *m) {
  if (m == NULL) return xm__fail(XM_E_INVALID_ARGUMENT, "mapping must not be NULL");
  return xm_mapping_flush_region(m, 0, m->pub.size);
}
