/* test_large.c — direct mappings, the large-block cache, mremap realloc. */
#include <string.h>

#include "unit.h"

static int setup(void **state) {
  (void)state;
  unit_load_options(NULL, NULL);
  tp_large_cache_flush();
  /* Teach the cache that big mappings churn (the first free is not cached). */
  bool zeroed;
  tp_large_free(tp_large_alloc(&tp_main_heap, 32u << 20, 0, 32u << 20, false, &zeroed));
  tp_large_cache_flush();
  return 0;
}

/* Maps a block of `size`, frees it, and checks the free unmapped it at once. */
static void assert_free_unmaps(size_t size) {
  tierpool_tier_stats_t before, after;
  tp_large_stats(&before);
  bool zeroed;
  tp_large_free(tp_large_alloc(&tp_main_heap, size, 0, size, false, &zeroed));
  tp_large_stats(&after);
  assert_int_equal(after.releases, before.releases + 1);
  assert_int_equal(after.resident_bytes, 0);
}

static void test_first_free_is_not_cached(void **state) {
  (void)state;
  /* setup freed a 32 MiB mapping: a 70 MiB one was never seen, so it goes back. */
  assert_free_unmaps(70u << 20);
  /* calloc never gets a cached (dirty) mapping. */
  bool zeroed;
  void *p = tp_large_alloc(&tp_main_heap, 8u << 20, 0, 8u << 20, false, &zeroed);
  tp_large_free(p);
  void *q = tp_large_alloc(&tp_main_heap, 8u << 20, 0, 8u << 20, true, &zeroed);
  assert_true(zeroed);
  tp_large_free(q);
}

static void test_alloc_free_and_cache_reuse(void **state) {
  (void)state;
  bool zeroed;
  char *p = tp_large_alloc(&tp_main_heap, 8u << 20, 0, (8u << 20) - 5, false, &zeroed);
  assert_non_null(p);
  assert_true(zeroed);
  assert_int_equal((uintptr_t)p % TP_PAGE_SIZE, 0);
  assert_int_equal(tp_large_usable_size(p), 8u << 20);
  memset(p, 1, 8u << 20);
  tierpool_tier_stats_t before, after;
  tp_large_stats(&before);
  assert_true(tp_large_free(p));
  assert_int_equal(tp_large_usable_size(p), 0);
  /* A smaller request reuses the cached mapping, pages and all. */
  char *q = tp_large_alloc(&tp_main_heap, 6u << 20, 0, 6u << 20, false, &zeroed);
  assert_ptr_equal(q, p);
  assert_false(zeroed);
  assert_int_equal(q[100], 1);
  assert_int_equal(tp_large_usable_size(q), 8u << 20);
  tp_large_stats(&after);
  assert_int_equal(after.allocs, before.allocs + 1);
  assert_int_equal(after.releases, before.releases); /* nothing was unmapped */
  assert_true(tp_large_free(q));
}

static void test_cache_grows_the_largest(void **state) {
  (void)state;
  bool zeroed;
  char *p = tp_large_alloc(&tp_main_heap, 8u << 20, 0, 8u << 20, false, &zeroed);
  memset(p, 7, 8u << 20);
  tp_large_free(p);
  char *q = tp_large_alloc(&tp_main_heap, 20u << 20, 0, 20u << 20, false, &zeroed);
  assert_non_null(q);
  assert_int_equal(tp_large_usable_size(q), 20u << 20);
  assert_int_equal(q[0], 7); /* the cached pages moved with mremap */
  memset(q, 8, 20u << 20);
  tp_large_free(q);
}

static void test_realloc_moves_pages(void **state) {
  (void)state;
  bool zeroed, found;
  char *p = tp_large_alloc(&tp_main_heap, 5u << 20, 0, 5u << 20, false, &zeroed);
  for (size_t i = 0; i < (5u << 20); i += 4096) p[i] = (char)(i >> 12);
  char *q = tp_large_realloc(p, 50u << 20, &found);
  assert_true(found);
  assert_non_null(q);
  for (size_t i = 0; i < (5u << 20); i += 4096) assert_int_equal(q[i], (char)(i >> 12));
  char *r = tp_large_realloc(q, 6u << 20, &found);
  assert_non_null(r);
  assert_int_equal(tp_large_usable_size(r), 6u << 20);
  for (size_t i = 0; i < (5u << 20); i += 4096) assert_int_equal(r[i], (char)(i >> 12));
  int local;
  assert_null(tp_large_realloc(&local, 1u << 20, &found));
  assert_false(found);
  tp_large_free(r);
}

static void test_alignment(void **state) {
  (void)state;
  for (size_t align = 8192; align <= (8u << 20); align <<= 1) {
    bool zeroed;
    void *p = tp_large_alloc(&tp_main_heap, 5u << 20, align, 5u << 20, false, &zeroed);
    assert_non_null(p);
    assert_int_equal((uintptr_t)p % align, 0);
    assert_true(tp_large_free(p));
  }
}

static void test_no_cache_unmaps_at_once(void **state) {
  (void)state;
  const char *env[] = {"TIERPOOL_LARGE_CACHE_MS=0", NULL};
  unit_load_options(NULL, env);
  assert_free_unmaps(6u << 20);
}

static void test_cache_cap_and_expiry(void **state) {
  (void)state;
  const char *env[] = {"TIERPOOL_LARGE_CACHE_MAX=16M", NULL};
  unit_load_options(NULL, env);
  bool zeroed;
  void *a = tp_large_alloc(&tp_main_heap, 10u << 20, 0, 10u << 20, false, &zeroed);
  void *b = tp_large_alloc(&tp_main_heap, 10u << 20, 0, 10u << 20, false, &zeroed);
  tp_large_free(a);
  tp_large_free(b); /* evicts a: both do not fit under 16M */
  tierpool_tier_stats_t s;
  tp_large_stats(&s);
  assert_int_equal(s.resident_bytes, 10u << 20);
  tp_large_maintain(tp_os_now_ms() + tp_opt.large_cache_ms + 1); /* later: expired */
  tp_large_stats(&s);
  assert_int_equal(s.resident_bytes, 0);
  int local;
  assert_false(tp_large_free(&local));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup(test_first_free_is_not_cached, setup),
      cmocka_unit_test_setup(test_alloc_free_and_cache_reuse, setup),
      cmocka_unit_test_setup(test_cache_grows_the_largest, setup),
      cmocka_unit_test_setup(test_realloc_moves_pages, setup),
      cmocka_unit_test_setup(test_alignment, setup),
      cmocka_unit_test_setup(test_no_cache_unmaps_at_once, setup),
      cmocka_unit_test_setup(test_cache_cap_and_expiry, setup),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
