/* Test builds: lets a test play the other thread that takes the addresses a Windows
   split-reservation arena change has just freed. */
#include "test/hooks.h"

static void (*volatile freed_hook)(void *addr, size_t len);

void xm__test_arena_freed_hook(void (*hook)(void *addr, size_t len)) { freed_hook = hook; }

void xm__test_arena_freed(void *addr, size_t len) {
  void (*hook)(void *addr, size_t len) = freed_hook;
  if (hook) hook(addr, len);
}
