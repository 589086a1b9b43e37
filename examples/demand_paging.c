/* Demand paging with a fault hook: guest RAM is an arena that starts empty (every access would
 * fault), and a hook maps one unit of zeroed memory wherever the guest first touches it, then lets
 * the access run again. The guest's code never knows: it just reads and writes. A device copy
 * through xm_region_write_safe into an untouched unit is paged in the same way; after the hook is
 * removed, a copy into a hole gives XM_E_FAULT instead of a crash.
 *
 * What a hook may call is limited (it runs in a signal handler / exception dispatch): see the
 * README's "Fault hooks". xm_arena_add_anon is one of the calls it may make. Exits non-zero on any
 * failure.
 *
 * Build: cc -std=c11 demand_paging.c $(pkg-config --cflags --libs xmmap)
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xmmap/xmmap.h>

static void check(int rc, const char *what) {
  if (rc != XM_OK) {
    fprintf(stderr, "demand_paging: %s failed: %s (%s)\n", what, xm_strerror(rc), xm_errmsg());
    exit(1);
  }
}

static void expect(int ok, const char *what) {
  if (!ok) {
    fprintf(stderr, "demand_paging: %s\n", what);
    exit(1);
  }
}

struct guest {
  xm_arena *ram;
  unsigned char *base;
  size_t unit;  /* what one fault maps: the arena's unit */
  int paged_in; /* written only by the hook */
};

/* The hook: map the touched unit and retry. Anything else (a unit already mapped but protected,
   an add that fails) is passed on, so a real bug still crashes where it happened. */
static xm_fault_action page_in(const xm_fault *fault, void *user) {
  struct guest *g = user;
  size_t offset = ((uintptr_t)fault->addr - (uintptr_t)g->base) / g->unit * g->unit;
  if (xm_arena_add_anon(g->ram, offset, g->unit, XM_PROT_READ_WRITE) != XM_OK) return XM_FAULT_PASS;
  g->paged_in++;
  return XM_FAULT_RETRY;
}

int main(void) {
  struct guest g;
  g.unit = xm_allocation_granularity();
  g.paged_in = 0;
  const size_t units = 256;
  check(xm_arena_new(units * g.unit, &g.ram), "xm_arena_new");
  g.base = xm_region_ptr(xm_arena_region(g.ram));
  xm_fault_hook *hook;
  check(xm_fault_hook_add(g.base, units * g.unit, page_in, &g, &hook), "xm_fault_hook_add");

  /* The "guest" touches a few scattered places: each first touch pages a unit in. */
  const size_t touched[] = {0, 3, 17, 200, 255};
  for (size_t i = 0; i < sizeof touched / sizeof touched[0]; i++)
    g.base[touched[i] * g.unit + 42] = (unsigned char)(i + 1);
  for (size_t i = 0; i < sizeof touched / sizeof touched[0]; i++)
    expect(g.base[touched[i] * g.unit + 42] == i + 1, "a paged-in unit lost its write");
  expect(g.base[17 * g.unit] == 0, "a paged-in unit is not zeroed");

  /* A device writes into guest RAM through a fault-safe copy: the untouched unit is paged in too. */
  const char packet[] = "hello from a device";
  size_t copied = 0;
  check(xm_region_write_safe(xm_arena_region(g.ram), packet, sizeof packet, 100 * g.unit, &copied),
        "xm_region_write_safe");
  expect(copied == sizeof packet && memcmp(g.base + 100 * g.unit, packet, sizeof packet) == 0, "the copy is wrong");
  printf("paged in %d of %zu units of %zu bytes on first touch\n", g.paged_in, units, g.unit);
  expect(g.paged_in == 6, "expected 6 units paged in");

  /* Without the hook, a hole stays a hole: a safe copy says so instead of crashing. */
  xm_fault_hook_remove(hook);
  int rc = xm_region_write_safe(xm_arena_region(g.ram), packet, sizeof packet, 50 * g.unit, &copied);
  expect(rc == XM_E_FAULT, "a copy into a hole did not give XM_E_FAULT");
  printf("without the hook, a copy into a hole: %s\n", xm_errmsg());
  xm_arena_free(g.ram);
  return 0;
}
