/* large.c — blocks above buddy_max: one mapping each, recorded in an
 * open-addressing table keyed by address (so free can tell a large block from
 * an invalid pointer), and a short-lived cache of freed mappings.
 *
 * The cache is what makes large-block churn cheap: a freed 20 MiB mapping
 * keeps its faulted pages for large_cache_ms, and the next large request
 * reuses it (best fit; or the largest one grown with mremap, which moves the
 * pages instead of faulting new ones).  It caches only sizes that have been
 * freed before (see tp_large_free), and calloc always gets a fresh mapping.  Mappings older than large_cache_ms, or
 * beyond large_cache_max bytes, go back with munmap.
 *
 * Every block has an owner (a tenant's heap), charged for its mapping.  A
 * cached mapping goes back to its owner first; another tenant gets it only
 * emptied (MADV_DONTNEED: zero pages), and an isolated tenant never does. */
#include <errno.h>
#include <string.h>

#include "internal.h"

typedef struct tp_large_entry {
  uintptr_t address; /* 0: empty; 1: deleted */
  size_t map_size;
  uint32_t owner;    /* tenant index */
} tp_large_entry;

typedef struct tp_cached_mapping {
  void *base;
  size_t size;
  uint64_t freed_ms;
  uint32_t owner;
} tp_cached_mapping;

#define TP_LARGE_DELETED ((uintptr_t)1)
#define TP_LARGE_CACHE_SLOTS 16

static tp_lock tp_large_lock_ = TP_LOCK_INITIALIZER;
static tp_large_entry *tp_table;
static size_t tp_table_capacity, tp_table_used; /* used counts deleted slots too */
static size_t tp_table_live;                     /* entries of live mappings */
static size_t tp_table_reserved;                 /* slots kept for mappings being moved (realloc) */
static tp_cached_mapping tp_cache[TP_LARGE_CACHE_SLOTS];
static uint32_t tp_cache_count;
static size_t tp_cache_bytes;
static tierpool_tier_stats_t tp_large;
static size_t tp_freed_max; /* largest mapping freed so far */

static inline size_t tp_hash(uintptr_t address, size_t capacity) {
  return (size_t)(((address >> TP_PAGE_SHIFT) * 0x9e3779b97f4a7c15ULL) >> 20) & (capacity - 1);
}

static tp_large_entry *tp_table_find(uintptr_t address) {
  if (!tp_table) return NULL;
  for (size_t i = tp_hash(address, tp_table_capacity);; i = (i + 1) & (tp_table_capacity - 1)) {
    if (tp_table[i].address == address) return &tp_table[i];
    if (tp_table[i].address == 0) return NULL;
  }
}

static bool tp_table_insert(uintptr_t address, size_t map_size, uint32_t owner);

/* Rebuilds the table without its deleted slots: at the same size when they
 * are what filled it (a program that maps and frees big blocks for ever:
 * doubling each time grew the table with every mapping ever made), else
 * twice as large. */
static bool tp_table_grow(void) {
  size_t old_capacity = tp_table_capacity;
  size_t wanted = tp_table_live + tp_table_reserved + 1; /* so that no insert below grows it again */
  size_t capacity = !old_capacity ? 1024 : wanted * 4 <= old_capacity ? old_capacity : old_capacity * 2;
  tp_large_entry *old = tp_table, *fresh = tp_os_map(capacity * sizeof *fresh);
  if (!fresh) return false;
  tp_table = fresh;
  tp_table_capacity = capacity;
  tp_table_used = tp_table_live = 0;
  for (size_t i = 0; i < old_capacity; i++)
    if (old[i].address > TP_LARGE_DELETED) tp_table_insert(old[i].address, old[i].map_size, old[i].owner);
  if (old) tp_os_unmap(old, old_capacity * sizeof *old);
  return true;
}

static bool tp_table_insert(uintptr_t address, size_t map_size, uint32_t owner) {
  if ((tp_table_used + tp_table_reserved + 1) * 2 > tp_table_capacity && !tp_table_grow()) return false;
  size_t i = tp_hash(address, tp_table_capacity);
  while (tp_table[i].address > TP_LARGE_DELETED) i = (i + 1) & (tp_table_capacity - 1);
  if (tp_table[i].address == 0) tp_table_used++;
  tp_table_live++;
  tp_table[i].address = address;
  tp_table[i].map_size = map_size;
  tp_table[i].owner = owner;
  return true;
}

/* Takes a cached mapping for `size` bytes for heap h: the smallest that fits,
 * else the largest (to be grown); h's own mappings first.  Large lock held. */
static bool tp_cache_take(tp_heap *h, size_t size, tp_cached_mapping *out) {
  int best = -1, largest = -1;
  for (int pass = 0; pass < 2 && best < 0 && largest < 0; pass++) {
    for (uint32_t i = 0; i < tp_cache_count; i++) {
      if ((tp_cache[i].owner == h->index) != (pass == 0)) continue;
      if (tp_cache[i].size >= size && (best < 0 || tp_cache[i].size < tp_cache[best].size)) best = (int)i;
      if (largest < 0 || tp_cache[i].size > tp_cache[largest].size) largest = (int)i;
    }
    if (h->budget.isolated) break; /* never another tenant's memory */
  }
  int pick = best >= 0 ? best : largest;
  if (pick < 0) return false;
  *out = tp_cache[pick];
  tp_cache[pick] = tp_cache[--tp_cache_count];
  tp_cache_bytes -= out->size;
  return true;
}

/* Removes cached mappings that are too old, or (oldest first) enough of them
 * to make room for `incoming` bytes.  Returns them in `victims`. */
static uint32_t tp_cache_evict(uint64_t now, size_t incoming, tp_cached_mapping *victims) {
  uint32_t n = 0;
  for (uint32_t i = 0; i < tp_cache_count;) {
    /* freed after the caller read `now` (maintenance reads it before the lock): young */
    if (now >= tp_cache[i].freed_ms && now - tp_cache[i].freed_ms >= tp_opt.large_cache_ms) {
      victims[n++] = tp_cache[i];
      tp_cache_bytes -= tp_cache[i].size;
      tp_cache[i] = tp_cache[--tp_cache_count];
    } else {
      i++;
    }
  }
  while (tp_cache_count > 0 &&
         (tp_cache_bytes + incoming > tp_opt.large_cache_max || tp_cache_count == TP_LARGE_CACHE_SLOTS)) {
    uint32_t oldest = 0;
    for (uint32_t i = 1; i < tp_cache_count; i++)
      if (tp_cache[i].freed_ms < tp_cache[oldest].freed_ms) oldest = i;
    victims[n++] = tp_cache[oldest];
    tp_cache_bytes -= tp_cache[oldest].size;
    tp_cache[oldest] = tp_cache[--tp_cache_count];
  }
  return n;
}

static void tp_unmap_victims(tp_cached_mapping *victims, uint32_t n) {
  for (uint32_t i = 0; i < n; i++) tp_os_unmap(victims[i].base, victims[i].size);
  if (n) {
    tp_lock_acquire(&tp_large_lock_);
    tp_large.releases += n;
    for (uint32_t i = 0; i < n; i++) tp_large.released_bytes += victims[i].size;
    tp_lock_release(&tp_large_lock_);
  }
}

/* Returns a mapping of at least *size bytes and sets *size to its length;
 * a cached one unless `fresh`. */
static void *tp_large_obtain(tp_heap *h, size_t *size_io, size_t align, bool fresh, bool *zeroed) {
  size_t size = *size_io;
  tp_cached_mapping cached = {0};
  bool hit = false;
  if (!fresh && align <= TP_PAGE_SIZE) {
    tp_lock_acquire(&tp_large_lock_);
    hit = tp_cache_take(h, size, &cached);
    tp_lock_release(&tp_large_lock_);
  }
  if (hit && !tp_os_make_plain(cached.base, cached.size)) { /* part of it unmapped by the program */
    tp_os_unmap(cached.base, cached.size);
    hit = false;
  }
  if (hit && cached.owner != h->index) {
    tp_os_release(cached.base, cached.size); /* no data crosses tenants */
    cached.owner = h->index;
  }
  if (hit) {
    /* Used whole, not trimmed: its pages are warm, and the next request may
     * be larger.  Dead cached pages are dropped when the pool needs fresh
     * ones instead (tp_buddy_take) and after large_cache_ms. */
    if (cached.size >= size) {
      *zeroed = false;
      *size_io = cached.size;
      return cached.base;
    }
    void *grown = tp_os_remap(cached.base, cached.size, size);
    if (grown) {
      *zeroed = false; /* the tail is fresh, the head is not */
      return grown;
    }
    tp_os_unmap(cached.base, cached.size);
  }
  for (uint32_t i = 0; i < tp_tenant_count(); i++) /* idle pool pages go before fresh ones come */
    tp_heap_purge_before_growth(tp_tenant_heap(i), size);
  void *base = tp_os_map_aligned(size, align);
  if (base && tp_opt.thp && size >= tp_opt.thp_min) tp_os_advise_huge(base, size, true);
  *zeroed = true;
  return base;
}

static void tp_tier_count_alloc(tierpool_tier_stats_t *t, size_t map_size, size_t requested) {
  t->allocs++;
  t->bytes_requested += requested;
  t->bytes_allocated += map_size;
  t->live_bytes += map_size;
  t->resident_bytes = t->live_bytes;
  if (t->live_bytes > t->peak_bytes) t->peak_bytes = t->live_bytes;
}

/* Large lock held. */
static void tp_large_count_alloc(tp_heap *h, size_t map_size, size_t requested) {
  tp_tier_count_alloc(&tp_large, map_size, requested);
  tp_tier_count_alloc(&h->large, map_size, requested);
}

static void tp_large_count_free(tp_heap *h, size_t map_size) {
  tp_large.frees++;
  tp_large.live_bytes -= map_size;
  h->large.frees++;
  h->large.live_bytes -= map_size;
  h->large.resident_bytes = h->large.live_bytes;
}

/* calloc (want_zero) takes a fresh mapping: its zero pages cost nothing until
 * touched, where a cached one would have to be cleared page by page. */
void *tp_large_alloc(tp_heap *h, size_t size, size_t align, size_t requested, bool want_zero, bool *zeroed) {
  if (size > PTRDIFF_MAX - TP_PAGE_SIZE) return NULL;
  size = tp_align_up(size, TP_PAGE_SIZE);
  size_t map_size = size;
  if (!tp_heap_charge(h, size, false)) return NULL;
  void *base = tp_large_obtain(h, &map_size, align, want_zero, zeroed);
  if (base && map_size > size && !tp_budget_charge_optional(h, map_size - size)) {
    /* A larger cached mapping than the budget has room for: its tail goes,
     * the request (which fits) is served from the rest. */
    tp_os_unmap((char *)base + size, map_size - size);
    map_size = size;
  }
  if (!base) {
    tp_budget_uncharge(h, size);
    return NULL;
  }
  tp_lock_acquire(&tp_large_lock_);
  if (!tp_table_insert((uintptr_t)base, map_size, h->index)) {
    tp_lock_release(&tp_large_lock_);
    tp_os_unmap(base, map_size);
    tp_budget_uncharge(h, map_size);
    return NULL;
  }
  tp_large_count_alloc(h, map_size, requested);
  tp_lock_release(&tp_large_lock_);
  return base;
}

/* Room for one more entry without a growth (large lock held), grown if need be. */
static bool tp_table_room(void) { return (tp_table_used + tp_table_reserved + 2) * 2 <= tp_table_capacity || tp_table_grow(); }

/* Keeps a slot for tp_large_adopt, which must not fail once the pages moved:
 * other threads' blocks could fill the table between a mere check and it. */
bool tp_large_reserve(void) {
  tp_lock_acquire(&tp_large_lock_);
  bool ok = tp_table_room();
  if (ok) tp_table_reserved++;
  tp_lock_release(&tp_large_lock_);
  return ok;
}

void tp_large_unreserve(void) {
  tp_lock_acquire(&tp_large_lock_);
  tp_table_reserved--;
  tp_lock_release(&tp_large_lock_);
}

/* Takes over a mapping made elsewhere (a buddy block of h moved out, already
 * charged to h by tp_heap_move_out) into the slot tp_large_reserve kept. */
void tp_large_adopt(tp_heap *h, void *base, size_t size, size_t requested) {
  tp_lock_acquire(&tp_large_lock_);
  tp_table_reserved--;
  bool inserted = tp_table_insert((uintptr_t)base, size, h->index);
  if (inserted) tp_large_count_alloc(h, size, requested);
  tp_lock_release(&tp_large_lock_);
  if (!inserted) tp_fatal("realloc(): no memory to record the block at %p", base);
}

bool tp_large_free(void *p) {
  tp_cached_mapping victims[TP_LARGE_CACHE_SLOTS + 1];
  uint32_t n = 0;
  tp_lock_acquire(&tp_large_lock_);
  /* Read under the lock: a time read before it, older than a mapping another
   * thread cached meanwhile, made now - freed_ms wrap and evict that one. */
  uint64_t now = tp_os_now_ms();
  tp_large_entry *e = tp_table_find((uintptr_t)p);
  if (!e) {
    tp_lock_release(&tp_large_lock_);
    return false;
  }
  size_t size = e->map_size;
  tp_heap *owner = tp_tenant_heap(e->owner);
  e->address = TP_LARGE_DELETED;
  tp_table_live--;
  tp_large_count_free(owner, size);
  /* Like glibc's dynamic mmap threshold, the cache learns from the first
   * free: a mapping is kept only when one at least half its size was freed
   * before, so one-off buffers go back at once and churned sizes stay warm. */
  /* A block realloc moved out of the buddy below buddy_max could never serve
   * a large allocation again: it goes at once. */
  bool reusable = size > owner->buddy_max;
  bool cache = reusable && size <= tp_opt.large_cache_max && tp_opt.large_cache_ms > 0 && size / 2 <= tp_freed_max;
  if (reusable && size > tp_freed_max) tp_freed_max = size;
  n = tp_cache_evict(now, cache ? size : 0, victims);
  if (cache) {
    tp_cache[tp_cache_count++] = (tp_cached_mapping){p, size, now, owner->index};
    tp_cache_bytes += size;
  } else {
    victims[n++] = (tp_cached_mapping){p, size, now, owner->index};
  }
  tp_lock_release(&tp_large_lock_);
  tp_budget_uncharge(owner, size); /* a cached mapping is the pool's, not the tenant's */
  tp_unmap_victims(victims, n);
  return true;
}

size_t tp_large_usable_size(const void *p) {
  tp_lock_acquire(&tp_large_lock_);
  tp_large_entry *e = tp_table_find((uintptr_t)p);
  size_t size = e ? e->map_size : 0;
  tp_lock_release(&tp_large_lock_);
  return size;
}

/* Grows or shrinks with mremap: the pages move, nothing is copied. */
void *tp_large_realloc(void *p, size_t size, bool *found) {
  size = tp_align_up(size, TP_PAGE_SIZE);
  tp_lock_acquire(&tp_large_lock_);
  tp_large_entry *e = tp_table_find((uintptr_t)p);
  *found = e != NULL;
  if (!e) {
    tp_lock_release(&tp_large_lock_);
    return NULL;
  }
  size_t old_size = e->map_size;
  tp_heap *owner = tp_tenant_heap(e->owner);
  if (old_size == size) {
    tp_lock_release(&tp_large_lock_);
    return p;
  }
  /* Its entry comes back (at q, or p) after the move, outside the lock: the
   * slot is kept now, so that no table growth (an mmap that may fail) is
   * needed then — a failed insert would lose a live block. */
  const tp_large_entry *table = tp_table;
  if (!tp_table_room()) {
    tp_lock_release(&tp_large_lock_);
    errno = ENOMEM;
    return NULL;
  }
  tp_table_reserved++;
  if (tp_table != table) e = tp_table_find((uintptr_t)p); /* rebuilt elsewhere */
  e->address = TP_LARGE_DELETED; /* nobody else may free p while it moves */
  tp_table_live--;
  tp_lock_release(&tp_large_lock_);
  bool grow = size > old_size;
  if (grow && !tp_budget_charge(owner, size - old_size)) {
    tp_lock_acquire(&tp_large_lock_);
    tp_table_reserved--;
    tp_table_insert((uintptr_t)p, old_size, owner->index);
    tp_lock_release(&tp_large_lock_);
    return NULL;
  }
  if (grow) { /* fresh pages come: dead cached ones and idle pool pages go first */
    tp_large_cache_flush();
    tp_heap_purge_before_growth(owner, size - old_size);
  }
  void *q = tp_os_remap(p, old_size, size);
  if (!q && grow) tp_budget_uncharge(owner, size - old_size);
  if (q && !grow) tp_budget_uncharge(owner, old_size - size);
  tp_lock_acquire(&tp_large_lock_);
  tp_table_reserved--;
  if (!q) {
    tp_table_insert((uintptr_t)p, old_size, owner->index);
  } else {
    tp_table_insert((uintptr_t)q, size, owner->index);
    tierpool_tier_stats_t *tiers[2] = {&tp_large, &owner->large};
    for (int i = 0; i < 2; i++) {
      tierpool_tier_stats_t *t = tiers[i];
      t->live_bytes += size - old_size; /* wraps correctly when shrinking */
      if (grow) { /* growth counts as asked for: waste stays the page rounding */
        t->bytes_allocated += size - old_size;
        t->bytes_requested += size - old_size;
      }
      if (t->live_bytes > t->peak_bytes) t->peak_bytes = t->live_bytes;
    }
    owner->large.resident_bytes = owner->large.live_bytes;
  }
  tp_lock_release(&tp_large_lock_);
  return q;
}

/* The first large mapping, live or cached, that meets [lo, hi), or 0 (mmap.c).
 * A block realloc is moving is in neither place, and the lock busy is a miss
 * too: missed, never refused wrongly. */
uintptr_t tp_large_in_range(uintptr_t lo, uintptr_t hi) {
  if (__atomic_load_n(&tp_table_live, __ATOMIC_RELAXED) == 0 && __atomic_load_n(&tp_cache_count, __ATOMIC_RELAXED) == 0)
    return 0;
  /* A look, not a wait: a signal handler's munmap may run on a thread that
   * holds the lock. */
  if (!tp_lock_try(&tp_large_lock_)) return 0;
  uintptr_t found = 0;
  for (size_t i = 0; i < tp_table_capacity && !found; i++) {
    uintptr_t a = tp_table[i].address;
    if (a > TP_LARGE_DELETED && a < hi && lo < a + tp_table[i].map_size) found = a;
  }
  for (uint32_t i = 0; i < tp_cache_count && !found; i++) {
    uintptr_t a = (uintptr_t)tp_cache[i].base;
    if (a < hi && lo < a + tp_cache[i].size) found = a;
  }
  tp_lock_release(&tp_large_lock_);
  return found;
}

uint32_t tp_large_owner(const void *p) {
  tp_lock_acquire(&tp_large_lock_);
  tp_large_entry *e = tp_table_find((uintptr_t)p);
  uint32_t owner = e ? e->owner : 0;
  tp_lock_release(&tp_large_lock_);
  return owner;
}

/* Expires old cached mappings.  Runs in maintenance, which a signal
 * handler's mmap may start (tp_heap_host_grows) while its thread holds the
 * large lock: a busy lock is skipped, this is no more than a look. */
void tp_large_maintain(uint64_t now) {
  if (__atomic_load_n(&tp_cache_count, __ATOMIC_RELAXED) == 0) return;
  tp_cached_mapping victims[TP_LARGE_CACHE_SLOTS + 1];
  if (!tp_lock_try(&tp_large_lock_)) return;
  uint32_t n = tp_cache_evict(now, 0, victims);
  tp_lock_release(&tp_large_lock_);
  tp_unmap_victims(victims, n);
}

size_t tp_large_cache_flush(void) {
  tp_cached_mapping victims[TP_LARGE_CACHE_SLOTS + 1];
  if (__atomic_load_n(&tp_cache_count, __ATOMIC_RELAXED) == 0) return 0;
  tp_lock_acquire(&tp_large_lock_);
  uint32_t n = 0;
  size_t bytes = tp_cache_bytes;
  while (tp_cache_count) victims[n++] = tp_cache[--tp_cache_count];
  tp_cache_bytes = 0;
  tp_lock_release(&tp_large_lock_);
  tp_unmap_victims(victims, n);
  return bytes;
}

void tp_large_stats(tierpool_tier_stats_t *out) {
  tp_lock_acquire(&tp_large_lock_);
  *out = tp_large;
  out->resident_bytes = tp_large.live_bytes + tp_cache_bytes;
  tp_lock_release(&tp_large_lock_);
}

void tp_large_lock(void) { tp_lock_acquire(&tp_large_lock_); }
void tp_large_unlock(void) { tp_lock_release(&tp_large_lock_); }
void tp_large_reinit_lock(void) { tp_lock_init(&tp_large_lock_); }
