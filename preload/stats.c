/* stats.c — collecting the statistics and printing them (TIERPOOL_STATS=1).
 *
 * Slab-tier counts come from the thread caches (summed here); buddy counts
 * live in the heap, large counts in large.c.  Slab live bytes are exact;
 * slab peak is measured at cache refills, so it includes blocks sitting in
 * thread caches at that moment. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

/* Slab counters from per-class counts; peak and releases from the heaps. */
static void tp_slab_totals(tierpool_tier_stats_t *t, const uint64_t *allocs, const uint64_t *frees,
                           uint64_t requested) {
  uint64_t freed_bytes = 0;
  for (uint32_t c = 0; c < tp_classes.count; c++) {
    t->allocs += allocs[c];
    t->frees += frees[c];
    t->bytes_allocated += allocs[c] * tp_classes.classes[c].size;
    freed_bytes += frees[c] * tp_classes.classes[c].size;
  }
  t->bytes_requested = requested;
  t->live_bytes = t->bytes_allocated > freed_bytes ? t->bytes_allocated - freed_bytes : 0;
}

static void tp_heap_slab_extras(tp_heap *h, tierpool_tier_stats_t *t) {
  t->peak_bytes += h->slab_peak_bytes;
  t->releases += h->slab_releases;
  t->released_bytes += h->slab_released_bytes;
}

static void tp_heap_buddy_stats(tp_heap *h, tierpool_tier_stats_t *t) {
  tp_lock_acquire(&h->buddy_lock);
  t->allocs += h->buddy_allocs;
  t->frees += h->buddy_frees;
  t->bytes_requested += h->buddy_bytes_requested;
  t->bytes_allocated += h->buddy_bytes_allocated;
  t->live_bytes += h->buddy_live_bytes;
  t->peak_bytes += h->buddy_peak_bytes;
  t->releases += h->buddy_releases;
  t->released_bytes += h->buddy_released_bytes;
  tp_lock_release(&h->buddy_lock);
}

/* Process totals: the sum over every tenant's heap.  Peaks of different
 * heaps are summed (an upper bound of the process's peak). */
void tp_stats_collect(tierpool_stats_t *out) {
  memset(out, 0, sizeof *out);
  if (atomic_load_explicit(&tp_init_state, memory_order_acquire) != 2) return;
  uint64_t allocs[TP_MAX_CLASSES] = {0}, frees[TP_MAX_CLASSES] = {0}, requested = 0;
  tp_tcache_stats_add(allocs, frees, &requested);
  tierpool_tier_stats_t *slab = &out->tier[TIERPOOL_TIER_SLAB], *buddy = &out->tier[TIERPOOL_TIER_BUDDY];
  tp_slab_totals(slab, allocs, frees, requested);
  uint64_t slab_peak = 0;
  for (uint32_t i = 0; i < tp_tenant_count(); i++) {
    tp_heap *h = tp_tenant_heap(i);
    uint64_t residency[4] = {0};
    tp_heap_slab_extras(h, slab);
    slab_peak += h->slab_peak_bytes;
    tp_heap_buddy_stats(h, buddy);
    tp_heap_residency(h, residency);
    slab->resident_bytes += residency[1];
    buddy->resident_bytes += residency[2] + residency[3];
    out->pool_header_bytes += residency[0];
  }
  slab->peak_bytes = tp_max_u64(slab_peak, slab->live_bytes);
  tp_large_stats(&out->tier[TIERPOOL_TIER_LARGE]);
  out->thread_cache_bytes = tp_tcache_cached_bytes(&out->thread_caches);
#define TP_COPY_OS(field) out->os.field = __atomic_load_n(&tp_os_stats.field, __ATOMIC_RELAXED);
  TP_COPY_OS(pool_mmap) TP_COPY_OS(pool_munmap) TP_COPY_OS(pool_madvise) TP_COPY_OS(pool_mremap)
  TP_COPY_OS(pool_mprotect) TP_COPY_OS(host_mmap) TP_COPY_OS(host_munmap) TP_COPY_OS(host_mremap)
  TP_COPY_OS(host_mprotect) TP_COPY_OS(host_madvise)
#undef TP_COPY_OS
}

/* One tenant: its heap's tiers; live over all of them. */
void tp_heap_tenant_stats(tp_heap *h, tierpool_tenant_stats_t *out) {
  uint64_t allocs[TP_MAX_CLASSES] = {0}, frees[TP_MAX_CLASSES] = {0}, requested = 0, residency[4] = {0};
  tierpool_tier_stats_t *slab = &out->tier[TIERPOOL_TIER_SLAB];
  tp_tcache_stats_add_heap(h, allocs, frees, &requested);
  tp_slab_totals(slab, allocs, frees, requested);
  tp_heap_slab_extras(h, slab);
  slab->peak_bytes = tp_max_u64(slab->peak_bytes, slab->live_bytes);
  tp_heap_buddy_stats(h, &out->tier[TIERPOOL_TIER_BUDDY]);
  tp_heap_residency(h, residency);
  slab->resident_bytes = residency[1];
  out->tier[TIERPOOL_TIER_BUDDY].resident_bytes = residency[2] + residency[3];
  tp_large_lock();
  out->tier[TIERPOOL_TIER_LARGE] = h->large;
  tp_large_unlock();
  out->releases = 0;
  out->live_bytes = 0;
  for (int t = 0; t < TIERPOOL_TIER_COUNT; t++) {
    out->live_bytes += out->tier[t].live_bytes;
    out->releases += out->tier[t].releases;
  }
}

/* "12.3M"-style sizes, so the table stays narrow. */
static const char *tp_human(uint64_t bytes, char *buf, size_t cap) {
  static const char units[] = "BKMGT";
  double v = (double)bytes;
  int u = 0;
  while (v >= 1024 && u < 4) v /= 1024, u++;
  if (u == 0) snprintf(buf, cap, "%lluB", (unsigned long long)bytes);
  else snprintf(buf, cap, "%.1f%c", v, units[u]);
  return buf;
}

/* One line per tenant: what it holds, its budget and how often it hit it. */
static void tp_stats_print_tenants(int fd) {
  char out[512], a[24], b[24], c[24], d[24], e[24], f[24];
  int n = snprintf(out, sizeof out, "tierpool: %-16s %9s %9s %9s %9s %9s %9s %10s %9s\n", "tenant", "live",
                   "resident", "peak", "reserve", "limit", "overflow", "limit-hits", "releases");
  tp_os_write(fd, out, (size_t)n);
  for (uint32_t i = 0; i < tp_tenant_count(); i++) {
    tierpool_tenant_stats_t t;
    tp_tenant_stats(i, &t);
    n = snprintf(out, sizeof out, "tierpool: %-16s %9s %9s %9s %9s %9s %9s %10llu %9llu%s\n", t.name,
                 tp_human(t.live_bytes, a, sizeof a), tp_human(t.resident_bytes, b, sizeof b),
                 tp_human(t.peak_bytes, c, sizeof c), t.reserve_bytes ? tp_human(t.reserve_bytes, d, sizeof d) : "-",
                 t.limit_bytes ? tp_human(t.limit_bytes, e, sizeof e) : "-", tp_human(t.overflow_bytes, f, sizeof f),
                 (unsigned long long)t.limit_hits, (unsigned long long)t.releases, t.isolated ? " isolated" : "");
    tp_os_write(fd, out, n < (int)sizeof out ? (size_t)n : sizeof out - 1);
  }
}

TP_API void tierpool_stats_print(int fd) {
  tierpool_stats_t s;
  tp_stats_collect(&s);
  static const char *const names[TIERPOOL_TIER_COUNT] = {"slab", "buddy", "large"};
  char out[2048], a[16], b[16], c[16], d[16];
  size_t n = 0;
#define TP_LINE(...) n += (size_t)snprintf(out + n, sizeof out - n, __VA_ARGS__)
  TP_LINE("tierpool: statistics of pid %d\n", (int)getpid());
  TP_LINE("tierpool: %-6s %12s %12s %9s %9s %9s %7s %9s %9s\n", "tier", "allocs", "frees", "live",
          "peak", "resident", "waste", "releases", "released");
  /* The total row: waste over all tiers (the figure `tierpool propose` predicts);
   * peaks of different moments do not add up, so it has none. */
  tierpool_tier_stats_t total = {0};
  for (int t = 0; t <= TIERPOOL_TIER_COUNT && n < sizeof out; t++) {
    const tierpool_tier_stats_t *ts = t < TIERPOOL_TIER_COUNT ? &s.tier[t] : &total;
    if (t < TIERPOOL_TIER_COUNT) {
      total.allocs += ts->allocs, total.frees += ts->frees, total.live_bytes += ts->live_bytes;
      total.resident_bytes += ts->resident_bytes, total.releases += ts->releases;
      total.released_bytes += ts->released_bytes;
      total.bytes_allocated += ts->bytes_allocated, total.bytes_requested += ts->bytes_requested;
    }
    double waste = ts->bytes_allocated
                       ? 100.0 * (double)(ts->bytes_allocated - ts->bytes_requested) / (double)ts->bytes_allocated
                       : 0.0;
    TP_LINE("tierpool: %-6s %12llu %12llu %9s %9s %9s %6.1f%% %9llu %9s\n",
            t < TIERPOOL_TIER_COUNT ? names[t] : "total", (unsigned long long)ts->allocs,
            (unsigned long long)ts->frees, tp_human(ts->live_bytes, a, sizeof a),
            t < TIERPOOL_TIER_COUNT ? tp_human(ts->peak_bytes, b, sizeof b) : "-",
            tp_human(ts->resident_bytes, c, sizeof c), waste, (unsigned long long)ts->releases,
            tp_human(ts->released_bytes, d, sizeof d));
  }
  if (n < sizeof out)
    TP_LINE("tierpool: segment headers resident: %s; thread caches: %u holding %s\n",
            tp_human(s.pool_header_bytes, a, sizeof a), s.thread_caches, tp_human(s.thread_cache_bytes, b, sizeof b));
  if (n < sizeof out)
    TP_LINE("tierpool: pool syscalls: mmap %llu, munmap %llu, mremap %llu, madvise %llu\n",
            (unsigned long long)s.os.pool_mmap, (unsigned long long)s.os.pool_munmap,
            (unsigned long long)s.os.pool_mremap, (unsigned long long)s.os.pool_madvise);
  if (n < sizeof out)
    TP_LINE("tierpool: host calls:    mmap %llu, munmap %llu, mremap %llu, mprotect %llu, madvise %llu\n",
            (unsigned long long)s.os.host_mmap, (unsigned long long)s.os.host_munmap,
            (unsigned long long)s.os.host_mremap, (unsigned long long)s.os.host_mprotect,
            (unsigned long long)s.os.host_madvise);
#undef TP_LINE
  tp_os_write(fd, out, n < sizeof out ? n : sizeof out - 1);
  if (tp_tenant_count() > 1) tp_stats_print_tenants(fd);
}

TP_API int tierpool_stats_get(tierpool_stats_t *out) {
  tp_stats_collect(out);
  return 0;
}

