/* grow.c — large arrays that grow the linear memory: two arrays realloc'ed in
 * interleaved steps up to tens of MiB (so that blocks move), shrunk and grown
 * again, then a set of 1–2 MiB blocks allocated and freed in waves.  Prints the
 * sizes reached, memory.size in pages, and checksums. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "workload.h"

#define MIB (1024u * 1024u)
#define STEP (192u * 1024u)   /* bytes added to each array per step */
#define TARGET (24u * MIB)    /* each array grows to this */
#define BLOCKS 24u

struct array {
  uint32_t *v;
  size_t n; /* elements */
};

static void grow_to(struct array *a, size_t bytes, uint64_t *rng) {
  size_t n = bytes / sizeof *a->v;
  uint32_t *v = realloc(a->v, n * sizeof *v);
  if (!v) {
    printf("grow: out of memory at %zu bytes\n", bytes);
    abort();
  }
  for (size_t i = a->n; i < n; i++) v[i] = (uint32_t)rng_next(rng);
  a->v = v;
  a->n = n;
}

static uint64_t array_sum(const struct array *a) {
  uint64_t h = FNV_INIT;
  /* every element would be slow in node's interpreter tiers: stride */
  for (size_t i = 0; i < a->n; i += 61) h = fnv_u64(h, a->v[i] + (uint64_t)i);
  return fnv_u64(h, a->n);
}

static uint64_t blocks_wave(uint64_t *rng) {
  unsigned char *block[BLOCKS] = {0};
  uint64_t h = FNV_INIT;
  for (uint32_t wave = 0; wave < 6; wave++) {
    for (uint32_t i = 0; i < BLOCKS; i++) {
      if (block[i] && rng_range(rng, 0, 1) == 0) continue;
      free(block[i]);
      size_t size = MIB + rng_range(rng, 0, MIB);
      block[i] = malloc(size);
      if (!block[i]) abort();
      memset(block[i], (int)(wave * BLOCKS + i), size);
      block[i][size - 1] = (unsigned char)size;
      h = fnv_u64(h, size);
      h = fnv_u64(h, block[i][size / 2] + block[i][size - 1]);
    }
  }
  for (uint32_t i = 0; i < BLOCKS; i++) free(block[i]);
  return h;
}

WORKLOAD_EXPORT("run") void run(void) {
  uint64_t rng = 0xD1B54A32D192ED03ULL;
  struct array a = {0}, b = {0};
  unsigned steps = 0;

  for (size_t size = STEP; size <= TARGET; size += STEP) {
    grow_to(&a, size, &rng);
    grow_to(&b, size + STEP / 2, &rng);
    steps++;
  }
  uint64_t ha = array_sum(&a), hb = array_sum(&b);
  printf("grow: steps=%u a=%zu b=%zu bytes pages=%zu\n", steps, a.n * 4, b.n * 4,
         (size_t)__builtin_wasm_memory_size(0));

  /* shrink a to 1 MiB, then grow it back past its old size */
  grow_to(&a, MIB, &rng);
  for (size_t size = 2 * MIB; size <= TARGET + 8 * MIB; size += 2 * MIB) grow_to(&a, size, &rng);
  uint64_t ha2 = array_sum(&a);
  free(b.v);

  uint64_t hw = blocks_wave(&rng);
  printf("grow: regrown=%zu bytes pages=%zu\n", a.n * 4, (size_t)__builtin_wasm_memory_size(0));
  printf("grow: a=%016llx b=%016llx a2=%016llx waves=%016llx\n", (unsigned long long)ha,
         (unsigned long long)hb, (unsigned long long)ha2, (unsigned long long)hw);
  free(a.v);
  fflush(stdout);
}
