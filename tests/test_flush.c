/* Cache-line flushing: the range walk against a recording fake unit, the chosen unit and line
   size, and flushes of real mappings on every architecture (supported or not). */
#include "xmtest.h"

#include "arch.h"
#include "flush.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define XM_TEST_X86 1
#else
#define XM_TEST_X86 0
#endif

/* ---- a recording fake unit ------------------------------------------------------------------ */
static struct {
  int calls;
  uintptr_t first, end;
  size_t line;
  size_t lines;        /* how many lines the call covers, walked the way the arch loops walk */
  uintptr_t last_line; /* the address of the last of them */
} rec;

/* Walks like the real units (p != end, so end 0 means the top of the address space) and never
   dereferences anything. */
static void record_clean(uintptr_t first, uintptr_t end, size_t line) {
  rec.calls++;
  rec.first = first;
  rec.end = end;
  rec.line = line;
  size_t n = 0;
  uintptr_t p = first;
  do {
    rec.last_line = p;
    n++;
    p += line;
  } while (p != end && n <= ((size_t)1 << 24));
  rec.lines = n;
}

static const struct xm__flush_unit fake_unit = {"fake", NULL, 64, "fake", record_clean};
static const struct xm__flush_unit fake_unsupported = {"none", "fake unit cannot flush", 0, NULL, NULL};

static int reset_rec(void **state) {
  (void)state;
  memset(&rec, 0, sizeof rec);
  return 0;
}

static void test_range_offset60_len8_covers_lines_0_and_1(void **state) {
  (void)state;
  const uintptr_t base = (uintptr_t)0x10000;
  assert_int_equal(xm__flush_range(&fake_unit, 64, base, 4096, 60, 8), XM_OK);
  assert_int_equal(rec.calls, 1);
  assert_int_equal(rec.first, base);
  assert_int_equal(rec.end, base + 128);
  assert_int_equal(rec.line, 64);
  assert_int_equal(rec.lines, 2);
}

static void test_range_starts_at_the_line_holding_offset(void **state) {
  (void)state;
  /* crosvm flushed ceil(len / line) lines from the unaligned start and missed the last line. */
  const uintptr_t base = (uintptr_t)0x20000 + 8; /* not line-aligned either */
  assert_int_equal(xm__flush_range(&fake_unit, 64, base, 4096, 52, 72), XM_OK);
  /* bytes 0x20000+60 .. 0x20000+131: lines 0x20000, 0x20040, 0x20080 */
  assert_int_equal(rec.first, (uintptr_t)0x20000);
  assert_int_equal(rec.end, (uintptr_t)0x200c0);
  assert_int_equal(rec.lines, 3);
}

/* Every (offset, len) combination over a few lines and two line sizes: exactly the touched lines. */
static void test_range_exhaustive_small(void **state) {
  (void)state;
  const size_t lines[] = {32, 64, 128};
  for (size_t li = 0; li < sizeof lines / sizeof lines[0]; li++) {
    const size_t line = lines[li];
    for (uintptr_t skew = 0; skew < 3; skew++) {
      const uintptr_t base = (uintptr_t)0x40000 + skew * 24;
      const size_t size = 300;
      for (size_t off = 0; off <= size; off++) {
        for (size_t len = 0; len <= size - off; len += 7) {
          memset(&rec, 0, sizeof rec);
          assert_int_equal(xm__flush_range(&fake_unit, line, base, size, off, len), XM_OK);
          if (len == 0) {
            assert_int_equal(rec.calls, 0);
            continue;
          }
          uintptr_t first = (base + off) / line * line;
          uintptr_t end = (base + off + len + line - 1) / line * line;
          assert_int_equal(rec.calls, 1);
          assert_int_equal(rec.first, first);
          assert_int_equal(rec.end, end);
          assert_int_equal(rec.lines, (end - first) / line);
        }
      }
    }
  }
}

static void test_range_empty_is_ok_and_flushes_nothing(void **state) {
  (void)state;
  const uintptr_t base = (uintptr_t)0x10000;
  assert_int_equal(xm__flush_range(&fake_unit, 64, base, 4096, 4096, 0), XM_OK); /* offset == size */
  assert_int_equal(xm__flush_range(&fake_unit, 64, base, 4096, 0, 0), XM_OK);
  assert_int_equal(xm__flush_range(&fake_unit, 64, base, 4096, 123, 0), XM_OK);
  assert_int_equal(xm__flush_range(&fake_unit, 64, base, 0, 0, 0), XM_OK); /* empty region */
  assert_int_equal(rec.calls, 0);
  /* Empty ranges succeed before the unit is even looked at. */
  assert_int_equal(xm__flush_range(&fake_unsupported, 64, base, 4096, 4096, 0), XM_OK);
}

static void test_range_past_the_end_is_invalid_range(void **state) {
  (void)state;
  const uintptr_t base = (uintptr_t)0x10000;
  assert_int_equal(xm__flush_range(&fake_unit, 64, base, 4096, 4092, 8), XM_E_INVALID_RANGE);
  xt_assert_errmsg_has("offset=4092 count=8 region_size=4096");
  xt_assert_errmsg_has("spans past the end of the region");
  assert_int_equal(xm__flush_range(&fake_unit, 64, base, 4096, 4097, 0), XM_E_INVALID_RANGE);
  xt_assert_errmsg_has("offset=4097 count=0 region_size=4096");
  assert_int_equal(xm__flush_range(&fake_unit, 64, base, 4096, 0, 4097), XM_E_INVALID_RANGE);
  /* offset + len would wrap: still a range error, never a short flush */
  assert_int_equal(xm__flush_range(&fake_unit, 64, base, 4096, 64, SIZE_MAX), XM_E_INVALID_RANGE);
  assert_int_equal(xm__flush_range(&fake_unit, 64, base, 4096, SIZE_MAX, 1), XM_E_INVALID_RANGE);
  assert_int_equal(rec.calls, 0);
  /* The range is checked before the unit: an unsupported arch still reports the range first. */
  assert_int_equal(xm__flush_range(&fake_unsupported, 64, base, 4096, 4092, 8), XM_E_INVALID_RANGE);
}

static void test_range_unsupported_unit_is_not_implemented(void **state) {
  (void)state;
  assert_int_equal(xm__flush_range(&fake_unsupported, 64, (uintptr_t)0x10000, 4096, 0, 1), XM_E_NOT_IMPLEMENTED);
  xt_assert_errmsg_has("operation is not implemented on platform/architecture: fake unit cannot flush");
}

/* A region whose end is exactly 2^N (base + size wraps to 0): the walk must neither stop early
   nor wrap around to address 0. The fake never touches these addresses. */
static void test_range_at_the_top_of_the_address_space(void **state) {
  (void)state;
  const size_t size = 4096;
  const uintptr_t base = UINTPTR_MAX - size + 1;
  const uintptr_t top_line = UINTPTR_MAX - 63;

  assert_int_equal(xm__flush_range(&fake_unit, 64, base, size, size - 1, 1), XM_OK);
  assert_int_equal(rec.calls, 1);
  assert_int_equal(rec.first, top_line);
  assert_int_equal(rec.end, 0);
  assert_int_equal(rec.lines, 1);
  assert_int_equal(rec.last_line, top_line);

  assert_int_equal(xm__flush_range(&fake_unit, 64, base, size, 4000, 96), XM_OK);
  assert_int_equal(rec.first, base + 3968);
  assert_int_equal(rec.lines, 2);
  assert_int_equal(rec.last_line, top_line);

  assert_int_equal(xm__flush_range(&fake_unit, 64, base, size, 0, size), XM_OK);
  assert_int_equal(rec.first, base);
  assert_int_equal(rec.lines, size / 64);
  assert_int_equal(rec.last_line, top_line);

  assert_int_equal(xm__flush_range(&fake_unit, 64, base, size, size, 0), XM_OK);
  assert_int_equal(xm__flush_range(&fake_unit, 64, base, size, 1, size), XM_E_INVALID_RANGE);
  assert_int_equal(rec.calls, 3);
}

/* ---- the chosen unit and line size ---------------------------------------------------------- */
static int is_one_of(const char *s, const char *const *list) {
  for (; *list; list++)
    if (strcmp(s, *list) == 0) return 1;
  return 0;
}

static void test_cacheline_size_is_sane(void **state) {
  (void)state;
  size_t line = xm_cacheline_size();
  /* %lu, not %zu: MinGW's printf checking knows no z */
  print_message("cache line %lu bytes from %s, flush method %s\n", (unsigned long)line, xm_cacheline_source(),
                xm_flush_method());
  assert_true(line > 0);
  assert_true((line & (line - 1)) == 0);
  assert_true(line <= 256);
  assert_int_equal(xm_cacheline_size(), line); /* once: stable */
  static const char *const sources[] = {
      "cpuid", "ctr_el0", "hwprobe", "sysconf", "auxv", "GetLogicalProcessorInformation", "assumed", NULL};
  assert_non_null(xm_cacheline_source());
  assert_true(is_one_of(xm_cacheline_source(), sources));
  static const char *const methods[] = {"clwb", "clflushopt", "clflush", "dc cvac", "dcbst", "cbo.clean", "none", NULL};
  assert_non_null(xm_flush_method());
  assert_true(is_one_of(xm_flush_method(), methods));
  assert_ptr_equal(xm_flush_method(), xm_flush_method());
}

/* The method matches the architecture the test was built for. */
static void test_flush_method_matches_architecture(void **state) {
  (void)state;
  const char *method = xm_flush_method();
#if XM_TEST_X86
  static const char *const x86[] = {"clwb", "clflushopt", "clflush", "none", NULL};
  assert_true(is_one_of(method, x86));
#elif defined(__aarch64__)
  assert_string_equal(method, "dc cvac");
  assert_string_equal(xm_cacheline_source(), "ctr_el0");
#elif defined(__arm__)
  assert_string_equal(method, "none");
#elif defined(__powerpc64__)
  assert_string_equal(method, "dcbst");
#elif defined(__riscv) && __riscv_xlen == 64
  static const char *const rv[] = {"cbo.clean", "none", NULL};
  assert_true(is_one_of(method, rv));
  if (strcmp(method, "cbo.clean") == 0) assert_string_equal(xm_cacheline_source(), "hwprobe");
#else
  assert_string_equal(method, "none");
#endif
}

#if XM_TEST_X86
struct x86_caps {
  int clflush, clflushopt, clwb;
  size_t line;
};
static struct x86_caps x86_caps(void) {
  struct x86_caps c = {0, 0, 0, 0};
  unsigned a, b, cx, d;
  if (__get_cpuid(1, &a, &b, &cx, &d)) {
    c.clflush = (d >> 19) & 1u;
    if (c.clflush) c.line = (size_t)((b >> 8) & 0xffu) * 8u;
  }
  if (__get_cpuid_count(7, 0, &a, &b, &cx, &d)) {
    c.clflushopt = (b >> 23) & 1u;
    c.clwb = (b >> 24) & 1u;
  }
  return c;
}
#endif

/* Without XMMAP_FLUSH the best instruction the CPU has; with it, the forced one, or a refusal
   that names it when the CPU lacks it. ctest runs this binary once per variant. */
static void test_x86_variant(void **state) {
  (void)state;
#if XM_TEST_X86
  struct x86_caps caps = x86_caps();
  const char *forced = getenv("XMMAP_FLUSH");
  print_message("CPU: clflush=%d clflushopt=%d clwb=%d line=%lu; XMMAP_FLUSH=%s; method %s\n", caps.clflush,
                caps.clflushopt, caps.clwb, (unsigned long)caps.line, forced ? forced : "(unset)", xm_flush_method());
  if (caps.line >= 4 && caps.line <= 256 && (caps.line & (caps.line - 1)) == 0) {
    assert_string_equal(xm_cacheline_source(), "cpuid");
    assert_int_equal(xm_cacheline_size(), caps.line);
  }
  if (forced == NULL || forced[0] == '\0') {
    const char *best = caps.clwb ? "clwb" : caps.clflushopt ? "clflushopt" : caps.clflush ? "clflush" : "none";
    assert_string_equal(xm_flush_method(), best);
    return;
  }
  int has = strcmp(forced, "clwb") == 0         ? caps.clwb
            : strcmp(forced, "clflushopt") == 0 ? caps.clflushopt
            : strcmp(forced, "clflush") == 0    ? caps.clflush
                                                : -1;
  if (has == 1) {
    assert_string_equal(xm_flush_method(), forced);
    return;
  }
  /* Refused: the CPU lacks it (or it is no variant at all); flushing says why. */
  assert_string_equal(xm_flush_method(), "none");
  xm_mapping *m = NULL;
  xm_builder b = xm_builder_new(4096);
  assert_int_equal(xm_builder_build(&b, &m), XM_OK);
  assert_int_equal(xm_mapping_flush_region(m, 0, 1), XM_E_NOT_IMPLEMENTED);
  print_message("refused as expected: %s\n", xm_errmsg());
  xt_assert_errmsg_has("XMMAP_FLUSH");
  if (has == 0) xt_assert_errmsg_has(forced);
  xm_mapping_free(m);
#else
  print_message("not an x86 build: no x86 flush variants to check\n");
  skip();
#endif
}

/* ---- real mappings -------------------------------------------------------------------------- */
static int flush_supported(void) { return strcmp(xm_flush_method(), "none") != 0; }

static void fill(unsigned char *p, size_t n, unsigned seed) {
  for (size_t i = 0; i < n; i++)
    p[i] = (unsigned char)(i * 31u + seed);
}

/* Checks that flushing [off, off + len) either works and leaves the data intact, or reports the
   architecture's reason. */
static void flush_and_check(xm_mapping *m, size_t off, size_t len, const unsigned char *expect) {
  int rc = xm_mapping_flush_region(m, off, len);
  if (len == 0 || flush_supported()) {
    assert_int_equal(rc, XM_OK);
  } else {
    assert_int_equal(rc, XM_E_NOT_IMPLEMENTED);
    xt_assert_errmsg_has("operation is not implemented on platform/architecture: ");
    assert_true(strlen(xm_errmsg()) > strlen("operation is not implemented on platform/architecture: "));
  }
  assert_memory_equal(xm_mapping_ptr(m), expect, xm_mapping_size(m));
}

static void test_flush_real_mapping(void **state) {
  (void)state;
  const size_t page = xm_page_size(), size = 3 * page;
  xm_builder b = xm_builder_new(size);
  /* Guard pages on both sides: a flush that strays past either end faults. */
  xm_builder_guard_pages(&b, 1);
  xm_mapping *m = NULL;
  assert_int_equal(xm_builder_build(&b, &m), XM_OK);
  unsigned char *expect = malloc(size);
  assert_non_null(expect);
  fill(expect, size, 7);
  memcpy(xm_mapping_ptr(m), expect, size);

  const size_t line = xm_cacheline_size();
  const size_t cases[][2] = {
      {0, 1},    {60, 8},   {line - 1, 2}, {page - 1, 2}, {1, size - 1}, {size - 1, 1}, {size - line, line},
      {0, size}, {size, 0}, {17, 0},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    flush_and_check(m, cases[i][0], cases[i][1], expect);

  /* Rewrite after a flush and flush again: data stays what was written last. */
  fill(expect, size, 99);
  memcpy(xm_mapping_ptr(m), expect, size);
  int rc = xm_mapping_flush_all(m);
  assert_int_equal(rc, flush_supported() ? XM_OK : XM_E_NOT_IMPLEMENTED);
  assert_memory_equal(xm_mapping_ptr(m), expect, size);
  unsigned char back[64];
  size_t copied = 0;
  assert_int_equal(xm_mapping_read_slice(m, back, sizeof back, size - sizeof back, &copied), XM_OK);
  assert_int_equal(copied, sizeof back);
  assert_memory_equal(back, expect + size - sizeof back, sizeof back);

  /* Validation happens before the architecture is consulted, supported or not. */
  assert_int_equal(xm_mapping_flush_region(m, size - 4, 8), XM_E_INVALID_RANGE);
  xt_assert_errmsg_has("count=8 region_size=");
  assert_int_equal(xm_mapping_flush_region(m, size + 1, 0), XM_E_INVALID_RANGE);
  assert_int_equal(xm_mapping_flush_region(m, size, 0), XM_OK);

  free(expect);
  xm_mapping_free(m);
  if (!flush_supported()) print_message("flush not supported here: checked validation and NOT_IMPLEMENTED only\n");
}

static void test_flush_unsupported_reports_reason(void **state) {
  (void)state;
  if (flush_supported()) {
    print_message("flush is supported here (%s): nothing to refuse\n", xm_flush_method());
    skip();
    return;
  }
  xm_builder b = xm_builder_new(4096);
  xm_mapping *m = NULL;
  assert_int_equal(xm_builder_build(&b, &m), XM_OK);
  assert_int_equal(xm_mapping_flush_all(m), XM_E_NOT_IMPLEMENTED);
  print_message("reason: %s\n", xm_errmsg());
  xt_assert_errmsg_has("operation is not implemented on platform/architecture: ");
#if defined(__arm__)
  xt_assert_errmsg_has("Userspace cannot flush to PoC");
#endif
  assert_int_equal(xm_mapping_flush_region(m, 0, 0), XM_OK);
  assert_int_equal(xm_mapping_flush_region(m, 4096, 0), XM_OK);
  assert_int_equal(xm_mapping_flush_region(m, 4096, 1), XM_E_INVALID_RANGE);
  xm_mapping_free(m);
}

static void test_flush_null_mapping(void **state) {
  (void)state;
  assert_int_equal(xm_mapping_flush_region(NULL, 0, 0), XM_E_INVALID_ARGUMENT);
  assert_true(xm_errmsg()[0] != '\0');
  assert_int_equal(xm_mapping_flush_all(NULL), XM_E_INVALID_ARGUMENT);
}

static void test_flush_empty_mapping(void **state) {
  (void)state;
  xm_builder b = xm_builder_new(0);
  xm_mapping *m = NULL;
  assert_int_equal(xm_builder_build(&b, &m), XM_OK);
  assert_int_equal(xm_mapping_flush_all(m), XM_OK);
  assert_int_equal(xm_mapping_flush_region(m, 0, 0), XM_OK);
  assert_int_equal(xm_mapping_flush_region(m, 1, 0), XM_E_INVALID_RANGE);
  xt_assert_errmsg_has("offset=1 count=0 region_size=0");
  xm_mapping_free(m);
}

/* The instructions fault on pages that cannot be read: the library refuses instead. */
static void test_flush_prot_none_is_access(void **state) {
  (void)state;
  const size_t size = 2 * xm_page_size();
  xm_builder b = xm_builder_new(size);
  xm_builder_protection(&b, XM_PROT_NONE);
  xm_mapping *m = NULL;
  assert_int_equal(xm_builder_build(&b, &m), XM_OK);
  assert_int_equal(xm_mapping_flush_region(m, 0, 1), XM_E_ACCESS);
  xt_assert_errmsg_has("offset 0");
  assert_int_equal(xm_mapping_flush_all(m), XM_E_ACCESS);
  /* range and emptiness come first */
  assert_int_equal(xm_mapping_flush_region(m, size, 1), XM_E_INVALID_RANGE);
  assert_int_equal(xm_mapping_flush_region(m, 5, 0), XM_OK);
  xm_mapping_free(m);
}

static void test_flush_partly_protected_mapping(void **state) {
  (void)state;
  const size_t page = xm_page_size(), size = 3 * page;
  xm_builder b = xm_builder_new(size);
  xm_mapping *m = NULL;
  assert_int_equal(xm_builder_build(&b, &m), XM_OK);
  memset(xm_mapping_ptr(m), 0x5a, size);
  assert_int_equal(xm_mapping_protect(m, page, page, XM_PROT_NONE), XM_OK);
  const int ok = flush_supported() ? XM_OK : XM_E_NOT_IMPLEMENTED;
  assert_int_equal(xm_mapping_flush_region(m, 0, page), ok);
  assert_int_equal(xm_mapping_flush_region(m, 2 * page, page), ok);
  assert_int_equal(xm_mapping_flush_region(m, page - 1, 2), XM_E_ACCESS);
  assert_int_equal(xm_mapping_flush_region(m, 2 * page - 1, 1), XM_E_ACCESS);
  assert_int_equal(xm_mapping_flush_region(m, 0, size), XM_E_ACCESS);
  assert_int_equal(xm_mapping_flush_region(m, page, 0), XM_OK);
  /* read-only is enough to flush */
  assert_int_equal(xm_mapping_protect(m, page, page, XM_PROT_READ), XM_OK);
  assert_int_equal(xm_mapping_flush_region(m, 0, size), ok);
  unsigned char v = 0;
  assert_int_equal(xm_mapping_read_obj(m, &v, 1, page + 3), XM_OK);
  assert_int_equal(v, 0x5a);
  xm_mapping_free(m);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup(test_range_offset60_len8_covers_lines_0_and_1, reset_rec),
      cmocka_unit_test_setup(test_range_starts_at_the_line_holding_offset, reset_rec),
      cmocka_unit_test_setup(test_range_exhaustive_small, reset_rec),
      cmocka_unit_test_setup(test_range_empty_is_ok_and_flushes_nothing, reset_rec),
      cmocka_unit_test_setup(test_range_past_the_end_is_invalid_range, reset_rec),
      cmocka_unit_test_setup(test_range_unsupported_unit_is_not_implemented, reset_rec),
      cmocka_unit_test_setup(test_range_at_the_top_of_the_address_space, reset_rec),
      cmocka_unit_test(test_cacheline_size_is_sane),
      cmocka_unit_test(test_flush_method_matches_architecture),
      cmocka_unit_test(test_x86_variant),
      cmocka_unit_test(test_flush_real_mapping),
      cmocka_unit_test(test_flush_unsupported_reports_reason),
      cmocka_unit_test(test_flush_null_mapping),
      cmocka_unit_test(test_flush_empty_mapping),
      cmocka_unit_test(test_flush_prot_none_is_access),
      cmocka_unit_test(test_flush_partly_protected_mapping),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
