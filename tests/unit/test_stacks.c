/* test_stacks.c — the recorder's stack interning (profiler/stacks.c). */
#include <stdlib.h>
#include <string.h>

#include "unit.h"
#include "recorder_private.h"

static void fill_stack(uintptr_t *frames, uint32_t depth, uint64_t seed) {
  for (uint32_t i = 0; i < depth; i++) {
    seed = seed * 6364136223846793005ull + 1442695040888963407ull;
    frames[i] = 0x555500000000ull + (seed >> 40);
  }
}

static void assert_frames(uint32_t id, const uintptr_t *frames, uint32_t depth, bool truncated) {
  uint32_t got_depth;
  bool got_truncated;
  const uintptr_t *got = tp_rec_stack_frames(id, &got_depth, &got_truncated);
  assert_int_equal(got_depth, depth);
  assert_int_equal(got_truncated, truncated);
  assert_memory_equal(got, frames, depth * sizeof *frames);
}

/* The same frames, depth and truncation give the same id; a stack that
 * differs in one frame, in its depth or in its truncation, another. */
static void test_same_and_different(void **state) {
  (void)state;
  uintptr_t a[30], b[30];
  fill_stack(a, 30, 1);
  memcpy(b, a, sizeof a);
  b[0] += 8;
  uint32_t before = tp_rec_stack_count();
  uint32_t ia = tp_rec_stack_intern(a, 30, false), ib = tp_rec_stack_intern(b, 30, false);
  assert_int_not_equal(ia, 0);
  assert_int_not_equal(ib, 0);
  assert_int_not_equal(ia, ib);
  assert_int_equal(tp_rec_stack_intern(a, 30, false), ia);
  uint32_t truncated = tp_rec_stack_intern(a, 30, true), prefix = tp_rec_stack_intern(a, 29, false);
  assert_int_not_equal(truncated, ia);
  assert_int_not_equal(prefix, ia);
  assert_int_not_equal(prefix, truncated);
  assert_int_equal(tp_rec_stack_intern(a, 0, false), tp_rec_stack_intern(b, 0, false)); /* empty */
  assert_int_equal(tp_rec_stack_count(), before + 5);
  assert_frames(ia, a, 30, false);
  assert_frames(ib, b, 30, false);
  assert_frames(truncated, a, 30, true);
  assert_frames(prefix, a, 29, false);
}

/* Thousands of stacks (the index doubles several times on the way): each is
 * found again under its own id with its own frames. */
static void test_many_stacks(void **state) {
  (void)state;
  enum { COUNT = 20000 };
  uint32_t *ids = calloc(COUNT, sizeof *ids);
  assert_non_null(ids);
  uintptr_t frames[TP_REC_MAX_DEPTH];
  for (uint32_t i = 0; i < COUNT; i++) {
    fill_stack(frames, 1 + i % TP_REC_MAX_DEPTH, 1000 + i);
    ids[i] = tp_rec_stack_intern(frames, 1 + i % TP_REC_MAX_DEPTH, false);
    assert_int_not_equal(ids[i], 0);
  }
  for (uint32_t i = 0; i < COUNT; i++) {
    fill_stack(frames, 1 + i % TP_REC_MAX_DEPTH, 1000 + i);
    assert_int_equal(tp_rec_stack_intern(frames, 1 + i % TP_REC_MAX_DEPTH, false), ids[i]);
    assert_frames(ids[i], frames, 1 + i % TP_REC_MAX_DEPTH, false);
    if (i) assert_int_not_equal(ids[i], ids[i - 1]);
  }
  free(ids);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup(test_same_and_different, unit_setup_heap),
      cmocka_unit_test_setup(test_many_stacks, unit_setup_heap),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
