/* buckets.h — the size histogram's buckets, shared by the recorder and the
 * analyzer.  Bucket b holds requested sizes in (bucket_lower(b), bucket_upper(b)].
 *
 *   0            size 0
 *   1 .. 256     16-byte steps: (16(b-1), 16b]   up to 4 KiB
 *   257 ..       8 per power of two above 4 KiB: (4096, 4608], (4608, 5120], …
 */
#ifndef TP_BUCKETS_H
#define TP_BUCKETS_H

#include <stddef.h>
#include <stdint.h>

#define TP_BUCKET_FINE_MAX 4096u
#define TP_BUCKET_FINE_COUNT 257u /* 0 and the 16-byte steps */
#define TP_BUCKET_COUNT (TP_BUCKET_FINE_COUNT + (64u - 12u) * 8u)

static inline uint32_t tp_bucket_of_size(uint64_t size) {
  if (size <= TP_BUCKET_FINE_MAX) return (uint32_t)((size + 15) >> 4);
  uint64_t below = size - 1;
  uint32_t power = 63u - (uint32_t)__builtin_clzll(below); /* >= 12 */
  uint32_t sub = (uint32_t)(below >> (power - 3)) & 7u;
  return TP_BUCKET_FINE_COUNT + (power - 12u) * 8u + sub;
}

/* Largest size in bucket b (inclusive). */
static inline uint64_t tp_bucket_upper(uint32_t b) {
  if (b < TP_BUCKET_FINE_COUNT) return (uint64_t)b << 4;
  uint32_t power = 12u + (b - TP_BUCKET_FINE_COUNT) / 8u, sub = (b - TP_BUCKET_FINE_COUNT) % 8u;
  if (power == 63 && sub == 7) return UINT64_MAX;
  return (uint64_t)(8u + sub + 1u) << (power - 3u);
}

/* Smallest size in bucket b (inclusive). */
static inline uint64_t tp_bucket_lower(uint32_t b) {
  return b == 0 ? 0 : tp_bucket_upper(b - 1) + 1;
}

#endif /* TP_BUCKETS_H */
