/* large_churn.c — large-block churn: blocks of MIN–MAX MiB are allocated,
 * every page written, checked and freed, over and over.  An allocator that
 * keeps the memory (glibc, after its dynamic mmap threshold rises) touches
 * warm pages; one that returns it to the kernel pays a page fault a page.
 *
 *   large_churn [ITERS [MIN_MIB [MAX_MIB]]]      defaults: 300 5 25 */
#include "bench.h"

int main(int argc, char **argv) {
  size_t iters = arg_size(argc, argv, 1, 300);
  size_t min_mib = arg_size(argc, argv, 2, 5);
  size_t max_mib = arg_size(argc, argv, 3, 25);
  if (max_mib < min_mib || max_mib >= 4096)
    fail("want MIN_MIB <= MAX_MIB < 4096, not %zu %zu", min_mib, max_mib);

  uint64_t rng = 0x5eed0005, sum = FNV_INIT;
  for (size_t it = 0; it < iters; it++) {
    size_t n = rng_range(&rng, min_mib * MIB, max_mib * MIB);
    unsigned char *p = xmalloc(n);
    walk_pages(p, 0, n, it, 0);
    size_t bad = walk_pages(p, 0, n, it, 1);
    if (bad != n) fail("large_churn: %zu-byte block, page stamp at offset %zu lost", n, bad);
    sum = fnv_u64(sum, n);
    free(p);
  }
  printf("large_churn iters=%zu min_mib=%zu max_mib=%zu checksum=%016llx\n", iters, min_mib,
         max_mib, (unsigned long long)sum);
  return 0;
}
