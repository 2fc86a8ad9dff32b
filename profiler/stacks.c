/* stacks.c — call stacks: interning, printing (capture: unwind.c).
 *
 * Interned stacks are paths in one prefix tree of frames, rooted at the
 * outermost frame: a compiler's 7 thousand stacks of 31 frames are 25
 * thousand nodes, not 220 thousand frames.  Nodes are numbered as the
 * trace's Stacks records number them (stack_tree.h), and a stack's new nodes
 * follow the previous stack's, so the writer sends each stack's new frames
 * straight from the node arena.  Stacks and nodes live in append-only arenas
 * reserved once (only the pages used become resident): the writer reads
 * entries below the count it saw without locking, because entries never move.
 *
 * A stack is known by 96 bits of hash of its frames, depth and truncation,
 * kept in the index itself: a lookup reads one index line, not the stack's
 * nodes.  Two stacks of a process sharing those 96 bits (odds about 2^-96
 * per pair) would be one. */
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

#include "recorder_private.h"
#include "stack_tree.h"
#include "trace_codec.h" /* TP_TRACE_MAX_STACKS and _STACK_FRAMES: the arenas' sizes, which readers rely on */

typedef struct tp_rec_key {
  uint64_t hash;  /* also places the stack in the index */
  uint32_t check; /* 32 more bits, of another mix */
} tp_rec_key;

typedef struct tp_rec_stack {
  uint64_t hash; /* its key, to rebuild the index */
  uint32_t check;
  uint32_t leaf;      /* the node of its innermost frame; 0: no frames */
  uint32_t first_new; /* the nodes it added: first_new .. first_new + added - 1, outermost first */
  uint8_t added, truncated; /* its depth is its leaf's: the walk to the root */
} tp_rec_stack;
_Static_assert(TP_REC_MAX_DEPTH <= UINT8_MAX, "added fits a byte");
_Static_assert(sizeof(tp_rec_stack) == 24, "tp_rec_stack stays three words");

/* Nodes at most: half of what a trace may hold, which as a tree stands for
 * many times more frames (a compiler's: 25 thousand for 220 thousand). */
#define TP_REC_MAX_NODES (TP_TRACE_MAX_STACK_FRAMES / 2)

/* The index: open addressing, read without the lock (a slot's id is stored
 * with release after its key).  When it grows, the old one is released but
 * stays mapped: a lookup still in it reads empty slots and takes the locked
 * path. */
typedef struct tp_rec_stack_slot {
  uint64_t hash;
  uint32_t check;
  _Atomic uint32_t id; /* 0: empty */
} tp_rec_stack_slot;

typedef struct tp_rec_stack_index {
  uint32_t capacity;
  tp_rec_stack_slot slots[] __attribute__((aligned(16)));
} tp_rec_stack_index;

static tp_rec_stack *tp_rec_stacks;  /* [1 .. count]; 0 means "no stack" */
static uintptr_t *tp_rec_node_frame; /* [1 .. nodes]: each node's frame */
static uint32_t *tp_rec_node_parent; /* and the node of the frame that called it (0: the root) */
static _Atomic uint32_t tp_rec_stacks_count;
static _Atomic(tp_rec_stack_index *) tp_rec_index;
/* (parent node, frame) -> node, for additions only (under the lock); the
 * node count is the tree's.  A fork's child keeps it: its trace says every
 * stack again from the first, which numbers the nodes the same. */
static tp_stack_tree tp_rec_tree = {.map = tp_rec_map_table, .unmap = tp_os_unmap};

static size_t tp_rec_index_size(uint32_t capacity) {
  return sizeof(tp_rec_stack_index) + (size_t)capacity * sizeof(tp_rec_stack_slot);
}

static tp_rec_key tp_rec_stack_key(const uintptr_t *frames, uint32_t depth, bool truncated) {
  uint64_t h = 0xcbf29ce484222325ull ^ depth, g = 0x9e3779b97f4a7c15ull ^ ((uint64_t)depth << 1 | truncated);
  for (uint32_t i = 0; i < depth; i++) {
    h = (h ^ frames[i]) * 0x100000001b3ull, h ^= h >> 29;
    g = (g + frames[i]) * 0xc2b2ae3d27d4eb4full, g ^= g >> 31;
  }
  return (tp_rec_key){h, (uint32_t)(g >> 32) ^ (uint32_t)g};
}

static void tp_rec_slot_fill(tp_rec_stack_slot *slot, tp_rec_key key, uint32_t id) {
  slot->hash = key.hash;
  slot->check = key.check;
  atomic_store_explicit(&slot->id, id, memory_order_release);
}

static bool tp_rec_index_grow(void) {
  tp_rec_stack_index *old = atomic_load_explicit(&tp_rec_index, memory_order_relaxed);
  uint32_t capacity = old ? old->capacity * 2 : 4096;
  tp_rec_stack_index *index = tp_rec_map_table(tp_rec_index_size(capacity));
  if (!index) return false;
  index->capacity = capacity;
  uint32_t count = atomic_load_explicit(&tp_rec_stacks_count, memory_order_relaxed);
  for (uint32_t id = 1; id <= count; id++) {
    const tp_rec_stack *s = &tp_rec_stacks[id];
    uint32_t slot = (uint32_t)s->hash & (capacity - 1);
    while (atomic_load_explicit(&index->slots[slot].id, memory_order_relaxed)) slot = (slot + 1) & (capacity - 1);
    tp_rec_slot_fill(&index->slots[slot], (tp_rec_key){s->hash, s->check}, id);
  }
  atomic_store_explicit(&tp_rec_index, index, memory_order_release);
  if (old) tp_os_release(old, tp_rec_index_size(old->capacity));
  return true;
}

/* The stack's id, or 0 with *slot where it would go. */
static uint32_t tp_rec_stack_find(tp_rec_stack_index *index, tp_rec_key key, uint32_t *slot) {
  uint32_t capacity = index->capacity, id;
  *slot = 0;
  if (!capacity) return 0; /* released meanwhile */
  uint32_t mask = capacity - 1, i = (uint32_t)key.hash & mask;
  for (; (id = atomic_load_explicit(&index->slots[i].id, memory_order_acquire)) != 0; i = (i + 1) & mask)
    if (index->slots[i].hash == key.hash && index->slots[i].check == key.check) return id;
  *slot = i;
  return 0;
}

static tp_lock tp_rec_stack_lock = TP_LOCK_INITIALIZER; /* additions; its own: samples of different threads overlap less */

static bool tp_rec_stack_arenas(void) {
  if (tp_rec_stacks) return true;
  /* All or none (address space may run out, RLIMIT_AS): tried once. */
  static bool tried;
  if (tried) return false;
  tried = true;
  size_t stacks_size = (size_t)TP_TRACE_MAX_STACKS * sizeof *tp_rec_stacks;
  size_t frames_size = (size_t)TP_REC_MAX_NODES * sizeof *tp_rec_node_frame;
  size_t parents_size = (size_t)TP_REC_MAX_NODES * sizeof *tp_rec_node_parent;
  tp_rec_stack *stacks = tp_rec_map(stacks_size);
  uintptr_t *frames = stacks ? tp_rec_map(frames_size) : NULL;
  uint32_t *parents = frames ? tp_rec_map(parents_size) : NULL;
  if (!parents) {
    if (frames) tp_os_unmap(frames, frames_size);
    if (stacks) tp_os_unmap(stacks, stacks_size);
    tp_message("profiler: cannot map the stack tables (address space limit?); samples go without stacks");
    return false;
  }
  tp_rec_node_frame = frames;
  tp_rec_node_parent = parents;
  tp_rec_stacks = stacks;
  return true;
}

static uint32_t tp_rec_stack_intern_locked(const uintptr_t *frames, uint32_t depth, bool truncated, tp_rec_key key) {
  if (!tp_rec_stack_arenas()) return 0;
  uint32_t count = atomic_load_explicit(&tp_rec_stacks_count, memory_order_relaxed);
  tp_rec_stack_index *index = atomic_load_explicit(&tp_rec_index, memory_order_relaxed);
  if ((!index || (count + 1) * 2 > index->capacity) && !tp_rec_index_grow()) return 0;
  index = atomic_load_explicit(&tp_rec_index, memory_order_relaxed);
  uint32_t slot, id = tp_rec_stack_find(index, key, &slot);
  if (id) return id;
  /* At worst every frame is a new node. */
  if (count + 1 >= TP_TRACE_MAX_STACKS || tp_rec_tree.nodes + depth >= TP_REC_MAX_NODES) return 0;
  id = count + 1;
  uint32_t from, shared, before = tp_stack_tree_add(&tp_rec_tree, frames, depth, &from, &shared);
  uint32_t added = depth - shared;
  for (uint32_t k = 0; k < added; k++) { /* outermost first, each under the one before */
    tp_rec_node_frame[before + 1 + k] = frames[added - 1 - k];
    tp_rec_node_parent[before + 1 + k] = k ? before + k : from;
  }
  tp_rec_stacks[id] = (tp_rec_stack){key.hash, key.check, added ? before + added : from, before + 1, (uint8_t)added,
                                     truncated};
  /* Counted before it can be found: a sample that finds id (without the
   * lock) and is swapped into a frame sees it among the frame's stacks. */
  atomic_store_explicit(&tp_rec_stacks_count, id, memory_order_release);
  tp_rec_slot_fill(&index->slots[slot], key, id);
  return id;
}

/* Most stacks were seen before: found without the lock.  A new one takes
 * the lock; with wait false, not when it is busy (a fork in another thread
 * may hold it for as long as a lock of the caller's): false, *id unset. */
bool tp_rec_stack_intern_if(const uintptr_t *frames, uint32_t depth, bool truncated, bool wait, uint32_t *id) {
  tp_rec_key key = tp_rec_stack_key(frames, depth, truncated);
  tp_rec_stack_index *index = atomic_load_explicit(&tp_rec_index, memory_order_acquire);
  uint32_t slot;
  if (index && (*id = tp_rec_stack_find(index, key, &slot)) != 0) return true;
  if (wait) tp_lock_acquire(&tp_rec_stack_lock);
  else if (!tp_lock_try(&tp_rec_stack_lock)) return false;
  *id = tp_rec_stack_intern_locked(frames, depth, truncated, key);
  tp_lock_release(&tp_rec_stack_lock);
  return true;
}

uint32_t tp_rec_stack_intern(const uintptr_t *frames, uint32_t depth, bool truncated) {
  uint32_t id;
  tp_rec_stack_intern_if(frames, depth, truncated, true, &id);
  return id;
}

void tp_rec_stacks_lock(void) { tp_lock_acquire(&tp_rec_stack_lock); }
void tp_rec_stacks_unlock(void) { tp_lock_release(&tp_rec_stack_lock); }
void tp_rec_stacks_reinit_lock(void) { tp_lock_init(&tp_rec_stack_lock); }

uint32_t tp_rec_stack_count(void) { return atomic_load_explicit(&tp_rec_stacks_count, memory_order_acquire); }

uint32_t tp_rec_stack_frames(uint32_t id, uintptr_t *frames, uint32_t max, bool *truncated) {
  const tp_rec_stack *s = &tp_rec_stacks[id];
  uint32_t depth = 0;
  for (uint32_t node = s->leaf; node && depth < max; node = tp_rec_node_parent[node])
    frames[depth++] = tp_rec_node_frame[node];
  *truncated = s->truncated;
  return depth;
}

uint32_t tp_rec_stack_added(uint32_t id, uint32_t *back, const uint64_t **frames) {
  const tp_rec_stack *s = &tp_rec_stacks[id];
  uint32_t attach = s->added ? tp_rec_node_parent[s->first_new] : s->leaf;
  *back = attach ? s->first_new - attach : 0;
  *frames = (const uint64_t *)&tp_rec_node_frame[s->first_new];
  return s->added;
}

bool tp_rec_stack_truncated(uint32_t id) { return tp_rec_stacks[id].truncated; }

uint32_t tp_rec_stack_node_count(void) { return tp_rec_tree.nodes; }

/* "    #3 0x7f...  function+0x1c (/usr/lib/libfoo.so)", through dladdr. */
void tp_rec_print_stack(int fd, const uintptr_t *frames, uint32_t depth) {
  for (uint32_t i = 0; i < depth; i++) {
    char line[512];
    Dl_info info;
    int n;
    /* A return address points after the call: look up the call itself. */
    if (dladdr((void *)(frames[i] - 1), &info) && info.dli_fname) {
      if (info.dli_sname)
        n = snprintf(line, sizeof line, "    #%u 0x%lx %s+0x%lx (%s)\n", i, (unsigned long)frames[i], info.dli_sname,
                     (unsigned long)(frames[i] - (uintptr_t)info.dli_saddr), info.dli_fname);
      else
        n = snprintf(line, sizeof line, "    #%u 0x%lx (%s+0x%lx)\n", i, (unsigned long)frames[i], info.dli_fname,
                     (unsigned long)(frames[i] - (uintptr_t)info.dli_fbase));
    } else {
      n = snprintf(line, sizeof line, "    #%u 0x%lx\n", i, (unsigned long)frames[i]);
    }
    if (n > 0) tp_os_write(fd, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
  }
}
