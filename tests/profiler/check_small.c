/* check_small.c — `small TRACE_N TRACE_2N N U24 U0 U200 U40 U20 U300`: the
 * exact histogram for small sizes, where start-up code allocates too, so two
 * runs of `subject small` (N and 2N) are compared: every 16-byte bucket up to
 * 4 KiB must differ by what N more of subject's allocations and frees put in
 * it, to the allocation (U...: the usable sizes subject printed, which its
 * frees are counted by). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "checker.h"

int check_small(int argc, char **argv) {
  if (argc != 10) return -1;
  uint64_t n = strtoull(argv[3], NULL, 10), u[6];
  for (int i = 0; i < 6; i++) u[i] = strtoull(argv[4 + i], NULL, 10);
  uint64_t u24 = u[0], u0 = u[1], u200 = u[2], u40 = u[3], u20 = u[4], u300 = u[5];
  struct tl_trace a, b;
  if (tl_load(argv[1], &a) != 0) return -1;
  if (tl_load(argv[2], &b) != 0) {
    tl_free(&a);
    return -1;
  }
  /* What N more of subject's work adds, bucket by bucket. */
  uint64_t allocs[TP_BUCKET_COUNT] = {0}, bytes[TP_BUCKET_COUNT] = {0}, frees[TP_BUCKET_COUNT] = {0};
  const struct {
    uint64_t size, count;
  } made[] = {{24, n}, {200, n}, {0, n}, {40, n}, {20, n / 2}, {300, n - n / 2}};
  for (size_t i = 0; i < sizeof made / sizeof made[0]; i++) {
    allocs[tp_bucket_of_size(made[i].size)] += made[i].count;
    bytes[tp_bucket_of_size(made[i].size)] += made[i].count * made[i].size;
  }
  /* Frees by usable size: every 24 once (realloc'd, in place or moved), the
   * in-place 20s, the moved 300s, and the 200s, 0s and 40s. */
  const struct {
    uint64_t usable, count;
  } freed[] = {{u24, n}, {u20, n / 2}, {u300, n - n / 2}, {u200, n}, {u0, n}, {u40, n}};
  for (size_t i = 0; i < sizeof freed / sizeof freed[0]; i++) frees[tp_bucket_of_size(freed[i].usable)] += freed[i].count;

  uint32_t wrong = 0;
  for (uint32_t k = 0; k < TP_BUCKET_FINE_COUNT; k++) {
    uint64_t da = b.allocs[k] - a.allocs[k], db = b.bytes[k] - a.bytes[k], df = b.frees[k] - a.frees[k];
    if (da == allocs[k] && db == bytes[k] && df == frees[k]) continue;
    wrong++;
    expect(false,
           "bucket %u (%" PRIu64 "..%" PRIu64 " B): the 2N run adds %" PRIu64 " allocations of %" PRIu64
           " bytes and %" PRIu64 " frees, want %" PRIu64 ", %" PRIu64 " and %" PRIu64,
           k, tp_bucket_lower(k), tp_bucket_upper(k), da, db, df, allocs[k], bytes[k], frees[k]);
  }
  expect(wrong == 0, "every bucket up to 4 KiB adds exactly N more of subject's allocations and frees (N = %" PRIu64
                     "; sizes 0, 20, 24, 40, 200, 300; usable %" PRIu64 ", %" PRIu64 ", %" PRIu64 ", %" PRIu64
                     ", %" PRIu64 ", %" PRIu64 ")",
         n, u0, u20, u24, u40, u200, u300);
  tl_free(&a);
  tl_free(&b);
  return checker_failures;
}
