/* A consumer of the installed xmmap: the public header compiles cleanly under strict warnings
   and the library works, statically or as a shared library. */
#include <stdio.h>
#include <string.h>

#include <xmmap/xmmap.h>

#define STR2(x) #x
#define STR(x) STR2(x)

int main(void) {
  /* The installed header and the linked library agree on the version. */
  const char *header = STR(XMMAP_VERSION_MAJOR) "." STR(XMMAP_VERSION_MINOR) "." STR(XMMAP_VERSION_PATCH);
  if (strcmp(header, xm_version()) != 0) {
    fprintf(stderr, "consumer: header version %s, library %s\n", header, xm_version());
    return 1;
  }
#if defined(CONSUMER_EXPECT_DLL) && defined(_WIN32) && !defined(XMMAP_DLL)
#error "xmmap::xmmap_shared must bring XMMAP_DLL (dllimport) to its users"
#endif
  xm_builder b = xm_builder_new(xm_allocation_granularity());
  xm_mapping *m = NULL;
  int rc = xm_builder_build(&b, &m);
  if (rc != XM_OK) {
    fprintf(stderr, "consumer: xm_builder_build: %s\n", xm_errmsg());
    return 1;
  }
  unsigned long long v = 0x636f6e73756d6572ull, r = 0;
  if (XM_WRITE_OBJ(m, 8, &v) != XM_OK || XM_READ_OBJ(m, 8, &r) != XM_OK || r != v) {
    fprintf(stderr, "consumer: write/read through the mapping failed: %s\n", xm_errmsg());
    xm_mapping_free(m);
    return 1;
  }
  if (xm_mapping_read_obj(m, &r, sizeof r, xm_mapping_size(m)) != XM_E_INVALID_ADDRESS) {
    fprintf(stderr, "consumer: an out-of-range read was not refused\n");
    xm_mapping_free(m);
    return 1;
  }
  xm_mapping_free(m);
  printf("consumer: xmmap %s, %s back end: ok\n", xm_version(), xm_backend_name());
  return 0;
}
