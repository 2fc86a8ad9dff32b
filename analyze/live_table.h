/* live_table.h — the sampled blocks of a process section not freed yet, by
 * sample id, for the readers of traces that pair each free with its sample
 * (the loader, profile_load.c; `export --format csv`).
 *
 * Open addressing with linear probing, at most half full; a removal shifts
 * the rest of its run back instead of leaving a tombstone, so memory follows
 * the blocks live at one time, never the number of events. */
#ifndef TP_LIVE_TABLE_H
#define TP_LIVE_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct tp_live_table {
  unsigned char *entries; /* cap entries of elem bytes, each starting with its uint64_t id */
  bool *used;
  size_t cap, count, elem;
};

/* An empty table of entries of elem bytes (a struct whose first member is its uint64_t id). */
void tp_live_init(struct tp_live_table *t, size_t elem);
void tp_live_free(struct tp_live_table *t);
/* Empties it, keeping its memory. */
void tp_live_clear(struct tp_live_table *t);

/* Puts the entry in, over one with the same id. */
void tp_live_put(struct tp_live_table *t, const void *entry);
/* Takes the entry of id out, into out; false if there is none. */
bool tp_live_take(struct tp_live_table *t, uint64_t id, void *out);

/* Slot i (i < cap), an entry when used[i]: the entries in no particular order. */
static inline void *tp_live_slot(const struct tp_live_table *t, size_t i) { return t->entries + i * t->elem; }

#endif /* TP_LIVE_TABLE_H */
