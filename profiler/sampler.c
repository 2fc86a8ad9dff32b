/* sampler.c — what happens on each allocation and free while recording:
 * the exact per-thread histogram, the geometric sampling decision, the marks
 * that tell a sampled block's free, and the tables of live samples.
 *
 * Cost: an unsampled allocation compares the heap (tenant) of the thread's
 * cache with the one of its current histogram, bumps a counter (by size up
 * to 4 KiB) and the skip counter; an unsampled free does the same compare
 * (slab) or none, bumps one counter and reads one bit of the coarse filter
 * (8 KiB).  A sample marks its block, walks the stack, reads the clock and
 * appends to the thread's ring (rings.c); a sampled free unmarks, reads the
 * clock and appends.  Neither takes a lock, but for buddy and large blocks
 * (tp_rec.live, below).
 * Once a second tenant has counted something, a free also finds the block's
 * owning tenant (the pool's fast free path only frees the thread's own). */
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>

#include "recorder_private.h"

bool tp_rec_active;
__thread tp_rec_thread tp_rec_self;
bool tp_rec_by_bytes;
/* Zero-initialised (.bss): a process that never records never touches its
 * 54 KiB (as .data they cost every process their file pages).  The lock is a
 * plain mutex until tp_rec_start makes it the pool's kind; fd is set there. */
tp_recorder tp_rec;

bool tp_rec_in_recorder(void) { return tp_rec_self.busy; }

bool tp_rec_own_begin(void) {
  bool was_own = tp_rec_self.busy;
  tp_rec_enter(&tp_rec_self);
  return was_own;
}

void tp_rec_own_end(bool was_own) {
  if (!was_own) tp_rec_leave(&tp_rec_self);
}

/* The filter in front of the live table, for the frees of buddy and large
 * blocks (slab blocks carry their own mark, slab.c):
 * one bit per 64-byte slot, set while a live sample maps there; 8 KiB.  A bit
 * set sends the free to a finer filter (16-byte slots, 32 KiB, 4 per coarse
 * slot), then to the table.
 * A slot is the address's own bits (folded with the bits above the 4 MiB
 * the filters span), not a hash: blocks freed one after another are usually
 * neighbours, so a free mostly reads a filter line already in cache. */
#define TP_REC_FILTER_BITS 16
#define TP_REC_FINE_BITS 18
static _Atomic uint64_t tp_rec_filter[(1u << TP_REC_FILTER_BITS) / 64];
static inline uint32_t tp_rec_fine_slot(const void *p) {
  uintptr_t a = (uintptr_t)p ^ ((uintptr_t)p >> TP_REC_FINE_BITS); /* bits 22.. folded onto 4.. */
  return (uint32_t)(a >> 4) & ((1u << TP_REC_FINE_BITS) - 1);
}
static inline uint32_t tp_rec_filter_slot(const void *p) {
  return tp_rec_fine_slot(p) >> (TP_REC_FINE_BITS - TP_REC_FILTER_BITS);
}
static inline bool tp_rec_filter_test(const void *p) {
  uint32_t slot = tp_rec_filter_slot(p);
  return (atomic_load_explicit(&tp_rec_filter[slot >> 6], memory_order_relaxed) >> (slot & 63)) & 1;
}
/* The finer filter behind it, read after a coarse hit. */
static _Atomic uint64_t tp_rec_fine_filter[(1u << TP_REC_FINE_BITS) / 64];

static inline bool tp_rec_fine_test(const void *p) {
  uint32_t slot = tp_rec_fine_slot(p);
  return (atomic_load_explicit(&tp_rec_fine_filter[slot >> 6], memory_order_relaxed) >> (slot & 63)) & 1;
}

/* Filter words change under tp_rec.lock only: a plain store, no locked
 * instruction (which would wait for every store before it). */
static void tp_rec_bit_set(_Atomic uint64_t *filter, uint32_t bit) {
  uint64_t word = atomic_load_explicit(&filter[bit >> 6], memory_order_relaxed);
  if (!(word >> (bit & 63) & 1)) atomic_store_explicit(&filter[bit >> 6], word | 1ull << (bit & 63), memory_order_relaxed);
}
static void tp_rec_bit_clear(_Atomic uint64_t *filter, uint32_t bit) {
  uint64_t word = atomic_load_explicit(&filter[bit >> 6], memory_order_relaxed);
  atomic_store_explicit(&filter[bit >> 6], word & ~(1ull << (bit & 63)), memory_order_relaxed);
}

/* ---- sampling decision ---------------------------------------------------- */

static uint64_t tp_rec_random(tp_rec_thread *t) { /* xorshift64* */
  t->rng ^= t->rng >> 12;
  t->rng ^= t->rng << 25;
  t->rng ^= t->rng >> 27;
  return t->rng * 0x2545F4914F6CDD1Dull;
}

/* Uniform in (0, 1]: never 0, so its logarithm is finite. */
static double tp_rec_uniform(tp_rec_thread *t) {
  return ((double)(tp_rec_random(t) >> 11) + 1.0) * (1.0 / 9007199254740992.0);
}

/* Natural logarithm and exponential, accurate to ~1e-8: enough to draw skips,
 * and the library stays free of libm (one shared object less per exec). */
static double tp_rec_ln(double x) { /* x > 0 */
  uint64_t bits;
  memcpy(&bits, &x, sizeof bits);
  int exponent = (int)((bits >> 52) & 0x7ff) - 1023;
  bits = (bits & ((1ull << 52) - 1)) | (1023ull << 52);
  double m, s, s2;
  memcpy(&m, &bits, sizeof m); /* x = m * 2^exponent, m in [1, 2) */
  s = (m - 1) / (m + 1), s2 = s * s;
  double series = s * (2 + s2 * (2.0 / 3 + s2 * (2.0 / 5 + s2 * (2.0 / 7 + s2 * (2.0 / 9 + s2 * (2.0 / 11 + s2 * 2.0 / 13))))));
  return exponent * 0.6931471805599453 + series;
}

/* ln(1 - r) for 0 < r < 1: near 1, ln's 1e-8 absolute error would swamp
 * -r (a rate of 1e-7 drew 10% more samples than its weights said), so small
 * r sum the series -(r + r^2/2 + r^3/3 + ...) instead. */
static double tp_rec_ln1m(double r) {
  if (r >= 0.05) return tp_rec_ln(1.0 - r);
  double sum = 0, power = 1;
  for (int k = 1; k <= 14; k++) power *= r, sum += power / k; /* 0.05^15 / 15: below 1e-20 */
  return -sum;
}

static double tp_rec_exp(double y) { /* y <= 0 */
  if (y < -700) return 0;
  int k = (int)(y / 0.6931471805599453 - 0.5);
  double r = y - k * 0.6931471805599453, term = 1, sum = 1;
  for (int i = 1; i < 14; i++) term *= r / i, sum += term;
  uint64_t scale_bits = (uint64_t)(k + 1023) << 52;
  double scale;
  memcpy(&scale, &scale_bits, sizeof scale);
  return sum * scale;
}

/* Allocations (count mode) or bytes (byte mode) until the next sample:
 * geometric / exponential, so every allocation has the same chance and no
 * random number is drawn per call. */
static int64_t tp_rec_next_skip(tp_rec_thread *t) {
  if (tp_rec.sample_bytes) {
    double bytes = -tp_rec_ln(tp_rec_uniform(t)) * (double)tp_rec.sample_bytes;
    return bytes >= 9e18 ? INT64_MAX : (int64_t)bytes + 1;
  }
  if (tp_rec.sample_rate >= 1.0) return 1;
  if (tp_rec.sample_rate <= 0.0) return INT64_MAX;
  double skips = tp_rec_ln(tp_rec_uniform(t)) * tp_rec.inv_ln_keep; /* >= 0: truncation floors */
  return !(skips < 9e18) ? INT64_MAX : (int64_t)skips + 1; /* NaN too: never a skip of INT64_MIN */
}

/* Allocations one sample stands for: 1/rate by count; by bytes, the inverse
 * of the chance that an allocation of this size is hit. */
double tp_rec_weight(uint64_t size) {
  if (!tp_rec.sample_bytes) return 1.0 / tp_rec.sample_rate;
  double p = 1.0 - tp_rec_exp(-(double)(size ? size : 1) / (double)tp_rec.sample_bytes);
  return p > 0 ? 1.0 / p : 1.0;
}

/* ---- threads -------------------------------------------------------------- */

uint32_t tp_rec_thread_id(tp_rec_thread *t) {
  if (t->id) return t->id;
  uint32_t chunk = tp_rec.thread_count / TP_REC_THREAD_CHUNK;
  if (chunk == TP_REC_THREAD_CHUNKS) return 0;
  if (!tp_rec.threads[chunk]) tp_rec.threads[chunk] = tp_rec_map(sizeof(tp_rec_thread_info) * TP_REC_THREAD_CHUNK);
  if (!tp_rec.threads[chunk]) return 0; /* 0: no Thread record says who */
  tp_rec_thread_info *info = tp_rec_thread_at(tp_rec.thread_count);
  info->tid = (uint32_t)tp_os_gettid();
  prctl(PR_GET_NAME, info->name, 0, 0, 0);
  t->id = ++tp_rec.thread_count;
  return t->id;
}

/* The sampling state, at a thread's first event. */
static void tp_rec_seed(tp_rec_thread *t, uint32_t order) {
  uint64_t seed = tp_opt.sample_seed ? tp_opt.sample_seed * 0x9E3779B97F4A7C15ull + order
                                     : tp_rec_clock_ns(CLOCK_MONOTONIC) ^ ((uint64_t)tp_os_gettid() << 32) ^
                                           (uintptr_t)t;
  t->rng = seed ? seed : 1;
  t->skip = tp_rec_next_skip(t);
}

/* The thread's histogram for a tenant, made on first use from the recorder's
 * own pages (never malloc); NULL when out of memory. */
static TP_NOINLINE tp_rec_hist *tp_rec_thread_hist(tp_rec_thread *t, uint32_t tenant) {
  if (tenant >= TP_MAX_TENANTS) tenant = 0;
  if (t->exited) return &tp_rec.retired; /* TLS destructors after thread exit: the shared sum */
  tp_rec_hist *h = t->hists;
  while (h && h->tenant != tenant) h = h->thread_next;
  if (h) return h;
  /* The cache's destructor retires a thread's counts at its exit: a thread
   * without one (only buddy or large blocks so far) gets it now, or its
   * histogram would stay on tp_rec.hists, summed every second, long after it. */
  if (!t->hists && !tp_tcache_current) tp_tcache_create();
  /* Busy while the lock is held: a signal handler's mmap would record
   * (tp_rec_mmap) and wait for the lock forever. */
  bool was_busy = t->busy;
  if (!was_busy) tp_rec_enter(t);
  tp_lock_acquire(&tp_rec.lock);
  if ((h = tp_rec.spare_hists) != NULL) {
    tp_rec.spare_hists = h->next;
    memset(h, 0, sizeof *h);
  } else {
    h = tp_rec_map(sizeof *h);
  }
  if (h) {
    h->tenant = tenant;
    h->next = tp_rec.hists;
    tp_rec.hists = h;
    tp_rec.tenants_used |= 1ull << tenant;
    if (tp_rec.tenants_used & (tp_rec.tenants_used - 1)) tp_rec.multi_tenant = true;
  }
  uint32_t order = tp_rec.thread_count + 1;
  tp_lock_release(&tp_rec.lock);
  if (!was_busy) tp_rec_leave(t);
  if (!h) return NULL;
  h->thread_next = t->hists;
  t->hists = h;
  if (!t->rng) tp_rec_seed(t, order);
  return h;
}

/* The current histogram, for the tenant of the thread's cache (tc may be
 * NULL: then the pool says): at the thread's first event, and when its tenant
 * changes.  The inlined paths only compare the cache's heap with
 * t->hist_heap, which byte mode leaves NULL: it counts in the calls. */
static TP_NOINLINE bool tp_rec_select_hist(tp_rec_thread *t, const tp_tcache *tc) {
  tp_rec_hist *h = tp_rec_thread_hist(t, tc ? tc->heap->index : tp_tenant_current_index());
  if (!h) return false;
  t->hist = h;
  t->hist_of = tc ? tc->heap : NULL;
  t->hist_heap = tp_rec_by_bytes ? NULL : t->hist_of;
  return true;
}

/* The histogram that counts a free of a block of this tenant (its owner). */
static inline tp_rec_hist *tp_rec_free_hist(tp_rec_thread *t, uint32_t owner) {
  return t->hist && t->hist->tenant == owner ? t->hist : tp_rec_thread_hist(t, owner);
}

/* Slab frees counted by class go to the bucket of the class's block size,
 * small allocations to their own buckets. */
static void tp_rec_fold_counts(tp_rec_hist *out, const tp_rec_hist *h) {
  for (uint32_t c = 0; c < tp_classes.count; c++)
    out->bucket[tp_bucket_of_size(tp_classes.classes[c].size)].frees +=
        __atomic_load_n(&h->class_frees[c], __ATOMIC_RELAXED);
  for (uint32_t b = 0; b < TP_BUCKET_FINE_COUNT; b++) {
    out->bucket[b].allocs += __atomic_load_n(&h->fine[b].allocs, __ATOMIC_RELAXED);
    out->bucket[b].bytes += __atomic_load_n(&h->fine[b].bytes, __ATOMIC_RELAXED);
  }
}

/* Where exited threads' counts of a tenant go; lock held. */
static tp_rec_hist *tp_rec_retired_of(uint32_t tenant) {
  if (tenant == 0 || tenant >= TP_MAX_TENANTS) return &tp_rec.retired;
  if (!tp_rec.retired_tenants[tenant]) {
    tp_rec.retired_tenants[tenant] = tp_rec_map(sizeof(tp_rec_hist));
    if (tp_rec.retired_tenants[tenant]) tp_rec.retired_tenants[tenant]->tenant = tenant;
  }
  return tp_rec.retired_tenants[tenant] ? tp_rec.retired_tenants[tenant] : &tp_rec.retired;
}

/* Thread exit: its counts join the retired sums; the structures are reused. */
void tp_rec_thread_exit(void) {
  tp_rec_thread *t = &tp_rec_self;
  t->exited = true;
  tp_rec_rings_thread_exit(t);
  if (!t->hists) return;
  bool was_busy = t->busy; /* as in tp_rec_thread_hist: the lock is held */
  if (!was_busy) tp_rec_enter(t);
  tp_lock_acquire(&tp_rec.lock);
  for (tp_rec_hist *h = t->hists, *next; h; h = next) {
    next = h->thread_next;
    for (tp_rec_hist **link = &tp_rec.hists; *link; link = &(*link)->next) {
      if (*link == h) {
        *link = h->next;
        break;
      }
    }
    tp_rec_hist *retired = tp_rec_retired_of(h->tenant);
    for (uint32_t b = 0; b < TP_BUCKET_COUNT; b++) {
      retired->bucket[b].allocs += h->bucket[b].allocs;
      retired->bucket[b].bytes += h->bucket[b].bytes;
      retired->bucket[b].frees += h->bucket[b].frees;
    }
    tp_rec_fold_counts(retired, h);
    h->next = tp_rec.spare_hists;
    tp_rec.spare_hists = h;
  }
  t->hists = NULL;
  t->hist = &tp_rec.retired; /* late frees of TLS destructors; counted under no lock, rare */
  tp_lock_release(&tp_rec.lock);
  if (!was_busy) tp_rec_leave(t);
}

void tp_rec_hist_sum(tp_rec_hist *out, uint32_t tenant) {
  const tp_rec_hist *retired = tenant == 0 ? &tp_rec.retired
                               : tenant < TP_MAX_TENANTS ? tp_rec.retired_tenants[tenant] : NULL;
  memset(out, 0, sizeof *out);
  if (retired) {
    memcpy(out->bucket, retired->bucket, sizeof out->bucket);
    tp_rec_fold_counts(out, retired); /* counts of threads past exit */
  }
  out->tenant = tenant;
  for (tp_rec_hist *h = tp_rec.hists; h; h = h->next) {
    if (h->tenant != tenant) continue;
    for (uint32_t b = 0; b < TP_BUCKET_COUNT; b++) {
      out->bucket[b].allocs += __atomic_load_n(&h->bucket[b].allocs, __ATOMIC_RELAXED);
      out->bucket[b].bytes += __atomic_load_n(&h->bucket[b].bytes, __ATOMIC_RELAXED);
      out->bucket[b].frees += __atomic_load_n(&h->bucket[b].frees, __ATOMIC_RELAXED);
    }
    tp_rec_fold_counts(out, h);
  }
}

/* ---- tables of live samples ----------------------------------------------
 * Two, of one kind: the writer's, of every live sample (rings.c: its id,
 * size and stack), and the allocating threads' own, of the buddy and large
 * blocks among them (tp_rec.live, under tp_rec.lock: their frees have no
 * mark in place, so the filters above and this table find them).
 * Open addressing, linear probing, backward-shift deletion.  A sample's home
 * follows from its (coarse) filter slot: samples that share a filter bit, of
 * either filter, share a home, so they lie in one run, and the run (in
 * cache: just probed) tells whether a freed sample's bits are still needed.
 * A table of more than 2^16 slots spreads each filter slot's samples over a
 * block of 2^(log2 size - 16) homes, by the address's bits. */

#define TP_REC_LIVE_MIN_LOG2 12

static uint32_t tp_rec_live_spread(const tp_rec_live_table *t) {
  return t->log2 > TP_REC_FILTER_BITS ? t->log2 - TP_REC_FILTER_BITS : 0;
}

static uint64_t tp_rec_live_home_in(uintptr_t address, uint32_t log2) {
  uint32_t spread = log2 > TP_REC_FILTER_BITS ? log2 - TP_REC_FILTER_BITS : 0;
  uint64_t block = ((uint64_t)tp_rec_filter_slot((void *)address) * 0x9E3779B97F4A7C15ull) >> (64 - (log2 - spread));
  return spread ? block << spread | ((address >> 4) * 0xC2B2AE3D27D4EB4Full) >> (64 - spread) : block;
}

static uint64_t tp_rec_live_home(const tp_rec_live_table *t, uintptr_t address) {
  return tp_rec_live_home_in(address, t->log2);
}

/* The line a buddy or large sample (or its free) writes under the lock,
 * fetched before the lock is taken.  A hint read without the lock: a table
 * being replaced fetches a useless line, never a fault. */
static inline void tp_rec_prefetch(uintptr_t address) {
  tp_rec_live *live = __atomic_load_n(&tp_rec.live.slots, __ATOMIC_RELAXED);
  uint32_t log2 = __atomic_load_n(&tp_rec.live.log2, __ATOMIC_RELAXED);
  if (live && log2 >= TP_REC_LIVE_MIN_LOG2) __builtin_prefetch(&live[tp_rec_live_home_in(address, log2)], 1);
}

static bool tp_rec_live_grow(tp_rec_live_table *t) {
  uint32_t old_log2 = t->log2;
  uint64_t old_capacity = t->capacity, capacity = old_capacity ? old_capacity * 2 : 1ull << TP_REC_LIVE_MIN_LOG2;
  tp_rec_live *slots = tp_rec_map_table(capacity * sizeof *slots), *old = t->slots;
  if (!slots) return false;
  t->slots = slots;
  t->capacity = capacity;
  t->log2 = old_log2 ? old_log2 + 1 : TP_REC_LIVE_MIN_LOG2;
  for (uint64_t i = 0; i < old_capacity; i++) {
    if (!old[i].address) continue;
    uint64_t slot = tp_rec_live_home(t, old[i].address);
    while (slots[slot].address) slot = (slot + 1) & (capacity - 1);
    slots[slot] = old[i];
  }
  if (old) tp_os_unmap(old, old_capacity * sizeof *slots);
  return true;
}

void tp_rec_live_insert(tp_rec_live_table *t, const tp_rec_live *entry) {
  if ((t->count + 1) * 2 > t->capacity && !tp_rec_live_grow(t)) return;
  uint64_t mask = t->capacity - 1, slot = tp_rec_live_home(t, entry->address);
  while (t->slots[slot].address && t->slots[slot].address != entry->address) slot = (slot + 1) & mask;
  if (!t->slots[slot].address) t->count++;
  t->slots[slot] = *entry;
  if (!entry->filtered) return;
  tp_rec_bit_set(tp_rec_filter, tp_rec_filter_slot((void *)entry->address));
  tp_rec_bit_set(tp_rec_fine_filter, tp_rec_fine_slot((void *)entry->address));
}

/* Clears the filter bits of a sample just removed that no other live sample
 * needs: every sample of a coarse bit has its home in the bit's block, and
 * lies in the run that starts there. */
static void tp_rec_live_clear_bits(const tp_rec_live_table *t, uintptr_t address) {
  uint32_t coarse = tp_rec_filter_slot((void *)address), fine = tp_rec_fine_slot((void *)address);
  uint64_t mask = t->capacity - 1, first = tp_rec_live_home(t, address) & ~((1ull << tp_rec_live_spread(t)) - 1);
  uint64_t block_end = first + (1ull << tp_rec_live_spread(t));
  bool coarse_used = false;
  for (uint64_t i = first;; i++) {
    uintptr_t a = t->slots[i & mask].address;
    if (!a && i >= block_end) break;
    if (!a || tp_rec_filter_slot((void *)a) != coarse) continue;
    coarse_used = true;
    if (tp_rec_fine_slot((void *)a) == fine) return; /* both still needed */
  }
  tp_rec_bit_clear(tp_rec_fine_filter, fine);
  if (!coarse_used) tp_rec_bit_clear(tp_rec_filter, coarse);
}

/* Removes and returns the entry of address; false when it was not sampled. */
bool tp_rec_live_remove(tp_rec_live_table *t, uintptr_t address, tp_rec_live *out) {
  if (!t->count) return false;
  uint64_t mask = t->capacity - 1, slot = tp_rec_live_home(t, address);
  while (t->slots[slot].address != address) {
    if (!t->slots[slot].address) return false;
    slot = (slot + 1) & mask;
  }
  *out = t->slots[slot];
  /* Backward shift: pull later entries of the run into the hole. */
  for (uint64_t hole = slot, next = (slot + 1) & mask;; next = (next + 1) & mask) {
    tp_rec_live *e = &t->slots[next];
    if (!e->address) {
      t->slots[hole].address = 0;
      break;
    }
    uint64_t home = tp_rec_live_home(t, e->address);
    if (((next - home) & mask) >= ((next - hole) & mask)) {
      t->slots[hole] = *e;
      hole = next;
    }
  }
  t->count--;
  if (out->filtered) tp_rec_live_clear_bits(t, address);
  return true;
}

/* ---- allocation and free --------------------------------------------------- */

/* A buddy or large block sampled: its free finds it through the filters. */
static void tp_rec_live_add(uintptr_t address) {
  tp_rec_prefetch(address);
  tp_rec_live entry = {.address = address, .filtered = true};
  tp_lock_acquire(&tp_rec.lock);
  tp_rec_live_insert(&tp_rec.live, &entry);
  tp_lock_release(&tp_rec.lock);
}

/* Returns the block to hand out (p).  A slab block is marked sampled where
 * it is (slab.c), so that only the frees of its slab's blocks ask whether
 * they were; a buddy or large block goes into tp_rec.live.  The sample goes
 * to the thread's ring (rings.c): no lock, no shared line. */
static TP_NOINLINE void *tp_rec_take_sample(tp_rec_thread *t, void *p, size_t size, size_t align) {
  t->skip = tp_rec_next_skip(t);
  tp_rec_enter(t); /* the unwinder may allocate */
  tierpool_tier_t tier = TIERPOOL_TIER_SLAB;
  if (!tp_slab_mark_sampled(p)) { /* one lookup for the usual case, a slab block */
    tier = tp_tier_of(p);
    tp_rec_live_add((uintptr_t)p);
  }
  uint32_t tenant = tp_tenant_index_of(p); /* the owner: a block may outlive its thread's tenant switch */
  tp_rec_event e = {.kind = TP_REC_EVENT_SAMPLE, .tier = (uint8_t)tier,
                    .align_log2 = (uint8_t)__builtin_ctzl(align ? align : 1),
                    .tenant = (uint8_t)(tenant < TP_MAX_TENANTS ? tenant : 0), .address = (uintptr_t)p, .size = size};
  uintptr_t frames[TP_REC_MAX_DEPTH];
  bool truncated;
  e.depth = (uint8_t)tp_rec_capture(frames, (uint32_t)tp_opt.stack_depth, &truncated);
  e.truncated = truncated;
  e.usable = tp_opt.validate ? malloc_usable_size(p) : 0; /* written in validation mode only */
  e.time_ns = tp_rec_now_ns();
  tp_rec_event_push(t, &e, frames);
  tp_rec_leave(t);
  return p;
}

void *tp_rec_sample_then(void *p, size_t size, size_t align) { return tp_rec_take_sample(&tp_rec_self, p, size, align); }

/* The inlined count's rare cases: a thread's first event, another tenant, a
 * busy thread, a failed allocation, byte-mode sampling. */
void *tp_rec_alloc_then(void *p, size_t size, size_t align) {
  tp_rec_thread *t = &tp_rec_self;
  if (t->busy || !p) return p;
  tp_tcache *tc = tp_tcache_current;
  if (tp_unlikely(!tc || tc->heap != t->hist_of) && !tp_rec_select_hist(t, tc)) return p;
  tp_rec_count_alloc(t->hist, size);
  t->skip -= tp_rec.sample_bytes ? (int64_t)(size ? size : 1) : 1;
  if (tp_unlikely(t->skip <= 0)) return tp_rec_take_sample(t, p, size, align);
  return p;
}

/* A sampled block's free, to the thread's ring (the writer finds its
 * sample); a buddy or large block leaves tp_rec.live first (false: it was
 * not a sample after all, a filter's false hit). */
static TP_NOINLINE void tp_rec_free_sampled(tp_rec_thread *t, void *p, bool in_place) {
  tp_rec_enter(t);
  tp_rec_live entry;
  if (!in_place) {
    tp_lock_acquire(&tp_rec.lock);
    bool found = tp_rec_live_remove(&tp_rec.live, (uintptr_t)p, &entry);
    tp_lock_release(&tp_rec.lock);
    if (!found) {
      tp_rec_leave(t);
      return;
    }
  }
  tp_rec_event e = {.kind = TP_REC_EVENT_FREE, .address = (uintptr_t)p};
  uintptr_t frames[TP_REC_MAX_DEPTH];
  if (tp_opt.validate) {
    bool truncated;
    e.depth = (uint8_t)tp_rec_capture(frames, (uint32_t)tp_opt.stack_depth, &truncated);
    e.truncated = truncated;
  }
  e.time_ns = tp_rec_now_ns();
  tp_rec_event_push(t, &e, frames);
  tp_rec_leave(t);
}

/* The coarse filter's bit was set (tp_rec_free): the fine one decides. */
static void tp_rec_free_check(void *p) {
  tp_rec_prefetch((uintptr_t)p);
  if (tp_rec_fine_test(p)) tp_rec_free_sampled(&tp_rec_self, p, false);
}

/* Frees count for the block's owner.  On the pool's slow free path (buddy,
 * large, sampled and other tenants' blocks) the owner is looked up once two
 * tenants have counted something; before that, every recorded block is the
 * one's.  A slab block marked sampled is looked up in the live table at once;
 * others when the filter says they may be samples. */
void tp_rec_free(void *p, size_t usable) {
  tp_rec_thread *t = &tp_rec_self;
  if (t->busy || !p) return;
  if (tp_unlikely(!t->hist) && !tp_rec_select_hist(t, tp_tcache_current)) return;
  tp_rec_hist *h = t->hist;
  if (tp_unlikely(tp_rec.multi_tenant) && !(h = tp_rec_free_hist(t, tp_tenant_index_of(p)))) return;
  h->bucket[tp_bucket_of_size(usable)].frees++;
  if (tp_slab_block_sampled(p)) tp_rec_free_sampled(t, p, true);
  else if (tp_rec_filter_test(p)) tp_rec_free_check(p);
}

/* The pool's fast free of a slab block (never a sample: a slab holding one
 * sends its frees the slow way): always one of the tenant of the thread's
 * cache (the pool checked), so the same compare as an allocation. */
void tp_rec_free_slab(uint32_t cls) {
  tp_rec_thread *t = &tp_rec_self;
  if (t->busy) return;
  tp_tcache *tc = tp_tcache_current;
  if (tp_unlikely(!tc || tc->heap != t->hist_of) && !tp_rec_select_hist(t, tc)) return;
  t->hist->class_frees[cls]++;
}

/* The host's own mmap-family calls, each with its stack, to the thread's
 * ring like a sample (node makes thousands: the writer interns their
 * stacks). */
void tp_rec_mmap(tp_rec_mmap_kind kind, void *addr, size_t length, int prot, int flags, void *old_addr) {
  tp_rec_thread *t = &tp_rec_self;
  if (t->busy) return;
  tp_rec_enter(t);
  tp_rec_event e = {.kind = TP_REC_EVENT_MMAP, .tier = (uint8_t)kind, .flags = (uint32_t)flags,
                    .address = (uintptr_t)addr, .size = length};
  if (kind == TP_REC_MREMAP) e.old_address = (uintptr_t)old_addr;
  else e.prot = (uint32_t)prot;
  uintptr_t frames[TP_REC_MAX_DEPTH];
  bool truncated;
  e.depth = (uint8_t)tp_rec_capture(frames, (uint32_t)tp_opt.stack_depth, &truncated);
  e.truncated = truncated;
  e.time_ns = tp_rec_now_ns();
  tp_rec_event_push(t, &e, frames);
  tp_rec_leave(t);
}

/* ---- validation ------------------------------------------------------------ */

void tp_rec_bad_free(const char *call, void *p, const char *what) {
  if (!tp_opt.validate) return;
  uintptr_t frames[TP_REC_MAX_DEPTH];
  bool truncated;
  tp_rec_enter(&tp_rec_self);
  uint32_t depth = tp_rec_capture(frames, (uint32_t)tp_opt.stack_depth, &truncated);
  char line[160];
  int n = snprintf(line, sizeof line, "tierpool: %s(): %s %p, called from:\n", call, what, p);
  tp_os_write(2, line, (size_t)n);
  tp_rec_print_stack(2, frames, depth);
  tp_rec_leave(&tp_rec_self);
}

typedef struct tp_rec_leak {
  uint32_t stack;
  uint64_t bytes, count;
} tp_rec_leak;

/* Leaks grouped by allocation stack, largest first: the writer's table of
 * live samples after the last flush (no drain changes it any more). */
static void tp_rec_leak_report(void) {
  const tp_rec_live_table *live = tp_rec_rings_live();
  uint32_t stacks = tp_rec_stack_count();
  if (!live->count || !stacks) return;
  tp_rec_leak *by_stack = tp_rec_map((size_t)(stacks + 1) * sizeof *by_stack);
  if (!by_stack) return;
  uint64_t total_bytes = 0, total_count = 0;
  for (uint64_t i = 0; i < live->capacity; i++) {
    const tp_rec_live *e = &live->slots[i];
    if (!e->address || e->stack > stacks) continue;
    by_stack[e->stack].stack = e->stack;
    by_stack[e->stack].bytes += e->size;
    by_stack[e->stack].count++;
    total_bytes += e->size;
    total_count++;
  }
  char line[200];
  int n = snprintf(line, sizeof line, "tierpool: %llu bytes in %llu blocks still allocated at exit (top stacks):\n",
                   (unsigned long long)total_bytes, (unsigned long long)total_count);
  tp_os_write(2, line, (size_t)n);
  for (int rank = 1; rank <= 20; rank++) {
    tp_rec_leak *best = NULL;
    for (uint32_t s = 1; s <= stacks; s++)
      if (by_stack[s].count && (!best || by_stack[s].bytes > best->bytes)) best = &by_stack[s];
    if (!best) break;
    n = snprintf(line, sizeof line, "#%d: %llu bytes in %llu blocks allocated at:\n", rank,
                 (unsigned long long)best->bytes, (unsigned long long)best->count);
    tp_os_write(2, line, (size_t)n);
    uintptr_t frames[TP_REC_MAX_DEPTH];
    bool truncated;
    tp_rec_print_stack(2, frames, tp_rec_stack_frames(best->stack, frames, TP_REC_MAX_DEPTH, &truncated));
    best->count = 0;
  }
  tp_os_unmap(by_stack, (size_t)(stacks + 1) * sizeof *by_stack);
}

/* ---- life cycle ------------------------------------------------------------ */

void tp_rec_start(void) {
  if (!tp_opt.profile && !tp_opt.validate) return;
  tp_lock_init(&tp_rec.lock);
  tp_rec.fd = -1;
  tp_rec_clock_start();
  tp_rec.sample_rate = tp_opt.validate ? 1.0 : tp_opt.sample_rate;
  /* A rate whose weight 1/rate is not finite samples nothing (the trace
   * says 0: readers reject an infinite weight). */
  if (tp_rec.sample_rate > 0.0 && !(1.0 / tp_rec.sample_rate < 1e300)) tp_rec.sample_rate = 0.0;
  if (tp_rec.sample_rate > 0.0 && tp_rec.sample_rate < 1.0) tp_rec.inv_ln_keep = 1.0 / tp_rec_ln1m(tp_rec.sample_rate);
  tp_rec.sample_bytes = tp_opt.validate ? 0 : tp_opt.sample_bytes;
  tp_rec_by_bytes = tp_rec.sample_bytes != 0;
  tp_rec_drained *d = &tp_rec.drained;
  d->samples = tp_rec_map(TP_REC_BATCH_MAX * sizeof *d->samples);
  d->frees = tp_rec_map(TP_REC_BATCH_MAX * sizeof *d->frees);
  d->mmaps = tp_rec_map(TP_REC_BATCH_MAX * sizeof *d->mmaps);
  bool mapped = d->samples && d->frees && d->mmaps;
  for (int i = 0; i < 2; i++) {
    tp_rec_batch *b = &tp_rec.batches[i];
    b->jits = tp_rec_map(TP_REC_BATCH_MAX * sizeof *b->jits);
    mapped = mapped && b->jits;
  }
  if (!mapped) {
    tp_message("profiler: cannot map its buffers; not recording");
    return;
  }
  tp_rec_enter(&tp_rec_self); /* also: libunwind's pipe goes high (pipe.c) */
  bool opened = tp_rec_stacks_init() && tp_rec_writer_open();
  if (opened) tp_rec_stacks_load_libunwind();
  tp_rec_leave(&tp_rec_self);
  if (!opened) return;
  tp_rec_active = true;
  tp_rec_writer_start();
}

/* The thread that flushes at exec or exit writes and opens files, which are
 * cancellation points: a cancel pending there would end the thread holding
 * the writer's lock, and the next flush would wait for ever. */
static int tp_rec_cancel_off(void) {
  int state = PTHREAD_CANCEL_ENABLE;
  pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &state);
  return state;
}

static void tp_rec_cancel_restore(int state) { pthread_setcancelstate(state, NULL); }

void tp_rec_finish(void) {
  if (!tp_rec_active || tp_rec_in_unforked_child()) return; /* nor its leak report: the parent's blocks */
  /* An exit() from a signal handler: busy, the thread was stopped inside the
   * recorder, whose locks it may hold (the frames written so far are all the
   * trace gets); holding pool locks, no snapshot and no leak report (both
   * read the pool under its locks). */
  if (tp_rec_self.busy || !tp_rec_writer_flush_fits_stack()) return;
  bool held = tp_locks_held_here();
  int cancel = tp_rec_cancel_off();
  tp_rec_enter(&tp_rec_self);
  tp_rec_writer_flush(held ? TP_REC_FLUSH_FINAL_HELD : TP_REC_FLUSH_FINAL, NULL);
  if (tp_opt.validate && !held) tp_rec_leak_report();
  tp_rec_leave(&tp_rec_self);
  tp_rec_cancel_restore(cancel);
}

/* Before an exec replaces the program: everything so far goes to the trace
 * (no End record: the exec may fail and the program go on). */
bool tp_rec_before_exec(const char *path) {
  /* Busy: a signal handler's exec interrupted the recorder, whose locks this
   * thread may hold; the frames written so far are all the trace gets.  A
   * child that shares the parent's memory (vfork) leaves its flags alone. */
  if (!tp_rec_active || tp_rec_in_unforked_child() || tp_rec_self.busy || !tp_rec_writer_flush_fits_stack()) return false;
  int cancel = tp_rec_cancel_off();
  tp_rec_enter(&tp_rec_self);
  bool written = tp_rec_writer_flush(TP_REC_FLUSH_EXEC, path);
  tp_rec_leave(&tp_rec_self);
  tp_rec_cancel_restore(cancel);
  return written;
}

/* The program goes on, and the trace says why. */
void tp_rec_after_failed_exec(int error) {
  int cancel = tp_rec_cancel_off();
  tp_rec_enter(&tp_rec_self);
  tp_rec_writer_exec_failed(error);
  tp_rec_leave(&tp_rec_self);
  tp_rec_cancel_restore(cancel);
}

/* The forking thread is busy from prepare to the parent's or child's handler:
 * a signal handler's mmap in between would wait for the locks it holds. */
static bool tp_rec_fork_was_busy;

void tp_rec_fork_prepare(void) {
  if (!tp_rec_active) return;
  tp_rec_fork_was_busy = tp_rec_self.busy;
  if (!tp_rec_fork_was_busy) tp_rec_enter(&tp_rec_self);
  tp_rec_stacks_lock();
  tp_lock_acquire(&tp_rec.lock);
}

void tp_rec_fork_parent(void) {
  if (!tp_rec_active) return;
  tp_lock_release(&tp_rec.lock);
  tp_rec_stacks_unlock();
  if (!tp_rec_fork_was_busy) tp_rec_leave(&tp_rec_self);
}

/* The child records on its own: a new trace (opened at its first flush),
 * its own samples, a new writer thread. */
void tp_rec_fork_child(void) {
  if (!tp_rec_active) return;
  tp_lock_init(&tp_rec.lock);
  tp_rec_stacks_reinit_lock();
  /* The parent's live samples belong to the parent's trace: the child's frees
   * of them are not the child's samples. */
  if (tp_rec.live.slots) memset(tp_rec.live.slots, 0, tp_rec.live.capacity * sizeof *tp_rec.live.slots);
  tp_rec.live.count = 0;
  tp_rec_rings_after_fork_child(&tp_rec_self);
  /* The child's trace is its own process: its clock, counts and ids start here. */
  tp_rec_clock_after_fork();
  tp_rec.samples = tp_rec.dropped = 0;
  /* The forking thread is the child's main thread: its Thread record says so. */
  if (tp_rec_self.id) tp_rec_thread_at(tp_rec_self.id - 1)->tid = (uint32_t)tp_os_gettid();
  for (size_t w = 0; w < sizeof tp_rec_filter / sizeof tp_rec_filter[0]; w++) atomic_store(&tp_rec_filter[w], 0);
  for (size_t w = 0; w < sizeof tp_rec_fine_filter / sizeof tp_rec_fine_filter[0]; w++)
    atomic_store(&tp_rec_fine_filter[w], 0);
  for (int i = 0; i < 2; i++) tp_rec.batches[i].jit_count = 0;
  tp_rec_writer_after_fork_child(); /* busy since prepare */
  if (!tp_rec_fork_was_busy) tp_rec_leave(&tp_rec_self);
}
