/* Volatile slices: crosvm's volatile_memory tests and doc tests, plus the error details. */
#include "xmtest.h"

static XT_THREAD_RET zero_writer(void *arg) {
  xm_slice s = *(xm_slice *)arg;
  xm_slice_write_bytes(s, 0);
  return 0;
}

static uint8_t mem[1024];
static xm_slice whole(size_t n) {
  xm_slice s = {mem, n};
  return s;
}

/* observe_mutate: a write by another thread is seen through the slice. */
static void observe_mutate(void **state) {
  (void)state;
  xm_slice s = whole(1);
  xm_slice_write_bytes(s, 99);
  uint8_t v = 0;
  assert_int_equal(xm_slice_copy_to(s, &v, 1), 1);
  assert_int_equal(v, 99);
  xt_thread t;
  xt_thread_start(&t, zero_writer, &s);
  xt_thread_join(t);
  assert_int_equal(xm_slice_copy_to(s, &v, 1), 1);
  assert_int_equal(v, 0);
}

static void slice_size(void **state) {
  (void)state;
  xm_slice s, nested;
  XT_OK(xm_slice_sub(whole(100), 0, 27, &s));
  assert_int_equal(s.size, 27);
  XT_OK(xm_slice_sub(whole(100), 34, 27, &s));
  assert_int_equal(s.size, 27);
  assert_ptr_equal(s.addr, mem + 34);
  XT_OK(xm_slice_sub(s, 20, 5, &nested));
  assert_int_equal(nested.size, 5);
  assert_ptr_equal(nested.addr, mem + 54);
}

static void slice_overflow_error(void **state) {
  (void)state;
  xm_slice s = {(void *)1, 0};
  XT_STATUS(XM_E_OVERFLOW, xm_slice_sub(whole(100), SIZE_MAX, 1, &s));
  char want[96];
  snprintf(want, sizeof want, "address 0x%zx offset by 0x1 would overflow", (size_t)SIZE_MAX);
  assert_string_equal(xm_errmsg(), want);
  assert_ptr_equal(s.addr, (void *)1); /* out-parameters are written only on success */
  assert_int_equal(xm_os_error(), 0);
}

static void slice_oob_error(void **state) {
  (void)state;
  xm_slice s;
  XT_OK(xm_slice_sub(whole(100), 50, 50, &s));
  XT_STATUS(XM_E_OUT_OF_BOUNDS, xm_slice_sub(whole(100), 55, 50, &s));
  assert_string_equal(xm_errmsg(), "address 0x69 is out of bounds");
}

static void slice_offset(void **state) {
  (void)state;
  xm_slice s;
  XT_OK(xm_slice_offset(whole(16), 4, &s));
  assert_ptr_equal(s.addr, mem + 4);
  assert_int_equal(s.size, 12);
  XT_OK(xm_slice_offset(whole(16), 16, &s));
  assert_int_equal(s.size, 0);
  XT_STATUS(XM_E_OUT_OF_BOUNDS, xm_slice_offset(whole(16), 17, &s));
  xm_slice top = {(void *)(UINTPTR_MAX - 3), 3};
  XT_STATUS(XM_E_OVERFLOW, xm_slice_offset(top, 8, &s));
  XT_STATUS(XM_E_INVALID_ARGUMENT, xm_slice_offset(whole(16), 1, NULL));
  XT_STATUS(XM_E_INVALID_ARGUMENT, xm_slice_sub(whole(16), 1, 1, NULL));
}

static void is_all_zero_16bytes_aligned(void **state) {
  (void)state;
  memset(mem, 0, sizeof mem);
  assert_true(xm_slice_is_all_zero(whole(1024)));
  mem[129] = 1;
  assert_false(xm_slice_is_all_zero(whole(1024)));
}

static void is_all_zero_head_not_aligned(void **state) {
  (void)state;
  memset(mem, 0, sizeof mem);
  xm_slice s;
  XT_OK(xm_slice_sub(whole(1024), 1, 1023, &s));
  mem[0] = 1;
  assert_true(xm_slice_is_all_zero(s));
  mem[1] = 1;
  assert_false(xm_slice_is_all_zero(s));
  mem[1] = 0;
  mem[129] = 1;
  assert_false(xm_slice_is_all_zero(s));
}

static void is_all_zero_tail_not_aligned(void **state) {
  (void)state;
  memset(mem, 0, sizeof mem);
  xm_slice s;
  XT_OK(xm_slice_sub(whole(1024), 0, 1023, &s));
  mem[1023] = 1;
  assert_true(xm_slice_is_all_zero(s));
  mem[1022] = 1;
  assert_false(xm_slice_is_all_zero(s));
  mem[1022] = 0;
  mem[0] = 1;
  assert_false(xm_slice_is_all_zero(s));
}

static void is_all_zero_no_aligned_16bytes(void **state) {
  (void)state;
  xm_slice s;
  XT_OK(xm_slice_sub(whole(1024), 1, 16, &s));
  memset(mem, 0, sizeof mem);
  mem[0] = 1;
  mem[17] = 1;
  assert_true(xm_slice_is_all_zero(s));
  for (size_t i = 1; i <= 16; i++) {
    mem[i] = 1;
    assert_false(xm_slice_is_all_zero(s));
    mem[i] = 0;
  }
  xm_slice empty = {NULL, 0};
  assert_true(xm_slice_is_all_zero(empty));
}

/* crosvm's io::Write on a slice: copy then advance. */
static size_t slice_write(xm_slice *s, const void *buf, size_t len) {
  size_t n = xm_slice_copy_from(*s, buf, len);
  assert_int_equal(xm_slice_offset(*s, n, s), XM_OK);
  return n;
}

static void write_partial(void **state) {
  (void)state;
  memset(mem, 0, sizeof mem);
  xm_slice s;
  XT_OK(xm_slice_sub(whole(1024), 1, 16, &s));
  xm_slice_write_bytes(s, 0xCC);
  const uint8_t data[4] = {1, 2, 3, 4};
  assert_int_equal(slice_write(&s, data, 4), 4);
  assert_int_equal(s.size, 12);
  assert_memory_equal(mem + 1, data, 4);
  assert_int_equal(mem[5], 0xCC);
}

static void write_multiple(void **state) {
  (void)state;
  memset(mem, 0, sizeof mem);
  xm_slice s;
  XT_OK(xm_slice_sub(whole(1024), 1, 16, &s));
  xm_slice_write_bytes(s, 0xCC);
  const uint8_t a[4] = {1, 2, 3, 4}, b[4] = {5, 6, 7, 8};
  assert_int_equal(slice_write(&s, a, 4), 4);
  assert_int_equal(slice_write(&s, b, 4), 4);
  assert_int_equal(s.size, 8);
  for (int i = 1; i <= 8; i++)
    assert_int_equal(mem[i], i);
  assert_int_equal(mem[9], 0xCC);
}

static void write_exact_slice_size(void **state) {
  (void)state;
  memset(mem, 0, sizeof mem);
  xm_slice s;
  XT_OK(xm_slice_sub(whole(1024), 1, 4, &s));
  const uint8_t a[4] = {1, 2, 3, 4};
  assert_int_equal(slice_write(&s, a, 4), 4);
  assert_int_equal(s.size, 0);
  assert_int_equal(mem[5], 0);
}

static void write_more_than_slice_size(void **state) {
  (void)state;
  memset(mem, 0, sizeof mem);
  xm_slice s;
  XT_OK(xm_slice_sub(whole(1024), 1, 4, &s));
  const uint8_t a[5] = {1, 2, 3, 4, 5};
  assert_int_equal(slice_write(&s, a, 5), 4);
  assert_int_equal(s.size, 0);
  assert_int_equal(mem[5], 0);
}

static void write_empty_slice(void **state) {
  (void)state;
  memset(mem, 0, sizeof mem);
  xm_slice s;
  XT_OK(xm_slice_sub(whole(1024), 1, 0, &s));
  const uint8_t a[4] = {1, 2, 3, 4};
  assert_int_equal(slice_write(&s, a, 4), 0);
  assert_int_equal(slice_write(&s, a, 4), 0);
  assert_int_equal(slice_write(&s, a, 0), 0);
  assert_int_equal(mem[1], 0);
}

/* Doc tests: write_bytes, copy_to, copy_to_slice onto an overlapping sub-slice, copy_from. */
static void doc_tests(void **state) {
  (void)state;
  memset(mem, 0, sizeof mem);
  xm_slice_write_bytes(whole(32), 45);
  for (int i = 0; i < 32; i++)
    assert_int_equal(mem[i], 45);

  memset(mem, 0, 32);
  uint8_t buf[16];
  memset(buf, 5, sizeof buf);
  assert_int_equal(xm_slice_copy_to(whole(32), buf, sizeof buf), 16);
  for (int i = 0; i < 16; i++)
    assert_int_equal(buf[i], 0);

  for (int i = 0; i < 32; i++)
    mem[i] = (uint8_t)i;
  xm_slice sub;
  XT_OK(xm_slice_sub(whole(32), 16, 16, &sub));
  assert_int_equal(xm_slice_copy_to_slice(whole(32), sub), 16);
  for (int i = 0; i < 16; i++)
    assert_int_equal(mem[16 + i], i);

  uint8_t fives[64];
  memset(fives, 5, sizeof fives);
  assert_int_equal(xm_slice_copy_from(whole(32), fives, sizeof fives), 32);
  uint32_t words[4];
  assert_int_equal(xm_slice_copy_to(whole(32), words, sizeof words), 16);
  for (int i = 0; i < 4; i++)
    assert_int_equal(words[i], 0x05050505u);
}

/* Slices from a real mapping: crosvm's slice_size / slice_addr / slice_overflow / slice_oob. */
static void mapping_slices(void **state) {
  (void)state;
  xm_mapping *m = xt_anon(5);
  xm_slice s;
  XT_OK(xm_mapping_get_slice(m, 2, 3, &s));
  assert_int_equal(s.size, 3);
  assert_ptr_equal(s.addr, (uint8_t *)xm_mapping_ptr(m) + 2);
  XT_STATUS(XM_E_OVERFLOW, xm_mapping_get_slice(m, SIZE_MAX, 3, &s));
  char want[96];
  snprintf(want, sizeof want, "address 0x%zx offset by 0x3 would overflow", (size_t)SIZE_MAX);
  assert_string_equal(xm_errmsg(), want);
  XT_STATUS(XM_E_OUT_OF_BOUNDS, xm_mapping_get_slice(m, 3, 3, &s));
  assert_string_equal(xm_errmsg(), "address 0x6 is out of bounds");
  XT_OK(xm_mapping_get_slice(m, 5, 0, &s)); /* empty slice at the end */
  assert_int_equal(s.size, 0);
  xm_mapping_free(m);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(observe_mutate),
      cmocka_unit_test(slice_size),
      cmocka_unit_test(slice_overflow_error),
      cmocka_unit_test(slice_oob_error),
      cmocka_unit_test(slice_offset),
      cmocka_unit_test(is_all_zero_16bytes_aligned),
      cmocka_unit_test(is_all_zero_head_not_aligned),
      cmocka_unit_test(is_all_zero_tail_not_aligned),
      cmocka_unit_test(is_all_zero_no_aligned_16bytes),
      cmocka_unit_test(write_partial),
      cmocka_unit_test(write_multiple),
      cmocka_unit_test(write_exact_slice_size),
      cmocka_unit_test(write_more_than_slice_size),
      cmocka_unit_test(write_empty_slice),
      cmocka_unit_test(doc_tests),
      cmocka_unit_test(mapping_slices),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
