/* segment.c — 32 MiB aligned regions that hold slab and buddy memory.
 *
 * A segment is reserved in one mapping (MAP_NORESERVE: nothing is resident
 * until touched) and registered in a global bitmap with one bit per possible
 * segment address, so `free` recognises pool pointers with two loads. */
#include <string.h>

#include "internal.h"
#include "recorder.h"

_Atomic uint64_t tp_segment_bitmap[TP_SEGMENT_MAP_BITS / 64];

/* The lowest and highest segment index registered: range scans stay between
 * them.  A read elsewhere would fault bitmap pages in for nothing, and where
 * the kernel has no shared zero page (some VMs) each is a page of RSS: node
 * unmaps reservations all over the address space (72 KiB in a Wasm run). */
static _Atomic uintptr_t tp_segment_index_lo = UINTPTR_MAX, tp_segment_index_hi;

static void tp_segment_register(tp_segment *seg) {
  uintptr_t index = (uintptr_t)seg >> TP_SEGMENT_SHIFT;
  uintptr_t lo = atomic_load_explicit(&tp_segment_index_lo, memory_order_relaxed);
  while (index < lo && !atomic_compare_exchange_weak(&tp_segment_index_lo, &lo, index)) continue;
  uintptr_t hi = atomic_load_explicit(&tp_segment_index_hi, memory_order_relaxed);
  while (index > hi && !atomic_compare_exchange_weak(&tp_segment_index_hi, &hi, index)) continue;
  atomic_fetch_or_explicit(&tp_segment_bitmap[index >> 6], (uint64_t)1 << (index & 63),
                           memory_order_release);
}

/* Called with h->buddy_lock held.  The header pages are marked HEADER; the
 * buddy area starts at the frontier right after them and grows on demand. */
tp_segment *tp_segment_create(tp_heap *h) {
  tp_segment *seg = tp_os_map_at_hint(TP_SEGMENT_SIZE, TP_SEGMENT_SIZE);
  if (!seg) return NULL;
  if ((uintptr_t)seg >> TP_SEGMENT_SHIFT >= TP_SEGMENT_MAP_BITS) { /* beyond 48-bit space */
    tp_os_unmap(seg, TP_SEGMENT_SIZE);
    return NULL;
  }
  /* Sparse use must not pull in 2 MiB pages under THP=always. */
  tp_os_advise_huge(seg, TP_SEGMENT_SIZE, false);
  seg->magic = TP_SEGMENT_MAGIC;
  seg->heap = h;
  seg->header_pages = (uint32_t)(tp_align_up(sizeof(tp_segment), TP_PAGE_SIZE) >> TP_PAGE_SHIFT);
  seg->frontier = seg->header_pages;
  seg->span_free = NULL; /* no span slot used yet: the pool's pages stay untouched */
  seg->span_top = 0;
  for (uint32_t i = 0; i < seg->header_pages; i++)
    seg->page_map[i] = TP_PAGE_ENTRY(TP_PAGE_HEADER, 0);
  seg->next = h->segments;
  h->segments = seg;
  h->segment_count++;
  tp_segment_register(seg);
  return seg;
}

/* The first segment in [lo, hi), or 0: a host's munmap or MAP_FIXED mmap
 * must not take the pool's memory (mmap.c).  Segments are never unmapped, so
 * a set bit is always the pool's.  Word by word, between the lowest and the
 * highest segment only. */
uintptr_t tp_segment_in_range(uintptr_t lo, uintptr_t hi) {
  if (hi <= lo) return 0;
  uintptr_t first = lo >> TP_SEGMENT_SHIFT, last = (hi - 1) >> TP_SEGMENT_SHIFT;
  uintptr_t lowest = atomic_load_explicit(&tp_segment_index_lo, memory_order_acquire);
  uintptr_t highest = atomic_load_explicit(&tp_segment_index_hi, memory_order_acquire);
  if (first < lowest) first = lowest;
  if (last > highest) last = highest;
  if (first > last) return 0;
  for (uintptr_t index = first; index <= last; index = (index | 63) + 1) {
    uint64_t word = atomic_load_explicit(&tp_segment_bitmap[index >> 6], memory_order_relaxed);
    word &= ~(uint64_t)0 << (index & 63); /* from index on */
    if ((last >> 6) == (index >> 6) && (last & 63) != 63) word &= ((uint64_t)1 << ((last & 63) + 1)) - 1;
    if (word) return ((index & ~(uintptr_t)63) + (uintptr_t)__builtin_ctzll(word)) << TP_SEGMENT_SHIFT;
  }
  return 0;
}

/* The tier that served p: the recorder asks only for the blocks it samples. */
tierpool_tier_t tp_tier_of(const void *p) {
  if (!tp_segment_is_ours((void *)p)) return TIERPOOL_TIER_LARGE;
  tp_segment *seg = tp_segment_of((void *)p);
  return TP_PAGE_KIND(seg->page_map[tp_page_index(seg, (void *)p)]) == TP_PAGE_SLAB ? TIERPOOL_TIER_SLAB
                                                                                   : TIERPOOL_TIER_BUDDY;
}

bool tp_slab_block_sampled(const void *p) {
  if (!tp_segment_is_ours((void *)p)) return false;
  tp_segment *seg = tp_segment_of((void *)p);
  uint32_t entry = seg->page_map[tp_page_index(seg, (void *)p)];
  return TP_PAGE_KIND(entry) == TP_PAGE_SLAB && tp_slab_block_marked(seg, &seg->spans[TP_SLAB_SLOT(entry)], p);
}

/* What a pointer is, found through the segment bitmap, the page map and the
 * large table (internal.h): the free path's slow side, and a fork child's
 * check of other threads' caches. */
tp_ptr_info tp_classify(void *p) {
  tp_ptr_info info = {TP_PTR_INVALID, NULL, NULL, 0, 0, false};
  if (tp_segment_is_ours(p)) {
    tp_segment *seg = info.seg = tp_segment_of(p);
    uint32_t page = info.page = tp_page_index(seg, p);
    uint32_t entry = seg->page_map[page];
    bool page_start = ((uintptr_t)p & (TP_PAGE_SIZE - 1)) == 0;
    switch (TP_PAGE_KIND(entry)) {
      case TP_PAGE_SLAB: {
        tp_span *slab = info.slab = &seg->spans[TP_SLAB_SLOT(entry)];
        uintptr_t offset = (uintptr_t)p - (uintptr_t)tp_page_address(seg, TP_SLAB_FIRST(entry));
        uint64_t index = (offset * slab->div_magic) >> 40;
        if (index * slab->block_size != offset || index >= slab->capacity) break;
        info.kind = ((void **)p)[1] == tp_free_mark(p) ? TP_PTR_DOUBLE_FREE : TP_PTR_SLAB;
        info.usable = slab->block_size;
        info.sampled = tp_slab_block_marked(seg, slab, p);
        break;
      }
      case TP_PAGE_BUDDY:
        if (page_start) info.kind = TP_PTR_BUDDY, info.usable = (size_t)TP_PAGE_DATA(entry) << TP_PAGE_SHIFT;
        break;
      case TP_PAGE_FREE:
        if (page_start) info.kind = TP_PTR_DOUBLE_FREE;
        break;
      default: break;
    }
    return info;
  }
  if (p && ((uintptr_t)p & (TP_PAGE_SIZE - 1)) == 0 && (info.usable = tp_large_usable_size(p)))
    info.kind = TP_PTR_LARGE;
  return info;
}
