/* stack_tree.h — the prefix tree of the stacks written to a trace section
 * (trace.proto, Stacks), shared by the recorder's writer and `tierpool merge`.
 *
 * Nodes are the frames written so far, numbered from 1 in the order written,
 * as the reader numbers them (node 0 is the root); an open-addressing index
 * maps (parent node, frame) to the child node.  The count goes on even when
 * the index cannot grow: a frame not indexed is only written again. */
#ifndef TP_STACK_TREE_H
#define TP_STACK_TREE_H

#include <stdint.h>
#include <stddef.h>

typedef struct tp_stack_tree_slot tp_stack_tree_slot;

typedef struct tp_stack_tree {
  /* Zeroed memory for the index, and its release: mmap in the preload,
   * calloc in the analyzer. */
  void *(*map)(size_t bytes);
  void (*unmap)(void *p, size_t bytes);
  tp_stack_tree_slot *slots;
  uint32_t capacity, indexed, nodes;
  /* Mixed into the index's hash: random in the analyzer, whose frames come
   * from traces (crafted ones could collide); 0 in the preload, whose frames
   * are its own process's. */
  uint64_t key;
} tp_stack_tree;

/* Adds the stack frames[0..depth) (innermost first): *from is the deepest
 * node already on its path from the outermost frame, *shared the frames that
 * path covers; the other depth - *shared frames become new nodes, outermost
 * first.  Returns the node count before them. */
uint32_t tp_stack_tree_add(tp_stack_tree *t, const uint64_t *frames, uint32_t depth, uint32_t *from, uint32_t *shared);

/* A new section: no node written, the index released. */
void tp_stack_tree_reset(tp_stack_tree *t);

#endif /* TP_STACK_TREE_H */
