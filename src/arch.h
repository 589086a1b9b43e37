/* The arch contract: how this CPU cleans cache lines to the point of coherency. One file in
   src/arch/ implements it per architecture; CMake compiles exactly one. */
#ifndef XMMAP_ARCH_H
#define XMMAP_ARCH_H

#include <stddef.h>
#include <stdint.h>

/* Cleans every line in [first, end) stepping by line (first and end are line-aligned and differ;
   end is 0 when the range reaches the top of the address space, so loops compare with !=), then
   issues the barrier that makes the cleaning complete before later memory accesses. */
typedef void (*xm__clean_lines_fn)(uintptr_t first, uintptr_t end, size_t line);

/* How every clean loop (src/arch/<arch>_clean.h) walks its lines: p = first, first + line, ...
   until it reaches end, compared with != so that end may be 0. */
#define XM__FOR_EACH_LINE(p, first, end, line)                                                                         \
  for (uintptr_t p = (first), p##_done_ = 0; !p##_done_; p##_done_ = ((p += (line)) == (end)))

struct xm__flush_unit {
  const char *method;       /* xm_flush_method(): "clwb", "dc cvac", ..., "none" */
  const char *unsupported;  /* NULL, or why user space cannot clean to the point of coherency */
  size_t line;              /* the architecture's own flush granule; 0 when it reports none */
  const char *line_source;  /* where line came from ("cpuid", "ctr_el0", "hwprobe") */
  xm__clean_lines_fn clean; /* NULL exactly when unsupported is set */
};

/* Fills *unit. Called once (flush.c serializes it); may read CPU id registers and the
   XMMAP_FLUSH environment variable, never faults. */
void xm__arch_flush_unit(struct xm__flush_unit *unit);

/* Makes instructions written at [start, end) (end > start) visible to instruction fetches on every
   CPU: data cache cleaned to the point of unification, instruction cache invalidated, barriers. */
typedef void (*xm__icache_sync_fn)(uintptr_t start, uintptr_t end);

struct xm__icache_unit {
  const char *method;      /* xm_icache_method(): "coherent", "dc cvau + ic ivau", "icbi" */
  xm__icache_sync_fn sync; /* NULL (and method NULL) when user space cannot do it alone: then the
                              OS call (src/os.h xm__os_icache_method) or the compiler's builtin */
};

/* Fills *unit. Called once (icache.c serializes it); may read CPU id registers, never faults. */
void xm__arch_icache_unit(struct xm__icache_unit *unit);

#endif /* XMMAP_ARCH_H */
