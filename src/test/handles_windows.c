/* Test builds: the handles the Windows back end holds open now. GetProcessHandleCount returns 0
   under Wine 8, so leak tests count the handles the back end creates and has not closed yet. Only
   handles it made are counted: closing an adopted handle (xm_shm_from_descriptor) changes
   nothing. */
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <windows.h>

#include <stdlib.h>

#include "test/hooks.h"

static SRWLOCK lock = SRWLOCK_INIT;
static HANDLE *open_handles;
static size_t count, cap;

long xm__test_open_handles(void) {
  AcquireSRWLockShared(&lock);
  long n = (long)count;
  ReleaseSRWLockShared(&lock);
  return n;
}

void xm__test_handle_opened(void *handle) {
  AcquireSRWLockExclusive(&lock);
  if (count == cap) {
    size_t grown_cap = cap ? 2 * cap : 64;
    HANDLE *grown = realloc(open_handles, grown_cap * sizeof *grown);
    if (grown) {
      open_handles = grown;
      cap = grown_cap;
    }
  }
  if (count < cap) open_handles[count++] = handle;
  ReleaseSRWLockExclusive(&lock);
}

void xm__test_handle_closed(void *handle) {
  AcquireSRWLockExclusive(&lock);
  for (size_t i = 0; i < count; i++) {
    if (open_handles[i] == handle) {
      open_handles[i] = open_handles[--count];
      break;
    }
  }
  ReleaseSRWLockExclusive(&lock);
}
