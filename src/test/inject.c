/* The fault-injection seam's state (src/os.h): which OS primitive fails next. Test builds only. */
#include <stdatomic.h>

#include "test/hooks.h"

/* Counting is process-wide: fault-injection tests run single-threaded. */
static atomic_long os_calls;
static atomic_long fail_at; /* the 1-based call number that fails; 0 = none */
static atomic_int fail_error;

void xm__test_fail_nth(long n, int os_error) {
  atomic_store(&os_calls, 0);
  atomic_store(&fail_error, os_error);
  atomic_store(&fail_at, n);
}

long xm__test_os_calls(void) { return atomic_load(&os_calls); }

bool xm__test_inject_failure(int *os_error) {
  long n = atomic_fetch_add(&os_calls, 1) + 1;
  if (n != atomic_load(&fail_at)) return false;
  *os_error = atomic_load(&fail_error);
  return true;
}
