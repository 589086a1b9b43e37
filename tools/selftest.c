/* `xmmap selftest`: every feature exercised quickly on this machine, as a checklist. A check is
   skipped (with the library's reason) where the platform does not offer the feature, failed when
   the library misbehaves; the exit status is 1 iff a check failed. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tool.h"

#ifndef _WIN32
#include <errno.h>
#endif

static const char selftest_help[] =
    "usage: xmmap selftest [--ascii]\n"
    "\n"
    "Exercises every feature of the library on this machine: system facts, errors, anonymous,\n"
    "file, private, unaligned-offset and shared-memory mappings, seals, the arena, slices,\n"
    "cache-line flush, msync, advice, protection, guard pages, fault-safe copies, locking, fixed\n"
    "addresses, alignment, huge pages and external regions. Prints one line per check:\n"
    "  \xE2\x9C\x93 passed   \xE2\x9C\x97 failed (with what went wrong)   - skipped (with why: the feature is not\n"
    "  available here, e.g. XM_E_NOT_IMPLEMENTED with the library's message)\n"
    "\n"
    "options:\n"
    "  --ascii     ok/FAIL/skip instead of the UTF-8 marks\n"
    "  -h, --help  this text\n"
    "\n"
    "exit status: 0 no check failed, 1 a check failed, 2 usage error\n";

enum outcome { PASSED, FAILED, SKIPPED };

struct check {
  enum outcome outcome;
  char note[512]; /* why it failed or was skipped, or a remark on a pass */
};

static void TOOL_PRINTF(3, 4) set_outcome(struct check *c, enum outcome o, const char *fmt, ...) {
  if (c->outcome != PASSED) return; /* the first problem is the one reported */
  c->outcome = o;
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(c->note, sizeof c->note, fmt, ap);
  va_end(ap);
  if (n < 0) c->note[0] = '\0';
}

static const char *status_name(int rc) {
  static const char *const names[] = {
      "XM_OK", "XM_E_ADD_FD_MAPPING_UNSUPPORTED", "XM_E_INVALID_ADDRESS", "XM_E_INVALID_ALIGNMENT",
      "XM_E_INVALID_ARGUMENT", "XM_E_INVALID_OFFSET", "XM_E_INVALID_RANGE", "XM_E_NOT_IMPLEMENTED",
      "XM_E_NOT_PAGE_ALIGNED", "XM_E_READ_TO_MEMORY", "XM_E_REMOVE_MAPPING_UNSUPPORTED", "XM_E_SYSTEM_CALL",
      "XM_E_WRITE_FROM_MEMORY", "XM_E_OUT_OF_BOUNDS", "XM_E_OVERFLOW", "XM_E_NO_MEMORY", "XM_E_FAULT",
      "XM_E_EXISTS", "XM_E_ACCESS"};
  return rc <= 0 && -rc < (int)(sizeof names / sizeof names[0]) ? names[-rc] : "unknown status";
}

/* A failed call: XM_E_NOT_IMPLEMENTED skips the check with the library's reason, anything else
   fails it. */
static void call_failed(struct check *c, const char *call, int rc) {
  if (rc == XM_E_NOT_IMPLEMENTED)
    set_outcome(c, SKIPPED, "%s", xm_errmsg());
  else
    set_outcome(c, FAILED, "%s -> %s: %s", call, status_name(rc), xm_errmsg());
}

#define OK(call)                                                                                   \
  do {                                                                                             \
    int ok_rc_ = (call);                                                                           \
    if (ok_rc_ != XM_OK) {                                                                         \
      call_failed(c, #call, ok_rc_);                                                               \
      goto out;                                                                                    \
    }                                                                                              \
  } while (0)

#define EXPECT_STATUS(expected, call)                                                              \
  do {                                                                                             \
    int st_rc_ = (call);                                                                           \
    if (st_rc_ != (expected)) {                                                                    \
      if (st_rc_ == XM_E_NOT_IMPLEMENTED)                                                          \
        set_outcome(c, SKIPPED, "%s", xm_errmsg());                                                \
      else                                                                                         \
        set_outcome(c, FAILED, "%s -> %s (%s), expected %s", #call, status_name(st_rc_), xm_errmsg(), \
                    status_name(expected));                                                        \
      goto out;                                                                                    \
    }                                                                                              \
  } while (0)

#define EXPECT(cond)                                                                               \
  do {                                                                                             \
    if (!(cond)) {                                                                                 \
      set_outcome(c, FAILED, "line %d: %s is false", __LINE__, #cond);                             \
      goto out;                                                                                    \
    }                                                                                              \
  } while (0)

#define SKIP(...)                                                                                  \
  do {                                                                                             \
    set_outcome(c, SKIPPED, __VA_ARGS__);                                                          \
    goto out;                                                                                      \
  } while (0)

static void fill(unsigned char *p, size_t n, unsigned seed) {
  uint32_t x = seed * 2654435761u + 1u;
  for (size_t i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    p[i] = (unsigned char)x;
  }
}

static int anon(size_t size, xm_mapping **m) {
  xm_builder b = xm_builder_new(size);
  return xm_builder_build(&b, m);
}

/* A temporary file holding size bytes of pattern seed (the pattern is also left in *data). */
static bool pattern_file(struct check *c, tool_file *f, size_t size, unsigned seed, unsigned char **data) {
  *data = malloc(size);
  if (!*data || tool_file_create(f, tool_temp_dir(), size) != 0) {
    set_outcome(c, FAILED, "cannot create a %zu-byte temporary file in %s", size, tool_temp_dir());
    return false;
  }
  fill(*data, size, seed);
  if (tool_file_pwrite(f, *data, size, 0) != 0) {
    set_outcome(c, FAILED, "cannot write the temporary file %s", f->path);
    return false;
  }
  return true;
}

#ifdef _WIN32
#define NO_FILE ((xm_descriptor)NULL)
#else
#define NO_FILE (-1)
#endif

/* ---- the checks --------------------------------------------------------------------------- */
static void check_facts(struct check *c) {
  size_t page = xm_page_size(), g = xm_allocation_granularity(), line = xm_cacheline_size();
  EXPECT(page >= 4096 && (page & (page - 1)) == 0);
  EXPECT(g >= page && g % page == 0);
  EXPECT(line >= 8 && (line & (line - 1)) == 0);
  EXPECT(xm_cacheline_source() != NULL && xm_cacheline_source()[0] != '\0');
  EXPECT(strcmp(xm_backend_name(), "posix") == 0 || strcmp(xm_backend_name(), "windows") == 0);
  static const char *const methods[] = {"clwb", "clflushopt", "clflush", "dc cvac", "dcbst", "cbo.clean", "none"};
  bool known = false;
  for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++) known |= strcmp(xm_flush_method(), methods[i]) == 0;
  EXPECT(known);
  char v[32];
  tool_format(v, sizeof v, "%d.%d.%d", XMMAP_VERSION_MAJOR, XMMAP_VERSION_MINOR, XMMAP_VERSION_PATCH);
  EXPECT(strcmp(v, xm_version()) == 0);
  tool_format(c->note, sizeof c->note, "page %zu, granularity %zu, line %zu (%s), flush %s", page, g, line,
              xm_cacheline_source(), xm_flush_method());
out:;
}

static void check_errors(struct check *c) {
  xm_builder b = xm_builder_new(4096);
  xm_mapping *m = NULL;
  EXPECT_STATUS(XM_E_INVALID_ARGUMENT, xm_builder_build(&b, NULL));
  EXPECT(xm_errmsg()[0] != '\0');
  xm_builder_align(&b, 3);
  EXPECT_STATUS(XM_E_INVALID_ALIGNMENT, xm_builder_build(&b, &m));
  EXPECT(strcmp(xm_strerror(-12345), xm_strerror(XM_E_SYSTEM_CALL)) != 0); /* unknown is not a known text */
  /* A descriptor that is not open: found by an OS call on the descriptor itself. */
  b = xm_builder_new(4096);
#ifdef _WIN32
  xm_builder_from_file(&b, (xm_descriptor)(uintptr_t)0x7ff4);
#else
  xm_builder_from_file(&b, 1 << 20);
#endif
  EXPECT_STATUS(XM_E_SYSTEM_CALL, xm_builder_build(&b, &m));
  EXPECT(xm_os_error() != 0);
  xm_mapping_free(NULL);
  xm_shm_free(NULL);
  xm_arena_free(NULL);
  EXPECT(xm_mapping_size(NULL) == 0 && xm_mapping_ptr(NULL) == NULL);
out:
  xm_mapping_free(m);
}

static void check_anonymous(struct check *c) {
  const size_t g = xm_allocation_granularity(), size = 4 * g;
  xm_mapping *m = NULL, *empty = NULL;
  OK(anon(size, &m));
  EXPECT(xm_mapping_ptr(m) != NULL && xm_mapping_size(m) == size);
  uint64_t v = 0x0123456789abcdefull, r = 0;
  OK(XM_WRITE_OBJ(m, 8, &v));
  OK(XM_READ_OBJ(m, 8, &r));
  EXPECT(r == v);
  OK(XM_WRITE_OBJ(m, 13, &v)); /* odd offsets are fine for the non-volatile accessors */
  OK(XM_READ_OBJ(m, 13, &r));
  EXPECT(r == v);
  EXPECT_STATUS(XM_E_INVALID_ADDRESS, xm_mapping_write_obj(m, &v, 8, size - 4));
  uint8_t b8 = 0x5a;
  uint16_t b16 = 0x1234;
  uint32_t b32 = 0x89abcdefu;
  OK(xm_mapping_write_obj_volatile(m, &b8, 1, 64));
  OK(xm_mapping_write_obj_volatile(m, &b16, 2, 66));
  OK(xm_mapping_write_obj_volatile(m, &b32, 4, 68));
  OK(xm_mapping_write_obj_volatile(m, &v, 8, 72));
  uint8_t r8 = 0;
  uint16_t r16 = 0;
  uint32_t r32 = 0;
  OK(xm_mapping_read_obj_volatile(m, &r8, 1, 64));
  OK(xm_mapping_read_obj_volatile(m, &r16, 2, 66));
  OK(xm_mapping_read_obj_volatile(m, &r32, 4, 68));
  OK(xm_mapping_read_obj_volatile(m, &r, 8, 72));
  EXPECT(r8 == b8 && r16 == b16 && r32 == b32 && r == v);
  EXPECT_STATUS(XM_E_INVALID_ALIGNMENT, xm_mapping_write_obj_volatile(m, &v, 8, 76));
  EXPECT_STATUS(XM_E_INVALID_ALIGNMENT, xm_mapping_read_obj_volatile(m, &r, 3, 64));
  unsigned char buf[100];
  size_t copied = 0;
  memset(buf, 7, sizeof buf);
  OK(xm_mapping_write_slice(m, buf, sizeof buf, size - 10, &copied));
  EXPECT(copied == 10);
  OK(xm_mapping_read_slice(m, buf, sizeof buf, size, &copied));
  EXPECT(copied == 0);
  EXPECT_STATUS(XM_E_INVALID_ADDRESS, xm_mapping_read_slice(m, buf, 1, size + 1, &copied));
  xm_slice untouched;
  OK(xm_mapping_get_slice(m, g, 2 * g, &untouched));
  EXPECT(xm_slice_is_all_zero(untouched));
  /* Size 0: a valid empty mapping, no OS call. */
  OK(anon(0, &empty));
  EXPECT(xm_mapping_ptr(empty) == NULL && xm_mapping_size(empty) == 0);
  OK(xm_mapping_read_slice(empty, buf, sizeof buf, 0, &copied));
  EXPECT(copied == 0);
  OK(xm_mapping_flush_region(empty, 0, 0));
out:
  xm_mapping_free(empty);
  xm_mapping_free(m);
}

static void check_slices(struct check *c) {
  const size_t page = xm_page_size();
  xm_mapping *m = NULL;
  OK(anon(page, &m));
  xm_slice s, t, u;
  OK(xm_mapping_get_slice(m, 0, page, &s));
  EXPECT(s.addr == xm_mapping_ptr(m) && s.size == page);
  EXPECT_STATUS(XM_E_OUT_OF_BOUNDS, xm_mapping_get_slice(m, page, 1, &t));
  xm_slice_write_bytes(s, 0xab);
  EXPECT(!xm_slice_is_all_zero(s));
  OK(xm_slice_sub(s, 10, 20, &t));
  EXPECT((unsigned char *)t.addr == (unsigned char *)s.addr + 10 && t.size == 20);
  EXPECT_STATUS(XM_E_OUT_OF_BOUNDS, xm_slice_sub(s, page - 1, 2, &u));
  EXPECT_STATUS(XM_E_OVERFLOW, xm_slice_sub(s, SIZE_MAX, 2, &u));
  OK(xm_slice_offset(s, 100, &u));
  EXPECT(u.size == page - 100);
  unsigned char buf[64];
  EXPECT(xm_slice_copy_from(t, "hello", 5) == 5);
  EXPECT(xm_slice_copy_to(t, buf, sizeof buf) == 20);
  EXPECT(memcmp(buf, "hello", 5) == 0 && buf[5] == 0xab);
  /* Overlapping copies behave like memmove. */
  xm_slice src, dst;
  OK(xm_slice_sub(s, 0, 100, &src));
  OK(xm_slice_sub(s, 10, 100, &dst));
  for (unsigned i = 0; i < 100; i++) ((unsigned char *)src.addr)[i] = (unsigned char)i;
  EXPECT(xm_slice_copy_to_slice(src, dst) == 100);
  EXPECT(((unsigned char *)dst.addr)[0] == 0 && ((unsigned char *)dst.addr)[99] == 99);
  xm_slice_write_bytes(s, 0);
  EXPECT(xm_slice_is_all_zero(s));
out:
  xm_mapping_free(m);
}

static void check_file(struct check *c) {
  const size_t g = xm_allocation_granularity();
  tool_file f = {NO_FILE, ""};
  unsigned char *data = NULL, *buf = malloc(2 * g);
  xm_mapping *m = NULL, *ro = NULL, *all = NULL;
  if (!buf) SKIP("out of memory");
  if (!pattern_file(c, &f, 4 * g, 1, &data)) goto out;
  xm_builder b = xm_builder_new(2 * g);
  xm_builder_from_file(&b, f.d);
  xm_builder_offset(&b, g);
  OK(xm_builder_build(&b, &m));
  size_t copied = 0;
  OK(xm_mapping_read_slice(m, buf, 2 * g, 0, &copied));
  EXPECT(copied == 2 * g && memcmp(buf, data + g, 2 * g) == 0);
  uint64_t marker = 0x66696c656d61726bull, back = 0;
  OK(XM_WRITE_OBJ(m, 24, &marker));
  OK(xm_mapping_msync(m));
  EXPECT(tool_file_pread(&f, &back, sizeof back, g + 24) == 0 && back == marker);
  /* Read-only: checked writes are refused, never a crash. */
  b = xm_builder_new(g);
  xm_builder_from_file(&b, f.d);
  xm_builder_protection(&b, XM_PROT_READ);
  OK(xm_builder_build(&b, &ro));
  EXPECT_STATUS(XM_E_ACCESS, XM_WRITE_OBJ(ro, 0, &marker));
  OK(XM_READ_OBJ(ro, 0, &back));
  EXPECT(memcmp(&back, data, sizeof back) == 0);
  /* To the end of the file. */
  b = xm_builder_new(0);
  xm_builder_from_file(&b, f.d);
  xm_builder_offset(&b, g);
  xm_builder_to_end_of_file(&b);
  OK(xm_builder_build(&b, &all));
  EXPECT(xm_mapping_size(all) == 3 * g);
out:
  xm_mapping_free(all);
  xm_mapping_free(ro);
  xm_mapping_free(m);
  tool_file_close(&f);
  free(data);
  free(buf);
}

static void check_private(struct check *c) {
  const size_t g = xm_allocation_granularity();
  tool_file f = {NO_FILE, ""};
  unsigned char *data = NULL;
  xm_mapping *m = NULL;
  if (!pattern_file(c, &f, g, 2, &data)) goto out;
  xm_builder b = xm_builder_new(g);
  xm_builder_from_file(&b, f.d);
  xm_builder_private(&b);
  OK(xm_builder_build(&b, &m));
  uint64_t marker = 0x707269766174650aull, back = 0;
  OK(XM_WRITE_OBJ(m, 0, &marker));
  OK(XM_READ_OBJ(m, 0, &back));
  EXPECT(back == marker);
  OK(xm_mapping_msync(m));
  EXPECT(tool_file_pread(&f, &back, sizeof back, 0) == 0);
  EXPECT(memcmp(&back, data, sizeof back) == 0); /* copy-on-write: the file keeps its bytes */
out:
  xm_mapping_free(m);
  tool_file_close(&f);
  free(data);
}

static void check_unaligned_offset(struct check *c) {
  const size_t g = xm_allocation_granularity();
  tool_file f = {NO_FILE, ""};
  unsigned char *data = NULL, buf[200];
  xm_mapping *m = NULL;
  if (!pattern_file(c, &f, 2 * g, 3, &data)) goto out;
  xm_builder b = xm_builder_new(sizeof buf);
  xm_builder_from_file(&b, f.d);
  xm_builder_offset(&b, g + 100);
  int rc = xm_builder_build(&b, &m);
  if (rc == XM_E_INVALID_OFFSET) SKIP("unaligned offsets are not supported by this build: %s", xm_errmsg());
  OK(rc);
  size_t copied = 0;
  OK(xm_mapping_read_slice(m, buf, sizeof buf, 0, &copied));
  EXPECT(copied == sizeof buf && memcmp(buf, data + g + 100, sizeof buf) == 0);
out:
  xm_mapping_free(m);
  tool_file_close(&f);
  free(data);
}

static void check_shm(struct check *c) {
  const size_t g = xm_allocation_granularity();
  xm_shm *shm = NULL, *clone = NULL;
  xm_mapping *a = NULL, *b2 = NULL, *cm = NULL;
  OK(xm_shm_new("xmmap-selftest", 2 * g, &shm));
  EXPECT(xm_shm_size(shm) == 2 * g);
  xm_builder b = xm_builder_new(2 * g);
  xm_builder_from_shm(&b, shm);
  OK(xm_builder_build(&b, &a));
  OK(xm_builder_build(&b, &b2));
  EXPECT(xm_mapping_ptr(a) != xm_mapping_ptr(b2));
  uint64_t v = 0x73686d2d73686d21ull, r = 0;
  OK(XM_WRITE_OBJ(a, g + 8, &v));
  OK(XM_READ_OBJ(b2, g + 8, &r));
  EXPECT(r == v); /* two views of one object */
  OK(xm_shm_clone(shm, &clone));
  EXPECT(xm_shm_size(clone) == 2 * g);
  xm_builder_from_shm(&b, clone);
  OK(xm_builder_build(&b, &cm));
  r = 0;
  OK(XM_READ_OBJ(cm, g + 8, &r));
  EXPECT(r == v);
out:
  xm_mapping_free(cm);
  xm_mapping_free(b2);
  xm_mapping_free(a);
  xm_shm_free(clone);
  xm_shm_free(shm);
}

static void check_seals(struct check *c) {
  const size_t page = xm_page_size();
  xm_shm *shm = NULL, *sealed = NULL;
  xm_mapping *rw = NULL, *ro = NULL;
  unsigned seals = 0;
  OK(xm_shm_new("xmmap-selftest-seals", page, &shm));
  OK(xm_shm_get_seals(shm, &seals));
  OK(xm_shm_add_seals(shm, XM_SEAL_GROW | XM_SEAL_SHRINK));
  OK(xm_shm_get_seals(shm, &seals));
  EXPECT((seals & (XM_SEAL_GROW | XM_SEAL_SHRINK)) == (XM_SEAL_GROW | XM_SEAL_SHRINK));
  /* A write-sealed object maps read-only and refuses writable mappings. */
  OK(xm_shm_new("xmmap-selftest-sealed", page, &sealed));
  OK(xm_shm_add_seals(sealed, XM_SEAL_WRITE));
  xm_builder b = xm_builder_new(page);
  xm_builder_from_shm(&b, sealed);
  EXPECT_STATUS(XM_E_SYSTEM_CALL, xm_builder_build(&b, &rw));
  xm_builder_protection(&b, XM_PROT_READ);
  OK(xm_builder_build(&b, &ro));
out:
  xm_mapping_free(ro);
  xm_mapping_free(rw);
  xm_shm_free(sealed);
  xm_shm_free(shm);
}

static void check_arena(struct check *c) {
  const size_t g = xm_allocation_granularity();
  xm_arena *a = NULL;
  xm_shm *shm = NULL;
  xm_mapping *sm = NULL;
  OK(xm_arena_new(4 * g, &a));
  xm_region *r = xm_arena_region(a);
  unsigned char *base = xm_region_ptr(r);
  EXPECT(base != NULL && xm_region_size(r) == 4 * g);
  OK(xm_arena_add_anon(a, 0, g, XM_PROT_READ_WRITE));
  memset(base, 0x11, g); /* writable now: a fault here would end the selftest */
  /* A shared-memory object mapped into the arena (on Windows its descriptor is a section). */
  OK(xm_shm_new("xmmap-selftest-arena", 2 * g, &shm));
  xm_builder b = xm_builder_new(2 * g);
  xm_builder_from_shm(&b, shm);
  OK(xm_builder_build(&b, &sm));
  uint64_t v = 0x6172656e61210a00ull, r64 = 0;
  OK(XM_WRITE_OBJ(sm, g, &v));
  OK(xm_arena_add_fd(a, 2 * g, g, xm_shm_descriptor(shm), g, XM_PROT_READ_WRITE));
  memcpy(&r64, base + 2 * g, sizeof r64);
  EXPECT(r64 == v);
  v = ~v;
  memcpy(base + 2 * g + 8, &v, sizeof v);
  OK(XM_READ_OBJ(sm, g + 8, &r64));
  EXPECT(r64 == v);
  EXPECT_STATUS(XM_E_NOT_PAGE_ALIGNED, xm_arena_add_anon(a, 1, g, XM_PROT_READ_WRITE));
  EXPECT_STATUS(XM_E_ADD_FD_MAPPING_UNSUPPORTED,
                xm_region_add_fd_mapping(xm_mapping_region(sm), 0, g, xm_shm_descriptor(shm), 0, XM_PROT_READ));
  OK(xm_arena_remove(a, 2 * g, g));
  OK(xm_arena_remove(a, 0, g));
  tool_format(c->note, sizeof c->note, "strategy: %s", xm_arena_strategy());
out:
  xm_mapping_free(sm);
  xm_arena_free(a);
  xm_shm_free(shm);
}

static void check_flush(struct check *c) {
  const size_t size = (size_t)1 << 20;
  xm_mapping *m = NULL;
  OK(anon(size, &m));
  memset(xm_mapping_ptr(m), 0x42, size);
  EXPECT_STATUS(XM_E_INVALID_RANGE, xm_mapping_flush_region(m, size - 1, 2));
  OK(xm_mapping_flush_region(m, size, 0));
  OK(xm_mapping_flush_region(m, 0, size));
  OK(xm_mapping_flush_region(m, 13, 100));
  OK(xm_mapping_flush_all(m));
  tool_format(c->note, sizeof c->note, "%s, %zu-byte lines", xm_flush_method(), xm_cacheline_size());
out:
  xm_mapping_free(m);
}

static void check_msync(struct check *c) {
  const size_t g = xm_allocation_granularity(), page = xm_page_size();
  tool_file f = {NO_FILE, ""};
  unsigned char *data = NULL;
  xm_mapping *m = NULL;
  if (!pattern_file(c, &f, 2 * g, 4, &data)) goto out;
  xm_builder b = xm_builder_new(2 * g);
  xm_builder_from_file(&b, f.d);
  OK(xm_builder_build(&b, &m));
  uint64_t v = 0x6d73796e63210a00ull, back = 0;
  OK(XM_WRITE_OBJ(m, page + 8, &v));
  OK(xm_mapping_sync_range(m, page, page, XM_SYNC_ASYNC));
  OK(xm_mapping_sync_range(m, page + 8, 8, XM_SYNC_SYNC));
  EXPECT(tool_file_pread(&f, &back, sizeof back, page + 8) == 0 && back == v);
  v = ~v;
  OK(XM_WRITE_OBJ(m, 2 * g - 8, &v));
  OK(xm_region_msync(xm_mapping_region(m), 0, 2 * g));
  EXPECT(tool_file_pread(&f, &back, sizeof back, 2 * g - 8) == 0 && back == v);
  OK(xm_mapping_msync(m));
out:
  xm_mapping_free(m);
  tool_file_close(&f);
  free(data);
}

static void check_advice(struct check *c) {
  static const struct {
    xm_advice advice;
    const char *name;
  } all[] = {
      {XM_ADVICE_NORMAL, "NORMAL"},           {XM_ADVICE_RANDOM, "RANDOM"},         {XM_ADVICE_SEQUENTIAL, "SEQUENTIAL"},
      {XM_ADVICE_WILLNEED, "WILLNEED"},       {XM_ADVICE_DONTNEED, "DONTNEED"},     {XM_ADVICE_REMOVE, "REMOVE"},
      {XM_ADVICE_DONTFORK, "DONTFORK"},       {XM_ADVICE_DOFORK, "DOFORK"},         {XM_ADVICE_HUGEPAGE, "HUGEPAGE"},
      {XM_ADVICE_NOHUGEPAGE, "NOHUGEPAGE"},   {XM_ADVICE_DONTDUMP, "DONTDUMP"},     {XM_ADVICE_DODUMP, "DODUMP"},
      {XM_ADVICE_MERGEABLE, "MERGEABLE"},     {XM_ADVICE_UNMERGEABLE, "UNMERGEABLE"}, {XM_ADVICE_COLD, "COLD"},
      {XM_ADVICE_PAGEOUT, "PAGEOUT"},         {XM_ADVICE_POPULATE_READ, "POPULATE_READ"},
      {XM_ADVICE_POPULATE_WRITE, "POPULATE_WRITE"},
  };
  const size_t size = (size_t)2 << 20, page = xm_page_size();
  xm_mapping *m = NULL;
  char missing[400] = "";
  size_t applied = 0, nmissing = 0;
  OK(anon(size, &m));
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
    int rc = xm_mapping_advise(m, 0, size, all[i].advice);
    if (rc == XM_OK) {
      applied++;
      continue;
    }
    /* Absent here: no equivalent on this OS, or a kernel built without it (EINVAL). */
    bool absent = rc == XM_E_NOT_IMPLEMENTED;
#ifndef _WIN32
    absent |= rc == XM_E_SYSTEM_CALL && xm_os_error() == EINVAL;
#endif
    if (!absent) {
      set_outcome(c, FAILED, "advice %s -> %s: %s", all[i].name, status_name(rc), xm_errmsg());
      goto out;
    }
    size_t n = strlen(missing);
    tool_format(missing + n, sizeof missing - n, "%s%s", nmissing ? " " : "", all[i].name);
    nmissing++;
  }
  /* The named helpers. */
  OK(xm_mapping_async_prefetch(m, 0, size));
  uint64_t v = 1, r = 1;
  OK(XM_WRITE_OBJ(m, 0, &v));
  int rc = xm_mapping_remove_range(m, 0, page);
  bool remove_ignored = false;
  if (rc == XM_OK) {
    OK(XM_READ_OBJ(m, 0, &r));
    /* MADV_REMOVE frees the backing store: zeros. qemu-user accepts the advice and ignores it. */
    remove_ignored = r != 0 && tool_under_qemu();
    EXPECT(r == 0 || remove_ignored);
  } else if (rc != XM_E_NOT_IMPLEMENTED) {
    call_failed(c, "xm_mapping_remove_range(m, 0, page)", rc);
    goto out;
  }
  rc = xm_mapping_drop_page_cache(m, page, page);
  if (rc != XM_OK && rc != XM_E_NOT_IMPLEMENTED) {
    call_failed(c, "xm_mapping_drop_page_cache(m, page, page)", rc);
    goto out;
  }
  rc = xm_mapping_use_dontfork(m);
  if (rc != XM_OK && rc != XM_E_NOT_IMPLEMENTED) {
    call_failed(c, "xm_mapping_use_dontfork(m)", rc);
    goto out;
  }
  EXPECT_STATUS(XM_E_INVALID_RANGE, xm_mapping_async_prefetch(m, size, 1));
  if (nmissing)
    tool_format(c->note, sizeof c->note, "%zu of %zu applied; not available here: %s%s", applied,
                sizeof all / sizeof all[0], missing, remove_ignored ? "; qemu-user ignored MADV_REMOVE" : "");
  else
    tool_format(c->note, sizeof c->note, "all %zu applied%s", applied,
                remove_ignored ? "; qemu-user ignored MADV_REMOVE" : "");
out:
  xm_mapping_free(m);
}

static void check_protect(struct check *c) {
  const size_t page = xm_page_size();
  xm_mapping *m = NULL, *ro = NULL;
  uint64_t v = 42, r = 0;
  OK(anon(4 * page, &m));
  OK(xm_mapping_protect(m, page, page, XM_PROT_READ));
  EXPECT_STATUS(XM_E_ACCESS, XM_WRITE_OBJ(m, page, &v));
  EXPECT_STATUS(XM_E_ACCESS, XM_WRITE_OBJ(m, page - 4, &v)); /* straddles into the read-only page */
  OK(XM_READ_OBJ(m, page, &r));
  OK(XM_WRITE_OBJ(m, 0, &v));
  OK(XM_WRITE_OBJ(m, 2 * page, &v));
  OK(xm_mapping_protect(m, page, page, XM_PROT_READ_WRITE));
  OK(XM_WRITE_OBJ(m, page, &v));
  OK(xm_mapping_protect(m, 0, page, XM_PROT_NONE));
  EXPECT_STATUS(XM_E_ACCESS, XM_READ_OBJ(m, 0, &r));
  OK(xm_mapping_protect(m, 0, 4 * page, XM_PROT_READ_WRITE));
  OK(XM_READ_OBJ(m, 0, &r));
  EXPECT(r == v);
  /* Never above what the mapping was built with. */
  xm_builder b = xm_builder_new(page);
  xm_builder_protection(&b, XM_PROT_READ);
  OK(xm_builder_build(&b, &ro));
  EXPECT_STATUS(XM_E_ACCESS, xm_mapping_protect(ro, 0, page, XM_PROT_READ_WRITE));
out:
  xm_mapping_free(ro);
  xm_mapping_free(m);
}

static void check_guard_pages(struct check *c) {
  const size_t g = xm_allocation_granularity();
  xm_mapping *m = NULL;
  xm_builder b = xm_builder_new(g);
  xm_builder_guard_pages(&b, 1);
  OK(xm_builder_build(&b, &m));
  unsigned char *p = xm_mapping_ptr(m);
  memset(p, 1, g);
  bool below = tool_page_below_is_guard(p), above = tool_page_below_is_guard(p + g + xm_page_size());
  if (!(below && above) && tool_under_qemu())
    SKIP("qemu-user's /proc/self/maps does not show this guest's guard pages (below: %s, above: %s)",
         below ? "seen" : "not seen", above ? "seen" : "not seen");
  EXPECT(below);
  EXPECT(above);
out:
  xm_mapping_free(m);
}

static void check_fault_safe(struct check *c) {
  const size_t page = xm_page_size();
  xm_mapping *m = NULL;
  unsigned char *buf = malloc(2 * page), *second = NULL;
  bool hidden = false;
  size_t copied = 0;
  if (!buf) SKIP("out of memory");
  OK(anon(2 * page, &m));
  second = (unsigned char *)xm_mapping_ptr(m) + page;
  memset(xm_mapping_ptr(m), 3, 2 * page);
  OK(xm_mapping_read_slice_safe(m, buf, 2 * page, 0, &copied));
  EXPECT(copied == 2 * page && buf[2 * page - 1] == 3);
  /* The second page goes away behind the library's back, as if the file under it shrank. */
  EXPECT(tool_raw_protect(second, page, false) == 0);
  hidden = true;
  EXPECT_STATUS(XM_E_FAULT, xm_mapping_read_slice_safe(m, buf, 2 * page, 0, &copied));
  EXPECT_STATUS(XM_E_FAULT, xm_mapping_write_slice_safe(m, buf, 16, page + 8, &copied));
  OK(xm_mapping_read_slice_safe(m, buf, page, 0, &copied));
  EXPECT(copied == page);
out:
  if (hidden) (void)tool_raw_protect(second, page, true);
  xm_mapping_free(m);
  free(buf);
}

static void check_lock(struct check *c) {
  const size_t page = xm_page_size();
  xm_mapping *m = NULL;
  OK(anon(4 * page, &m));
  int rc = xm_mapping_lock_on_fault(m, 0, 2 * page);
#ifndef _WIN32
  if (rc == XM_E_SYSTEM_CALL && (xm_os_error() == EPERM || xm_os_error() == ENOMEM || xm_os_error() == EAGAIN))
    SKIP("the locked-memory limit does not allow it here: %s", xm_errmsg());
#endif
  OK(rc);
  OK(xm_mapping_unlock(m, 0, 2 * page));
out:
  xm_mapping_free(m);
}

static void check_fixed(struct check *c) {
  const size_t g = xm_allocation_granularity();
  xm_mapping *taken = NULL, *m = NULL;
  OK(anon(2 * g, &taken));
  void *addr = xm_mapping_ptr(taken);
  xm_builder b = xm_builder_new(g);
  xm_builder_fixed_noreplace(&b, (unsigned char *)addr + g);
  EXPECT_STATUS(XM_E_EXISTS, xm_builder_build(&b, &m));
  xm_mapping_free(taken);
  taken = NULL;
  xm_builder_fixed_noreplace(&b, addr);
  OK(xm_builder_build(&b, &m));
  EXPECT(xm_mapping_ptr(m) == addr);
out:
  xm_mapping_free(m);
  xm_mapping_free(taken);
}

static void check_align(struct check *c) {
  const uint64_t align = (uint64_t)2 << 20;
  xm_mapping *m = NULL;
  xm_builder b = xm_builder_new(xm_allocation_granularity());
  xm_builder_align(&b, align);
  OK(xm_builder_build(&b, &m));
  EXPECT(((uintptr_t)xm_mapping_ptr(m) & (uintptr_t)(align - 1)) == 0);
out:
  xm_mapping_free(m);
}

static void check_huge_pages(struct check *c) {
  const size_t size = (size_t)2 << 20;
  xm_mapping *m = NULL;
  xm_builder b = xm_builder_new(size);
  xm_builder_huge_pages(&b, 0);
  int rc = xm_builder_build(&b, &m);
  /* No huge pages reserved (hugetlb pool empty, no SeLockMemoryPrivilege) is this system's
     configuration, not a defect. */
  if (rc == XM_E_SYSTEM_CALL) SKIP("no huge pages available here: %s", xm_errmsg());
  OK(rc);
  memset(xm_mapping_ptr(m), 1, size);
out:
  xm_mapping_free(m);
}

static void check_external(struct check *c) {
  unsigned char *mem = calloc(1, 4096);
  xm_region *r = NULL;
  if (!mem) SKIP("out of memory");
  OK(xm_external_mapping_new((uint64_t)(uintptr_t)mem, 4096, &r));
  EXPECT(xm_region_ptr(r) == mem && xm_region_size(r) == 4096);
  EXPECT_STATUS(XM_E_REMOVE_MAPPING_UNSUPPORTED, xm_region_remove_mapping(r, 0, 4096));
out:
  xm_region_free(r);
  free(mem);
}

static const struct {
  const char *name;
  void (*run)(struct check *c);
} checks[] = {
    {"system facts", check_facts},
    {"errors", check_errors},
    {"anonymous mapping", check_anonymous},
    {"slices", check_slices},
    {"file mapping", check_file},
    {"private (copy-on-write) mapping", check_private},
    {"unaligned offset", check_unaligned_offset},
    {"shared memory", check_shm},
    {"seals", check_seals},
    {"arena", check_arena},
    {"flush", check_flush},
    {"msync", check_msync},
    {"advice", check_advice},
    {"protection", check_protect},
    {"guard pages", check_guard_pages},
    {"fault-safe copies", check_fault_safe},
    {"locking", check_lock},
    {"fixed address (no-replace)", check_fixed},
    {"alignment", check_align},
    {"huge pages", check_huge_pages},
    {"external region", check_external},
};

int tool_selftest(int argc, char **argv) {
  bool ascii = false;
  for (int i = 1; i < argc; i++) {
    if (tool_is_help(argv[i])) {
      fputs(selftest_help, stdout);
      return TOOL_EXIT_OK;
    }
    if (strcmp(argv[i], "--ascii") == 0)
      ascii = true;
    else
      return tool_usage_error("selftest", "unknown option '%s'", argv[i]);
  }
  const char *marks[3] = {"\xE2\x9C\x93", "\xE2\x9C\x97", "-"};
  if (ascii) {
    marks[0] = "ok  ";
    marks[1] = "FAIL";
    marks[2] = "skip";
  }
  char os[256];
  tool_os_description(os, sizeof os);
  printf("xmmap selftest: xmmap %s, %s back end, %s, %s\n", xm_version(), xm_backend_name(), tool_arch(), os);
  fflush(stdout);
  size_t counts[3] = {0, 0, 0};
  for (size_t i = 0; i < sizeof checks / sizeof checks[0]; i++) {
    struct check c = {PASSED, ""};
    checks[i].run(&c);
    counts[c.outcome]++;
    const char *prefix = c.outcome == SKIPPED ? "skipped: " : "";
    printf("  %s %-32s %s%s\n", marks[c.outcome], checks[i].name, prefix, c.note);
    fflush(stdout);
  }
  printf("%zu checks: %zu passed, %zu failed, %zu skipped\n", sizeof checks / sizeof checks[0], counts[PASSED],
         counts[FAILED], counts[SKIPPED]);
  return counts[FAILED] ? TOOL_EXIT_FAILED : TOOL_EXIT_OK;
}
