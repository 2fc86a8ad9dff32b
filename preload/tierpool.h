/* tierpool.h — the public interface of libtierpool.so.
 *
 * Programs do not need this header: preloading the library (LD_PRELOAD) replaces
 * malloc & co.  Embedders that want to read the pool's statistics or force memory
 * return look these symbols up with dlsym(RTLD_DEFAULT, "tierpool_...") so that
 * they run with or without the library.
 */
#ifndef TIERPOOL_H
#define TIERPOOL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TIERPOOL_VERSION "0.1.0"

/* The tiers, in the order a request size walks through them. */
typedef enum tierpool_tier {
  TIERPOOL_TIER_SLAB = 0,  /* size classes, per-thread caches        */
  TIERPOOL_TIER_BUDDY = 1, /* largest slab class < size <= buddy_max */
  TIERPOOL_TIER_LARGE = 2, /* direct mappings with a short cache      */
  TIERPOOL_TIER_COUNT = 3
} tierpool_tier_t;

/* Counters of one tier.  Counts and byte totals are cumulative since start;
 * live/peak/resident are current values.  Slab-tier live and peak are exact to
 * within the blocks held in per-thread caches. */
typedef struct tierpool_tier_stats {
  uint64_t allocs;          /* allocations served                          */
  uint64_t frees;           /* blocks freed                                */
  uint64_t bytes_requested; /* sum of requested sizes                      */
  uint64_t bytes_allocated; /* sum of block sizes handed out               */
  uint64_t live_bytes;      /* block bytes currently allocated             */
  uint64_t peak_bytes;      /* high-water mark of live_bytes               */
  uint64_t resident_bytes;  /* memory the tier holds from the OS           */
  uint64_t releases;        /* memory given back: slab, empty slabs to the
                               buddy; buddy, madvise; large, munmap        */
  uint64_t released_bytes;  /* bytes given back                            */
} tierpool_tier_stats_t;

/* System calls: the pool's own, and the host program's interposed ones. */
typedef struct tierpool_os_stats {
  uint64_t pool_mmap, pool_munmap, pool_madvise, pool_mremap, pool_mprotect;
  uint64_t host_mmap, host_munmap, host_mremap, host_mprotect, host_madvise;
} tierpool_os_stats_t;

typedef struct tierpool_stats {
  tierpool_tier_stats_t tier[TIERPOOL_TIER_COUNT];
  tierpool_os_stats_t os;
  uint64_t pool_header_bytes; /* resident segment headers (page maps, spans) */
  uint64_t thread_cache_bytes; /* free slab blocks held in thread caches */
  uint32_t thread_caches;      /* threads with a cache */
} tierpool_stats_t;

/* Library version string, e.g. "0.1.0". */
const char *tierpool_version(void);

/* Fills *out with a snapshot of the statistics; returns 0. */
int tierpool_stats_get(tierpool_stats_t *out);

/* Writes the human-readable statistics table (what TIERPOOL_STATS=1 prints at
 * exit) to the file descriptor fd. */
void tierpool_stats_print(int fd);

/* Returns free memory to the OS now: flushes the calling thread's cache,
 * coalesces, releases free pages and empties the large-block cache.  Returns
 * the number of bytes released.  malloc_trim() calls this. */
size_t tierpool_release(void);

#ifdef __cplusplus
}
#endif

#endif /* TIERPOOL_H */
