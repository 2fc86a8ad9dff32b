/* churn_st.c — single-thread small-object churn, like a hash map or tree
 * whose nodes come and go: a table of WORKSET live blocks; every operation
 * replaces a random one (checks and frees the old block, allocates a new one
 * of 8–512 bytes, mostly small) and allocates and frees a short-lived temporary.
 *
 *   churn_st [OPS [WORKSET]]      defaults: 10000000 100000 */
#include "bench.h"

#define EDGE 16

/* Mostly small sizes, the way node and string heavy code allocates. */
static size_t small_size(uint64_t *rng) {
  uint64_t r = rng_next(rng);
  if (r % 10 < 7) return 8 + (size_t)((r >> 8) % 16) * 8; /* 8..128, 8-aligned */
  return rng_range(rng, 8, 512);
}

int main(int argc, char **argv) {
  size_t ops = arg_size(argc, argv, 1, 10000000);
  size_t workset = arg_size(argc, argv, 2, 100000);
  unsigned char **block = calloc(workset, sizeof *block);
  size_t *len = calloc(workset, sizeof *len);
  uint64_t *tag = calloc(workset, sizeof *tag);
  if (!block || !len || !tag) fail("cannot allocate the table of %zu", workset);

  uint64_t rng = 0x5eed0001, sum = FNV_INIT;
  for (size_t op = 0; op < ops; op++) {
    size_t slot = (size_t)(rng_next(&rng) % workset);
    if (block[slot]) {
      if (walk_edges(block[slot], len[slot], tag[slot], EDGE, 1) != len[slot])
        fail("churn_st: live block of %zu bytes (op %zu) overwritten", len[slot], op);
      sum = fnv_u64(sum, tag[slot] ^ len[slot]);
      free(block[slot]);
    }
    len[slot] = small_size(&rng);
    tag[slot] = op * 2654435761u;
    block[slot] = xmalloc(len[slot]);
    walk_edges(block[slot], len[slot], tag[slot], EDGE, 0);

    size_t tlen = small_size(&rng) / 2 + 1;
    unsigned char *tmp = xmalloc(tlen);
    walk_edges(tmp, tlen, op, EDGE, 0);
    sum = fnv_u64(sum, tmp[tlen - 1]);
    free(tmp);
  }
  for (size_t slot = 0; slot < workset; slot++) {
    if (!block[slot]) continue;
    if (walk_edges(block[slot], len[slot], tag[slot], EDGE, 1) != len[slot])
      fail("churn_st: live block of %zu bytes overwritten at the end", len[slot]);
    free(block[slot]);
  }
  free(block);
  free(len);
  free(tag);
  printf("churn_st ops=%zu workset=%zu checksum=%016llx\n", ops, workset, (unsigned long long)sum);
  return 0;
}
