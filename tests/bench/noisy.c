/* noisy.c — noisy neighbour: in one process, a quiet tenant serves steady
 * small allocations and records the latency of each malloc with the cycle
 * counter, while (in neighbour mode) a noisy tenant churns fragmenting sizes
 * in bursts up to its budget.
 *
 *   noisy solo|neighbour|hog [OPS [PAUSE_NS [NOISY_MIB]]]    defaults: 1000000 1000 64
 *
 * quiet:  a working set of WORKSET blocks of 16–512 B; an operation checks and
 *         frees a random slot's block, allocates a new one (only this malloc is
 *         timed), fills it, then busy-waits PAUSE_NS: a tenant serving
 *         requests, not a loop flat out.  Filling the working set and OPS/8
 *         operations come first, as a warm-up that is not recorded.
 * noisy:  bursts, until the quiet thread is done: blocks of 16 B – 4 MiB (most
 *         of them small, most bytes in large ones), every page written, until
 *         NOISY_MIB MiB are held or malloc returns NULL; every other block is
 *         checked and freed, the holes are filled again with new sizes up to
 *         the budget, then everything is checked and freed.
 * hog:    (a control, not a tenant) instead of the noisy tenant, a thread that
 *         writes a byte a page over NOISY_MIB MiB allocated once, over and
 *         over: the quiet thread's slowdown from sharing the machine alone.
 *
 * Tenants: with NOISY_TENANTS=1 and tierpool_tenant_set found by dlsym (that
 * is, libtierpool.so preloaded), each thread first makes itself "quiet" or
 * "noisy".  If that fails, a note on stderr, and both threads run untagged.
 *
 * stdout: one line that depends neither on the allocator nor on timing (the
 * quiet work's checksum).  stderr: one line of results, key=value:
 *   noisy: mode= tenants=on|off|unavailable quiet_count= quiet_p50_ns=
 *   quiet_p99_ns= quiet_p999_ns= quiet_max_ns= timer_ns= quiet_resident_kib=
 *   quiet_peak_kib= peak_rss_kib= quiet_preempted= noisy_bursts= noisy_nulls=
 *   noisy_held_kib=
 * (timer_ns: an empty timed region, the floor under every latency; the quiet
 * tenant's resident and peak bytes are "n/a" without tenants; quiet_preempted:
 * the quiet thread's involuntary context switches while timed, a sign that
 * the CPUs were short rather than the allocator slow).
 * A block whose contents changed makes it exit 3. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/resource.h>
#include <time.h>

#include "../../preload/tierpool.h"
#include "bench.h"

#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
/* lfence on both sides: the reading is not moved across the timed code. */
static inline uint64_t cycles(void) {
  _mm_lfence();
  uint64_t t = __rdtsc();
  _mm_lfence();
  return t;
}
static inline void spin_hint(void) { _mm_pause(); }
#else
static inline uint64_t cycles(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}
static inline void spin_hint(void) {}
#endif

#define WORKSET 4096
#define QUIET_EDGE 32
#define NOISY_EDGE 16
#define NOISY_MAX_BLOCKS 65536

typedef int (*tenant_set_fn)(const char *);
typedef int (*tenant_stats_fn)(const char *, tierpool_tenant_stats_t *);

typedef struct run {
  int neighbour; /* a second thread: neighbour or hog mode */
  int hog;
  unsigned char *hog_buf; /* hog mode: NOISY_MIB, allocated by main (no tenant's budget) */
  size_t ops, noisy_budget;
  uint64_t pause_cycles;
  double cycles_per_ns;
  tenant_set_fn tenant_set; /* NULL: no tenant calls */
  tenant_stats_fn tenant_stats;
  pthread_barrier_t tenants_chosen;
  atomic_int tenant_failed;
  atomic_int quiet_ready, noisy_started, quiet_done;
  /* quiet's results */
  uint32_t *latency; /* cycles, one per recorded malloc */
  uint64_t checksum;
  long long quiet_resident, quiet_peak; /* bytes, -1: n/a */
  long preempted; /* involuntary context switches while timed */
  /* noisy's results */
  size_t bursts, nulls, held_max; /* held_max: most bytes held at once */
} run_t;

static double now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e9 + ts.tv_nsec;
}

/* Cycles per nanosecond, against CLOCK_MONOTONIC over 50 ms. */
static double calibrate(void) {
  double t0 = now_ns();
  uint64_t c0 = cycles();
  while (now_ns() - t0 < 50e6) spin_hint();
  uint64_t c1 = cycles();
  double t1 = now_ns();
  return (double)(c1 - c0) / (t1 - t0);
}

/* The smallest reading of an empty timed region: the clock's own cost and
 * step, a floor under every latency. */
static uint64_t timer_floor(void) {
  uint64_t best = UINT64_MAX;
  for (int i = 0; i < 10000; i++) {
    uint64_t t0 = cycles(), t1 = cycles();
    if (t1 - t0 < best) best = t1 - t0;
  }
  return best;
}

static void busy_wait(uint64_t n) {
  uint64_t end = cycles() + n;
  while (cycles() < end) spin_hint();
}

/* Makes the calling thread `name`'s tenant; after both threads tried, goes
 * back to untagged if either failed (the note says why). */
static void choose_tenant(run_t *r, const char *name) {
  pthread_setname_np(pthread_self(), name); /* for perf, top, and tenant_threads rules */
  if (r->tenant_set && r->tenant_set(name) != 0) {
    int err = errno;
    atomic_store(&r->tenant_failed, 1);
    fprintf(stderr,
            "noisy: note: tierpool_tenant_set(\"%s\") failed: %s: tenants unavailable, "
            "running with one shared heap\n",
            name, strerror(err));
  }
  if (r->neighbour) pthread_barrier_wait(&r->tenants_chosen);
  if (r->tenant_set && atomic_load(&r->tenant_failed)) r->tenant_set(NULL);
}

/* Mostly small, the way request handling allocates. */
static size_t quiet_size(uint64_t *rng) {
  uint64_t v = rng_next(rng);
  if (v % 10 < 7) return 16 + (size_t)((v >> 8) % 15) * 8; /* 16..128, 8-aligned */
  return rng_range(rng, 129, 512);
}

typedef struct quiet_slots {
  unsigned char *block[WORKSET];
  size_t len[WORKSET];
  uint64_t tag[WORKSET];
} quiet_slots;

/* One operation on a random slot; returns the cycles its malloc took. */
static uint64_t quiet_op(quiet_slots *q, uint64_t *rng, uint64_t op, uint64_t *sum) {
  size_t slot = (size_t)(rng_next(rng) % WORKSET);
  if (q->block[slot]) {
    if (walk_edges(q->block[slot], q->len[slot], q->tag[slot], QUIET_EDGE, 1) != q->len[slot])
      fail("noisy: quiet block of %zu bytes (op %llu) overwritten", q->len[slot],
           (unsigned long long)op);
    *sum = fnv_u64(*sum, q->tag[slot] ^ q->len[slot]);
    free(q->block[slot]);
  }
  size_t n = quiet_size(rng);
  uint64_t t0 = cycles();
  unsigned char *p = malloc(n);
  uint64_t t1 = cycles();
  if (!p) fail("noisy: quiet malloc(%zu) returned NULL (op %llu)", n, (unsigned long long)op);
  q->block[slot] = p;
  q->len[slot] = n;
  q->tag[slot] = op * 2654435761u;
  walk_edges(p, n, q->tag[slot], QUIET_EDGE, 0);
  return t1 - t0;
}

static void *quiet_main(void *arg) {
  run_t *r = arg;
  choose_tenant(r, "quiet");
  quiet_slots *q = calloc(1, sizeof *q);
  if (!q) fail("noisy: cannot allocate the quiet working set");
  uint64_t rng = 0x5eed0051, sum = FNV_INIT, op = 0;
  for (size_t i = 0; i < WORKSET; i++, op++) quiet_op(q, &rng, op, &sum); /* warm-up */
  for (size_t i = 0; i < r->ops / 8; i++, op++) {
    quiet_op(q, &rng, op, &sum);
    busy_wait(r->pause_cycles);
  }
  atomic_store(&r->quiet_ready, 1);
  while (r->neighbour && !atomic_load(&r->noisy_started)) spin_hint();
  struct rusage ru0, ru1;
  getrusage(RUSAGE_THREAD, &ru0);
  for (size_t i = 0; i < r->ops; i++, op++) {
    uint64_t c = quiet_op(q, &rng, op, &sum);
    r->latency[i] = c > UINT32_MAX ? UINT32_MAX : (uint32_t)c;
    busy_wait(r->pause_cycles);
  }
  atomic_store(&r->quiet_done, 1);
  getrusage(RUSAGE_THREAD, &ru1);
  r->preempted = ru1.ru_nivcsw - ru0.ru_nivcsw;
  tierpool_tenant_stats_t s;
  if (r->tenant_stats && r->tenant_stats("quiet", &s) == 0)
    r->quiet_resident = (long long)s.resident_bytes, r->quiet_peak = (long long)s.peak_bytes;
  for (size_t slot = 0; slot < WORKSET; slot++) {
    if (walk_edges(q->block[slot], q->len[slot], q->tag[slot], QUIET_EDGE, 1) != q->len[slot])
      fail("noisy: quiet block of %zu bytes overwritten (at the end)", q->len[slot]);
    sum = fnv_u64(sum, q->tag[slot] ^ q->len[slot]);
    free(q->block[slot]);
  }
  free(q);
  r->checksum = sum;
  return NULL;
}

/* Most blocks small, most bytes in blocks of 64 KiB and more. */
static size_t noisy_size(uint64_t *rng) {
  uint64_t v = rng_next(rng) % 100;
  if (v < 55) return rng_range(rng, 16, 1024);
  if (v < 80) return rng_range(rng, 1025, 64 << 10);
  if (v < 95) return rng_range(rng, (64 << 10) + 1, 512 << 10);
  return rng_range(rng, 1 << 20, 4 << 20);
}

typedef struct noisy_blocks {
  unsigned char *block[NOISY_MAX_BLOCKS];
  size_t len[NOISY_MAX_BLOCKS];
  uint64_t tag[NOISY_MAX_BLOCKS];
  size_t count, held;
} noisy_blocks;

/* The edges, and a byte a page in between: writing it faults every page in. */
static void noisy_stamp(unsigned char *p, size_t n, uint64_t tag, int check) {
  int ok = walk_edges(p, n, tag, NOISY_EDGE, check) == n;
  if (ok && n > 2 * NOISY_EDGE)
    ok = walk_pages(p, NOISY_EDGE, n - NOISY_EDGE, tag ^ 0x55, check) == n - NOISY_EDGE;
  if (check && !ok) fail("noisy: noisy block of %zu bytes overwritten", n);
}

/* Fills empty slots (all of them up to the count, then new ones) with new
 * blocks until the budget is held, malloc fails or the quiet thread is done. */
static void noisy_fill(run_t *r, noisy_blocks *b, uint64_t *rng, uint64_t *tag) {
  for (size_t i = 0; b->held < r->noisy_budget && i < NOISY_MAX_BLOCKS; i++) {
    if (i < b->count && b->block[i]) continue;
    if ((i & 15) == 0 && atomic_load(&r->quiet_done)) return;
    size_t n = noisy_size(rng);
    unsigned char *p = malloc(n);
    if (!p) {
      r->nulls++;
      return;
    }
    noisy_stamp(p, n, ++*tag, 0);
    b->block[i] = p, b->len[i] = n, b->tag[i] = *tag;
    b->held += n;
    if (i >= b->count) b->count = i + 1;
    if (b->held > r->held_max) r->held_max = b->held;
    if (!atomic_load_explicit(&r->noisy_started, memory_order_relaxed))
      atomic_store(&r->noisy_started, 1);
  }
}

/* Checks and frees every step-th block from first on. */
static void noisy_free(noisy_blocks *b, size_t first, size_t step) {
  for (size_t i = first; i < b->count; i += step) {
    if (!b->block[i]) continue;
    noisy_stamp(b->block[i], b->len[i], b->tag[i], 1);
    free(b->block[i]);
    b->block[i] = NULL;
    b->held -= b->len[i];
  }
}

/* hog mode: memory traffic like the noisy tenant's (a byte a page over the
 * budget, again and again) without calling the allocator: what sharing the
 * CPUs, caches and memory costs the quiet thread by itself. */
static void hog(run_t *r) {
  unsigned char *buf = r->hog_buf;
  while (!atomic_load(&r->quiet_ready)) spin_hint();
  while (!atomic_load(&r->quiet_done)) {
    for (size_t off = 0; off < r->noisy_budget; off += BENCH_PAGE) buf[off]++;
    r->bursts++;
    atomic_store(&r->noisy_started, 1);
  }
  for (size_t off = 0; off < r->noisy_budget; off += BENCH_PAGE)
    if (buf[off] != (unsigned char)r->bursts) fail("noisy: hog page at %zu overwritten", off);
}

static void *noisy_main(void *arg) {
  run_t *r = arg;
  choose_tenant(r, "noisy");
  if (r->hog) return hog(r), NULL;
  noisy_blocks *b = calloc(1, sizeof *b);
  if (!b) fail("noisy: cannot allocate the noisy block table");
  uint64_t rng = 0x5eed0052, tag = 0;
  while (!atomic_load(&r->quiet_ready)) spin_hint();
  while (!atomic_load(&r->quiet_done)) {
    noisy_fill(r, b, &rng, &tag);
    noisy_free(b, 1, 2); /* holes between the blocks that stay */
    noisy_fill(r, b, &rng, &tag);
    noisy_free(b, 0, 1);
    b->count = 0;
    r->bursts++;
    atomic_store(&r->noisy_started, 1); /* even if every malloc failed */
  }
  free(b);
  return NULL;
}

static int cmp_u32(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return (x > y) - (x < y);
}

/* Nearest-rank percentile q (0..1] of the sorted latencies, in ns. */
static double percentile_ns(const run_t *r, double q) {
  size_t k = (size_t)(q * (double)r->ops + 0.999999);
  if (k > 0) k--;
  if (k >= r->ops) k = r->ops - 1;
  return r->latency[k] / r->cycles_per_ns;
}

static void print_kib(const char *key, long long bytes) {
  if (bytes < 0)
    fprintf(stderr, " %s=n/a", key);
  else
    fprintf(stderr, " %s=%lld", key, bytes >> 10);
}

int main(int argc, char **argv) {
  const char *mode = argc < 2 ? "" : argv[1];
  if (strcmp(mode, "solo") != 0 && strcmp(mode, "neighbour") != 0 && strcmp(mode, "hog") != 0) {
    fprintf(stderr, "usage: %s solo|neighbour|hog [OPS [PAUSE_NS [NOISY_MIB]]]\n", argv[0]);
    return 2;
  }
  static run_t r;
  r.hog = strcmp(mode, "hog") == 0;
  r.neighbour = r.hog || strcmp(mode, "neighbour") == 0;
  r.ops = arg_size(argc, argv, 2, 1000000);
  size_t pause_ns = arg_size(argc, argv, 3, 1000);
  r.noisy_budget = arg_size(argc, argv, 4, 64) * MIB;
  r.quiet_resident = r.quiet_peak = -1;

  const char *want = getenv("NOISY_TENANTS");
  const char *tenants = "off";
  if (want && strcmp(want, "1") == 0) {
    r.tenant_set = (tenant_set_fn)dlsym(RTLD_DEFAULT, "tierpool_tenant_set");
    r.tenant_stats = (tenant_stats_fn)dlsym(RTLD_DEFAULT, "tierpool_tenant_stats_get");
    if (!r.tenant_set) {
      fprintf(stderr, "noisy: note: NOISY_TENANTS=1 but no tierpool_tenant_set (libtierpool.so "
                      "not preloaded): tenants unavailable\n");
      tenants = "unavailable";
    }
  }

  r.latency = malloc(r.ops * sizeof *r.latency);
  if (!r.latency) fail("noisy: cannot allocate %zu latency slots", r.ops);
  /* Faulted in before timing (not zeros: malloc+memset 0 may become calloc). */
  memset(r.latency, 0xff, r.ops * sizeof *r.latency);
  if (r.hog) {
    r.hog_buf = xmalloc(r.noisy_budget);
    memset(r.hog_buf, 0, r.noisy_budget);
  }
  r.cycles_per_ns = calibrate();
  r.pause_cycles = (uint64_t)(pause_ns * r.cycles_per_ns);

  pthread_t quiet, noisy;
  if (r.neighbour && pthread_barrier_init(&r.tenants_chosen, NULL, 2) != 0)
    fail("noisy: pthread_barrier_init failed");
  if (r.neighbour && pthread_create(&noisy, NULL, noisy_main, &r) != 0)
    fail("noisy: cannot start the noisy thread");
  if (pthread_create(&quiet, NULL, quiet_main, &r) != 0) fail("noisy: cannot start the quiet thread");
  pthread_join(quiet, NULL);
  if (r.neighbour) pthread_join(noisy, NULL);
  if (r.tenant_set) tenants = atomic_load(&r.tenant_failed) ? "unavailable" : "on";
  if (strcmp(tenants, "on") != 0) r.quiet_resident = r.quiet_peak = -1;

  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  qsort(r.latency, r.ops, sizeof *r.latency, cmp_u32);
  fprintf(stderr,
          "noisy: mode=%s tenants=%s quiet_count=%zu quiet_p50_ns=%.1f quiet_p99_ns=%.1f "
          "quiet_p999_ns=%.1f quiet_max_ns=%.0f timer_ns=%.1f",
          mode, tenants, r.ops, percentile_ns(&r, 0.50), percentile_ns(&r, 0.99),
          percentile_ns(&r, 0.999), r.latency[r.ops - 1] / r.cycles_per_ns,
          timer_floor() / r.cycles_per_ns);
  print_kib("quiet_resident_kib", r.quiet_resident);
  print_kib("quiet_peak_kib", r.quiet_peak);
  fprintf(stderr,
          " peak_rss_kib=%ld quiet_preempted=%ld noisy_bursts=%zu noisy_nulls=%zu "
          "noisy_held_kib=%zu\n",
          ru.ru_maxrss, r.preempted, r.bursts, r.nulls, r.held_max >> 10);
  printf("noisy quiet_ops=%zu workset=%d checksum=%016llx\n", r.ops, WORKSET,
         (unsigned long long)r.checksum);
  free(r.latency);
  free(r.hog_buf);
  return 0;
}
