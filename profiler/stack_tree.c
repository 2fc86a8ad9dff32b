/* stack_tree.c — the prefix tree of a section's stacks (stack_tree.h). */
#include "stack_tree.h"

struct tp_stack_tree_slot {
  uint64_t frame;
  uint32_t parent, node; /* node 0: an empty slot */
};

/* The frame through splitmix64's finaliser first: with a key no one knows,
 * no frames can be chosen whose slots collide, under one parent or many. */
static uint32_t tp_stack_tree_hash(uint64_t key, uint32_t parent, uint64_t frame) {
  uint64_t h = frame ^ key;
  h ^= h >> 30, h *= 0xbf58476d1ce4e5b9ull;
  h ^= h >> 27, h *= 0x94d049bb133111ebull;
  h ^= h >> 31;
  h = (h + parent) * 0x9e3779b97f4a7c15ull;
  return (uint32_t)(h >> 32);
}

static int tp_stack_tree_grow(tp_stack_tree *t) {
  uint32_t capacity = t->capacity ? t->capacity * 2 : 8192;
  if (capacity < t->capacity) return 0;
  tp_stack_tree_slot *slots = t->map((size_t)capacity * sizeof *slots);
  if (!slots) return 0;
  for (uint32_t i = 0; i < t->capacity; i++) {
    tp_stack_tree_slot *s = &t->slots[i];
    if (!s->node) continue;
    uint32_t slot = tp_stack_tree_hash(t->key, s->parent, s->frame) & (capacity - 1);
    while (slots[slot].node) slot = (slot + 1) & (capacity - 1);
    slots[slot] = *s;
  }
  /* Published before the unmap: a fork in between must not give the child
   * a table it would unmap again (the range may be someone else's by then).
   * The capacity last, in that order for the compiler too: a fork between
   * the two stores leaves the child half the new table to leak, where the
   * other order had it unmap twice the old one's size. */
  tp_stack_tree_slot *old = t->slots;
  uint32_t old_capacity = t->capacity;
  t->slots = slots;
  __atomic_store_n(&t->capacity, capacity, __ATOMIC_RELEASE);
  if (old) t->unmap(old, (size_t)old_capacity * sizeof *slots);
  return 1;
}

uint32_t tp_stack_tree_add(tp_stack_tree *t, const uint64_t *frames, uint32_t depth, uint32_t *from, uint32_t *shared) {
  uint32_t node = 0, i = depth;
  if (t->capacity) { /* the longest known path from the outermost frame */
    uint32_t mask = t->capacity - 1;
    while (i > 0) {
      uint32_t slot = tp_stack_tree_hash(t->key, node, frames[i - 1]) & mask;
      while (t->slots[slot].node && (t->slots[slot].parent != node || t->slots[slot].frame != frames[i - 1]))
        slot = (slot + 1) & mask;
      if (!t->slots[slot].node) break;
      node = t->slots[slot].node;
      i--;
    }
  }
  *from = node;
  *shared = depth - i;
  for (; i > 0; i--) { /* the rest are new nodes */
    uint32_t child = ++t->nodes;
    if ((t->indexed + 1) * 2 <= t->capacity || tp_stack_tree_grow(t)) {
      uint32_t mask = t->capacity - 1, slot = tp_stack_tree_hash(t->key, node, frames[i - 1]) & mask;
      while (t->slots[slot].node) slot = (slot + 1) & mask;
      t->slots[slot] = (tp_stack_tree_slot){frames[i - 1], node, child};
      t->indexed++;
    }
    node = child;
  }
  return t->nodes - (depth - *shared);
}

void tp_stack_tree_reset(tp_stack_tree *t) {
  if (t->slots) t->unmap(t->slots, (size_t)t->capacity * sizeof *t->slots);
  t->slots = NULL;
  t->capacity = t->indexed = t->nodes = 0;
}
