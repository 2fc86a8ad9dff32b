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

/* ---- tenants ------------------------------------------------------------
 * A tenant is a heap of its own (slabs, free lists, buddy areas) with a
 * budget.  A thread allocates for its current tenant, chosen (most specific
 * first) by tierpool_tenant_set, by the config's tenant_threads rules on the
 * thread's name, by TIERPOOL_TENANT for the whole process, else "default".
 * Frees from any thread return a block to the tenant that owns it. */
#define TIERPOOL_TENANT_NAME_MAX 48 /* bytes, without the terminating NUL */

/* Per-tenant counters: the three tiers, and the budget. */
typedef struct tierpool_tenant_stats {
  char name[TIERPOOL_TENANT_NAME_MAX + 1];
  tierpool_tier_stats_t tier[TIERPOOL_TIER_COUNT];
  uint64_t live_bytes;      /* all tiers                                      */
  uint64_t resident_bytes;  /* memory charged to the tenant (pages it holds)  */
  uint64_t peak_bytes;      /* high-water mark of resident_bytes              */
  uint64_t reserve_bytes;   /* tenant.NAME.reserve (0: none)                  */
  uint64_t limit_bytes;     /* tenant.NAME.limit (0: none)                    */
  uint64_t overflow_bytes;  /* of resident_bytes, drawn from the overflow     */
  uint64_t limit_hits;      /* allocations refused for the budget             */
  uint64_t releases;        /* memory given back to the OS, all tiers         */
  uint32_t isolated;        /* tenant.NAME.isolated                           */
} tierpool_tenant_stats_t;

/* Makes `name` the calling thread's tenant (created on first use); NULL or ""
 * goes back to what the rules give.  0, or -1 with errno EINVAL (name empty,
 * too long or not [A-Za-z0-9_.-]) or ENOSPC (too many tenants). */
int tierpool_tenant_set(const char *name);

/* The calling thread's current tenant ("default" when untagged). */
const char *tierpool_tenant_get(void);

/* Number of tenants so far (at least 1: "default"), and the statistics of the
 * index-th (0 .. count-1) or of the one named; 0, or -1 (no such tenant). */
unsigned tierpool_tenant_count(void);
int tierpool_tenant_stats_at(unsigned index, tierpool_tenant_stats_t *out);
int tierpool_tenant_stats_get(const char *name, tierpool_tenant_stats_t *out);

#ifdef __cplusplus
}
#endif

#endif /* TIERPOOL_H */
