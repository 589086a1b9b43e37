/* `xmmap selftest`'s checks of the ways to build a mapping: files, private and unaligned ones,
   shared memory and seals, the arena, guard pages, fixed addresses, alignment, huge pages and
   external regions. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "selftest.h"

void check_file(struct check *c) {
  const size_t g = xm_allocation_granularity();
  struct pattern_file pf;
  unsigned char *buf = NULL;
  xm_mapping *m = NULL, *ro = NULL, *all = NULL;
  if (!selftest_file_open(c, &pf, 4 * g, 1)) goto out;
  if (!(buf = malloc(2 * g))) SKIP("out of memory");
  xm_builder b = xm_builder_new(2 * g);
  xm_builder_from_file(&b, pf.f.d);
  xm_builder_offset(&b, g);
  OK(xm_builder_build(&b, &m));
  size_t copied = 0;
  OK(xm_mapping_read_slice(m, buf, 2 * g, 0, &copied));
  EXPECT(copied == 2 * g && memcmp(buf, pf.data + g, 2 * g) == 0);
  uint64_t marker = 0x66696c656d61726bull, back = 0;
  OK(XM_WRITE_OBJ(m, 24, &marker));
  OK(xm_mapping_msync(m));
  EXPECT(tool_file_pread(&pf.f, &back, sizeof back, g + 24) == 0 && back == marker);
  /* Read-only: checked writes are refused, never a crash. */
  b = xm_builder_new(g);
  xm_builder_from_file(&b, pf.f.d);
  xm_builder_protection(&b, XM_PROT_READ);
  OK(xm_builder_build(&b, &ro));
  EXPECT_STATUS(XM_E_ACCESS, XM_WRITE_OBJ(ro, 0, &marker));
  OK(XM_READ_OBJ(ro, 0, &back));
  EXPECT(memcmp(&back, pf.data, sizeof back) == 0);
  /* To the end of the file. */
  b = xm_builder_new(0);
  xm_builder_from_file(&b, pf.f.d);
  xm_builder_offset(&b, g);
  xm_builder_to_end_of_file(&b);
  OK(xm_builder_build(&b, &all));
  EXPECT(xm_mapping_size(all) == 3 * g);
out:
  xm_mapping_free(all);
  xm_mapping_free(ro);
  xm_mapping_free(m);
  selftest_file_close(&pf);
  free(buf);
}

void check_private(struct check *c) {
  const size_t g = xm_allocation_granularity();
  struct pattern_file pf;
  xm_mapping *m = NULL;
  if (!selftest_file_open(c, &pf, g, 2)) goto out;
  xm_builder b = xm_builder_new(g);
  xm_builder_from_file(&b, pf.f.d);
  xm_builder_private(&b);
  OK(xm_builder_build(&b, &m));
  uint64_t marker = 0x707269766174650aull, back = 0;
  OK(XM_WRITE_OBJ(m, 0, &marker));
  OK(XM_READ_OBJ(m, 0, &back));
  EXPECT(back == marker);
  OK(xm_mapping_msync(m));
  EXPECT(tool_file_pread(&pf.f, &back, sizeof back, 0) == 0);
  EXPECT(memcmp(&back, pf.data, sizeof back) == 0); /* copy-on-write: the file keeps its bytes */
out:
  xm_mapping_free(m);
  selftest_file_close(&pf);
}

void check_unaligned_offset(struct check *c) {
  const size_t g = xm_allocation_granularity();
  struct pattern_file pf;
  unsigned char buf[200];
  xm_mapping *m = NULL;
  if (!selftest_file_open(c, &pf, 2 * g, 3)) goto out;
  xm_builder b = xm_builder_new(sizeof buf);
  xm_builder_from_file(&b, pf.f.d);
  xm_builder_offset(&b, g + 100);
  OK(xm_builder_build(&b, &m));
  size_t copied = 0;
  OK(xm_mapping_read_slice(m, buf, sizeof buf, 0, &copied));
  EXPECT(copied == sizeof buf && memcmp(buf, pf.data + g + 100, sizeof buf) == 0);
out:
  xm_mapping_free(m);
  selftest_file_close(&pf);
}

void check_shm(struct check *c) {
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

void check_seals(struct check *c) {
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

/* The shm_read_only probe has made a clone; here the owner writes and the clone's reader sees it,
   the clone refuses a writable shared mapping and gives a private copy that writes nothing back. */
void check_shm_read_only(struct check *c) {
  const size_t g = xm_allocation_granularity();
  xm_shm *shm = NULL, *ro = NULL;
  xm_mapping *owner = NULL, *reader = NULL, *copy = NULL, *rw = NULL;
  OK(xm_shm_new("xmmap-selftest-ro", g, &shm));
  xm_builder b = xm_builder_new(g);
  xm_builder_from_shm(&b, shm);
  OK(xm_builder_build(&b, &owner));
  OK(xm_shm_clone_readonly(shm, &ro));
  xm_builder_from_shm(&b, ro);
  EXPECT_STATUS(XM_E_ACCESS, xm_builder_build(&b, &rw));
  xm_builder_private(&b);
  OK(xm_builder_build(&b, &copy));
  xm_builder b2 = xm_builder_new(g);
  xm_builder_from_shm(&b2, ro);
  xm_builder_protection(&b2, XM_PROT_READ);
  OK(xm_builder_build(&b2, &reader));
  ((volatile unsigned char *)xm_mapping_ptr(owner))[1] = 0x42;
  EXPECT(((volatile unsigned char *)xm_mapping_ptr(reader))[1] == 0x42);
  ((volatile unsigned char *)xm_mapping_ptr(copy))[2] = 0x43;
  EXPECT(((volatile unsigned char *)xm_mapping_ptr(reader))[2] == 0);
out:
  xm_mapping_free(rw);
  xm_mapping_free(copy);
  xm_mapping_free(reader);
  xm_mapping_free(owner);
  xm_shm_free(ro);
  xm_shm_free(shm);
}

void check_arena(struct check *c) {
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

void check_guard_pages(struct check *c) {
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

/* The fixed_noreplace probe has asked for a range exactly on top of a mapping; here ranges that
   only partly overlap one are refused too, and the free space on both sides is taken exactly. */
void check_fixed(struct check *c) {
  const size_t g = xm_allocation_granularity();
  xm_mapping *span = NULL, *middle = NULL, *m = NULL, *before = NULL, *after = NULL;
  OK(selftest_anon(3 * g, &span));
  unsigned char *addr = xm_mapping_ptr(span);
  xm_mapping_free(span); /* three free granules at addr: the middle one is taken next */
  xm_builder b = xm_builder_new(g);
  xm_builder_fixed_noreplace(&b, addr + g);
  OK(xm_builder_build(&b, &middle));
  EXPECT(xm_mapping_ptr(middle) == addr + g);
  b = xm_builder_new(2 * g);
  xm_builder_fixed_noreplace(&b, addr);
  EXPECT_STATUS(XM_E_EXISTS, xm_builder_build(&b, &m));
  xm_builder_fixed_noreplace(&b, addr + g);
  EXPECT_STATUS(XM_E_EXISTS, xm_builder_build(&b, &m));
  b = xm_builder_new(g);
  xm_builder_fixed_noreplace(&b, addr);
  OK(xm_builder_build(&b, &before));
  xm_builder_fixed_noreplace(&b, addr + 2 * g);
  OK(xm_builder_build(&b, &after));
  EXPECT(xm_mapping_ptr(before) == addr && xm_mapping_ptr(after) == addr + 2 * g);
out:
  xm_mapping_free(after);
  xm_mapping_free(before);
  xm_mapping_free(m);
  xm_mapping_free(middle);
}

void check_align(struct check *c) {
  const uint64_t align = (uint64_t)2 << 20;
  xm_mapping *m = NULL;
  xm_builder b = xm_builder_new(xm_allocation_granularity());
  xm_builder_align(&b, align);
  OK(xm_builder_build(&b, &m));
  EXPECT(((uintptr_t)xm_mapping_ptr(m) & (uintptr_t)(align - 1)) == 0);
out:
  xm_mapping_free(m);
}

void check_huge_pages(struct check *c) {
  const size_t size = (size_t)2 << 20;
  xm_mapping *m = NULL;
  xm_builder b = xm_builder_new(size);
  xm_builder_huge_pages(&b, 0);
  OK(xm_builder_build(&b, &m));
  /* The huge_pages probe has built one; here it is used, and it starts on a huge page. */
  EXPECT(((uintptr_t)xm_mapping_ptr(m) & (uintptr_t)(size - 1)) == 0);
  memset(xm_mapping_ptr(m), 1, size);
out:
  xm_mapping_free(m);
}

void check_external(struct check *c) {
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
