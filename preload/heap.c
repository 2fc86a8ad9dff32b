/* heap.c — the heap object: buddy-tier allocations, maintenance (deferred
 * coalescing, memory return) and the locks a heap owns.
 *
 * Memory return.  Utilisation = live / resident, where live counts user bytes
 * in buddy blocks and slab blocks out of the central lists, and resident
 * counts the pages handed to the buddy minus those known to be released.
 *  - A dip: utilisation below release_threshold for the release delay releases
 *    free blocks until it reaches the threshold plus a margin.  The margin and
 *    the delay are the hysteresis that keeps steady churn from releasing and
 *    refaulting.
 *  - A collapse: utilisation below half the threshold with 2 MiB or more free
 *    (a phase of the program has ended) is released at once, as glibc trims
 *    at free, at most once per release delay: a runtime's compiler threads
 *    free their work memory and go idle, and nothing may run the pool again
 *    before the program's own memory grows past the peak.
 *  - Purge: free blocks of 32 KiB or more that nobody reused for the release
 *    delay go back whatever the utilisation (mimalloc's purge delay, in
 *    effect): churn reuses its blocks long before, since resident blocks are
 *    taken first, and idle memory is what makes peak RSS.  Before a large
 *    mapping is faulted in, free blocks go at once, whatever their age; so
 *    before the host maps memory of its own, unless that was undone lately.
 * The release delay adapts (h->release_delay_ms, from release_delay_ms): when
 * most of what the pool released was faulted in again before its next
 * release, it grows eightfold (a tenant churning bursts at its limit: each
 * release would cost a refault of everything, and a TLB shootdown per
 * madvise on every CPU the process runs on), up to 10 s, jemalloc's decay
 * time (a Python job that frees and rebuilds 100 MiB every 300 ms refaults
 * it once per 10 s, not once a second); otherwise it drifts back down.
 * A heap whose budget refused it memory within the release delay releases
 * nothing: it is using all it may, and what it gave back would be faulted
 * in again by its next allocations.
 * All of that is `release = eager`.  `idle` keeps only what depends on time
 * (a collapse waits the delay as a dip does; nothing goes before a mapping):
 * where a fault costs 10 µs (a VM) and a program rebuilds what it freed, the
 * early releases cost more than the memory is worth.  `off` releases nothing
 * (a capped heap still sheds for its budget: tp_heap_charge). */
#include <errno.h>
#include <string.h>

#include "internal.h"

#define TP_RELEASE_MARGIN 0.15       /* release until utilisation >= threshold + this */
#define TP_RELEASE_MIN_RESIDENT (4u << 20) /* heaps smaller than this keep their pages */
#define TP_COLLAPSE_MIN_FREE (2u << 20)    /* free bytes that make a collapse worth a release */
#define TP_PURGE_MIN_ORDER 3         /* idle free blocks of 32 KiB and more are purged */
#define TP_RELEASE_DELAY_CAP 10000   /* ms: the adaptive delay stops growing here */
#define TP_REGRET_MIN_PAGES 64       /* retaken pages below this (256 KiB) are no regret */

tp_heap tp_main_heap;

void tp_heap_init(tp_heap *h, const char *name) {
  memset(h, 0, sizeof *h);
  h->name = name;
  tp_lock_init(&h->buddy_lock);
  for (uint32_t c = 0; c < TP_MAX_CLASSES; c++) tp_lock_init(&h->central[c].lock);
  h->last_coalesce_ms = tp_os_now_ms(); /* last_release_ms = 0: a collapse may be released at once */
  h->release_delay_ms = tp_opt.release_delay_ms;
  h->buddy_max = tp_opt.buddy_max;
}

uint64_t tp_heap_resident_bytes(tp_heap *h) {
  uint64_t released = h->released_pages + atomic_load_explicit(&h->slab_released_pages, memory_order_relaxed);
  return (h->frontier_pages - released) << TP_PAGE_SHIFT;
}

/* Called before each release: judges the releases since the last call by how
 * much of them was taken back.  Returns whether releasing now is still due.
 * A window of fewer than TP_REGRET_MIN_PAGES is not judged yet: the small
 * idle purges between two rounds of a batch job would each forgive a little
 * of the regret its big releases earned, and soon all of it. */
static bool tp_heap_adapt_release_delay(tp_heap *h, uint64_t now, uint64_t since) {
  if (h->released_window_pages < TP_REGRET_MIN_PAGES) return now - since >= h->release_delay_ms;
  uint64_t base = tp_opt.release_delay_ms, cap = base > TP_RELEASE_DELAY_CAP ? base : TP_RELEASE_DELAY_CAP;
  if (h->retaken_pages >= TP_REGRET_MIN_PAGES && h->retaken_pages * 2 >= h->released_window_pages)
    h->release_delay_ms = h->release_delay_ms * 8 > cap ? cap : h->release_delay_ms * 8;
  else
    h->release_delay_ms -= (h->release_delay_ms - base) / 4;
  /* Either way the window starts afresh: retakes of releases judged already
   * would make the next small release look regretted. */
  h->released_window_pages = h->retaken_pages = 0;
  return now - since >= h->release_delay_ms;
}

/* Returns whether it released. */
static bool tp_heap_consider_release(tp_heap *h, uint64_t now) {
  if (tp_release_policy == TP_RELEASE_OFF) return false;
  uint64_t resident = tp_heap_resident_bytes(h);
  uint64_t live = h->buddy_live_bytes + atomic_load_explicit(&h->slab_out_bytes, memory_order_relaxed);
  double threshold = tp_opt.release_threshold;
  if (resident < TP_RELEASE_MIN_RESIDENT || (double)live >= threshold * (double)resident) {
    h->below_threshold_since_ms = 0;
    return false;
  }
  /* A collapse is released at once; a dip must last the release delay. */
  uint64_t free_resident = resident > live ? resident - live : 0;
  bool collapse = tp_release_policy == TP_RELEASE_EAGER && (double)live < threshold * 0.5 * (double)resident &&
                  free_resident >= TP_COLLAPSE_MIN_FREE &&
                  now - h->last_release_ms >= h->release_delay_ms;
  if (h->below_threshold_since_ms == 0) h->below_threshold_since_ms = now;
  if (!collapse && (now - h->below_threshold_since_ms < h->release_delay_ms ||
                    now - h->last_release_ms < h->release_delay_ms))
    return false;
  if (!tp_heap_adapt_release_delay(h, now, h->last_release_ms)) return false;
  double goal = threshold + TP_RELEASE_MARGIN;
  if (goal > 1.0) goal = 1.0;
  uint64_t target_pages = goal > 0 ? (uint64_t)((double)live / goal) >> TP_PAGE_SHIFT : 0;
  if (h->frees_since_coalesce) tp_buddy_coalesce(h);
  tp_buddy_release_free(h, target_pages);
  h->last_release_ms = now;
  h->below_threshold_since_ms = 0;
  return true;
}

/* The heap's budget refused it memory within the release delay. */
static bool tp_heap_at_limit(tp_heap *h, uint64_t now) {
  uint64_t hits = atomic_load_explicit(&h->budget.limit_hits, memory_order_relaxed);
  if (hits != h->limit_hits_seen) {
    h->limit_hits_seen = hits;
    h->limit_hit_ms = now;
  }
  return hits && now - h->limit_hit_ms < h->release_delay_ms;
}

/* Free blocks of 32 KiB and more idle for idle_ms go back, merged first
 * (fewer, larger madvise calls).  Returns the pages released. */
static uint64_t tp_heap_purge(tp_heap *h, uint64_t now, uint64_t idle_ms, bool host, size_t most) {
  if (h->frees_since_coalesce) tp_buddy_coalesce(h);
  return tp_buddy_purge(h, now, idle_ms, TP_PURGE_MIN_ORDER, host, most) >> TP_PAGE_SHIFT;
}

void tp_heap_maintain(tp_heap *h, uint64_t now) {
  /* Freed large mappings expire here too: without the background thread,
   * only the next large free looked at them, and a program done with its big
   * buffers kept up to large_cache_max of dead pages for good. */
  tp_large_maintain(now);
  if (h->frees_since_coalesce && now - h->last_coalesce_ms >= tp_opt.coalesce_delay_ms) {
    tp_buddy_coalesce(h);
    h->last_coalesce_ms = now;
  }
  if (tp_heap_at_limit(h, now)) return;
  /* The purge waits for a pass of its own: judged now, a release made in this
   * pass would have had no time to be taken back, and its regret be lost. */
  if (tp_heap_consider_release(h, now)) return;
  if (h->release_delay_ms < tp_opt.release_delay_ms) h->release_delay_ms = tp_opt.release_delay_ms;
  if (now - h->last_purge_ms >= h->release_delay_ms && tp_heap_adapt_release_delay(h, now, h->last_purge_ms)) {
    tp_central_retire_spares(h, now, h->release_delay_ms); /* to the buddy, not the OS */
    if (tp_release_policy != TP_RELEASE_OFF) {
      tp_heap_purge(h, now, h->release_delay_ms, false, SIZE_MAX);
      tp_central_purge_blocks(h, now, h->release_delay_ms);
    }
    h->last_purge_ms = now;
  }
}

/* Maintenance runs on buddy operations, at most once a millisecond (the
 * clock is the vDSO's coarse one: no system call). */
void tp_heap_tick(tp_heap *h) {
  uint64_t now = tp_os_now_ms();
  if (now != h->last_maintain_ms) {
    h->last_maintain_ms = now;
    tp_heap_maintain(h, now);
  }
}

/* The same from the slab tier's central lists, which see most of the
 * traffic: without them a heap whose buddy is quiet would never release.
 * Skipped when another thread holds the heap. */
void tp_heap_tick_try(tp_heap *h) {
  if (tp_os_now_ms() == h->last_maintain_ms || !tp_lock_try(&h->buddy_lock)) return;
  tp_heap_tick(h);
  tp_lock_release(&h->buddy_lock);
}

/* A large mapping of `growth` bytes is about to be faulted in: as many bytes
 * of the heap's free blocks of 32 KiB and more go back first, so the process
 * does not hold both (skipped when another thread holds the heap).  As many,
 * not all: the rest may be what the program's next allocations take. */
void tp_heap_purge_before_growth(tp_heap *h, size_t growth) {
  if (tp_release_policy != TP_RELEASE_EAGER || !tp_lock_try(&h->buddy_lock)) return;
  tp_heap_purge(h, tp_os_now_ms(), 0, false, growth); /* the clock read under the lock: no free is newer */
  tp_lock_release(&h->buddy_lock);
}

/* Whether this host growth should purge h: not while recent ones were
 * regretted.  A window of purges is a regret as soon as a quarter of its
 * pages has been taken again, and judged kept only once TP_HOST_JUDGE_MS
 * old: a pool takes released pages back only when its resident free ones
 * are used up, many growths later (Python maps an arena every few
 * milliseconds while it rebuilds a list it dropped).  A regret makes 1, 8,
 * then 64 growths skip for each purge; a window kept divides that by 8. */
#define TP_HOST_JUDGE_MS 200
#define TP_HOST_PURGE_BACKOFF_MAX 64
static bool tp_heap_host_purge_due(tp_heap *h, uint64_t now) {
  bool regret = h->host_retaken_pages * 4 >= h->host_purge_pages;
  if (h->host_purge_pages >= TP_REGRET_MIN_PAGES && (regret || now - h->host_window_ms >= TP_HOST_JUDGE_MS)) {
    uint32_t backoff = h->host_purge_backoff;
    if (regret) backoff = backoff == 0 ? 1 : backoff * 8 > TP_HOST_PURGE_BACKOFF_MAX ? TP_HOST_PURGE_BACKOFF_MAX : backoff * 8;
    else backoff /= 8;
    h->host_purge_backoff = h->host_purge_skip = backoff;
    h->host_purge_pages = 0; /* the next purge starts a window */
  }
  if (h->host_purge_skip == 0) {
    h->host_purge_skip = h->host_purge_backoff;
    return true;
  }
  h->host_purge_skip--;
  return false;
}

/* The host program is about to fault in `growth` bytes of its own (a Wasm
 * memory grows, a runtime heap maps pages): as before a large mapping of
 * ours, as many bytes of free blocks go back first, whatever their age (a
 * runtime's compiler threads free their work memory just before its heap
 * grows: node's peak RSS fell by about 1 MiB), unless that was regretted lately; then
 * maintenance runs — a program that has stopped calling the allocator would
 * otherwise never run it.  At most once per TP_HOST_GROWTH_MS; heaps busy in
 * another thread are skipped. */
#define TP_HOST_GROWTH_MS 5
void tp_heap_host_grows(size_t growth) {
  static _Atomic uint64_t last_ms;
  if (tp_budget_busy_here()) return; /* a signal handler's mapping, amid a budget update */
  uint64_t now = tp_os_now_ms(), last = atomic_load_explicit(&last_ms, memory_order_relaxed);
  if (now - last < TP_HOST_GROWTH_MS || !atomic_compare_exchange_strong(&last_ms, &last, now)) return;
  for (uint32_t i = 0; i < tp_tenant_count(); i++) {
    tp_heap *h = tp_tenant_heap(i);
    if (!tp_lock_try(&h->buddy_lock)) continue;
    if (tp_release_policy == TP_RELEASE_EAGER && tp_heap_host_purge_due(h, now)) {
      uint64_t pages = tp_heap_purge(h, tp_os_now_ms(), 0, true, growth);
      if (pages && h->host_purge_pages == 0) { /* a window starts with its first purge */
        h->host_window_ms = now;
        h->host_retaken_pages = 0;
      }
      h->host_purge_pages += pages;
    }
    tp_heap_tick(h);
    tp_lock_release(&h->buddy_lock);
  }
}

#define TP_ZERO_BY_OS_MIN (1u << 20) /* calloc: madvise rather than memset from here */

void *tp_heap_alloc_pages(tp_heap *h, size_t size, size_t align, size_t requested, bool want_zero,
                          bool *zeroed) {
  uint32_t pages = (uint32_t)(size >> TP_PAGE_SHIFT);
  uint32_t align_order = align > TP_PAGE_SIZE ? (uint32_t)__builtin_ctzl(align >> TP_PAGE_SHIFT) : 0;
  tp_lock_acquire(&h->buddy_lock);
  void *p = tp_buddy_take(h, pages, align_order, zeroed);
  if (p) {
    tp_segment *seg = tp_segment_of(p);
    seg->page_map[tp_page_index(seg, p)] = TP_PAGE_ENTRY(TP_PAGE_BUDDY, pages);
    h->buddy_allocs++;
    h->buddy_bytes_requested += requested;
    h->buddy_bytes_allocated += size;
    h->buddy_live_bytes += size;
    if (h->buddy_live_bytes > h->buddy_peak_bytes) h->buddy_peak_bytes = h->buddy_live_bytes;
  }
  tp_heap_tick(h);
  tp_lock_release(&h->buddy_lock);
  /* Dropping the pages zeroes them and leaves untouched ones unfaulted. */
  if (p && want_zero && !*zeroed && size >= TP_ZERO_BY_OS_MIN) {
    tp_os_release(p, size);
    *zeroed = true;
  }
  return p;
}

/* `first` is the page of p; the caller checked that p is a page start. */
void tp_heap_free_pages(tp_heap *h, tp_segment *seg, uint32_t first, void *p, const char *call) {
  tp_lock_acquire(&h->buddy_lock);
  uint32_t entry = seg->page_map[first];
  if (TP_PAGE_KIND(entry) != TP_PAGE_BUDDY) { /* lost a race with another free of p */
    tp_lock_release(&h->buddy_lock);
    tp_fatal("%s(): double free %p", call, p);
  }
  uint32_t pages = TP_PAGE_DATA(entry);
  seg->page_map[first] = TP_PAGE_ENTRY(TP_PAGE_INNER, 0);
  tp_buddy_give(h, seg, first, pages);
  h->buddy_frees++;
  h->buddy_live_bytes -= (uint64_t)pages << TP_PAGE_SHIFT;
  tp_heap_tick(h);
  tp_lock_release(&h->buddy_lock);
}

/* Shrinks a buddy block in place by giving its tail pages back. */
bool tp_heap_shrink_pages(tp_heap *h, tp_segment *seg, uint32_t first, size_t new_size) {
  uint32_t new_pages = (uint32_t)(new_size >> TP_PAGE_SHIFT);
  bool done = false;
  tp_lock_acquire(&h->buddy_lock);
  uint32_t entry = seg->page_map[first];
  if (TP_PAGE_KIND(entry) == TP_PAGE_BUDDY && new_pages && new_pages < TP_PAGE_DATA(entry)) {
    uint32_t old_pages = TP_PAGE_DATA(entry);
    seg->page_map[first] = TP_PAGE_ENTRY(TP_PAGE_BUDDY, new_pages);
    tp_buddy_give(h, seg, first + new_pages, old_pages - new_pages);
    h->buddy_live_bytes -= (uint64_t)(old_pages - new_pages) << TP_PAGE_SHIFT;
    done = true;
  }
  tp_lock_release(&h->buddy_lock);
  return done;
}

/* Whether a refused charge may give free pages back now: once a release
 * delay (a clock read before the lock may be older than the last shed). */
static bool tp_heap_shed_due(tp_heap *h, uint64_t now) {
  uint64_t last = __atomic_load_n(&h->last_shed_ms, __ATOMIC_RELAXED);
  return now >= last && now - last >= h->release_delay_ms;
}

/* Fresh pages for h.  A capped heap is charged for its free resident pages
 * too, so when its budget has no room, as many as the request needs go back
 * first (the largest free blocks) and the charge is asked again: refused
 * (on_limit) only when the heap has no room even then.  Once a release delay
 * at most, a delay that grows as the regular releases' does when what went
 * back is faulted in again, and no more than the request: a tenant that
 * lives at its limit would otherwise trade every refusal for madvise calls
 * and page faults, and each madvise interrupts the other CPUs running the
 * process (a TLB shootdown) — giving back all its free pages at each refusal,
 * every 10 ms, took a quiet neighbour's p99 malloc latency from 0.96x to
 * 1.79x its solo p99 (scripts/bench --only noisy, 5 rounds). */
bool tp_heap_charge(tp_heap *h, uint64_t bytes, bool buddy_locked) {
  if (tp_budget_charge_optional(h, bytes)) return true;
  uint64_t now = tp_os_now_ms();
  if (h->budget.capped && tp_os_can_release() && tp_heap_shed_due(h, now)) {
    if (!buddy_locked) {
      tp_central_release_spares(h); /* empty slabs first: central locks come before the buddy lock */
      tp_lock_acquire(&h->buddy_lock);
    }
    uint64_t last = __atomic_load_n(&h->last_shed_ms, __ATOMIC_RELAXED);
    if (tp_heap_shed_due(h, now) && h->free_pages > h->released_pages &&
        tp_heap_adapt_release_delay(h, now, last)) {
      __atomic_store_n(&h->last_shed_ms, now, __ATOMIC_RELAXED);
      uint64_t resident = h->frontier_pages - h->released_pages, in_use = h->frontier_pages - h->free_pages;
      uint64_t need = (bytes + TP_PAGE_SIZE - 1) >> TP_PAGE_SHIFT;
      tp_buddy_release_free(h, resident > in_use + need ? resident - need : in_use);
    }
    if (!buddy_locked) tp_lock_release(&h->buddy_lock);
  }
  return tp_budget_charge(h, bytes);
}

/* Grows a buddy block in place when the pages after it are free. */
bool tp_heap_grow_pages(tp_heap *h, tp_segment *seg, uint32_t first, size_t new_size) {
  uint32_t new_pages = (uint32_t)(new_size >> TP_PAGE_SHIFT);
  bool done = false;
  tp_lock_acquire(&h->buddy_lock);
  uint32_t entry = seg->page_map[first];
  uint32_t pages = TP_PAGE_DATA(entry);
  if (TP_PAGE_KIND(entry) == TP_PAGE_BUDDY && new_pages > pages &&
      tp_buddy_extend(h, seg, first, pages, new_pages)) {
    seg->page_map[first] = TP_PAGE_ENTRY(TP_PAGE_BUDDY, new_pages);
    uint64_t added = (uint64_t)(new_pages - pages) << TP_PAGE_SHIFT;
    h->buddy_live_bytes += added;
    h->buddy_bytes_allocated += added;
    h->buddy_bytes_requested += added;
    if (h->buddy_live_bytes > h->buddy_peak_bytes) h->buddy_peak_bytes = h->buddy_live_bytes;
    done = true;
  }
  tp_lock_release(&h->buddy_lock);
  return done;
}

/* A buddy block grows past buddy_max (a vector doubling): its pages move
 * into a mapping of their own with mremap, so nothing is copied or faulted
 * again (glibc's mmapped chunks grow the same way).  The block's range in
 * the segment stays mapped, empty, and goes back to the buddy as fresh.
 * Returns the new block (new_size bytes) or NULL: the caller copies then
 * (a budget with no room for the growth is left to that copy to refuse). */
void *tp_heap_move_out(tp_heap *h, tp_segment *seg, uint32_t first, size_t new_size) {
  void *moved = NULL;
  uint64_t extra = 0;
  tp_lock_acquire(&h->buddy_lock);
  uint32_t entry = seg->page_map[first];
  /* Only the growth is charged: the block's pages take their charge with them
   * (out of pool_charged, so that giving their range back fresh does not
   * uncharge them again). */
  if (TP_PAGE_KIND(entry) == TP_PAGE_BUDDY && ((size_t)TP_PAGE_DATA(entry) << TP_PAGE_SHIFT) < new_size &&
      tp_budget_charge_optional(h, extra = new_size - ((size_t)TP_PAGE_DATA(entry) << TP_PAGE_SHIFT))) {
    uint32_t pages = TP_PAGE_DATA(entry);
    size_t size = (size_t)pages << TP_PAGE_SHIFT;
    void *p = tp_page_address(seg, first);
    void *q = tp_os_move_pages(p, size);
    if (q) moved = tp_os_remap(q, size, new_size);
    if (q && !moved && !tp_os_move_pages_to(q, size, p)) /* no room to grow: put the pages back */
      tp_fatal("realloc(): cannot move the block at %p back", p);
    if (moved) {
      seg->page_map[first] = TP_PAGE_ENTRY(TP_PAGE_INNER, 0);
      h->budget.pool_charged -= size;
      tp_buddy_give_fresh(h, seg, first, pages);
      h->buddy_frees++;
      h->buddy_live_bytes -= size;
      tp_heap_tick(h);
    } else {
      tp_budget_uncharge(h, extra);
    }
  }
  tp_lock_release(&h->buddy_lock);
  return moved;
}

size_t tp_heap_release_all(tp_heap *h) {
  size_t released = tp_central_release_spares(h);
  tp_lock_acquire(&h->buddy_lock);
  tp_buddy_coalesce(h);
  h->last_coalesce_ms = tp_os_now_ms();
  released += tp_buddy_release_free(h, 0);
  released += tp_central_purge_blocks(h, h->last_coalesce_ms, 0);
  h->last_release_ms = h->last_coalesce_ms;
  tp_lock_release(&h->buddy_lock);
  return released;
}

/* mincore's answers for a window of a segment's pages, refilled as a walk in
 * page order moves on: on the stack, as two heaps' walks (each under its own
 * buddy lock) may run at once. */
#define TP_RESIDENCY_WINDOW 512
typedef struct tp_residency_window {
  unsigned char bits[TP_RESIDENCY_WINDOW];
  uint32_t first, count; /* pages [first, first + count) of the segment */
} tp_residency_window;

static bool tp_page_resident(tp_segment *seg, uint32_t page, tp_residency_window *w) {
  if (page - w->first >= w->count) {
    uint32_t count = seg->frontier - page < TP_RESIDENCY_WINDOW ? seg->frontier - page : TP_RESIDENCY_WINDOW;
    w->first = page;
    w->count = count;
    if (!tp_os_mincore(tp_page_address(seg, page), (size_t)count << TP_PAGE_SHIFT, w->bits))
      memset(w->bits, 0, count); /* unknown: counted as not resident */
  }
  return w->bits[page - w->first] & 1;
}

/* Measures which of the heap's pages are really resident (mincore), by what
 * holds them: out[0] headers, [1] slabs, [2] buddy blocks, [3] free blocks. */
void tp_heap_residency(tp_heap *h, uint64_t out[4]) {
  tp_lock_acquire(&h->buddy_lock);
  for (tp_segment *seg = h->segments; seg; seg = seg->next) {
    tp_residency_window window = {.count = 0};
    for (uint32_t page = 0; page < seg->frontier;) {
      uint32_t entry = seg->page_map[page], span, slot;
      switch (TP_PAGE_KIND(entry)) {
        case TP_PAGE_HEADER: span = 1, slot = 0; break;
        case TP_PAGE_SLAB: span = seg->spans[TP_SLAB_SLOT(entry)].pages, slot = 1; break;
        case TP_PAGE_BUDDY: span = TP_PAGE_DATA(entry), slot = 2; break;
        case TP_PAGE_FREE: span = 1u << (TP_PAGE_DATA(entry) & TP_FREE_ORDER_MASK), slot = 3; break;
        default: span = 1, slot = 0; break; /* cannot happen: every page is covered */
      }
      for (uint32_t i = 0; i < span && page + i < seg->frontier; i++)
        out[slot] += (uint64_t)tp_page_resident(seg, page + i, &window) << TP_PAGE_SHIFT;
      page += span ? span : 1; /* a zero would walk forever, with the lock held */
    }
  }
  tp_lock_release(&h->buddy_lock);
}

/* Lock order: central class locks (ascending), then the buddy lock. */
void tp_heap_lock_all(tp_heap *h) {
  for (uint32_t c = 0; c < TP_MAX_CLASSES; c++) tp_lock_acquire(&h->central[c].lock);
  tp_lock_acquire(&h->buddy_lock);
}

void tp_heap_unlock_all(tp_heap *h) {
  tp_lock_release(&h->buddy_lock);
  for (uint32_t c = TP_MAX_CLASSES; c-- > 0;) tp_lock_release(&h->central[c].lock);
}

void tp_heap_reinit_locks(tp_heap *h) {
  tp_lock_init(&h->buddy_lock);
  for (uint32_t c = 0; c < TP_MAX_CLASSES; c++) tp_lock_init(&h->central[c].lock);
}
