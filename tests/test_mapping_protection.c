/* Protection: what a mapping is built with is honoured by the checked accessors, changes of part
   or all of it, never above what it was built with, PROT_NONE mappings of memory and of files,
   and protection changes that really fault. */
#include "xmtest_faults.h"

static xm_mapping *anon_with(size_t size, xm_prot prot) {
  xm_builder b = xm_builder_new(size);
  xm_builder_protection(&b, prot);
  xm_mapping *m = NULL;
  XT_OK(xm_builder_build(&b, &m));
  return m;
}

static void protection_honoured(void **state) {
  (void)state;
  uint8_t buf[8] = {0};
  size_t copied;
  xm_mapping *ro = anon_with(4096, XM_PROT_READ);
  XT_OK(xm_mapping_read_slice(ro, buf, sizeof buf, 0, &copied));
  XT_STATUS(XM_E_ACCESS, xm_mapping_write_slice(ro, buf, sizeof buf, 0, &copied));
  xt_assert_errmsg_has("write of 8 bytes at offset 0");
  XT_STATUS(XM_E_ACCESS, xm_mapping_write_obj(ro, buf, 4, 0));
  XT_STATUS(XM_E_ACCESS, xm_mapping_write_obj_volatile(ro, buf, 4, 0));
  XT_OK(xm_mapping_read_obj_volatile(ro, buf, 4, 0));
  XT_STATUS(XM_E_INVALID_ADDRESS, xm_mapping_write_slice(ro, buf, 1, 4097, &copied)); /* range first */
  xm_mapping_free(ro);

  xm_mapping *none = anon_with(4096, XM_PROT_NONE);
  XT_STATUS(XM_E_ACCESS, xm_mapping_read_slice(none, buf, sizeof buf, 0, &copied));
  XT_STATUS(XM_E_ACCESS, xm_mapping_read_obj(none, buf, 8, 100));
  XT_STATUS(XM_E_ACCESS, xm_mapping_write_slice(none, buf, 1, 4095, &copied));
  XT_OK(xm_mapping_read_slice(none, buf, sizeof buf, 4096, &copied)); /* nothing to access */
  assert_int_equal(copied, 0);
  XT_STATUS(XM_E_ACCESS, xm_mapping_flush_region(none, 0, 64));
  xm_mapping_free(none);

  xm_mapping *wo = anon_with(4096, XM_PROT_WRITE);
  XT_OK(xm_mapping_write_slice(wo, buf, sizeof buf, 0, &copied));
  XT_STATUS(XM_E_ACCESS, xm_mapping_read_slice(wo, buf, sizeof buf, 0, &copied));
  xm_mapping_free(wo);

  xm_builder b = xm_builder_new(4096);
  xm_builder_protection(&b, 4u);
  xm_mapping *m = NULL;
  XT_STATUS(XM_E_INVALID_ARGUMENT, xm_builder_build(&b, &m));
}

static void protect_changes(void **state) {
  (void)state;
  size_t page = xm_page_size();
  xm_mapping *m = xt_anon(4 * page);
  uint32_t v = 7;
  XT_OK(xm_mapping_protect(m, 0, 4 * page, XM_PROT_READ));
  XT_STATUS(XM_E_ACCESS, XM_WRITE_OBJ(m, 0, &v));
  XT_OK(XM_READ_OBJ(m, 0, &v));
  XT_OK(xm_mapping_protect(m, 0, 4 * page, XM_PROT_READ_WRITE)); /* raise back */
  XT_OK(XM_WRITE_OBJ(m, 0, &v));
  /* part of it: page 1 read-only; neighbours stay writable */
  XT_OK(xm_mapping_protect(m, page, page, XM_PROT_READ));
  XT_OK(XM_WRITE_OBJ(m, 0, &v));
  XT_OK(XM_WRITE_OBJ(m, 2 * page, &v));
  XT_STATUS(XM_E_ACCESS, XM_WRITE_OBJ(m, page + 8, &v));
  XT_STATUS(XM_E_ACCESS, XM_WRITE_OBJ(m, page - 2, &v)); /* straddles into page 1 */
  size_t copied = 0;
  uint8_t buf[16] = {0};
  XT_STATUS(XM_E_ACCESS, xm_mapping_write_slice(m, buf, sizeof buf, page - 8, &copied));
  XT_OK(xm_mapping_read_slice(m, buf, sizeof buf, page - 8, &copied));
  assert_int_equal(copied, sizeof buf);
  XT_OK(xm_mapping_protect(m, page, page, XM_PROT_READ_WRITE));
  XT_OK(XM_WRITE_OBJ(m, page + 8, &v));
  /* errors */
  XT_STATUS(XM_E_INVALID_RANGE, xm_mapping_protect(m, page, 4 * page, XM_PROT_READ));
  xt_assert_errmsg_has("region_size=");
  XT_STATUS(XM_E_INVALID_ARGUMENT, xm_mapping_protect(m, 0, page, 8u));
  XT_STATUS(XM_E_INVALID_ARGUMENT, xm_mapping_protect(NULL, 0, page, XM_PROT_READ));
  XT_OK(xm_mapping_protect(m, 4 * page, 0, XM_PROT_NONE));
  xm_mapping_free(m);

  xm_mapping *ro = anon_with(page, XM_PROT_READ);
  XT_STATUS(XM_E_ACCESS, xm_mapping_protect(ro, 0, page, XM_PROT_READ_WRITE)); /* above what it was built with */
  xt_assert_errmsg_has("above");
  XT_OK(xm_mapping_protect(ro, 0, page, XM_PROT_NONE));
  XT_STATUS(XM_E_ACCESS, XM_READ_OBJ(ro, 0, &v));
  xm_mapping_free(ro);
}

/* A PROT_NONE mapping is mapped and made inaccessible: every access is refused, and it cannot
   be raised; a file through a read-only descriptor can be mapped PROT_NONE too. */
static void prot_none_mapping(void **state) {
  (void)state;
  const size_t ps = xm_page_size();
  xm_mapping *m = anon_with(2 * ps, XM_PROT_NONE);
#ifdef _WIN32
  assert_int_equal(xt_query(xm_mapping_ptr(m)).Protect, PAGE_NOACCESS);
#endif
  unsigned char buf[8];
  XT_STATUS(XM_E_ACCESS, xm_mapping_read_slice(m, buf, sizeof buf, 0, NULL));
  XT_STATUS(XM_E_ACCESS, xm_mapping_write_slice(m, buf, sizeof buf, 0, NULL));
  XT_STATUS(XM_E_ACCESS, xm_mapping_read_obj(m, buf, 4, 4));
  XT_STATUS(XM_E_ACCESS, xm_mapping_protect(m, 0, ps, XM_PROT_READ));
  xm_mapping_free(m);

  /* a file mapped PROT_NONE through a read-only descriptor */
  xm_descriptor f = xt_pattern_file(5000, 0);
  xm_builder b = xm_builder_new(5000);
  xm_builder_from_file(&b, f);
  xm_builder_protection(&b, XM_PROT_NONE);
  XT_OK(xm_builder_build(&b, &m));
#ifdef _WIN32
  assert_int_equal(xt_query(xm_mapping_ptr(m)).Protect, PAGE_NOACCESS);
#endif
  XT_STATUS(XM_E_ACCESS, xm_mapping_read_slice(m, buf, sizeof buf, 0, NULL));
  xm_mapping_free(m);
  xt_close(f);
}

/* xm_mapping_protect changes what the hardware allows, not only what the checked accessors do. */
static void protect_really_faults(void **state) {
  (void)state;
  size_t page = xm_page_size();
  xm_mapping *m = xt_anon(3 * page);
  uint8_t *p = xm_mapping_ptr(m);
  XT_OK(xm_mapping_protect(m, page, page, XM_PROT_NONE));
  xt_assert_accessible(m, p);
  xt_assert_faults(m, p + page);
  xt_assert_accessible(m, p + 2 * page);
  uint8_t v = 0;
  XT_STATUS(XM_E_ACCESS, XM_READ_OBJ(m, page, &v));
  XT_OK(xm_mapping_protect(m, page, page, XM_PROT_READ_WRITE));
  xt_assert_accessible(m, p + page);
  XT_OK(XM_READ_OBJ(m, page, &v));
  xm_mapping_free(m);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(protection_honoured),
      cmocka_unit_test(protect_changes),
      cmocka_unit_test(prot_none_mapping),
      cmocka_unit_test(protect_really_faults),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
