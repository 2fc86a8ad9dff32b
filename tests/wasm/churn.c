/* churn.c — small-object churn: a chained hash map whose entries come and go,
 * a FIFO of short-lived nodes, and strings built by repeated realloc.  Sizes are
 * mixed between 1 and ~600 bytes.  Prints the operation counts and a checksum. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "workload.h"

#define ROUNDS 1500000u
#define KEYSPACE 40000u

struct entry {
  struct entry *next;
  char *key;
  unsigned char *val;
  uint32_t vlen;
};

struct map {
  struct entry **slot;
  uint32_t nslots, count;
};

struct node {
  struct node *next;
  uint32_t len;
  unsigned char data[];
};

static void *xmalloc(size_t n) {
  void *p = malloc(n);
  if (!p) {
    printf("out of memory (%zu bytes)\n", n);
    abort();
  }
  return p;
}

static void *xrealloc(void *old, size_t n) {
  void *p = realloc(old, n);
  if (!p) {
    printf("out of memory (realloc %zu bytes)\n", n);
    abort();
  }
  return p;
}

static uint32_t hash_str(const char *s) { return (uint32_t)fnv_bytes(FNV_INIT, s, strlen(s)); }

static void fill(unsigned char *p, uint32_t n, uint64_t *rng) {
  for (uint32_t i = 0; i < n; i++) p[i] = (unsigned char)rng_next(rng);
}

static void map_grow(struct map *m) {
  uint32_t n = m->nslots ? m->nslots * 2 : 64;
  struct entry **slot = calloc(n, sizeof *slot);
  if (!slot) abort();
  for (uint32_t i = 0; i < m->nslots; i++) {
    struct entry *e = m->slot[i], *next;
    for (; e; e = next) {
      next = e->next;
      uint32_t h = hash_str(e->key) & (n - 1);
      e->next = slot[h];
      slot[h] = e;
    }
  }
  free(m->slot);
  m->slot = slot;
  m->nslots = n;
}

static struct entry **map_find(struct map *m, const char *key) {
  struct entry **pe = &m->slot[hash_str(key) & (m->nslots - 1)];
  while (*pe && strcmp((*pe)->key, key) != 0) pe = &(*pe)->next;
  return pe;
}

/* Inserts or replaces key with a fresh value of vlen bytes; returns 1 if new. */
static int map_put(struct map *m, const char *key, uint32_t vlen, uint64_t *rng) {
  if (m->count >= m->nslots) map_grow(m);
  struct entry **pe = map_find(m, key);
  int fresh = *pe == NULL;
  if (fresh) {
    struct entry *e = xmalloc(sizeof *e);
    e->key = strdup(key);
    e->val = NULL;
    e->next = NULL;
    *pe = e;
    m->count++;
  }
  (*pe)->val = xrealloc((*pe)->val, vlen);
  (*pe)->vlen = vlen;
  fill((*pe)->val, vlen, rng);
  return fresh;
}

static int map_del(struct map *m, const char *key) {
  struct entry **pe = map_find(m, key);
  struct entry *e = *pe;
  if (!e) return 0;
  *pe = e->next;
  free(e->key);
  free(e->val);
  free(e);
  m->count--;
  return 1;
}

static uint64_t map_checksum(const struct map *m) {
  uint64_t h = FNV_INIT;
  for (uint32_t i = 0; i < m->nslots; i++)
    for (const struct entry *e = m->slot[i]; e; e = e->next) {
      h = fnv_bytes(h, e->key, strlen(e->key));
      h = fnv_bytes(h, e->val, e->vlen);
    }
  return h;
}

static void map_clear(struct map *m) {
  for (uint32_t i = 0; i < m->nslots; i++)
    while (m->slot[i]) map_del(m, m->slot[i]->key);
  free(m->slot);
  m->slot = NULL;
  m->nslots = 0;
}

/* A string grown a few bytes at a time, as parsers and printers do. */
static uint64_t build_string(uint64_t *rng, uint64_t h) {
  size_t len = 0, cap = 0;
  char *s = NULL;
  uint32_t pieces = rng_range(rng, 4, 60);
  for (uint32_t i = 0; i < pieces; i++) {
    char piece[32];
    int n = snprintf(piece, sizeof piece, "%u,", (unsigned)rng_range(rng, 0, 999999));
    if (len + (size_t)n + 1 > cap) {
      cap = cap ? cap + cap / 2 + (size_t)n : 16;
      s = xrealloc(s, cap);
    }
    memcpy(s + len, piece, (size_t)n + 1);
    len += (size_t)n;
  }
  h = fnv_bytes(h, s, len);
  free(s);
  return h;
}

WORKLOAD_EXPORT("run") void run(void) {
  uint64_t rng = 0x9E3779B97F4A7C15ULL;
  struct map m = {0};
  struct node *head = NULL, *tail = NULL;
  uint32_t queued = 0;
  unsigned long puts = 0, fresh = 0, dels = 0, nodes = 0, strings = 0;
  uint64_t qsum = FNV_INIT, ssum = FNV_INIT;
  char key[24];

  map_grow(&m);
  for (uint32_t r = 0; r < ROUNDS; r++) {
    uint32_t op = rng_range(&rng, 0, 99);
    snprintf(key, sizeof key, "k%u", (unsigned)rng_range(&rng, 0, KEYSPACE - 1));
    if (op < 40) {
      /* mostly small values, a few larger ones */
      uint32_t vlen = op < 36 ? rng_range(&rng, 1, 64) : rng_range(&rng, 65, 600);
      fresh += (unsigned long)map_put(&m, key, vlen, &rng);
      puts++;
    } else if (op < 65) {
      dels += (unsigned long)map_del(&m, key);
    } else if (op < 95) {
      uint32_t len = rng_range(&rng, 0, 200);
      struct node *n = xmalloc(sizeof *n + len);
      n->next = NULL;
      n->len = len;
      fill(n->data, len, &rng);
      if (tail) tail->next = n; else head = n;
      tail = n;
      queued++;
      nodes++;
      /* keep a few thousand nodes alive: FIFO lifetimes */
      while (queued > 3000 || (queued > 0 && rng_range(&rng, 0, 3) == 0)) {
        struct node *old = head;
        head = old->next;
        if (!head) tail = NULL;
        qsum = fnv_bytes(qsum, old->data, old->len);
        free(old);
        queued--;
      }
    } else {
      ssum = build_string(&rng, ssum);
      strings++;
    }
  }

  uint64_t msum = map_checksum(&m);
  printf("churn: rounds=%u puts=%lu new=%lu dels=%lu live=%u nodes=%lu queued=%u strings=%lu\n",
         ROUNDS, puts, fresh, dels, m.count, nodes, queued, strings);
  printf("churn: map=%016llx queue=%016llx strings=%016llx\n", (unsigned long long)msum,
         (unsigned long long)qsum, (unsigned long long)ssum);
  while (head) {
    struct node *n = head;
    head = n->next;
    free(n);
  }
  map_clear(&m);
  fflush(stdout);
}
