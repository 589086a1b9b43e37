/* The library's version string, from include/xmmap/version.h. */
#include "xmmap/xmmap.h"

#define XM__STR2(x) #x
#define XM__STR(x) XM__STR2(x)
const char *xm_version(void) {
  return XM__STR(XMMAP_VERSION_MAJOR) "." XM__STR(XMMAP_VERSION_MINOR) "." XM__STR(XMMAP_VERSION_PATCH);
}
