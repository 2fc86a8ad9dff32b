/* slab.c — size classes and the central (per heap, per class) slab lists.
 *
 * A slab is a buddy span of 16..64 pages cut into blocks of one class, with a
 * descriptor in a slot of its segment's span pool; every page of the slab
 * names the slab's first page and that slot in the page map.  Blocks
 * never handed out are taken by bumping an index, so a new slab touches only
 * the pages actually used.  Thread caches refill from here and flush back in
 * batches; a slab whose blocks have all come back becomes the class's spare,
 * or goes back to the buddy if a spare exists already. */
#include <string.h>

#include "internal.h"

uintptr_t tp_free_key;

/* Blocks of two pages or more give pages back while they sit free in a slab
 * that is still in use, not only when the whole slab empties: V8's zone
 * segments (8-32 KiB) are freed in bursts and leave slabs of those classes
 * mostly free.  The block's first page stays: it holds the free list's words
 * (0: next, 1: free mark, 2: released mark, 3: when it was freed); the whole
 * pages after them go back once the block has been free for the purge delay. */
#define TP_BLOCK_LINK_BYTES (4 * sizeof(void *))

static inline bool tp_class_releases_blocks(uint32_t size) { return size >= 2 * TP_PAGE_SIZE; }

static inline void *tp_released_mark(void) { return (void *)~tp_free_key; }

/* The number of whole pages of a free block past its link words, and where
 * they start (`start` may be NULL). */
static inline uint64_t tp_block_inner_pages(void *block, uint32_t size, uintptr_t *start) {
  uintptr_t from = tp_align_up((uintptr_t)block + TP_BLOCK_LINK_BYTES, TP_PAGE_SIZE);
  uintptr_t to = ((uintptr_t)block + size) & ~(uintptr_t)(TP_PAGE_SIZE - 1);
  if (start) *start = from;
  return to > from ? (to - from) >> TP_PAGE_SHIFT : 0;
}

/* Pages of the slab's free blocks that were released: a slab that empties
 * starts bumping afresh and touches them again, so they stop counting. */
static void tp_slab_forget_released(tp_heap *h, tp_span *slab) {
  uint64_t pages = 0;
  for (void **b = slab->free_blocks; b; b = b[0])
    if (b[2] == tp_released_mark()) pages += tp_block_inner_pages(b, slab->block_size, NULL);
  if (pages) atomic_fetch_sub_explicit(&h->slab_released_pages, pages, memory_order_relaxed);
}

/* A slab's count of sampled blocks (tp_span.samples) has 16 bits. */
#define TP_SLAB_MAX_PAGES 64u
_Static_assert((TP_SLAB_MAX_PAGES << TP_PAGE_SHIFT) / TP_MIN_ALIGN <= UINT16_MAX, "tp_span.samples holds a slab's blocks");

/* Slab size: the smallest of 16, 32, 64 pages holding at least 8 blocks, so
 * the unused tail of a slab stays under 1/8 of it. */
static uint32_t tp_slab_pages_for(uint32_t size) {
  uint32_t pages = 16;
  while (pages < TP_SLAB_MAX_PAGES && ((size_t)pages << TP_PAGE_SHIFT) / size < 8) pages *= 2;
  return pages;
}

void tp_classes_finish(tp_class_table *t) {
  /* While the option table is read, size_classes comes before tcache_bytes:
   * that first pass is redone by tp_init_slow once every option is set. */
  uint64_t cache_bytes = tp_opt.tcache_bytes;
  for (uint32_t c = 0; c < t->count; c++) {
    tp_size_class *sc = &t->classes[c];
    sc->slab_pages = tp_slab_pages_for(sc->size);
    /* A class bigger than the budget is not cached at all: every thread
     * would strand one block of it (node: 6 threads, 400 KiB at peak RSS in
     * the 8-32 KiB classes of V8's zone segments), and a central-list trip
     * costs little next to the work a block that big is used for. */
    uint64_t max = cache_bytes / sc->size;
    sc->cache_max = (uint32_t)(max > 256 ? 256 : max);
    sc->div_magic = (((uint64_t)1 << 40) + sc->size - 1) / sc->size;
  }
  t->max_size = t->classes[t->count - 1].size;
  /* class_of[i]: the smallest class of at least i*16 bytes, a run of entries
   * per class.  Filled by runs, not entry by entry: every process start
   * builds this table twice, and the per-entry loop was a quarter of what
   * the library adds to an exec of /bin/true (39 of ~150 us). */
  size_t from = 0;
  for (uint32_t c = 0; c < t->count; c++) {
    size_t to = (t->classes[c].size >> 4) + 1;
    memset(&t->class_of[from], (int)c, to - from);
    from = to;
  }
  memset(&t->class_of[from], (int)(t->count - 1), TP_SIZE_LOOKUP_LEN - from);
}

static void tp_partial_unlink(tp_central *central, tp_span *slab) {
  if (!slab->list) return;
  if (slab->prev) slab->prev->next = slab->next;
  else central->partial[slab->list - 1] = slab->next;
  if (slab->next) slab->next->prev = slab->prev;
  slab->list = 0;
}

/* Moves a slab to the list its fill level calls for (none when it is full). */
static void tp_partial_update(tp_central *central, tp_span *slab) {
  uint8_t want = 0;
  if (slab->free_blocks || slab->bump < slab->capacity) want = slab->used * 2 >= slab->capacity ? 1 : 2;
  if (want == slab->list) return;
  tp_partial_unlink(central, slab);
  if (!want) return;
  slab->prev = NULL;
  slab->next = central->partial[want - 1];
  if (slab->next) slab->next->prev = slab;
  central->partial[want - 1] = slab;
  slab->list = want;
}

static tp_span *tp_slab_create(tp_heap *h, uint32_t cls) {
  const tp_size_class *sc = &tp_classes.classes[cls];
  tp_lock_acquire(&h->buddy_lock);
  void *base = tp_buddy_take(h, sc->slab_pages, 0, NULL);
  if (!base) {
    tp_lock_release(&h->buddy_lock);
    return NULL;
  }
  tp_segment *seg = tp_segment_of(base);
  uint32_t first = tp_page_index(seg, base);
  tp_span *slab = tp_span_alloc(seg, first);
  /* Described before its pages name it: walks of the page map under the
   * buddy lock (tp_heap_residency) step by slab->pages, and a free of a
   * stray pointer into these pages reads the class fields. */
  slab->free_blocks = NULL;
  slab->used = 0;
  slab->bump = 0;
  slab->pages = sc->slab_pages;
  slab->block_size = sc->size;
  slab->capacity = (uint32_t)(((size_t)sc->slab_pages << TP_PAGE_SHIFT) / sc->size);
  slab->div_magic = sc->div_magic;
  slab->class_idx = (uint8_t)cls;
  slab->list = 0;
  slab->samples = 0; /* the slot's union held a free block's order */
  uint32_t entry = TP_PAGE_ENTRY(TP_PAGE_SLAB, TP_SLAB_DATA(first, tp_span_slot(seg, slab)));
  for (uint32_t i = 0; i < sc->slab_pages; i++) seg->page_map[first + i] = entry;
  h->slab_pages += sc->slab_pages;
  tp_lock_release(&h->buddy_lock);
  return slab;
}

/* The slab's pages back to the buddy; buddy_lock held. */
static void tp_slab_give_back(tp_heap *h, tp_span *slab) {
  tp_segment *seg = tp_segment_of(slab);
  uint32_t first = slab->first, pages = slab->pages;
  tp_slab_clear_sampled(seg, slab);
  for (uint32_t i = 0; i < pages; i++) seg->page_map[first + i] = TP_PAGE_ENTRY(TP_PAGE_INNER, 0);
  tp_span_free(seg, slab); /* first: the free blocks of its pages reuse the slot */
  tp_buddy_give(h, seg, first, pages);
  h->slab_pages -= pages;
  h->slab_releases++;
  h->slab_released_bytes += (uint64_t)pages << TP_PAGE_SHIFT;
}

static void tp_slab_destroy(tp_heap *h, tp_span *slab) {
  tp_lock_acquire(&h->buddy_lock);
  tp_slab_give_back(h, slab);
  tp_heap_tick(h);
  tp_lock_release(&h->buddy_lock);
}

static inline tp_span *tp_slab_of_block(void *block) {
  tp_segment *seg = tp_segment_of(block);
  return &seg->spans[TP_SLAB_SLOT(seg->page_map[tp_page_index(seg, block)])];
}

static inline char *tp_slab_base(tp_span *slab) {
  return tp_page_address(tp_segment_of(slab), slab->first);
}

/* Takes up to `want` blocks of class cls from central (one of h's), linked
 * through word 0 and marked free (word 1 = tp_free_mark).  Returns how many;
 * 0 means out of memory. */
static uint32_t tp_central_take(tp_heap *h, tp_central *central, uint32_t cls, void **head, uint32_t want) {
  void *list = NULL;
  uint32_t n = 0;
  uint64_t retaken = 0;
  bool releases = tp_class_releases_blocks(tp_classes.classes[cls].size);
  tp_lock_acquire(&central->lock);
  while (n < want) {
    tp_span *slab = central->partial[0] ? central->partial[0] : central->partial[1];
    if (!slab) {
      slab = central->spare;
      central->spare = NULL;
      if (!slab) {
        slab = tp_slab_create(h, cls);
        if (!slab) break;
        central->slabs++;
      }
    }
    while (n < want && slab->free_blocks) {
      void **block = slab->free_blocks;
      slab->free_blocks = block[0];
      if (releases && block[2] == tp_released_mark()) retaken += tp_block_inner_pages(block, slab->block_size, NULL);
      block[0] = list;
      list = block;
      n++;
      slab->used++;
    }
    if (n < want && slab->bump < slab->capacity) {
      char *base = tp_slab_base(slab);
      while (n < want && slab->bump < slab->capacity) {
        void **block = (void **)(base + (size_t)slab->bump++ * slab->block_size);
        block[0] = list;
        block[1] = tp_free_mark(block);
        list = block;
        n++;
        slab->used++;
      }
    }
    tp_partial_update(central, slab);
  }
  uint64_t out = atomic_fetch_add_explicit(&h->slab_out_bytes, (uint64_t)n * tp_classes.classes[cls].size,
                                           memory_order_relaxed) +
                 (uint64_t)n * tp_classes.classes[cls].size;
  if (out > h->slab_peak_bytes) h->slab_peak_bytes = out; /* racy max: a statistic */
  if (retaken) atomic_fetch_sub_explicit(&h->slab_released_pages, retaken, memory_order_relaxed);
  tp_lock_release(&central->lock);
  tp_heap_tick_try(h);
  *head = list;
  return n;
}

uint32_t tp_central_fill(tp_heap *h, uint32_t cls, void **head, uint32_t want) {
  return tp_central_take(h, &h->central[cls], cls, head, want);
}

/* Gives `count` blocks (linked through word 0, marked free) back to their
 * slabs, of central (one of h's). */
static void tp_central_give(tp_heap *h, tp_central *central, uint32_t cls, void *head, uint32_t count) {
  tp_span *to_destroy = NULL;
  bool releases = tp_class_releases_blocks(tp_classes.classes[cls].size);
  uint32_t now = releases ? (uint32_t)tp_os_now_ms() : 0;
  tp_lock_acquire(&central->lock);
  void **block = head;
  for (uint32_t i = 0; i < count && block; i++) {
    void **next = block[0];
    tp_span *slab = tp_slab_of_block(block);
    block[0] = slab->free_blocks;
    slab->free_blocks = block;
    slab->used--;
    if (releases) {
      block[2] = NULL;
      block[3] = (void *)(uintptr_t)now;
      slab->freed_ms = now; /* a partial slab's: its newest free block's */
    }
    if (slab->used == 0) {
      if (releases) tp_slab_forget_released(h, slab);
      tp_partial_unlink(central, slab);
      slab->free_blocks = NULL; /* every block is free: start bumping afresh */
      slab->bump = 0;
      if (!central->spare) {
        central->spare = slab;
        slab->freed_ms = (uint32_t)tp_os_now_ms();
      } else {
        slab->next = to_destroy; /* destroyed after the class lock is dropped */
        to_destroy = slab;
        central->slabs--;
      }
    } else {
      tp_partial_update(central, slab);
    }
    block = next;
  }
  atomic_fetch_sub_explicit(&h->slab_out_bytes, (uint64_t)count * tp_classes.classes[cls].size,
                            memory_order_relaxed);
  tp_lock_release(&central->lock);
  if (!to_destroy) tp_heap_tick_try(h); /* destroying ticks anyway */
  while (to_destroy) {
    tp_span *next = to_destroy->next;
    tp_slab_destroy(h, to_destroy);
    to_destroy = next;
  }
}

void tp_central_return(tp_heap *h, uint32_t cls, void *head, uint32_t count) {
  tp_central_give(h, &h->central[cls], cls, head, count);
}

/* ---- sampled blocks ------------------------------------------------------ */

/* Marked once however often it is sampled: a block that realloc kept in place
 * may be sampled again before its free clears the mark. */
bool tp_slab_mark_sampled(void *p) {
  if (!tp_segment_is_ours(p)) return false;
  tp_segment *seg = tp_segment_of(p);
  uint32_t entry = seg->page_map[tp_page_index(seg, p)];
  if (TP_PAGE_KIND(entry) != TP_PAGE_SLAB) return false;
  uint64_t bit, *word = tp_slab_sampled_word(seg, p, &bit);
  if (!(__atomic_fetch_or(word, bit, __ATOMIC_RELAXED) & bit))
    __atomic_fetch_add(&seg->spans[TP_SLAB_SLOT(entry)].samples, 1, __ATOMIC_RELAXED);
  return true;
}

bool tp_slab_unmark_sampled(tp_segment *seg, tp_span *slab, void *p) {
  uint64_t bit, *word = tp_slab_sampled_word(seg, p, &bit);
  if (!(__atomic_fetch_and(word, ~bit, __ATOMIC_RELAXED) & bit)) return false;
  __atomic_fetch_sub(&slab->samples, 1, __ATOMIC_RELAXED);
  return true;
}

/* Frees while the recorder was off (at exit, say) leave their marks: cleared
 * when the slab's pages go back, so that the buddy's next use starts clean. */
void tp_slab_clear_sampled(tp_segment *seg, tp_span *slab) {
  if (!tp_slab_has_samples(slab)) return;
  char *base = tp_page_address(seg, slab->first);
  for (uint32_t i = 0; i < slab->capacity && tp_slab_has_samples(slab); i++)
    tp_slab_unmark_sampled(seg, slab, base + (size_t)i * slab->block_size);
}

/* Spares nobody took for idle_ms go back to the buddy, whose purge returns
 * their pages later: a class that went idle must not keep a slab resident
 * (node: 20 spares, 1.3 MB, at the end of a run).  Maintenance calls this with
 * buddy_lock held, so a class whose lock is busy (taken before the buddy's)
 * is skipped this time. */
void tp_central_retire_spares(tp_heap *h, uint64_t now, uint64_t idle_ms) {
  for (uint32_t i = 0; i < tp_classes.count; i++) {
    tp_central *central = &h->central[i];
    if (!__atomic_load_n(&central->spare, __ATOMIC_RELAXED) || !tp_lock_try(&central->lock)) continue;
    tp_span *spare = central->spare;
    if (spare && (uint32_t)now - spare->freed_ms >= idle_ms) {
      central->spare = NULL;
      central->slabs--;
    } else {
      spare = NULL;
    }
    tp_lock_release(&central->lock);
    if (spare) tp_slab_give_back(h, spare);
  }
}

size_t tp_central_release_spares(tp_heap *h) {
  size_t bytes = 0;
  for (uint32_t i = 0; i < tp_classes.count; i++) {
    tp_central *central = &h->central[i];
    tp_lock_acquire(&central->lock);
    tp_span *spare = central->spare;
    central->spare = NULL;
    if (spare) central->slabs--;
    tp_lock_release(&central->lock);
    if (spare) {
      bytes += (size_t)spare->pages << TP_PAGE_SHIFT;
      tp_slab_destroy(h, spare);
    }
  }
  return bytes;
}

/* Releases the pages of free blocks (of classes of two pages or more, in
 * slabs still in use) that have been free for idle_ms.  A slab whose free
 * blocks are all released is marked (freed_ms = UINT32_MAX) until a block
 * comes back, so that its blocks are not read at every purge.  Maintenance
 * calls this with buddy_lock held: a busy class is skipped this time.
 * Returns the bytes released. */
size_t tp_central_purge_blocks(tp_heap *h, uint64_t now, uint64_t idle_ms) {
  /* A capped heap's budget must be charged for every page it faults in, and
   * a refill under a class lock cannot be refused: its blocks stay. */
  if (h->budget.capped || !tp_os_can_release()) return 0;
  uint64_t pages = 0;
  for (uint32_t c = 0; c < tp_classes.count; c++) {
    tp_central *central = &h->central[c];
    if (!tp_class_releases_blocks(tp_classes.classes[c].size)) continue;
    if (!__atomic_load_n(&central->partial[0], __ATOMIC_RELAXED) &&
        !__atomic_load_n(&central->partial[1], __ATOMIC_RELAXED))
      continue;
    if (!tp_lock_try(&central->lock)) continue;
    uint64_t class_pages = 0;
    for (int list = 0; list < 2; list++) {
      for (tp_span *slab = central->partial[list]; slab; slab = slab->next) {
        if (slab->freed_ms == UINT32_MAX) continue;
        bool young = false;
        for (void **b = slab->free_blocks; b; b = b[0]) {
          if (b[2] == tp_released_mark()) continue;
          if ((uint32_t)now - (uint32_t)(uintptr_t)b[3] < idle_ms) {
            young = true;
            continue;
          }
          uintptr_t start;
          uint64_t n = tp_block_inner_pages(b, slab->block_size, &start);
          if (n) tp_os_release((void *)start, (size_t)n << TP_PAGE_SHIFT);
          b[2] = tp_released_mark();
          class_pages += n;
        }
        if (!young) slab->freed_ms = UINT32_MAX;
      }
    }
    /* Counted before the lock goes: a refill subtracts what it takes back. */
    atomic_fetch_add_explicit(&h->slab_released_pages, class_pages, memory_order_relaxed);
    tp_lock_release(&central->lock);
    pages += class_pages;
  }
  if (pages) { /* not in released_window_pages: refills do not count what they take back */
    h->slab_releases++;
    h->slab_released_bytes += pages << TP_PAGE_SHIFT;
  }
  return (size_t)(pages << TP_PAGE_SHIFT);
}
