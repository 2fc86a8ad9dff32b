/* realloc_grow.c — large-block realloc growth: a buffer grows from START MiB
 * to MAX MiB by steps of 1.5x; each step writes every new page and checks
 * that every old page kept its contents.  Repeated REPS times.  An allocator
 * that can move pages (mremap) copies nothing; others copy every step.
 *
 *   realloc_grow [REPS [START_MIB [MAX_MIB]]]      defaults: 10 1 256 */
#include "bench.h"

int main(int argc, char **argv) {
  size_t reps = arg_size(argc, argv, 1, 10);
  size_t start_mib = arg_size(argc, argv, 2, 1);
  size_t max_mib = arg_size(argc, argv, 3, 256);

  uint64_t sum = FNV_INIT;
  for (size_t rep = 0; rep < reps; rep++) {
    size_t n = start_mib * MIB, steps = 0;
    unsigned char *p = xmalloc(n);
    walk_pages(p, 0, n, rep, 0);
    while (n < max_mib * MIB) {
      size_t grown = n / 2 * 3 + 4096 * (steps % 3); /* not always page-multiples */
      if (grown > max_mib * MIB) grown = max_mib * MIB;
      unsigned char *q = realloc(p, grown);
      if (!q) fail("realloc(%zu) returned NULL", grown);
      size_t bad = walk_pages(q, 0, n, rep, 1);
      if (bad != n)
        fail("realloc_grow: %zu -> %zu bytes lost the page at offset %zu", n, grown, bad);
      walk_pages(q, n, grown, rep, 0);
      p = q;
      n = grown;
      steps++;
    }
    sum = fnv_u64(sum, n ^ steps);
    free(p);
  }
  printf("realloc_grow reps=%zu start_mib=%zu max_mib=%zu checksum=%016llx\n", reps, start_mib,
         max_mib, (unsigned long long)sum);
  return 0;
}
