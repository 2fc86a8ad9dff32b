/* types.h — every structure and tuning constant of the pool, with its invariant.
 *
 * Memory map of the pool
 * ----------------------
 * Slab and buddy memory lives in *segments*: 32 MiB regions aligned to 32 MiB, so
 * the segment of any pointer is `p & ~(TP_SEGMENT_SIZE-1)`, and a global bitmap
 * says whether that segment is ours.  A segment starts with its header (page map
 * and a pool of span descriptors), then pages managed by a buddy allocator.
 * Slabs are buddy spans of 16..64 pages cut into blocks of one size class.
 * Large blocks (> buddy_max) are direct mappings recorded in a hash table.
 *
 *   free(p): segment bitmap → page_map[page of p] → spans[slot] (slab) | buddy block
 *            not a segment of ours → large table → else invalid pointer.
 */
#ifndef TP_TYPES_H
#define TP_TYPES_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tierpool.h"

#define tp_likely(x) __builtin_expect(!!(x), 1)
#define tp_unlikely(x) __builtin_expect(!!(x), 0)

/* ---- geometry ------------------------------------------------------------ */
#define TP_PAGE_SHIFT 12
#define TP_PAGE_SIZE ((size_t)1 << TP_PAGE_SHIFT)
#define TP_SEGMENT_SHIFT 25 /* 32 MiB: holds a 16 MiB buddy block plus header */
#define TP_SEGMENT_SIZE ((size_t)1 << TP_SEGMENT_SHIFT)
#define TP_SEGMENT_PAGES (TP_SEGMENT_SIZE >> TP_PAGE_SHIFT)
#define TP_BUDDY_ORDERS (TP_SEGMENT_SHIFT - TP_PAGE_SHIFT + 1) /* 1 .. 8192 pages */
#define TP_BUDDY_MAX_LIMIT (TP_SEGMENT_SIZE / 2) /* buddy_max is clamped here */
#define TP_ADDRESS_BITS 48
#define TP_SEGMENT_MAP_BITS (1u << (TP_ADDRESS_BITS - TP_SEGMENT_SHIFT))

#define TP_MIN_ALIGN 16
#define TP_MAX_CLASSES 64
#define TP_SLAB_MAX_CLASS ((size_t)64 << 10) /* largest size a slab class may have */
#define TP_SIZE_LOOKUP_LEN ((TP_SLAB_MAX_CLASS >> 4) + 1)

/* ---- page map ------------------------------------------------------------ */
/* One 32-bit entry per page of a segment.  Low 3 bits: kind; the rest: data.
 * Invariant: every page below the segment's frontier has an accurate kind;
 * data is meaningful on head pages (FREE, BUDDY) and on every SLAB page. */
enum tp_page_kind {
  TP_PAGE_UNUSED = 0, /* beyond the frontier, never handed to the buddy       */
  TP_PAGE_HEADER = 1, /* segment header                                         */
  TP_PAGE_FREE = 2,   /* head of a free buddy block: order, state, span slot    */
  TP_PAGE_BUDDY = 3,  /* head of a buddy allocation: its page count             */
  TP_PAGE_SLAB = 4,   /* page of a slab: the slab's first page and span slot    */
  TP_PAGE_INNER = 5,  /* non-head page of a free or allocated buddy block       */
};
#define TP_PAGE_KIND(e) ((e) & 7u)
#define TP_PAGE_DATA(e) ((e) >> 3)
#define TP_PAGE_ENTRY(kind, data) ((uint32_t)(kind) | ((uint32_t)(data) << 3))
/* FREE data: order | state | slot << TP_FREE_SLOT_SHIFT.  The order and state
 * stay in the page map (not only in the span) so that coalescing and page
 * runs judge a neighbour from its entry alone, without touching its span. */
#define TP_FREE_ORDER_MASK 0xffu
#define TP_FREE_RELEASED 0x100u /* in FREE data: pages are not resident        */
#define TP_FREE_PURGED 0x200u   /* ... because the pool released them (not fresh) */
#define TP_FREE_HOST_PURGED 0x400u /* ... when the host grew (tp_heap_host_grows) */
#define TP_FREE_STATE_MASK (TP_FREE_RELEASED | TP_FREE_PURGED | TP_FREE_HOST_PURGED)
#define TP_FREE_SLOT_SHIFT 11
#define TP_FREE_DATA(order, state, slot) ((order) | (state) | ((uint32_t)(slot) << TP_FREE_SLOT_SHIFT))
#define TP_FREE_SLOT(e) (TP_PAGE_DATA(e) >> TP_FREE_SLOT_SHIFT)
/* SLAB data: first page | slot << TP_SLOT_BITS, on every page of the slab: the
 * free path finds the block's offset and its span from this one entry. */
#define TP_SLOT_BITS 13 /* a page index or a span slot: < TP_SEGMENT_PAGES */
#define TP_SLAB_DATA(first, slot) ((uint32_t)(first) | ((uint32_t)(slot) << TP_SLOT_BITS))
#define TP_SLAB_FIRST(e) (TP_PAGE_DATA(e) & ((1u << TP_SLOT_BITS) - 1))
#define TP_SLAB_SLOT(e) ((TP_PAGE_DATA(e) >> TP_SLOT_BITS) & ((1u << TP_SLOT_BITS) - 1))
_Static_assert((1u << TP_SLOT_BITS) == TP_SEGMENT_PAGES, "page and slot indexes take TP_SLOT_BITS");
_Static_assert(3 + 2 * TP_SLOT_BITS <= 32 && 3 + TP_FREE_SLOT_SHIFT + TP_SLOT_BITS <= 32,
               "SLAB data and FREE data fit an entry");

/* ---- spans --------------------------------------------------------------- */
/* Out-of-band descriptor of a span: a slab, or a free buddy block sitting in
 * a free list.  Kept in the segment header so that released pages stay
 * untouched and blocks keep their natural alignment.  Descriptors live in
 * slots of the header's span pool: the last freed slot is reused first, else
 * the lowest never-used one, so the header pages they touch grow with the
 * peak number of descriptors, not with the pages they describe (a slab of 16
 * pages, indexed by page, would touch one descriptor per KiB of header).
 * One cache line each. */
typedef struct tp_span {
  struct tp_span *next, *prev; /* free list (buddy) or partial list (slab);  */
                               /* unused slot: next free slot                */
  void *free_blocks;           /* slab: blocks returned, linked through word 0*/
  uint32_t used;               /* slab: blocks out of the slab (caches+user)  */
  uint32_t bump;               /* slab: index of the first never-used block   */
  uint32_t capacity;           /* slab: blocks in the slab                     */
  uint32_t block_size;         /* slab: bytes per block                        */
  uint64_t div_magic;          /* slab: ceil(2^40 / block_size), exact divide  */
  uint8_t class_idx;           /* slab: size class                             */
  uint8_t list;                /* slab: 0 none (full/spare), 1 dense, 2 sparse */
  union {
    uint8_t order;             /* buddy free block: log2(pages)                */
    uint16_t samples;          /* slab: blocks marked sampled (atomic)         */
  };
  uint32_t pages;              /* pages in the span                            */
  uint32_t freed_ms;           /* buddy free block: when it was last freed; spare slab: when it became the spare; */
                               /* partial slab of 2+-page blocks: its newest free block's (UINT32_MAX: all released) */
  uint32_t first;              /* the span's first page in its segment         */
} tp_span;
_Static_assert(sizeof(tp_span) == 64, "a span is one cache line");

struct tp_heap;

/* Segment header.  Invariants: `frontier` pages from the start have been
 * handed to the buddy (as header, allocations or free blocks); the rest is
 * untouched.  Slots [0, span_top) of `spans` have been used: each is either
 * the descriptor of exactly one slab or FREE head (whose page map entry names
 * it) or on the `span_free` stack; slots from span_top on were never touched.
 * Every descriptor covers at least one page, so even a segment of one-page
 * free blocks fits TP_SEGMENT_PAGES slots. */
typedef struct tp_segment {
  uint64_t magic;
  struct tp_heap *heap;
  struct tp_segment *next;
  uint32_t header_pages;
  uint32_t frontier;
  tp_span *span_free;  /* unused slots below span_top, last freed on top   */
  uint32_t span_top;   /* slots ever used                                 */
  uint32_t page_map[TP_SEGMENT_PAGES];
  tp_span spans[TP_SEGMENT_PAGES] __attribute__((aligned(64)));
  /* One bit per 16 bytes: the slab blocks the recorder sampled, marked where
   * they are.  Read only in slabs whose `samples` is not 0, so its pages
   * become resident only where samples were taken. */
  uint64_t sampled[TP_SEGMENT_SIZE / TP_MIN_ALIGN / 64] __attribute__((aligned(4096)));
} tp_segment;
#define TP_SEGMENT_MAGIC 0x74696572706f6f6cULL /* "tierpool" */

/* ---- size classes -------------------------------------------------------- */
typedef struct tp_size_class {
  uint32_t size;        /* block size in bytes, multiple of 16        */
  uint32_t slab_pages;  /* pages per slab                              */
  uint32_t cache_max;   /* per-thread cache capacity, in blocks        */
  uint64_t div_magic;   /* ceil(2^40 / size)                           */
} tp_size_class;

typedef struct tp_class_table {
  uint32_t count;
  size_t max_size;                              /* largest class          */
  tp_size_class classes[TP_MAX_CLASSES];
  uint8_t class_of[TP_SIZE_LOOKUP_LEN];         /* (size+15)/16 → class   */
} tp_class_table;

/* ---- locks --------------------------------------------------------------- */
typedef pthread_mutex_t tp_lock;

/* ---- central (per heap, per class) slab lists ---------------------------- */
/* Invariant: the slabs of this class that have a free or never-used block are
 * linked in partial[0] (at least half used) or partial[1] (less); full slabs
 * are linked nowhere; `spare` is at most one completely empty slab kept to
 * absorb alloc/free cycles at a slab boundary (maintenance retires it once it
 * sat unused for the release delay).  Refills take from the dense
 * list first, so sparse slabs drain and go back to the buddy. */
typedef struct tp_central {
  tp_lock lock;
  tp_span *partial[2];
  tp_span *spare;
  uint64_t slabs;        /* slabs of this class in existence */
} tp_central;

/* A tenant's budget (tenant.c).  charged = bytes the heap holds from the OS:
 * resident buddy pages (slabs included) and live large mappings.  Bytes past
 * the reserve are drawn from the shared overflow (and the node budget). */
typedef struct tp_budget {
  uint64_t reserve, limit;     /* 0: none                                    */
  bool isolated;               /* never draws overflow nor takes others' memory */
  bool capped;                 /* some limit applies: resident counts must be exact */
  _Atomic uint64_t charged;
  uint64_t peak;
  uint64_t overflow_held;      /* of charged, drawn from the overflow        */
  uint64_t node_held;          /* of overflow_held, taken from the node budget */
  _Atomic uint64_t limit_hits;
  uint64_t pool_charged;       /* of charged, buddy pages (buddy lock held)  */
} tp_budget;

/* A heap: its segments, buddy free lists, slab lists and budget.  Every
 * tenant has one; `tp_main_heap` is the "default" tenant's. */
typedef struct tp_heap {
  const char *name;
  uint32_t index;                       /* tenant index: 0 is "default"        */
  size_t buddy_max;                     /* this heap's: capped by its limit    */
  tp_budget budget;
  tierpool_tier_stats_t large;          /* large blocks owned (large lock)     */
  uint64_t retired_allocs[TP_MAX_CLASSES], retired_frees[TP_MAX_CLASSES];
  uint64_t retired_requested;           /* slab counts of caches that left     */
  tp_lock buddy_lock;                   /* segments, free lists, counters below */
  tp_span *free_lists[TP_BUDDY_ORDERS]; /* resident blocks first, released ones last */
  tp_span *free_tails[TP_BUDDY_ORDERS];
  tp_segment *segments;
  uint64_t segment_count;
  uint64_t frontier_pages;              /* pages handed to the buddy           */
  uint64_t free_pages;                  /* pages in free lists                 */
  uint64_t released_pages;              /* free pages known not resident      */
  _Atomic uint64_t slab_released_pages; /* pages of free slab blocks released (slab.c) */
  uint64_t buddy_allocs, buddy_frees;   /* user buddy blocks (not slabs)       */
  uint64_t buddy_bytes_requested, buddy_bytes_allocated;
  uint64_t buddy_live_bytes, buddy_peak_bytes;
  uint64_t slab_pages;                  /* pages held by slabs                 */
  uint64_t frees_since_coalesce;
  uint64_t pages_freed_since_coalesce;
  uint64_t last_coalesce_ms;
  uint64_t below_threshold_since_ms;    /* 0: utilisation is fine              */
  uint64_t last_release_ms;
  uint64_t last_shed_ms;                /* a refused charge gave free pages back (tp_heap_charge) */
  uint64_t last_purge_ms;
  uint64_t release_delay_ms;            /* adaptive: tp_heap_adapt_release_delay */
  uint64_t released_window_pages;       /* released since the delay last adapted */
  uint64_t retaken_pages;               /* released pages taken (faulted in) again since then */
  /* Purges when the host grows (tp_heap_host_grows), judged apart: pages
   * released in the window that started at host_window_ms, host-purged pages
   * taken again since, how many growths to skip. */
  uint64_t host_purge_pages, host_retaken_pages, host_window_ms;
  uint32_t host_purge_backoff, host_purge_skip;
  uint64_t limit_hits_seen, limit_hit_ms; /* the budget's refusals, when last seen more of them */
  uint64_t clock_ms;                    /* time of the last free, stamps blocks */
  uint64_t last_maintain_ms;
  uint64_t buddy_releases, buddy_released_bytes;
  uint64_t slab_releases, slab_released_bytes;
  _Atomic uint64_t slab_out_bytes;      /* slab blocks out of the central lists*/
  uint64_t slab_peak_bytes;
  tp_central central[TP_MAX_CLASSES];
} tp_heap;

/* ---- thread cache -------------------------------------------------------- */
/* One cache line per class: the fast paths touch nothing else of the cache. */
typedef struct __attribute__((aligned(64))) tp_bin {
  void *head;
  uint32_t count;
  uint32_t max;       /* grows from cache_max/16 to cache_max as the bin refills */
  uint64_t allocs;    /* counted here, on the line the fast path touches anyway */
  uint64_t frees;
  uint64_t requested; /* bytes asked for by the allocations counted in allocs */
  uint64_t allocs_at_scavenge; /* allocs when the cache was last scavenged */
} tp_bin;

/* Per-thread cache in front of one heap.  Invariant: every block in a bin is
 * free, belongs to `heap` and to the bin's class, and carries its free mark. */
typedef struct tp_tcache {
  tp_bin bins[TP_MAX_CLASSES];
  tp_heap *heap;
  uint64_t scavenged_ms;          /* when idle bins were last emptied */
  struct tp_tcache *next, *prev;  /* registry of live caches */
  pid_t tid;
} tp_tcache;

#endif /* TP_TYPES_H */
