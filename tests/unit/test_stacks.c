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
  uintptr_t got[TP_REC_MAX_DEPTH];
  bool got_truncated;
  uint32_t got_depth = tp_rec_stack_frames(id, got, TP_REC_MAX_DEPTH, &got_truncated);
  assert_int_equal(got_depth, depth);
  assert_int_equal(got_truncated, truncated);
  assert_memory_equal(got, frames, depth * sizeof *frames);
}

/* Two 30-frame stacks that differ in their innermost frame only. */
static void fill_two_stacks(uintptr_t *a, uintptr_t *b, uint64_t seed) {
  fill_stack(a, 30, seed);
  memcpy(b, a, 30 * sizeof *a);
  b[0] += 16;
}

/* The same frames, depth and truncation give the same id; a stack that
 * differs in one frame, in its depth or in its truncation, another. */
static void test_same_and_different(void **state) {
  (void)state;
  uintptr_t a[30], b[30];
  fill_two_stacks(a, b, 1);
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

/* Stacks are paths in one tree of frames from the outermost: a stack that
 * differs from a known one only in its innermost frame adds that one node,
 * hung from the known stack's second frame, as a Stacks record says it. */
static void test_shared_frames_share_nodes(void **state) {
  (void)state;
  uintptr_t a[30], b[30];
  fill_two_stacks(a, b, 7);
  uint32_t nodes = tp_rec_stack_node_count();
  uint32_t ia = tp_rec_stack_intern(a, 30, false);
  assert_int_equal(tp_rec_stack_node_count(), nodes + 30);
  uint32_t ib = tp_rec_stack_intern(b, 30, false);
  assert_int_equal(tp_rec_stack_node_count(), nodes + 31);
  uint32_t back;
  const uint64_t *added;
  assert_int_equal(tp_rec_stack_added(ia, &back, &added), 30);
  assert_int_equal(back, 0); /* from the root */
  assert_int_equal(added[0], a[29]);
  assert_int_equal(added[29], a[0]);
  assert_int_equal(tp_rec_stack_added(ib, &back, &added), 1);
  assert_int_equal(back, 2); /* a's node of a[1]: the one before a's last */
  assert_int_equal(added[0], b[0]);
  /* The same frames cut short: no new node; a's innermost is two back from
   * the next node, b's being the last. */
  uint32_t it = tp_rec_stack_intern(a, 30, true);
  assert_int_equal(tp_rec_stack_added(it, &back, &added), 0);
  assert_int_equal(back, 2);
  assert_int_equal(tp_rec_stack_node_count(), nodes + 31);
  assert_frames(ib, b, 30, false);
  assert_frames(it, a, 30, true);
}

/* Stacks that branch off one another at every depth, interned in an order
 * that jumps between branches (as threads' samples do): the tree holds one
 * node per distinct outer part of a stack (checked against a count made the
 * slow way), and every stack gives its frames back. */
static void test_tree_of_branching_stacks(void **state) {
  (void)state;
  enum { COUNT = 600, DEPTH = 24 };
  static uintptr_t stacks[COUNT][DEPTH]; /* innermost first */
  static uint32_t depths[COUNT], ids[COUNT];
  uint64_t seed = 42;
  for (uint32_t i = 0; i < COUNT; i++) {
    seed = seed * 6364136223846793005ull + 1442695040888963407ull;
    uint32_t parent = i ? (uint32_t)(seed >> 33) % i : 0;
    uint32_t most = i ? (depths[parent] < DEPTH - 1 ? depths[parent] : DEPTH - 1) : 0;
    uint32_t keep = (uint32_t)(seed >> 20) % (most + 1); /* outer frames shared with the parent stack */
    depths[i] = keep + 1 + (uint32_t)(seed >> 50) % (DEPTH - keep);
    for (uint32_t k = 0; k < depths[i]; k++) { /* k counts from the outermost frame */
      uintptr_t frame = k < keep ? stacks[parent][depths[parent] - 1 - k] : 0x7f0000000000ull + ((seed >> 8) % 5) * 16 + k;
      stacks[i][depths[i] - 1 - k] = frame;
    }
  }
  uint32_t distinct = 0; /* outer parts (k + 1 outermost frames) no earlier stack has */
  for (uint32_t i = 0; i < COUNT; i++)
    for (uint32_t k = 0; k < depths[i]; k++) {
      bool seen = false;
      for (uint32_t j = 0; j < i && !seen; j++) {
        if (depths[j] <= k) continue;
        seen = true;
        for (uint32_t m = 0; m <= k && seen; m++)
          seen = stacks[j][depths[j] - 1 - m] == stacks[i][depths[i] - 1 - m];
      }
      distinct += !seen;
    }
  uint32_t nodes = tp_rec_stack_node_count();
  for (uint32_t i = 0; i < COUNT; i++) {
    ids[i] = tp_rec_stack_intern(stacks[i], depths[i], false);
    assert_int_not_equal(ids[i], 0);
  }
  assert_int_equal(tp_rec_stack_node_count(), nodes + distinct);
  for (uint32_t i = 0; i < COUNT; i++) assert_frames(ids[i], stacks[i], depths[i], false);
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
      cmocka_unit_test_setup(test_shared_frames_share_nodes, unit_setup_heap),
      cmocka_unit_test_setup(test_tree_of_branching_stacks, unit_setup_heap),
      cmocka_unit_test_setup(test_many_stacks, unit_setup_heap),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
