/* Flushing internals exposed for white-box tests: the range walk over an arbitrary flush unit. */
#ifndef XMMAP_FLUSH_H
#define XMMAP_FLUSH_H

#include <stddef.h>
#include <stdint.h>

#include "arch.h"

/* Checks [offset, offset + len) against a region of size bytes at base (XM_E_INVALID_RANGE),
   succeeds at once for an empty range, gives XM_E_NOT_IMPLEMENTED when unit has no clean
   function, and otherwise makes exactly one call unit->clean(first, end, line) covering every
   line the range touches. line is a power of two. base + size may equal 2^N (end is then 0);
   no address outside the touched lines is formed. */
int xm__flush_range(const struct xm__flush_unit *unit, size_t line, uintptr_t base, size_t size, size_t offset,
                    size_t len);

#endif /* XMMAP_FLUSH_H */
