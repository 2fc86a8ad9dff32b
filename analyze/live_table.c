/* live_table.c — sampled blocks not freed yet, by sample id (live_table.h). */
#include "live_table.h"

#include <stdlib.h>
#include <string.h>

#include "hash_set.h"

static uint64_t id_of(const struct tp_live_table *t, size_t i) {
  uint64_t id;
  memcpy(&id, tp_live_slot(t, i), sizeof id);
  return id;
}

static size_t home_of(uint64_t id, size_t cap) { return tp_hash_mix(id) & (cap - 1); }

void tp_live_init(struct tp_live_table *t, size_t elem) { *t = (struct tp_live_table){.elem = elem}; }

void tp_live_free(struct tp_live_table *t) {
  free(t->entries);
  free(t->used);
  tp_live_init(t, t->elem);
}

void tp_live_clear(struct tp_live_table *t) {
  if (t->used) memset(t->used, 0, t->cap * sizeof *t->used);
  t->count = 0;
}

void tp_live_put(struct tp_live_table *t, const void *entry) {
  if ((t->count + 1) * 2 > t->cap) {
    struct tp_live_table old = *t;
    t->cap = old.cap ? old.cap * 2 : 1024;
    t->entries = tp_hash_alloc(t->cap, t->elem);
    t->used = tp_hash_alloc(t->cap, sizeof *t->used);
    t->count = 0;
    for (size_t i = 0; i < old.cap; i++)
      if (old.used[i]) tp_live_put(t, tp_live_slot(&old, i));
    free(old.entries);
    free(old.used);
  }
  uint64_t id;
  memcpy(&id, entry, sizeof id);
  size_t mask = t->cap - 1, i = home_of(id, t->cap);
  while (t->used[i] && id_of(t, i) != id) i = (i + 1) & mask;
  if (!t->used[i]) t->count++;
  memcpy(tp_live_slot(t, i), entry, t->elem);
  t->used[i] = true;
}

bool tp_live_take(struct tp_live_table *t, uint64_t id, void *out) {
  if (!t->count) return false;
  size_t mask = t->cap - 1, i = home_of(id, t->cap);
  while (t->used[i] && id_of(t, i) != id) i = (i + 1) & mask;
  if (!t->used[i]) return false;
  memcpy(out, tp_live_slot(t, i), t->elem);
  /* Backward shift: later entries of the run move into the hole. */
  size_t hole = i;
  for (size_t next = (hole + 1) & mask; t->used[next]; next = (next + 1) & mask) {
    size_t home = home_of(id_of(t, next), t->cap);
    if (((next - home) & mask) >= ((next - hole) & mask)) {
      memcpy(tp_live_slot(t, hole), tp_live_slot(t, next), t->elem);
      hole = next;
    }
  }
  t->used[hole] = false;
  t->count--;
  return true;
}
