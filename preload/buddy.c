/* buddy.c — binary buddy allocation of pages inside a heap's segments, with
 * deferred coalescing and tail trimming.
 *
 * A request of n pages takes a free block of order k = ceil(log2 n) (split
 * down from a larger one if needed) and gives the unused tail back at once as
 * smaller buddies, so internal waste is under one page rather than up to half
 * the block.  Any page range [a, b) decomposes into naturally aligned
 * power-of-two pieces (at offset o the piece is the largest power of two that
 * divides o and fits), which is how tails, freed blocks and new frontier
 * chunks enter the free lists.
 *
 * Freed pieces are *not* merged with their buddies on free: short-lived
 * blocks would pay for merging and splitting again.  Merging happens when no
 * block is large enough, or from maintenance after coalesce_delay_ms.
 *
 * All functions here run with heap->buddy_lock held. */
#include <string.h>

#include "internal.h"

static inline uint32_t tp_lowest_bit(uint32_t x) { return x & (~x + 1); }
static inline uint32_t tp_floor_pow2(uint32_t x) { return 1u << (31 - __builtin_clz(x)); }
static inline uint32_t tp_log2(uint32_t pow2) { return (uint32_t)__builtin_ctz(pow2); }

uint32_t tp_order_for_pages(uint32_t pages) {
  return pages <= 1 ? 0 : 32 - (uint32_t)__builtin_clz(pages - 1);
}

static inline bool tp_span_released(tp_segment *seg, tp_span *span) {
  return (TP_PAGE_DATA(seg->page_map[span->first]) & TP_FREE_RELEASED) != 0;
}

/* The descriptor of the free block whose head is `page`. */
static inline tp_span *tp_free_span_at(tp_segment *seg, uint32_t page) {
  return &seg->spans[TP_FREE_SLOT(seg->page_map[page])];
}

/* Resident blocks go to the head of their list, released ones to the tail, so
 * that allocation reuses pages that are already faulted in before fresh ones. */
/* `state` is 0 (resident), TP_FREE_RELEASED (fresh pages) or
 * TP_FREE_RELEASED | TP_FREE_PURGED (pages the pool gave back; with
 * TP_FREE_HOST_PURGED when the host's growth did).  Returns the block's
 * descriptor, in a new slot. */
static tp_span *tp_free_list_push(tp_heap *h, tp_segment *seg, uint32_t first, uint32_t order, uint32_t state) {
  bool released = (state & TP_FREE_RELEASED) != 0;
  tp_span *span = tp_span_alloc(seg, first);
  span->order = (uint8_t)order;
  span->pages = 1u << order;
  span->freed_ms = (uint32_t)h->clock_ms;
  if (!released) {
    span->prev = NULL;
    span->next = h->free_lists[order];
    if (span->next) span->next->prev = span;
    else h->free_tails[order] = span;
    h->free_lists[order] = span;
  } else {
    span->next = NULL;
    span->prev = h->free_tails[order];
    if (span->prev) span->prev->next = span;
    else h->free_lists[order] = span;
    h->free_tails[order] = span;
  }
  seg->page_map[first] = TP_PAGE_ENTRY(TP_PAGE_FREE, TP_FREE_DATA(order, state, tp_span_slot(seg, span)));
  h->free_pages += span->pages;
  if (released) h->released_pages += span->pages;
  return span;
}

/* Unlinks a free block and frees its slot; returns its state (see
 * tp_free_list_push). */
static uint32_t tp_free_list_remove(tp_heap *h, tp_segment *seg, tp_span *span) {
  uint32_t first = span->first;
  uint32_t state = TP_PAGE_DATA(seg->page_map[first]) & TP_FREE_STATE_MASK;
  bool released = state != 0;
  if (span->prev) span->prev->next = span->next;
  else h->free_lists[span->order] = span->next;
  if (span->next) span->next->prev = span->prev;
  else h->free_tails[span->order] = span->prev;
  seg->page_map[first] = TP_PAGE_ENTRY(TP_PAGE_INNER, 0);
  h->free_pages -= span->pages;
  if (released) h->released_pages -= span->pages;
  tp_span_free(seg, span);
  return state;
}

/* Puts the pages [first, end) into the free lists as aligned pieces. */
static void tp_free_range(tp_heap *h, tp_segment *seg, uint32_t first, uint32_t end, uint32_t state) {
  while (first < end) {
    uint32_t piece = first ? tp_lowest_bit(first) : TP_SEGMENT_PAGES;
    uint32_t fit = tp_floor_pow2(end - first);
    if (piece > fit) piece = fit;
    tp_free_list_push(h, seg, first, tp_log2(piece), state);
    first += piece;
  }
}

/* Extends a segment's frontier so that a free block of `order` exists: the new
 * pages are fresh (never touched), so they enter the lists as released. */
static bool tp_grow(tp_heap *h, uint32_t order) {
  uint32_t block = 1u << order;
  uint32_t step = (uint32_t)(tp_opt.grow_chunk >> TP_PAGE_SHIFT);
  for (int attempt = 0; attempt < 2; attempt++) {
    for (tp_segment *seg = h->segments; seg; seg = seg->next) {
      uint32_t start = (uint32_t)tp_align_up(seg->frontier, block);
      if (start + block > TP_SEGMENT_PAGES) continue;
      uint32_t end = start + block;
      if (end < seg->frontier + step) end = seg->frontier + step;
      if (end > TP_SEGMENT_PAGES) end = TP_SEGMENT_PAGES;
      tp_free_range(h, seg, seg->frontier, end, TP_FREE_RELEASED);
      h->frontier_pages += end - seg->frontier;
      seg->frontier = end;
      return true;
    }
    if (!tp_segment_create(h)) return false;
  }
  return false;
}

/* Whether the pages [from, to) are covered by free blocks (resident ones
 * only, if asked), walked head to head. */
static bool tp_run_is_free(tp_segment *seg, uint32_t from, uint32_t to, bool resident_only) {
  if (to > seg->frontier) return false;
  while (from < to) {
    uint32_t entry = seg->page_map[from];
    if (TP_PAGE_KIND(entry) != TP_PAGE_FREE) return false;
    if (resident_only && (TP_PAGE_DATA(entry) & TP_FREE_RELEASED)) return false;
    from += 1u << (TP_PAGE_DATA(entry) & TP_FREE_ORDER_MASK);
  }
  return true;
}

/* Takes the free blocks covering [from, to); the last one's excess goes back.
 * Purged pages taken are retakes, as in tp_buddy_take: the release delay and
 * the host-purge backoff judge releases by them. */
static void tp_take_run(tp_heap *h, tp_segment *seg, uint32_t from, uint32_t to) {
  uint32_t state = 0;
  while (from < to) {
    tp_span *span = tp_free_span_at(seg, from);
    uint32_t at = from;
    from += span->pages;
    state = tp_free_list_remove(h, seg, span);
    uint32_t taken = (from < to ? from : to) - at;
    if (state & TP_FREE_HOST_PURGED) h->host_retaken_pages += taken;
    else if (state & TP_FREE_PURGED) h->retaken_pages += taken;
  }
  tp_free_range(h, seg, to, from, state);
}

/* Allocations are page runs, not whole buddies: `pages` (< 2^order) may start
 * at a resident free block up to five orders smaller and continue through the
 * free blocks after it.  This reuses faulted-in memory that the strict buddy
 * rule (an aligned free 2^order block) would leave idle. */
#define TP_RUN_SCAN 64
static void *tp_take_resident_run(tp_heap *h, uint32_t pages, uint32_t order) {
  for (uint32_t j = order; j-- > 0 && j + 6 > order;) {
    uint32_t scanned = 0;
    for (tp_span *span = h->free_lists[j]; span && scanned++ < TP_RUN_SCAN; span = span->next) {
      tp_segment *seg = tp_segment_of(span);
      if (tp_span_released(seg, span)) break; /* resident blocks come first */
      uint32_t first = span->first;
      /* Under a cap, released pages are taken only where they are charged. */
      if (tp_run_is_free(seg, first + span->pages, first + pages, h->budget.capped)) {
        tp_take_run(h, seg, first, first + pages);
        return tp_page_address(seg, first);
      }
    }
  }
  return NULL;
}

/* The smallest block of at least `order`: among resident blocks only (the
 * head of each list), or among all. */
static tp_span *tp_find_block(tp_heap *h, uint32_t order, bool resident_only) {
  for (uint32_t j = order; j < TP_BUDDY_ORDERS; j++) {
    tp_span *span = h->free_lists[j];
    if (span && (!resident_only || !tp_span_released(tp_segment_of(span), span))) return span;
  }
  return NULL;
}

void *tp_buddy_take(tp_heap *h, uint32_t pages, uint32_t align_order, bool *zeroed) {
  uint32_t order = tp_order_for_pages(pages);
  if (order < align_order) order = align_order;
  if (order >= TP_BUDDY_ORDERS - 1) return NULL; /* at most half a segment */
  /* Faulted-in pages first: merge recent frees before touching fresh pages,
   * but only when enough has been freed since the last merge to make a
   * block this large, so alternating small frees and big requests stay cheap. */
  tp_span *span = tp_find_block(h, order, true);
  if (!span && h->pages_freed_since_coalesce >= pages) {
    tp_buddy_coalesce(h);
    span = tp_find_block(h, order, true);
  }
  if (!span && align_order == 0 && pages < (1u << order)) {
    void *run = tp_take_resident_run(h, pages, order);
    if (run) {
      if (zeroed) *zeroed = false;
      return run;
    }
  }
  if (!span) span = tp_find_block(h, order, false);
  if (!span && h->frees_since_coalesce) {
    tp_buddy_coalesce(h);
    span = tp_find_block(h, order, false);
  }
  if (!span) {
    /* Fresh pages are about to be faulted in: dead cached large mappings go
     * back first, so the process never holds both. */
    tp_large_cache_flush();
    if (!tp_grow(h, order)) return NULL;
    span = tp_find_block(h, order, false);
    if (!span) return NULL;
  }
  tp_segment *seg = tp_segment_of(span);
  /* Pages not resident become the tenant's now: its budget may refuse them. */
  if (tp_span_released(seg, span)) {
    if (!tp_heap_charge(h, (uint64_t)pages << TP_PAGE_SHIFT, true)) return NULL;
    h->budget.pool_charged += (uint64_t)pages << TP_PAGE_SHIFT;
  }
  uint32_t first = span->first;
  uint32_t have = span->order;
  uint32_t state = tp_free_list_remove(h, seg, span);
  if (state & TP_FREE_HOST_PURGED) h->host_retaken_pages += pages; /* released too early? */
  else if (state & TP_FREE_PURGED) h->retaken_pages += pages;
  while (have > order) { /* split: the upper halves go back to the lists */
    have--;
    tp_free_list_push(h, seg, first + (1u << have), have, state);
  }
  tp_free_range(h, seg, first + pages, first + (1u << order), state); /* trim the tail */
  if (zeroed) *zeroed = state != 0;
  return tp_page_address(seg, first);
}

void tp_buddy_give(tp_heap *h, tp_segment *seg, uint32_t first, uint32_t pages) {
  h->clock_ms = tp_os_now_ms();
  tp_free_range(h, seg, first, first + pages, 0);
  h->frees_since_coalesce++;
  h->pages_freed_since_coalesce += pages;
}

/* Gives back pages that hold no memory (their contents moved away). */
void tp_buddy_give_fresh(tp_heap *h, tp_segment *seg, uint32_t first, uint32_t pages) {
  h->clock_ms = tp_os_now_ms();
  tp_free_range(h, seg, first, first + pages, TP_FREE_RELEASED);
  h->frees_since_coalesce++;
  h->pages_freed_since_coalesce += pages;
  tp_budget_settle_pool(h);
}

void tp_buddy_coalesce(tp_heap *h) {
  for (uint32_t order = 0; order + 1 < TP_BUDDY_ORDERS; order++) {
    tp_span *span = h->free_lists[order];
    while (span) {
      tp_span *next = span->next;
      tp_segment *seg = tp_segment_of(span);
      uint32_t first = span->first;
      uint32_t buddy = first ^ (1u << order);
      uint32_t entry = buddy < seg->frontier ? seg->page_map[buddy] : 0;
      /* Under a cap, a resident block and a released one stay apart: merged,
       * the released half would be handed out (and faulted in) uncharged. */
      bool mixed = ((TP_PAGE_DATA(entry) ^ TP_PAGE_DATA(seg->page_map[first])) & TP_FREE_RELEASED) != 0;
      if (TP_PAGE_KIND(entry) == TP_PAGE_FREE && (TP_PAGE_DATA(entry) & TP_FREE_ORDER_MASK) == order &&
          !(mixed && h->budget.capped)) {
        tp_span *other = &seg->spans[TP_FREE_SLOT(entry)];
        if (next == other) next = other->next;
        uint32_t freed = span->freed_ms - other->freed_ms < (1u << 31) ? span->freed_ms : other->freed_ms;
        uint32_t a = tp_free_list_remove(h, seg, span), b = tp_free_list_remove(h, seg, other);
        uint32_t merged = first < buddy ? first : buddy;
        /* released only if both are; a host purge's only if both were */
        uint32_t state = (a & b) ? ((a | b) & ~TP_FREE_HOST_PURGED) | (a & b & TP_FREE_HOST_PURGED) : 0;
        tp_span *whole = tp_free_list_push(h, seg, merged, order + 1, state);
        whole->freed_ms = freed; /* idle since the later of the two frees */
      }
      span = next;
    }
  }
  h->frees_since_coalesce = 0;
  h->pages_freed_since_coalesce = 0;
  tp_budget_settle_pool(h); /* merged halves that were released count as resident now */
}

/* The madvise calls of one release, sorted and merged: free blocks that are
 * neighbours but not buddies go back in one call.  Each call is a TLB
 * shootdown on every CPU the process runs on, felt by all its threads. */
#define TP_RELEASE_BATCH 64
typedef struct tp_release_batch {
  uint32_t count;
  struct { uintptr_t start, end; } range[TP_RELEASE_BATCH];
} tp_release_batch;

static void tp_release_batch_flush(tp_release_batch *b) {
  for (uint32_t i = 1; i < b->count; i++) { /* insertion sort: a few dozen ranges */
    uintptr_t start = b->range[i].start, end = b->range[i].end;
    uint32_t j = i;
    for (; j > 0 && b->range[j - 1].start > start; j--) b->range[j] = b->range[j - 1];
    b->range[j].start = start, b->range[j].end = end;
  }
  for (uint32_t i = 0; i < b->count;) {
    uintptr_t start = b->range[i].start, end = b->range[i].end;
    for (i++; i < b->count && b->range[i].start == end; i++) end = b->range[i].end;
    tp_os_release((void *)start, end - start);
  }
  b->count = 0;
}

/* Marks the free block `span` (of `order`) released (`state`: how) and queues
 * its madvise. */
static size_t tp_release_block(tp_heap *h, tp_release_batch *b, tp_segment *seg, tp_span *span, uint32_t order,
                               uint32_t state) {
  uint32_t first = span->first, freed = span->freed_ms;
  size_t bytes = (size_t)1 << (order + TP_PAGE_SHIFT);
  tp_free_list_remove(h, seg, span);
  if (b->count == TP_RELEASE_BATCH) tp_release_batch_flush(b);
  b->range[b->count].start = (uintptr_t)tp_page_address(seg, first);
  b->range[b->count++].end = (uintptr_t)tp_page_address(seg, first) + bytes;
  tp_free_list_push(h, seg, first, order, state)->freed_ms = freed;
  h->buddy_releases++;
  return bytes;
}

/* Host purges are judged on their own (tp_heap_host_grows), not in the
 * window that adapts the release delay. */
static size_t tp_release_done(tp_heap *h, tp_release_batch *b, size_t released, bool host) {
  tp_release_batch_flush(b);
  h->buddy_released_bytes += released;
  if (!host) h->released_window_pages += released >> TP_PAGE_SHIFT;
  tp_budget_settle_pool(h);
  return released;
}

/* Returns free, still-resident blocks to the OS (largest first) until the
 * heap's resident pages drop to `target`.  Returns the bytes released. */
size_t tp_buddy_release_free(tp_heap *h, uint64_t target) {
  if (!tp_os_can_release()) return 0;
  tp_release_batch batch = {0};
  size_t released = 0;
  for (int order = TP_BUDDY_ORDERS - 1; order >= 0; order--) {
    tp_span *span;
    while ((span = h->free_lists[order]) && h->frontier_pages - h->released_pages > target) {
      tp_segment *seg = tp_segment_of(span);
      if (tp_span_released(seg, span)) break; /* resident blocks come first */
      released += tp_release_block(h, &batch, seg, span, (uint32_t)order, TP_FREE_RELEASED | TP_FREE_PURGED);
    }
  }
  return tp_release_done(h, &batch, released, false);
}

/* Returns resident free blocks of at least 2^min_order pages that have been
 * free for `idle_ms` or more, whatever the utilisation: memory nobody reuses
 * within that time is not worth keeping (mimalloc's purge delay, in effect).
 * `host`: the host is growing (tp_heap_host_grows).  Stops once `most` bytes
 * are released, smallest blocks first.  Returns the bytes released. */
size_t tp_buddy_purge(tp_heap *h, uint64_t now, uint64_t idle_ms, uint32_t min_order, bool host, size_t most) {
  if (!tp_os_can_release()) return 0;
  tp_release_batch batch = {0};
  size_t released = 0;
  uint32_t state = TP_FREE_RELEASED | TP_FREE_PURGED | (host ? TP_FREE_HOST_PURGED : 0);
  for (uint32_t order = min_order; order < TP_BUDDY_ORDERS && released < most; order++) {
    for (tp_span *span = h->free_lists[order], *next; span && released < most; span = next) {
      next = span->next;
      tp_segment *seg = tp_segment_of(span);
      if (tp_span_released(seg, span)) break; /* resident blocks come first */
      if ((uint32_t)now - span->freed_ms < idle_ms) continue;
      released += tp_release_block(h, &batch, seg, span, order, state);
    }
  }
  return tp_release_done(h, &batch, released, host);
}

/* Grows an allocation [first, first+pages) in place to new_pages when the
 * pages after it are free blocks; the excess of the last one goes back. */
bool tp_buddy_extend(tp_heap *h, tp_segment *seg, uint32_t first, uint32_t pages, uint32_t new_pages) {
  if (!tp_run_is_free(seg, first + pages, first + new_pages, false)) return false;
  /* Released pages of the run become the tenant's: its budget may refuse them,
   * quietly (realloc has other ways; the one that fails last says so). */
  uint64_t faulted = 0;
  for (uint32_t at = first + pages, end = first + new_pages; at < end;) {
    uint32_t data = TP_PAGE_DATA(seg->page_map[at]), next = at + (1u << (data & TP_FREE_ORDER_MASK));
    if (data & TP_FREE_RELEASED) faulted += (uint64_t)((next < end ? next : end) - at) << TP_PAGE_SHIFT;
    at = next;
  }
  if (faulted && !tp_budget_charge_optional(h, faulted)) return false;
  h->budget.pool_charged += faulted;
  tp_take_run(h, seg, first + pages, first + new_pages);
  return true;
}
