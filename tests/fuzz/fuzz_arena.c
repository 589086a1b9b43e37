/* Fuzzes the arena's add/remove bookkeeping against a model: a byte array of what backs each unit
   (reserved, anonymous memory with a tag written into it, or a unit of a shared-memory object).
   After every operation each unit must be exactly what the model says: inaccessible where
   reserved or mapped PROT_NONE (probed with write(2) from it into a pipe, which says EFAULT
   instead of faulting), and holding its tag where readable. Statuses follow crosvm's validation
   order: alignment of the offset, then the range, then the descriptor offset. */
#include <errno.h>
#include <unistd.h>

#include <xmmap/xmmap.h>

#include "fuzz_input.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define UNITS 8
#define SHM_UNITS 12

enum { RES, ANON, FD };
static struct { uint8_t kind, prot, tag; } model[UNITS];

static size_t unit;
static xm_shm *shm;
static int probe[2] = {-1, -1};
static uint8_t next_tag = 1;

static void init_once(void) {
  if (unit) return;
  unit = xm_allocation_granularity();
  if (xm_shm_new("fuzz-arena", SHM_UNITS * unit, &shm) != XM_OK) abort();
  xm_builder b = xm_builder_new(SHM_UNITS * unit);
  xm_builder_from_shm(&b, shm);
  xm_mapping *m = NULL;
  if (xm_builder_build(&b, &m) != XM_OK) abort();
  for (size_t k = 0; k < SHM_UNITS; k++) {
    uint8_t v = (uint8_t)(0x80 + k);
    if (xm_mapping_write_obj(m, &v, 1, k * unit) != XM_OK) abort();
  }
  xm_mapping_free(m);
  if (pipe(probe) != 0) abort();
}

/* Whether the byte at p can be read, without touching it from user space. */
static int readable(const void *p) {
  ssize_t n = write(probe[1], p, 1);
  if (n == 1) {
    char c;
    if (read(probe[0], &c, 1) != 1) abort();
    return 1;
  }
  FUZZ_CHECK(n < 0 && errno == EFAULT, "probe write: %zd, errno %d", n, errno);
  return 0;
}

static int expected_status(size_t arena_size, size_t offset, size_t len, int prot_ok, int fd, uint64_t d_offset,
                           size_t *rounded) {
  if (!prot_ok) return XM_E_INVALID_ARGUMENT;
  if (offset % unit) return XM_E_NOT_PAGE_ALIGNED;
  size_t end = offset + len;
  if (end < offset || end > arena_size) return XM_E_INVALID_ADDRESS;
  *rounded = (len + unit - 1) / unit * unit;
  if (fd) {
    if (d_offset > (uint64_t)INT64_MAX || (uint64_t)*rounded > (uint64_t)INT64_MAX - d_offset)
      return XM_E_INVALID_OFFSET;
    if (d_offset % unit) return XM_E_NOT_PAGE_ALIGNED;
  }
  return XM_OK;
}

static void verify(unsigned char *base, const char *after) {
  for (size_t k = 0; k < UNITS; k++) {
    unsigned char *p = base + k * unit;
    int want = model[k].kind != RES && model[k].prot != XM_PROT_NONE;
    if (model[k].kind == FD && model[k].tag == 0) continue; /* past the object's end: would SIGBUS */
    int got = readable(p);
    FUZZ_CHECK(got == want, "after %s: unit %zu readable %d, model %d (kind %d prot %d)", after, k, got, want,
               model[k].kind, model[k].prot);
    if (want)
      FUZZ_CHECK(*p == model[k].tag, "after %s: unit %zu holds 0x%x, model 0x%x (kind %d)", after, k, *p, model[k].tag,
                 model[k].kind);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct fuzz_input in = {data, size, 0};
  init_once();
  size_t arena_size = UNITS * unit - (fuzz_u8(&in) & 1 ? fuzz_u16(&in) % unit : 0);
  xm_arena *a = NULL;
  FUZZ_CHECK(xm_arena_new(arena_size, &a) == XM_OK, "arena_new(%zu): %s", arena_size, xm_errmsg());
  unsigned char *base = xm_region_ptr(xm_arena_region(a));
  memset(model, 0, sizeof model);
  verify(base, "arena_new");

  for (int ops = 0; ops < 24 && !fuzz_done(&in); ops++) {
    uint8_t op = fuzz_u8(&in) % 3;
    /* offsets mostly on units, sometimes off them; lengths of any size */
    uint8_t sel = fuzz_u8(&in);
    size_t offset = (sel & 0xe0) ? (size_t)(sel % (UNITS + 2)) * unit : fuzz_size_near(&in, arena_size, unit);
    size_t len = (sel & 0x10) ? fuzz_size_near(&in, arena_size, unit) : (size_t)(fuzz_u8(&in) % (UNITS + 1)) * unit;
    xm_prot prot = fuzz_u8(&in) % 5;
    if (prot == 4) prot = 8; /* an unknown bit (4 is XM_PROT_EXEC) */
    uint64_t d_offset = 0;
    if (op == 1) {
      uint8_t d = fuzz_u8(&in);
      d_offset = (d & 0xc0) == 0xc0 ? fuzz_u64(&in) : (uint64_t)(d % (SHM_UNITS + 1)) * unit + ((d & 0x20) ? 1 : 0);
    }
    size_t rounded = 0;
    int want =
        expected_status(arena_size, offset, len, op == 2 || prot <= XM_PROT_READ_WRITE, op == 1, d_offset, &rounded);
    int rc;
    const char *name = op == 0 ? "add_anon" : op == 1 ? "add_fd" : "remove";
    if (op == 0)
      rc = xm_arena_add_anon(a, offset, len, prot);
    else if (op == 1)
      rc = xm_arena_add_fd(a, offset, len, xm_shm_descriptor(shm), d_offset, prot);
    else
      rc = xm_arena_remove(a, offset, len);
    FUZZ_CHECK(rc == want, "%s(offset %zu, len %zu, prot %u, d_offset %llu) on %zu bytes: %d, model %d (%s)", name,
               offset, len, prot, (unsigned long long)d_offset, arena_size, rc, want, xm_errmsg());
    if (rc != XM_OK) {
      FUZZ_CHECK(xm_errmsg()[0] != '\0', "%s failed without a message", name);
      continue;
    }
    for (size_t k = offset / unit; len && k < (offset + rounded) / unit; k++) {
      model[k].kind = op == 0 ? ANON : op == 1 ? FD : RES;
      model[k].prot = op == 2 ? XM_PROT_NONE : (uint8_t)prot;
      if (op == 1) {
        uint64_t at = d_offset / unit + (k - offset / unit);
        model[k].tag = at < SHM_UNITS ? (uint8_t)(0x80 + at) : 0;
      } else {
        model[k].tag = 0; /* fresh anonymous memory reads zero */
      }
    }
    /* tag new writable anonymous units so that moved or lost memory shows */
    if (op == 0 && len && (prot & XM_PROT_WRITE) && (prot & XM_PROT_READ)) {
      for (size_t k = offset / unit; k < (offset + rounded) / unit; k++) {
        base[k * unit] = next_tag;
        model[k].tag = next_tag;
        next_tag = (uint8_t)(next_tag % 0x7f + 1);
      }
    }
    verify(base, name);
    if (fuzz_u8(&in) % 8 == 0)
      FUZZ_CHECK(xm_region_msync(xm_arena_region(a), 0, arena_size) == XM_OK, "arena msync: %s", xm_errmsg());
  }
  xm_arena_free(a);
  return 0;
}
