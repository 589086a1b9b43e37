/* The POSIX back end's placement in an address range (src/os.h "placement").
 *
 * Recipe: the free gaps between the lines of /proc/self/maps, clipped to the range, each give one
 * candidate (the lowest aligned base that fits); the candidate is taken with MAP_FIXED_NOREPLACE
 * (Linux 4.17+), which fails with EEXIST when another thread took it meanwhile, and the address
 * returned is checked, since older kernels and QEMU user mode treat the flag as a mere hint (what
 * lands elsewhere is unmapped and the search goes on). Where /proc/self/maps cannot be read (or
 * XMMAP_PLACE=probe asks for it), candidates are probed the same way at steps across the range.
 * The maps file is read while the search maps: the kernel's reader resumes after the last address
 * it reported, so a mapping made meanwhile neither repeats nor hides a line. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "posix.h"

struct search {
  const struct xm__os_place *where;
  size_t size;
  uintptr_t floor;    /* the lowest address the kernel lets user space map (vm.mmap_min_addr) */
  uintptr_t prev_end; /* the end of the previous line: where the current gap starts */
  void *found;
  int last_errno; /* of the last refused candidate */
  int status;     /* a failure that ends the search (recorded), else XM_OK */
};

/* The lowest base >= from with (base + lead) % align == 0; false on overflow. */
static bool aligned_base(uintptr_t from, size_t align, size_t lead, uintptr_t *base) {
  if (from > UINTPTR_MAX - lead - (align - 1)) return false;
  uintptr_t at = (from + lead + align - 1) & ~(uintptr_t)(align - 1);
  *base = at - lead;
  return true;
}

/* Takes [at, at + size) if it is free; false (s->last_errno set) if not. */
static bool take(struct search *s, uintptr_t at) {
  void *p = xm__posix_mmap((void *)at, s->size, PROT_NONE,
                           MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0);
  if (p == (void *)at) {
    s->found = p;
    return true;
  }
  if (p != MAP_FAILED) { /* the flag taken as a hint: the place was not free */
    munmap(p, s->size);
    s->last_errno = EEXIST;
    return false;
  }
  /* EEXIST: taken; EPERM: below vm.mmap_min_addr or refused by policy; ENOMEM: past the end of
   the address space, unless the mapping count is at its limit. Anything else ends the search. */
  int e = s->last_errno = errno;
  if (e == ENOMEM) {
    int rc = xm__posix_fail_mapping(e, "mmap with MAP_FIXED_NOREPLACE");
    if (rc == XM_E_MAP_LIMIT) s->status = rc;
  } else if (e != EEXIST && e != EPERM) {
    s->status = xm__fail_os(XM_E_SYSTEM_CALL, e, "mmap with MAP_FIXED_NOREPLACE");
  }
  return false;
}

/* Tries the lowest fitting base of the free gap [from, to) clipped to the range. */
static bool try_gap(struct search *s, uintptr_t from, uintptr_t to) {
  const struct xm__os_place *w = s->where;
  if (from < w->lo) from = w->lo;
  if (from < s->floor) from = s->floor;
  if (to > w->hi) to = w->hi;
  uintptr_t at;
  if (from >= to || !aligned_base(from, w->align, w->lead, &at) || at < from) return false;
  /* A place another thread took meanwhile (EEXIST) moves the candidate past it, a few times. */
  for (int attempt = 0; attempt < 8 && !s->status && at <= to && to - at >= s->size; attempt++) {
    if (take(s, at)) return true;
    if (s->last_errno != EEXIST || !aligned_base(at + s->size, w->align, w->lead, &at)) return false;
  }
  return false;
}

static bool visit_line(uintptr_t start, uintptr_t end, void *ctx) {
  struct search *s = ctx;
  if (start > s->prev_end && (try_gap(s, s->prev_end, start) || s->status)) return false;
  if (end > s->prev_end) s->prev_end = end;
  return s->prev_end < s->where->hi; /* past the range: nothing further can fit */
}

/* Probes aligned candidates across the range: every aligned place where there are at most this
   many, else this many evenly spaced (a hole between them may be missed: the fallback's limit). */
enum { PROBES = 4096 };
static bool search_by_probing(struct search *s) {
  const struct xm__os_place *w = s->where;
  uintptr_t at;
  uintptr_t from = w->lo > s->floor ? w->lo : s->floor;
  if (!aligned_base(from, w->align, w->lead, &at) || at < from) return false;
  size_t span = (size_t)(w->hi - at), step = w->align; /* every aligned place while they are few */
  if (span / step > PROBES) step = span / PROBES;
  step = (step + w->align - 1) & ~(w->align - 1); /* candidates stay aligned */
  while (at <= w->hi && w->hi - at >= s->size) {
    if (take(s, at)) return true;
    if (s->status || at > UINTPTR_MAX - step) break;
    at += step;
  }
  return false;
}

static uintptr_t mmap_floor(void) {
  uintptr_t floor = 65536; /* Linux's default when the sysctl cannot be read */
  FILE *f = fopen("/proc/sys/vm/mmap_min_addr", "re");
  if (f) {
    unsigned long long v;
    if (fscanf(f, "%llu", &v) == 1 && v < UINTPTR_MAX / 2) floor = (uintptr_t)v;
    fclose(f);
  }
  size_t page = xm__page_size();
  return (floor + page - 1) & ~(uintptr_t)(page - 1);
}

int xm__os_reserve_in(size_t size, const struct xm__os_place *where, unsigned flags, void **out) {
  (void)flags;
  struct search s = {.where = where, .size = size, .floor = mmap_floor(), .last_errno = EEXIST};
  const char *force = getenv("XMMAP_PLACE");
  long lines = force && strcmp(force, "probe") == 0 ? -1 : xm__posix_each_mapping("/proc/self/maps", visit_line, &s);
  if (lines >= 0 && !s.found && !s.status && s.prev_end < where->hi) (void)try_gap(&s, s.prev_end, where->hi);
  if (lines < 0) (void)search_by_probing(&s);
  if (s.found) {
    *out = s.found;
    return XM_OK;
  }
  if (s.status) return s.status;
  return xm__fail(XM_E_NO_ADDRESS, "no free range of %zu bytes aligned to 0x%zx inside [%p, %p)%s", size, where->align,
                  (void *)where->lo, (void *)where->hi, lines < 0 ? " (probed without /proc/self/maps)" : "");
}
