/* `xmmap selftest`'s checks of what a mapping does: system facts, errors, accessors, slices,
   flush, msync, advice, protection, fault-safe copies and locking. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "selftest.h"

void check_facts(struct check *c) {
  size_t page = xm_page_size(), g = xm_allocation_granularity(), line = xm_cacheline_size();
  EXPECT(page >= 4096 && (page & (page - 1)) == 0);
  EXPECT(g >= page && g % page == 0);
  EXPECT(line >= 8 && (line & (line - 1)) == 0);
  EXPECT(xm_cacheline_source() != NULL && xm_cacheline_source()[0] != '\0');
  EXPECT(strcmp(xm_backend_name(), "posix") == 0 || strcmp(xm_backend_name(), "windows") == 0);
  static const char *const methods[] = {"clwb", "clflushopt", "clflush", "dc cvac", "dcbst", "cbo.clean", "none"};
  bool known = false;
  for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++)
    known |= strcmp(xm_flush_method(), methods[i]) == 0;
  EXPECT(known);
  char v[32];
  tool_format(v, sizeof v, "%d.%d.%d", XMMAP_VERSION_MAJOR, XMMAP_VERSION_MINOR, XMMAP_VERSION_PATCH);
  EXPECT(strcmp(v, xm_version()) == 0);
  tool_format(c->note, sizeof c->note, "page %zu, granularity %zu, line %zu (%s), flush %s", page, g, line,
              xm_cacheline_source(), xm_flush_method());
out:;
}

void check_errors(struct check *c) {
  xm_builder b = xm_builder_new(4096);
  xm_mapping *m = NULL;
  EXPECT_STATUS(XM_E_INVALID_ARGUMENT, xm_builder_build(&b, NULL));
  EXPECT(xm_errmsg()[0] != '\0');
  xm_builder_align(&b, 3);
  EXPECT_STATUS(XM_E_INVALID_ALIGNMENT, xm_builder_build(&b, &m));
  EXPECT(strcmp(xm_strerror(-12345), xm_strerror(XM_E_SYSTEM_CALL)) != 0); /* unknown is not a known text */
  /* A descriptor that is not open: found by an OS call on the descriptor itself. */
  b = xm_builder_new(4096);
  xm_builder_from_file(&b, tool_closed_descriptor());
  EXPECT_STATUS(XM_E_SYSTEM_CALL, xm_builder_build(&b, &m));
  EXPECT(xm_os_error() != 0);
  xm_mapping_free(NULL);
  xm_shm_free(NULL);
  xm_arena_free(NULL);
  EXPECT(xm_mapping_size(NULL) == 0 && xm_mapping_ptr(NULL) == NULL);
out:
  xm_mapping_free(m);
}

void check_anonymous(struct check *c) {
  const size_t g = xm_allocation_granularity(), size = 4 * g;
  xm_mapping *m = NULL, *empty = NULL;
  OK(selftest_anon(size, &m));
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
  OK(selftest_anon(0, &empty));
  EXPECT(xm_mapping_ptr(empty) == NULL && xm_mapping_size(empty) == 0);
  OK(xm_mapping_read_slice(empty, buf, sizeof buf, 0, &copied));
  EXPECT(copied == 0);
  OK(xm_mapping_flush_region(empty, 0, 0));
out:
  xm_mapping_free(empty);
  xm_mapping_free(m);
}

void check_slices(struct check *c) {
  const size_t page = xm_page_size();
  xm_mapping *m = NULL;
  OK(selftest_anon(page, &m));
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
  for (unsigned i = 0; i < 100; i++)
    ((unsigned char *)src.addr)[i] = (unsigned char)i;
  EXPECT(xm_slice_copy_to_slice(src, dst) == 100);
  EXPECT(((unsigned char *)dst.addr)[0] == 0 && ((unsigned char *)dst.addr)[99] == 99);
  xm_slice_write_bytes(s, 0);
  EXPECT(xm_slice_is_all_zero(s));
out:
  xm_mapping_free(m);
}

void check_flush(struct check *c) {
  const size_t size = (size_t)1 << 20;
  xm_mapping *m = NULL;
  OK(selftest_anon(size, &m));
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

void check_msync(struct check *c) {
  const size_t g = xm_allocation_granularity(), page = xm_page_size();
  struct pattern_file pf;
  xm_mapping *m = NULL;
  if (!selftest_file_open(c, &pf, 2 * g, 4)) goto out;
  xm_builder b = xm_builder_new(2 * g);
  xm_builder_from_file(&b, pf.f.d);
  OK(xm_builder_build(&b, &m));
  uint64_t v = 0x6d73796e63210a00ull, back = 0;
  OK(XM_WRITE_OBJ(m, page + 8, &v));
  OK(xm_mapping_sync_range(m, page, page, XM_SYNC_ASYNC));
  OK(xm_mapping_sync_range(m, page + 8, 8, XM_SYNC_SYNC));
  EXPECT(tool_file_pread(&pf.f, &back, sizeof back, page + 8) == 0 && back == v);
  v = ~v;
  OK(XM_WRITE_OBJ(m, 2 * g - 8, &v));
  OK(xm_region_msync(xm_mapping_region(m), 0, 2 * g));
  EXPECT(tool_file_pread(&pf.f, &back, sizeof back, 2 * g - 8) == 0 && back == v);
  OK(xm_mapping_msync(m));
out:
  xm_mapping_free(m);
  selftest_file_close(&pf);
}

void check_advice(struct check *c) {
  static const struct {
    xm_advice advice;
    const char *name;
  } all[] = {
      {XM_ADVICE_NORMAL, "NORMAL"},
      {XM_ADVICE_RANDOM, "RANDOM"},
      {XM_ADVICE_SEQUENTIAL, "SEQUENTIAL"},
      {XM_ADVICE_WILLNEED, "WILLNEED"},
      {XM_ADVICE_DONTNEED, "DONTNEED"},
      {XM_ADVICE_REMOVE, "REMOVE"},
      {XM_ADVICE_DONTFORK, "DONTFORK"},
      {XM_ADVICE_DOFORK, "DOFORK"},
      {XM_ADVICE_HUGEPAGE, "HUGEPAGE"},
      {XM_ADVICE_NOHUGEPAGE, "NOHUGEPAGE"},
      {XM_ADVICE_DONTDUMP, "DONTDUMP"},
      {XM_ADVICE_DODUMP, "DODUMP"},
      {XM_ADVICE_MERGEABLE, "MERGEABLE"},
      {XM_ADVICE_UNMERGEABLE, "UNMERGEABLE"},
      {XM_ADVICE_COLD, "COLD"},
      {XM_ADVICE_PAGEOUT, "PAGEOUT"},
      {XM_ADVICE_POPULATE_READ, "POPULATE_READ"},
      {XM_ADVICE_POPULATE_WRITE, "POPULATE_WRITE"},
  };
  const size_t size = (size_t)2 << 20, page = xm_page_size();
  xm_mapping *m = NULL;
  char missing[400] = "";
  size_t applied = 0, nmissing = 0;
  OK(selftest_anon(size, &m));
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
    int rc = xm_mapping_advise(m, 0, size, all[i].advice);
    if (rc == XM_OK) {
      applied++;
      continue;
    }
    /* Absent here: no equivalent on this OS, or a kernel built without it (EINVAL). */
    bool absent = rc == XM_E_NOT_IMPLEMENTED || (rc == XM_E_SYSTEM_CALL && tool_os_error_unsupported(xm_os_error()));
    if (!absent) {
      selftest_outcome(c, FAILED, "advice %s -> %s: %s", all[i].name, selftest_status_name(rc), xm_errmsg());
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
    selftest_call_failed(c, "xm_mapping_remove_range(m, 0, page)", rc);
    goto out;
  }
  rc = xm_mapping_drop_page_cache(m, page, page);
  if (rc != XM_OK && rc != XM_E_NOT_IMPLEMENTED) {
    selftest_call_failed(c, "xm_mapping_drop_page_cache(m, page, page)", rc);
    goto out;
  }
  rc = xm_mapping_use_dontfork(m);
  if (rc != XM_OK && rc != XM_E_NOT_IMPLEMENTED) {
    selftest_call_failed(c, "xm_mapping_use_dontfork(m)", rc);
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

void check_protect(struct check *c) {
  const size_t page = xm_page_size();
  xm_mapping *m = NULL, *ro = NULL;
  uint64_t v = 42, r = 0;
  OK(selftest_anon(4 * page, &m));
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

void check_fault_safe(struct check *c) {
  const size_t page = xm_page_size();
  xm_mapping *m = NULL;
  unsigned char *buf = malloc(2 * page), *second = NULL;
  bool hidden = false;
  size_t copied = 0;
  if (!buf) SKIP("out of memory");
  OK(selftest_anon(2 * page, &m));
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

/* The lock_on_fault probe has locked one page; here a range that starts inside a page (the lock
   covers every page it touches), used while locked, and one past the end, which is refused. */
void check_lock(struct check *c) {
  const size_t page = xm_page_size();
  xm_mapping *m = NULL;
  OK(selftest_anon(4 * page, &m));
  OK(xm_mapping_lock_on_fault(m, 100, 2 * page));
  memset(xm_mapping_ptr(m), 7, 4 * page);
  OK(xm_mapping_unlock(m, 100, 2 * page));
  EXPECT_STATUS(XM_E_INVALID_RANGE, xm_mapping_lock_on_fault(m, 3 * page, 2 * page));
out:
  xm_mapping_free(m);
}
