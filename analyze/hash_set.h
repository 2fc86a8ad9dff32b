/* hash_set.h — an open-addressing set of uint32_t indices into an array the
 * caller owns: the keys live in that array, the set only finds them.  Linear
 * probing, the table at most half full, each slot's hash kept so that growing
 * never looks at the keys.  No removal (interning tables only grow). */
#ifndef TP_HASH_SET_H
#define TP_HASH_SET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TP_HASH_NONE UINT32_MAX

struct tp_hash_set {
  uint32_t *slot; /* index + 1; 0: empty */
  uint64_t *hash;
  size_t cap, count; /* cap: a power of two, or 0 */
};

/* Does the entry at index equal the key being looked up? */
typedef bool (*tp_hash_eq)(const void *ctx, uint32_t index, const void *key);

/* Random, per process (hash_key.c), and in every hash below: a trace cannot be
 * crafted for its ids, addresses or names to collide (quadratic lookups). */
extern uint64_t tp_hash_key;

static inline uint64_t tp_hash_mix(uint64_t h) { /* splitmix64's finaliser, of h and the key */
  h += tp_hash_key;
  h ^= h >> 30, h *= 0xbf58476d1ce4e5b9ull;
  h ^= h >> 27, h *= 0x94d049bb133111ebull;
  return h ^ (h >> 31);
}

static inline uint64_t tp_hash_bytes(uint64_t h, const void *data, size_t len) { /* FNV-1a */
  const uint8_t *p = data;
  h ^= 0xcbf29ce484222325ull ^ tp_hash_key;
  for (size_t i = 0; i < len; i++) h = (h ^ p[i]) * 0x100000001b3ull;
  return tp_hash_mix(h);
}

static inline uint64_t tp_hash_u64(uint64_t h, uint64_t v) { return tp_hash_mix(h ^ tp_hash_mix(v + 0x9e3779b97f4a7c15ull)); }

static inline void *tp_hash_alloc(size_t n, size_t size) {
  void *p = calloc(n ? n : 1, size);
  if (!p) {
    fputs("tierpool: out of memory\n", stderr);
    exit(2);
  }
  return p;
}

/* The index of the entry equal to key, or TP_HASH_NONE. */
static inline uint32_t tp_hash_find(const struct tp_hash_set *s, uint64_t hash, tp_hash_eq eq, const void *ctx,
                                    const void *key) {
  if (!s->cap) return TP_HASH_NONE;
  size_t mask = s->cap - 1;
  for (size_t i = hash & mask; s->slot[i]; i = (i + 1) & mask)
    if (s->hash[i] == hash && eq(ctx, s->slot[i] - 1, key)) return s->slot[i] - 1;
  return TP_HASH_NONE;
}

static inline void tp_hash_place(struct tp_hash_set *s, uint64_t hash, uint32_t index) {
  size_t mask = s->cap - 1, i = hash & mask;
  while (s->slot[i]) i = (i + 1) & mask;
  s->slot[i] = index + 1;
  s->hash[i] = hash;
}

/* Adds index (whose key hashes to hash; not in the set yet). */
static inline void tp_hash_add(struct tp_hash_set *s, uint64_t hash, uint32_t index) {
  if ((s->count + 1) * 2 > s->cap) {
    struct tp_hash_set old = *s;
    s->cap = old.cap ? old.cap * 2 : 64;
    s->slot = tp_hash_alloc(s->cap, sizeof *s->slot);
    s->hash = tp_hash_alloc(s->cap, sizeof *s->hash);
    for (size_t i = 0; i < old.cap; i++)
      if (old.slot[i]) tp_hash_place(s, old.hash[i], old.slot[i] - 1);
    free(old.slot);
    free(old.hash);
  }
  tp_hash_place(s, hash, index);
  s->count++;
}

static inline void tp_hash_free(struct tp_hash_set *s) {
  free(s->slot);
  free(s->hash);
  memset(s, 0, sizeof *s);
}

#endif /* TP_HASH_SET_H */
