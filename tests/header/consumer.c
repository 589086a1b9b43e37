/* A consumer of the public header, compiled by tests/header/check.cmake as C11 and as C++11, 17
   and 20 with gcc and clang under strict warnings and -Werror: every inline function and macro of
   xmmap.h is used here, so that anything the header expands to in a user's file is compiled. */
#include "xmmap/xmmap.h"

int xmmap_header_consumer(xm_mapping *m);

int xmmap_header_consumer(xm_mapping *m) {
  unsigned char buf[16] = {0};
  uint64_t v = 0;
  uint32_t w = 0;
  size_t copied = 0;
  xm_slice s;
  int rc = XM_OK;

  /* the inline checked accessors and their macros */
  rc |= xm_mapping_write_slice(m, buf, sizeof buf, 0, &copied);
  rc |= xm_mapping_read_slice(m, buf, sizeof buf, copied, &copied);
  rc |= xm_mapping_write_obj(m, &w, sizeof w, 4);
  rc |= xm_mapping_read_obj(m, &w, sizeof w, 4);
  rc |= xm_mapping_get_slice(m, 0, sizeof buf, &s);
  rc |= XM_WRITE_OBJ(m, 8, &v);
  rc |= XM_READ_OBJ(m, 8, &v);
  if (s.size != sizeof buf || s.addr == buf) rc |= XM_E_OUT_OF_BOUNDS;

  /* the constant macros and enumerations */
  const xm_prot prots[] = {XM_PROT_NONE, XM_PROT_READ, XM_PROT_WRITE, XM_PROT_READ_WRITE};
  const unsigned seals = XM_SEAL_SEAL | XM_SEAL_SHRINK | XM_SEAL_GROW | XM_SEAL_WRITE | XM_SEAL_FUTURE_WRITE;
  if (prots[3] != (prots[1] | prots[2]) || prots[0] != 0u || seals != 31u) rc |= XM_E_INVALID_ARGUMENT;
  const int statuses[] = {XM_E_ADD_FD_MAPPING_UNSUPPORTED,
                          XM_E_INVALID_ADDRESS,
                          XM_E_INVALID_ALIGNMENT,
                          XM_E_INVALID_ARGUMENT,
                          XM_E_INVALID_OFFSET,
                          XM_E_INVALID_RANGE,
                          XM_E_NOT_IMPLEMENTED,
                          XM_E_NOT_PAGE_ALIGNED,
                          XM_E_READ_TO_MEMORY,
                          XM_E_REMOVE_MAPPING_UNSUPPORTED,
                          XM_E_SYSTEM_CALL,
                          XM_E_WRITE_FROM_MEMORY,
                          XM_E_OUT_OF_BOUNDS,
                          XM_E_OVERFLOW,
                          XM_E_NO_MEMORY,
                          XM_E_FAULT,
                          XM_E_EXISTS,
                          XM_E_ACCESS};
  if (statuses[sizeof statuses / sizeof statuses[0] - 1] != XM_E_ACCESS) rc |= XM_E_INVALID_ARGUMENT;
  const xm_sync sync = XM_SYNC_SYNC;
  const xm_advice advice = XM_ADVICE_POPULATE_WRITE;
  rc |= xm_mapping_sync_range(m, 0, sizeof buf, sync);
  rc |= xm_mapping_advise(m, 0, sizeof buf, advice);
  const int version = XMMAP_VERSION_MAJOR * 10000 + XMMAP_VERSION_MINOR * 100 + XMMAP_VERSION_PATCH;
  if (version <= 0) rc |= XM_E_INVALID_ARGUMENT;

  /* the builder, a value type users fill in place */
  xm_builder b = xm_builder_new(sizeof buf);
  xm_builder_protection(&b, XM_PROT_READ);
  return rc;
}
