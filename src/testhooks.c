/* The fault-injection seam of the OS contract; compiled in only for test builds. */
#include "internal.h"

#ifdef XMMAP_TEST_HOOKS
#include <stdatomic.h>

/* Counting is process-wide: fault-injection tests run single-threaded. */
static atomic_long os_calls;
static atomic_long fail_at; /* the 1-based call number that fails; 0 = none */
static atomic_int fail_error;

void xm__test_fail_nth(long n, int os_error);
long xm__test_os_calls(void);

/* Makes the n-th OS primitive from now fail with os_error (n = 0 disarms), and restarts the count. */
void xm__test_fail_nth(long n, int os_error) {
  atomic_store(&os_calls, 0);
  atomic_store(&fail_error, os_error);
  atomic_store(&fail_at, n);
}

/* The OS primitives called since the last xm__test_fail_nth. */
long xm__test_os_calls(void) { return atomic_load(&os_calls); }

bool xm__os_inject_failure(int *os_error) {
  long n = atomic_fetch_add(&os_calls, 1) + 1;
  if (n != atomic_load(&fail_at)) return false;
  *os_error = atomic_load(&fail_error);
  return true;
}
#else
typedef int xm__no_test_hooks; /* keeps the translation unit non-empty */
#endif
