/* The mapping-count limit: xm_map_count reports the count and vm.max_map_count (or says why it
   cannot), and a change the kernel refuses at the limit fails with XM_E_MAP_LIMIT while the arena
   (or mapping) stays exactly as it was. */
#include "xmtest.h"

static void map_count_reported(void **state) {
  (void)state;
  size_t used = 0, limit = 0;
  XT_STATUS(XM_E_INVALID_ARGUMENT, xm_map_count(NULL, &limit));
  XT_STATUS(XM_E_INVALID_ARGUMENT, xm_map_count(&used, NULL));
  int rc = xm_map_count(&used, &limit);
#ifdef _WIN32
  XT_STATUS(XM_E_NOT_IMPLEMENTED, rc); /* Windows has no such limit */
  xt_assert_errmsg_has("Windows");
#else
  if (rc == XM_E_NOT_IMPLEMENTED) XT_SKIP("the mapping count is not known here: %s", xm_errmsg());
  XT_OK(rc);
  assert_true(used > 0 && limit > used);
  /* Three pages whose middle one gets another protection are three kernel mappings. */
  const size_t page = xm_page_size();
  xm_mapping *m = xt_anon(3 * page);
  size_t with = 0, split = 0, after = 0;
  XT_OK(xm_map_count(&with, &limit));
  XT_OK(xm_mapping_protect(m, page, page, XM_PROT_READ));
  XT_OK(xm_map_count(&split, &limit));
  xm_mapping_free(m);
  XT_OK(xm_map_count(&after, &limit));
  if (!xt_mappings_comparable()) return; /* sanitizer runtimes map memory of their own meanwhile */
  assert_int_equal(split, with + 2);
  assert_true(after < split);
#endif
}

#ifndef _WIN32
/* Fills the mapping count to the limit with pages of alternating protection (neighbours that
   differ never merge): one PROT_NONE reservation whose every other page is made readable until
   the kernel refuses. *filler and *len are what to munmap afterwards. */
static bool fill_to_limit(size_t limit, void **filler, size_t *len) {
  const size_t page = xm_page_size();
  *len = (limit + 64) * 2 * page;
  unsigned char *p = mmap(NULL, *len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) return false;
  *filler = p;
  for (size_t i = 1; i < 2 * (limit + 64); i += 2)
    if (mprotect(p + i * page, page, PROT_READ) != 0) return errno == ENOMEM;
  return false;
}

#if defined(__SANITIZE_THREAD__)
#define XT_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define XT_TSAN 1
#endif
#endif

/* Whether the limit can be filled here, quickly; else why not. */
static const char *cannot_fill(size_t *used, size_t *limit) {
#ifdef XT_TSAN
  /* ThreadSanitizer maps shadow memory as the program touches new memory, and ends the process
     ("Failed to mmap") when the count is full. */
  return "ThreadSanitizer's runtime cannot live with a full mapping count";
#endif
  if (xm_map_count(used, limit) != XM_OK) return xm_errmsg();
  if (*limit > 1000000) return "vm.max_map_count is too large to fill quickly";
  return NULL;
}
#endif

/* The arena: an add and a removal that splits a merged run both fail at the limit, with the
   arena unchanged; after the filler is gone both work and the count is back where it started. */
static void arena_at_the_limit(void **state) {
  (void)state;
  if (xt_under_valgrind()) XT_SKIP("valgrind keeps a table of mappings far smaller than vm.max_map_count");
#ifdef _WIN32
  XT_SKIP("Windows has no limit on the number of mappings");
#else
  size_t start = 0, limit = 0;
  const char *why = cannot_fill(&start, &limit);
  if (why) XT_SKIP("%s", why);
  const size_t g = xm_allocation_granularity();
  xm_shm *shm = xt_shm("map-limit", 16 * g);
  xm_arena *a = xt_arena(32 * g);
  unsigned char *base = xt_arena_base(a);
  /* A merged run: four adds of consecutive shm offsets at consecutive arena offsets. */
  for (size_t k = 0; k < 4; k++)
    XT_OK(xm_arena_add_fd(a, k * g, g, xm_shm_descriptor(shm), k * g, XM_PROT_READ_WRITE));
  for (size_t i = 0; i < 4 * g; i++)
    base[i] = (unsigned char)(i * 13 + 1);
  XT_OK(xm_arena_add_anon(a, 8 * g, 2 * g, XM_PROT_READ_WRITE));
  memset(base + 8 * g, 0x77, 2 * g);

  void *filler = NULL;
  size_t filler_len = 0;
  bool filled = fill_to_limit(limit, &filler, &filler_len);
  if (!filled) {
    if (filler) munmap(filler, filler_len);
    xm_arena_free(a);
    xm_shm_free(shm);
    XT_SKIP("the filler did not reach the limit (mprotect stopped for another reason)");
  }
  /* An add needs a new mapping and a split of the reservation. */
  int add = xm_arena_add_anon(a, 20 * g, g, XM_PROT_READ_WRITE);
  char add_msg[512];
  snprintf(add_msg, sizeof add_msg, "%s", xm_errmsg());
  /* A removal in the middle of the merged run splits it in three. */
  int removal = xm_arena_remove(a, g, g);
  char removal_msg[512];
  snprintf(removal_msg, sizeof removal_msg, "%s", xm_errmsg());
  munmap(filler, filler_len);

  XT_STATUS(XM_E_MAP_LIMIT, add);
  if (!strstr(add_msg, "vm.max_map_count")) print_message("add: %s\n", add_msg);
  assert_non_null(strstr(add_msg, "vm.max_map_count"));
  XT_STATUS(XM_E_MAP_LIMIT, removal);
  assert_non_null(strstr(removal_msg, "vm.max_map_count"));
  /* Nothing lost: every piece there with its contents. */
  for (size_t i = 0; i < 4 * g; i++)
    if (base[i] != (unsigned char)(i * 13 + 1)) assert_int_equal(i, SIZE_MAX);
  for (size_t i = 8 * g; i < 10 * g; i++)
    assert_int_equal(base[i], 0x77);
  /* And both changes work now. */
  XT_OK(xm_arena_remove(a, g, g));
  XT_OK(xm_arena_add_anon(a, 20 * g, g, XM_PROT_READ_WRITE));
  base[20 * g] = 1;
  assert_int_equal(base[2 * g], (unsigned char)(2 * g * 13 + 1));
  xm_arena_free(a);
  xm_shm_free(shm);
  size_t end = 0;
  XT_OK(xm_map_count(&end, &limit));
  if (!xt_mappings_comparable()) return; /* sanitizer runtimes map memory of their own meanwhile */
  if (end != start) print_message("map count %zu at the start, %zu at the end\n", start, end);
  assert_int_equal(end, start);
#endif
}

/* A mapping: a protection change that would split it at the limit fails with XM_E_MAP_LIMIT and
   the protection stays as it was. */
static void protect_at_the_limit(void **state) {
  (void)state;
  if (xt_under_valgrind()) XT_SKIP("valgrind keeps a table of mappings far smaller than vm.max_map_count");
#ifdef _WIN32
  XT_SKIP("Windows has no limit on the number of mappings");
#else
  size_t start = 0, limit = 0;
  const char *why = cannot_fill(&start, &limit);
  if (why) XT_SKIP("%s", why);
  const size_t page = xm_page_size();
  xm_mapping *m = xt_anon(4 * page);
  memset(xm_mapping_ptr(m), 0x3c, 4 * page);
  void *filler = NULL;
  size_t filler_len = 0;
  bool filled = fill_to_limit(limit, &filler, &filler_len);
  int rc = filled ? xm_mapping_protect(m, page, page, XM_PROT_READ) : XM_OK;
  char msg[512];
  snprintf(msg, sizeof msg, "%s", xm_errmsg());
  if (filler) munmap(filler, filler_len);
  if (!filled) XT_SKIP("the filler did not reach the limit (mprotect stopped for another reason)");
  XT_STATUS(XM_E_MAP_LIMIT, rc);
  assert_non_null(strstr(msg, "vm.max_map_count"));
  assert_non_null(strstr(msg, "mprotect"));
  uint8_t v = 0x11;
  XT_OK(XM_WRITE_OBJ(m, page, &v)); /* still writable */
  XT_OK(xm_mapping_protect(m, page, page, XM_PROT_READ));
  xm_mapping_free(m);
  size_t end = 0;
  XT_OK(xm_map_count(&end, &limit));
  if (xt_mappings_comparable()) assert_int_equal(end, start);
#endif
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(map_count_reported),
      cmocka_unit_test(arena_at_the_limit),
      cmocka_unit_test(protect_at_the_limit),
  };
  return XT_RUN_TESTS_AFTER_A_SNAPSHOT(tests);
}
