/* tcache.c — per-thread caches: creation, flushing, thread exit and fork.
 *
 * A thread's cache holds free blocks per size class; malloc and free touch
 * only the cache (no lock, no atomic).  Caches are registered in a list so
 * that statistics can be summed and a fork child can reclaim the caches of
 * threads that do not exist in it.  At thread exit (pthread key destructor)
 * the cache goes back to the central lists; allocations made after that by
 * the same thread (other destructors) bypass the cache. */
#include <string.h>

#include "internal.h"
#include "recorder.h"

__thread tp_tcache *tp_tcache_current;
static __thread bool tp_thread_exiting;

static pthread_key_t tp_tcache_key;
static _Atomic bool tp_tcache_key_ready;
static tp_lock tp_registry_lock = TP_LOCK_INITIALIZER;
static tp_tcache *tp_registry;       /* live caches */
static tp_tcache *tp_tcache_recycled; /* structures of exited threads */

/* Counters of exited threads (and of cache-less allocations). */
static uint64_t tp_retired_allocs[TP_MAX_CLASSES], tp_retired_frees[TP_MAX_CLASSES];
static uint64_t tp_retired_requested;

void tp_tcache_flush_bin(tp_tcache *tc, uint32_t cls, uint32_t keep) {
  tp_bin *bin = &tc->bins[cls];
  if (bin->count <= keep) return;
  uint32_t give = bin->count - keep;
  void *head = bin->head;
  void **last = head;
  for (uint32_t i = 1; i < give; i++) last = last[0];
  bin->head = last[0];
  bin->count = keep;
  tp_central_return(tc->heap, cls, head, give);
}

void tp_tcache_flush_all(tp_tcache *tc) {
  for (uint32_t c = 0; c < tp_classes.count; c++) tp_tcache_flush_bin(tc, c, 0);
}

/* A bin's first max: classes a thread rarely uses do not hoard blocks. */
static uint32_t tp_bin_start_max(uint32_t cls) {
  uint32_t cap = tp_classes.classes[cls].cache_max, start = cap / 16;
  return start ? start : cap ? 1 : 0;
}

/* Idle bins go back (jemalloc's tcache GC, by time): a bin no allocation took
 * from since the last pass is emptied and starts small again.  Blocks a thread
 * freed and never reuses (node's main thread after start-up: 500 KiB in 30
 * classes) otherwise pin their slabs' pages for the life of the thread; a
 * class in use is never touched.  The pass runs on the thread's slow paths
 * only, at most every TP_TCACHE_SCAVENGE_MS: a bin goes at the second pass
 * after its last allocation, and a thread that takes no slow path (parked,
 * or served by its bins alone) keeps its cache. */
#define TP_TCACHE_SCAVENGE_MS 100

void tp_tcache_scavenge(tp_tcache *tc) {
  uint64_t now = tp_os_now_ms();
  if (now - tc->scavenged_ms < TP_TCACHE_SCAVENGE_MS) return;
  tc->scavenged_ms = now;
  for (uint32_t c = 0; c < tp_classes.count; c++) {
    tp_bin *bin = &tc->bins[c];
    if (bin->count && bin->allocs == bin->allocs_at_scavenge) {
      tp_tcache_flush_bin(tc, c, 0);
      bin->max = tp_bin_start_max(c);
    }
    bin->allocs_at_scavenge = bin->allocs;
  }
}

void tp_tcache_overflow(tp_tcache *tc, uint32_t cls) {
  tp_tcache_flush_bin(tc, cls, tc->bins[cls].max / 2);
  tp_tcache_scavenge(tc);
}

/* Moves a cache's counters to the retired totals, the process's and its
 * heap's; registry lock held. */
static void tp_tcache_retire_stats(tp_tcache *tc) {
  tp_heap *h = tc->heap;
  /* Atomic: blocks freed past the caches are counted here without the lock. */
  for (uint32_t c = 0; c < TP_MAX_CLASSES; c++) {
    __atomic_fetch_add(&tp_retired_allocs[c], tc->bins[c].allocs, __ATOMIC_RELAXED);
    __atomic_fetch_add(&tp_retired_frees[c], tc->bins[c].frees, __ATOMIC_RELAXED);
    __atomic_fetch_add(&h->retired_allocs[c], tc->bins[c].allocs, __ATOMIC_RELAXED);
    __atomic_fetch_add(&h->retired_frees[c], tc->bins[c].frees, __ATOMIC_RELAXED);
  }
  uint64_t requested = 0;
  for (uint32_t c = 0; c < TP_MAX_CLASSES; c++) requested += tc->bins[c].requested;
  __atomic_fetch_add(&tp_retired_requested, requested, __ATOMIC_RELAXED);
  __atomic_fetch_add(&h->retired_requested, requested, __ATOMIC_RELAXED);
}

/* The thread changes tenant: its blocks go back to the old heap, its counts
 * stay with it, and the cache serves the new heap from empty bins. */
void tp_tcache_switch_heap(tp_tcache *tc, tp_heap *h) {
  tp_tcache_flush_all(tc);
  tp_lock_acquire(&tp_registry_lock);
  tp_tcache_retire_stats(tc);
  for (uint32_t c = 0; c < TP_MAX_CLASSES; c++)
    tc->bins[c].allocs = tc->bins[c].frees = tc->bins[c].requested = tc->bins[c].allocs_at_scavenge = 0;
  tc->heap = h;
  tp_lock_release(&tp_registry_lock);
}

static void tp_registry_unlink(tp_tcache *tc) {
  if (tc->prev) tc->prev->next = tc->next;
  else tp_registry = tc->next;
  if (tc->next) tc->next->prev = tc->prev;
  tc->next = tp_tcache_recycled;
  tp_tcache_recycled = tc;
}

static void tp_tcache_thread_exit(void *arg) {
  tp_tcache *tc = arg;
  if (tp_rec_active) tp_rec_thread_exit();
  tp_tcache_flush_all(tc);
  tp_tcache_current = NULL;
  tp_thread_exiting = true;
  tp_lock_acquire(&tp_registry_lock);
  tp_tcache_retire_stats(tc);
  tp_registry_unlink(tc);
  tp_lock_release(&tp_registry_lock);
}

/* Cache structures come from the OS in 64 KiB batches; they are recycled. */
static tp_tcache *tp_tcache_allocate(void) {
  static tp_tcache first_cache; /* the first thread's: no system call at start-up */
  static bool first_used;
  if (!first_used) {
    first_used = true;
    return &first_cache;
  }
  if (!tp_tcache_recycled) {
    size_t chunk = 64u << 10, n = chunk / sizeof(tp_tcache);
    tp_tcache *fresh = tp_os_map(chunk);
    if (!fresh) return NULL;
    for (size_t i = 0; i < n; i++) {
      fresh[i].next = tp_tcache_recycled;
      tp_tcache_recycled = &fresh[i];
    }
  }
  tp_tcache *tc = tp_tcache_recycled;
  tp_tcache_recycled = tc->next;
  return tc;
}

tp_tcache *tp_tcache_create(void) {
  tp_ensure_init();
  if (tp_thread_exiting) return NULL;
  /* The heap first (the tenant rules may wait for the tenant lock, which a
   * fork holds): a cache is never in the registry without one, where a fork
   * child would retire its counts into a NULL heap. */
  tp_heap *heap = tp_tenant_thread_heap();
  tp_lock_acquire(&tp_registry_lock);
  tp_tcache *tc = tp_tcache_allocate();
  if (tc) {
    memset(tc, 0, sizeof *tc);
    tc->heap = heap;
    tc->next = tp_registry;
    if (tp_registry) tp_registry->prev = tc;
    tp_registry = tc;
  }
  tp_lock_release(&tp_registry_lock);
  if (!tc) return NULL;
  tc->tid = tp_os_gettid();
  tc->scavenged_ms = tp_os_now_ms();
  for (uint32_t c = 0; c < tp_classes.count; c++) tc->bins[c].max = tp_bin_start_max(c);
  tp_tcache_current = tc;
  if (atomic_load_explicit(&tp_tcache_key_ready, memory_order_acquire))
    pthread_setspecific(tp_tcache_key, tc);
  return tc;
}

/* Second phase of initialisation: may allocate, so it runs after the pool is
 * usable.  The initialising thread's cache, if any, gets its destructor now. */
void tp_tcache_init_key(void) {
  if (pthread_key_create(&tp_tcache_key, tp_tcache_thread_exit) != 0) return;
  atomic_store_explicit(&tp_tcache_key_ready, true, memory_order_release);
  if (tp_tcache_current) pthread_setspecific(tp_tcache_key, tp_tcache_current);
}

/* An allocation by a thread without a cache (exiting): counted for the
 * process and for the heap that served it, as its free will be. */
void tp_tcache_count_uncached(tp_heap *h, uint32_t cls, size_t requested) {
  __atomic_fetch_add(&tp_retired_allocs[cls], 1, __ATOMIC_RELAXED);
  __atomic_fetch_add(&tp_retired_requested, requested, __ATOMIC_RELAXED);
  __atomic_fetch_add(&h->retired_allocs[cls], 1, __ATOMIC_RELAXED);
  __atomic_fetch_add(&h->retired_requested, requested, __ATOMIC_RELAXED);
}

/* A block freed past the caches (another tenant's, or by an exiting thread):
 * counted for the process and for the heap that owns it. */
void tp_tcache_count_remote_free(tp_heap *h, uint32_t cls) {
  __atomic_fetch_add(&tp_retired_frees[cls], 1, __ATOMIC_RELAXED);
  __atomic_fetch_add(&h->retired_frees[cls], 1, __ATOMIC_RELAXED);
}

void tp_tcache_stats_add(uint64_t *class_allocs, uint64_t *class_frees, uint64_t *requested) {
  tp_lock_acquire(&tp_registry_lock);
  for (uint32_t c = 0; c < TP_MAX_CLASSES; c++) {
    class_allocs[c] += __atomic_load_n(&tp_retired_allocs[c], __ATOMIC_RELAXED);
    class_frees[c] += __atomic_load_n(&tp_retired_frees[c], __ATOMIC_RELAXED);
  }
  *requested += __atomic_load_n(&tp_retired_requested, __ATOMIC_RELAXED);
  for (tp_tcache *tc = tp_registry; tc; tc = tc->next) {
    for (uint32_t c = 0; c < TP_MAX_CLASSES; c++) {
      class_allocs[c] += __atomic_load_n(&tc->bins[c].allocs, __ATOMIC_RELAXED);
      class_frees[c] += __atomic_load_n(&tc->bins[c].frees, __ATOMIC_RELAXED);
    }
    for (uint32_t c = 0; c < TP_MAX_CLASSES; c++) *requested += __atomic_load_n(&tc->bins[c].requested, __ATOMIC_RELAXED);
  }
  tp_lock_release(&tp_registry_lock);
}

/* The slab counts of one heap: its retired totals and the caches serving it. */
void tp_tcache_stats_add_heap(tp_heap *h, uint64_t *class_allocs, uint64_t *class_frees, uint64_t *requested) {
  tp_lock_acquire(&tp_registry_lock);
  for (uint32_t c = 0; c < TP_MAX_CLASSES; c++) {
    class_allocs[c] += __atomic_load_n(&h->retired_allocs[c], __ATOMIC_RELAXED);
    class_frees[c] += __atomic_load_n(&h->retired_frees[c], __ATOMIC_RELAXED);
  }
  *requested += __atomic_load_n(&h->retired_requested, __ATOMIC_RELAXED);
  for (tp_tcache *tc = tp_registry; tc; tc = tc->next) {
    if (tc->heap != h) continue;
    for (uint32_t c = 0; c < TP_MAX_CLASSES; c++) {
      class_allocs[c] += __atomic_load_n(&tc->bins[c].allocs, __ATOMIC_RELAXED);
      class_frees[c] += __atomic_load_n(&tc->bins[c].frees, __ATOMIC_RELAXED);
    }
    for (uint32_t c = 0; c < TP_MAX_CLASSES; c++) *requested += __atomic_load_n(&tc->bins[c].requested, __ATOMIC_RELAXED);
  }
  tp_lock_release(&tp_registry_lock);
}

/* Blocks sitting in thread caches, in bytes, and the number of caches. */
uint64_t tp_tcache_cached_bytes(uint32_t *caches) {
  uint64_t bytes = 0;
  *caches = 0;
  tp_lock_acquire(&tp_registry_lock);
  for (tp_tcache *tc = tp_registry; tc; tc = tc->next, (*caches)++)
    for (uint32_t c = 0; c < tp_classes.count; c++)
      bytes += (uint64_t)__atomic_load_n(&tc->bins[c].count, __ATOMIC_RELAXED) * tp_classes.classes[c].size;
  tp_lock_release(&tp_registry_lock);
  return bytes;
}

void tp_tcache_registry_lock(void) { tp_lock_acquire(&tp_registry_lock); }
void tp_tcache_registry_unlock(void) { tp_lock_release(&tp_registry_lock); }

/* How many blocks at the head of an orphan's bin are sound: free blocks of
 * this class and heap, each marked free.  The child's copy of a bin another
 * thread was pushing to or popping from may be torn (fork copies the pages
 * while the other threads run): the rest is abandoned, never walked. */
static uint32_t tp_orphan_bin_sound(const tp_tcache *tc, uint32_t cls) {
  uint32_t n = 0;
  for (void **b = tc->bins[cls].head; b && n < tc->bins[cls].count; b = b[0], n++) {
    tp_ptr_info info = tp_classify(b); /* a free slab block reads as a double free */
    if (info.kind != TP_PTR_DOUBLE_FREE || !info.slab || info.seg->heap != tc->heap ||
        info.slab->class_idx != cls)
      break;
  }
  return n;
}

/* An orphan's sound blocks go back to the central lists. */
static void tp_orphan_reclaim(tp_tcache *tc) {
  for (uint32_t c = 0; c < tp_classes.count; c++) {
    uint32_t n = tp_orphan_bin_sound(tc, c);
    tc->bins[c].count = n;
    if (n) {
      void **last = tc->bins[c].head;
      for (uint32_t i = 1; i < n; i++) last = last[0];
      last[0] = NULL;
      tp_tcache_flush_bin(tc, c, 0);
    }
  }
}

/* In a fork child only the forking thread exists: the other threads' caches
 * would never be used again, so their blocks go back to the central lists. */
void tp_tcache_after_fork_child(void) {
  tp_tcache *orphans = NULL;
  tp_lock_acquire(&tp_registry_lock);
  for (tp_tcache *tc = tp_registry, *next; tc; tc = next) {
    next = tc->next;
    if (tc == tp_tcache_current) continue;
    if (tc->prev) tc->prev->next = tc->next;
    else tp_registry = tc->next;
    if (tc->next) tc->next->prev = tc->prev;
    tp_tcache_retire_stats(tc);
    tc->next = orphans;
    orphans = tc;
  }
  tp_lock_release(&tp_registry_lock);
  while (orphans) {
    tp_tcache *tc = orphans;
    orphans = tc->next;
    tp_orphan_reclaim(tc);
    tp_lock_acquire(&tp_registry_lock);
    tc->next = tp_tcache_recycled;
    tp_tcache_recycled = tc;
    tp_lock_release(&tp_registry_lock);
  }
  if (tp_tcache_current) tp_tcache_current->tid = tp_os_gettid();
}
