/* stress.c — many threads, all tiers, content checks, fork, memory return.
 *
 * Every block carries a pattern derived from its address and size (check.h), written when it
 * is allocated and verified when it is freed, by whichever thread frees it.  Sizes: mostly
 * small (slab), some 33 KiB .. 4 MiB (buddy), a few 5 .. 20 MiB (large).  Random choices come
 * from fixed seeds; which thread wins a race does not, so a failure names the block.
 *
 *   mixed        8 threads, random lifetimes, a quarter of the blocks pass to other threads
 *   queue        4 producer -> consumer pairs through bounded queues
 *   thread_exit  waves of short-lived threads whose blocks 4 others free after they exit
 *   fork         fork while 8 threads allocate; the child works across all tiers, exits 0
 *   trim         a 500 MiB peak, all freed, malloc_trim(0): resident back near the start
 */
#include "check.h"

#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>

#define NTHREADS 8

/* ---- random sizes and checked blocks ----------------------------------------------------- */

static uint64_t rnd(uint64_t *s) { /* xorshift64* */
  *s ^= *s >> 12;
  *s ^= *s << 25;
  *s ^= *s >> 27;
  return *s * 0x2545f4914f6cdd1dULL;
}

static uint64_t seed_for(uint64_t stream) { return mix64(stream + 0x5eed) | 1; }

/* Per 10000: 9400 slab (1 B .. 32 KiB, skewed small), 580 buddy (33 KiB .. 4 MiB, log-uniform),
 * 20 large (5 .. 20 MiB). */
static size_t pick_size(uint64_t *rng) {
  unsigned r = (unsigned)(rnd(rng) % 10000);
  if (r < 9400) return 1 + rnd(rng) % ((size_t)1 << (rnd(rng) % 16));
  if (r < 9980) {
    size_t n = 33 * KiB + rnd(rng) % ((size_t)1 << (15 + rnd(rng) % 8));
    return n < BUDDY_MAX ? n : BUDDY_MAX;
  }
  return 5 * MiB + rnd(rng) % (15 * MiB);
}

struct blk {
  void *p;
  size_t n;
};

/* A new block of a random size from malloc, calloc or memalign, filled with its pattern. */
static struct blk blk_new(uint64_t *rng) {
  struct blk b = {NULL, pick_size(rng)};
  unsigned how = (unsigned)(rnd(rng) % 100);
  if (how < 80) {
    b.p = malloc(b.n);
  } else if (how < 90) {
    b.p = calloc(1, b.n);
    if (b.p) {
      size_t head = b.n < SPARSE_FULL ? b.n : SPARSE_FULL;
      size_t bad = first_nonzero(b.p, head);
      CHECK(bad == SIZE_MAX, "calloc(1, %zu) = %p: byte %zu not zero", b.n, b.p, bad);
    }
  } else {
    size_t align = (size_t)16 << (rnd(rng) % 13); /* 16 B .. 64 KiB */
    b.p = memalign(align, b.n);
    CHECK((uintptr_t)b.p % align == 0, "memalign(%zu, %zu) = %p", align, b.n, b.p);
  }
  REQUIRE(b.p, "allocating %zu bytes failed", b.n);
  pattern_fill_sparse(b.p, b.n, block_seed(b.p, b.n));
  return b;
}

static void blk_check(struct blk b, const char *when) {
  size_t bad = pattern_check_sparse(b.p, b.n, block_seed(b.p, b.n));
  CHECK(bad == SIZE_MAX, "%s: block %p of %zu bytes corrupt at offset %zu", when, b.p, b.n, bad);
}

static void blk_free(struct blk b) {
  if (!b.p) return;
  blk_check(b, "free");
  free(b.p);
}

/* Reallocates to a new random size: the head survives, the new block gets its pattern. */
static struct blk blk_realloc(struct blk b, uint64_t *rng) {
  blk_check(b, "realloc");
  size_t n = pick_size(rng), keep = b.n < n ? b.n : n;
  if (keep > SPARSE_CHUNK) keep = SPARSE_CHUNK; /* written by full and sparse fills alike */
  uint64_t old_seed = block_seed(b.p, b.n);
  void *q = realloc(b.p, n);
  REQUIRE(q, "realloc(%p, %zu) failed", b.p, n);
  size_t bad = pattern_check_range(q, 0, keep, old_seed);
  CHECK(bad == SIZE_MAX, "realloc %zu -> %zu (%p): byte %zu lost", b.n, n, q, bad);
  b.p = q;
  b.n = n;
  pattern_fill_sparse(q, n, block_seed(q, n));
  return b;
}

/* ---- threads --------------------------------------------------------------------------- */

static void run_threads(int count, void *(*fn)(void *), void *args, size_t arg_size) {
  pthread_t tids[64];
  REQUIRE(count <= 64);
  for (int i = 0; i < count; i++)
    REQUIRE(pthread_create(&tids[i], NULL, fn, (char *)args + i * arg_size) == 0);
  for (int i = 0; i < count; i++) pthread_join(tids[i], NULL);
}

/* A bounded blocking queue of blocks; {NULL, 0} is the end-of-stream marker. */
#define QCAP 256
struct queue {
  pthread_mutex_t lock;
  pthread_cond_t not_empty, not_full;
  struct blk items[QCAP];
  size_t head, count;
};

static void queue_init(struct queue *q) {
  memset(q, 0, sizeof *q);
  pthread_mutex_init(&q->lock, NULL);
  pthread_cond_init(&q->not_empty, NULL);
  pthread_cond_init(&q->not_full, NULL);
}

static void queue_push(struct queue *q, struct blk b) {
  pthread_mutex_lock(&q->lock);
  while (q->count == QCAP) pthread_cond_wait(&q->not_full, &q->lock);
  q->items[(q->head + q->count++) % QCAP] = b;
  pthread_cond_signal(&q->not_empty);
  pthread_mutex_unlock(&q->lock);
}

static struct blk queue_pop(struct queue *q) {
  pthread_mutex_lock(&q->lock);
  while (q->count == 0) pthread_cond_wait(&q->not_empty, &q->lock);
  struct blk b = q->items[q->head];
  q->head = (q->head + 1) % QCAP;
  q->count--;
  pthread_cond_signal(&q->not_full);
  pthread_mutex_unlock(&q->lock);
  return b;
}

/* Frees blocks from q until the end marker. */
static void *consume(void *arg) {
  struct queue *q = arg;
  for (struct blk b; (b = queue_pop(q)).p;) blk_free(b);
  return NULL;
}

/* ---- memory return --------------------------------------------------------------------- */

/* After everything is freed and malloc_trim(0): resident within start + RSS_SLACK.  Measured
 * (2 CPUs, peaks of 300 .. 750 MiB): tierpool ends 5 .. 10 MiB above the start; glibc 2.36
 * keeps 95 .. 150 MiB (malloc_trim does not shrink the tops of its per-thread arenas), and
 * mimalloc and jemalloc, whose malloc_trim is glibc's, keep 60 .. 500 MiB. */
#define RSS_SLACK (16 * MiB)

static void check_returned(size_t rss_start, size_t rss_peak) {
  size_t rss_freed = rss_bytes();
  int trimmed = malloc_trim(0);
  size_t rss_end = rss_bytes();
  printf("  resident MiB: start %.1f, peak %.1f, all freed %.1f, after malloc_trim(0) %.1f "
         "(returned %d)\n",
         (double)rss_start / MiB, (double)rss_peak / MiB, (double)rss_freed / MiB,
         (double)rss_end / MiB, trimmed);
  CHECK(rss_end <= rss_start + RSS_SLACK,
        "resident %.1f MiB after malloc_trim(0), start %.1f MiB + %zu MiB allowed",
        (double)rss_end / MiB, (double)rss_start / MiB, RSS_SLACK / MiB);
}

/* ---- mixed: random lifetimes, cross-thread frees ------------------------------------------- */

#define SLOTS 256
#define MIXED_OPS 40000
#define EXCHANGE 256 /* shared slots that pass blocks between threads */

static struct {
  pthread_mutex_t lock[16];
  struct blk slot[EXCHANGE];
} exch;

static void exchange_init(void) {
  for (int i = 0; i < 16; i++) pthread_mutex_init(&exch.lock[i], NULL);
}

static size_t mixed_peak;

/* Swaps b with a random shared slot: the block that comes back was allocated elsewhere. */
static struct blk exchange(struct blk b, uint64_t *rng) {
  size_t i = rnd(rng) % EXCHANGE;
  pthread_mutex_lock(&exch.lock[i % 16]);
  struct blk other = exch.slot[i];
  exch.slot[i] = b;
  pthread_mutex_unlock(&exch.lock[i % 16]);
  return other;
}

struct worker {
  int id;
  int slots;          /* blocks held at a time, at most SLOTS */
  int ops;            /* stop after this many operations,     */
  volatile int *stop; /* or when *stop is set                 */
};

static void *mixed_worker(void *arg) {
  struct worker *w = arg;
  uint64_t rng = seed_for((uint64_t)w->id);
  struct blk slots[SLOTS] = {{0}};
  for (int op = 0; op < w->ops && !(w->stop && __atomic_load_n(w->stop, __ATOMIC_RELAXED));
       op++) {
    struct blk *s = &slots[rnd(&rng) % (unsigned)w->slots];
    unsigned r = (unsigned)(rnd(&rng) % 100);
    if (!s->p)
      *s = blk_new(&rng);
    else if (r < 25)
      *s = exchange(*s, &rng);
    else if (r < 35)
      *s = blk_realloc(*s, &rng);
    else {
      blk_free(*s);
      *s = blk_new(&rng);
    }
    if (op % 4096 == 0 && w->id == 0) {
      size_t rss = rss_bytes();
      if (rss > mixed_peak) mixed_peak = rss;
    }
  }
  for (int i = 0; i < SLOTS; i++) blk_free(slots[i]);
  return NULL;
}

static void exchange_drain(void) {
  for (int i = 0; i < EXCHANGE; i++) blk_free(exch.slot[i]), exch.slot[i].p = NULL;
}

static void t_mixed(void) {
  size_t rss0 = rss_bytes();
  exchange_init();
  struct worker w[NTHREADS];
  for (int i = 0; i < NTHREADS; i++) w[i] = (struct worker){i, SLOTS, MIXED_OPS, NULL};
  run_threads(NTHREADS, mixed_worker, w, sizeof w[0]);
  exchange_drain();
  check_returned(rss0, mixed_peak);
}

/* ---- queue: producer/consumer pairs --------------------------------------------------------- */

#define QUEUE_BLOCKS 50000
#define PAIRS (NTHREADS / 2)

struct pair_end {
  int id;
  int producer;
  struct queue *q;
};

static void *pair_thread(void *arg) {
  struct pair_end *e = arg;
  if (!e->producer) return consume(e->q);
  uint64_t rng = seed_for(100 + (uint64_t)e->id);
  for (int i = 0; i < QUEUE_BLOCKS; i++) queue_push(e->q, blk_new(&rng));
  queue_push(e->q, (struct blk){NULL, 0});
  return NULL;
}

static void t_queue(void) {
  static struct queue queues[PAIRS];
  struct pair_end ends[2 * PAIRS];
  for (int i = 0; i < PAIRS; i++) {
    queue_init(&queues[i]);
    ends[2 * i] = (struct pair_end){i, 1, &queues[i]};
    ends[2 * i + 1] = (struct pair_end){i, 0, &queues[i]};
  }
  run_threads(2 * PAIRS, pair_thread, ends, sizeof ends[0]);
}

/* ---- thread_exit: blocks outlive the threads that allocated them --------------------------- */

#define WAVES 20
#define WAVE_THREADS 6
#define FREERS 4
#define EXIT_BLOCKS 3000

static struct queue handoff;

/* Allocates, frees some of its own, hands the rest over and exits; the last few it hands
 * over only as it exits, so their frees certainly happen after. */
static void *short_lived(void *arg) {
  uint64_t rng = seed_for(1000 + (uint64_t)*(int *)arg);
  enum { KEEP = 64 };
  struct blk kept[KEEP];
  for (int i = 0; i < KEEP; i++) kept[i] = blk_new(&rng);
  for (int i = 0; i < EXIT_BLOCKS; i++) {
    struct blk b = blk_new(&rng);
    if (rnd(&rng) % 3 == 0)
      blk_free(b);
    else
      queue_push(&handoff, b);
  }
  for (int i = 0; i < KEEP; i++) queue_push(&handoff, kept[i]);
  return NULL;
}

static void t_thread_exit(void) {
  queue_init(&handoff);
  pthread_t freers[FREERS];
  for (int i = 0; i < FREERS; i++)
    REQUIRE(pthread_create(&freers[i], NULL, consume, &handoff) == 0);
  int ids[WAVE_THREADS];
  for (int wave = 0; wave < WAVES; wave++) {
    for (int i = 0; i < WAVE_THREADS; i++) ids[i] = wave * WAVE_THREADS + i;
    run_threads(WAVE_THREADS, short_lived, ids, sizeof ids[0]);
  }
  for (int i = 0; i < FREERS; i++) queue_push(&handoff, (struct blk){NULL, 0});
  for (int i = 0; i < FREERS; i++) pthread_join(freers[i], NULL);
}

/* ---- fork while threads allocate -------------------------------------------------------- */

#define FORKS 10
#define FORK_SLOTS 32 /* a small process: fork and copy-on-write stay cheap */
#define CHILD_OPS 300
#define CHILD_TIMEOUT_S 10

/* The child: frees the parent's blocks, works across all tiers (also from a new thread),
 * and exits 0 — or is killed by SIGALRM if the allocator's locks were left held. */
static void *child_work(void *arg) {
  uint64_t rng = seed_for((uint64_t)(uintptr_t)arg);
  struct blk b[64] = {{0}};
  for (int op = 0; op < CHILD_OPS; op++) {
    struct blk *s = &b[rnd(&rng) % 64];
    if (s->p && op % 3 == 0)
      *s = blk_realloc(*s, &rng);
    else
      blk_free(*s), *s = blk_new(&rng);
  }
  static const size_t tiers[] = {100, 100 * KiB, 8 * MiB};
  for (int i = 0; i < 3; i++) {
    struct blk t = {malloc(tiers[i]), tiers[i]};
    REQUIRE(t.p);
    pattern_fill_sparse(t.p, t.n, block_seed(t.p, t.n));
    blk_free(t);
  }
  for (int i = 0; i < 64; i++) blk_free(b[i]);
  return NULL;
}

static void fork_child(struct blk *inherited, int count, int round, int failures_before) {
  alarm(CHILD_TIMEOUT_S);
  for (int i = 0; i < count; i++) blk_free(inherited[i]);
  child_work((void *)(uintptr_t)(5000 + round));
  pthread_t t;
  REQUIRE(pthread_create(&t, NULL, child_work, (void *)(uintptr_t)(6000 + round)) == 0);
  pthread_join(t, NULL);
  fflush(NULL);
  _exit(check_failures_ > failures_before ? 1 : 0);
}

/* Waits for pid up to CHILD_TIMEOUT_S + 5 s (the child's alarm should fire first). */
static int wait_child(pid_t pid) {
  int status = 0;
  for (double end = now_s() + CHILD_TIMEOUT_S + 5; now_s() < end; usleep(2000))
    if (waitpid(pid, &status, WNOHANG) == pid) return status;
  kill(pid, SIGKILL);
  waitpid(pid, &status, 0);
  return status;
}

static void t_fork(void) {
  volatile int stop = 0;
  struct worker w[NTHREADS];
  pthread_t tids[NTHREADS];
  exchange_init();
  for (int i = 0; i < NTHREADS; i++) {
    w[i] = (struct worker){100 + i, FORK_SLOTS, 1 << 30, &stop};
    REQUIRE(pthread_create(&tids[i], NULL, mixed_worker, &w[i]) == 0);
  }
  uint64_t rng = seed_for(4242);
  int ok = 0;
  double slowest = 0;
  for (int round = 0; round < FORKS; round++) {
    usleep(20000 + rnd(&rng) % 30000);
    enum { MINE = 16 };
    struct blk mine[MINE];
    for (int i = 0; i < MINE; i++) mine[i] = blk_new(&rng);
    fflush(NULL);
    double t0 = now_s();
    pid_t pid = fork();
    REQUIRE(pid >= 0, "fork");
    if (pid == 0) fork_child(mine, MINE, round, check_failures_);
    int status = wait_child(pid);
    if (now_s() - t0 > slowest) slowest = now_s() - t0;
    int good = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    ok += good;
    CHECK(good, "fork %d: child %s %d%s", round,
          WIFEXITED(status) ? "exited with" : "killed by signal",
          WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status),
          WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM ? " (SIGALRM: deadlocked)" : "");
    for (int i = 0; i < MINE; i++) blk_free(mine[i]);
    if (!good) break; /* one deadlock is enough: do not wait for ten */
  }
  __atomic_store_n(&stop, 1, __ATOMIC_RELAXED);
  for (int i = 0; i < NTHREADS; i++) pthread_join(tids[i], NULL);
  exchange_drain();
  printf("  %d children exited 0, the slowest after %.0f ms\n", ok, slowest * 1e3);
}

/* ---- trim: a big peak, all freed, memory back ------------------------------------------------ */

/* Per thread, about 65 MiB: 20000 small blocks (20 MiB), 16 buddy blocks (32 MiB), one large
 * block (12 MiB). */
#define TRIM_SMALL 20000
#define TRIM_MID 16

struct trim_arg {
  int id;
  struct blk *blocks; /* TRIM_SMALL + TRIM_MID + 1 */
  pthread_barrier_t *barrier;
  struct trim_arg *all;
};

static size_t trim_peak;

static void *trim_worker(void *arg) {
  struct trim_arg *t = arg;
  uint64_t rng = seed_for(7000 + (uint64_t)t->id);
  struct blk *b = t->blocks;
  for (int i = 0; i < TRIM_SMALL + TRIM_MID + 1; i++) {
    size_t n = i < TRIM_SMALL ? 1 + rnd(&rng) % 2048
               : i < TRIM_SMALL + TRIM_MID ? 33 * KiB + rnd(&rng) % (BUDDY_MAX - 33 * KiB)
                                           : 5 * MiB + rnd(&rng) % (15 * MiB);
    b[i] = (struct blk){malloc(n), n};
    REQUIRE(b[i].p, "malloc(%zu)", n);
    pattern_fill_sparse(b[i].p, n, block_seed(b[i].p, n));
  }
  pthread_barrier_wait(t->barrier);
  if (t->id == 0) trim_peak = rss_bytes();
  pthread_barrier_wait(t->barrier);
  /* Free the next thread's blocks: every free is a remote one. */
  struct blk *other = t->all[(t->id + 1) % NTHREADS].blocks;
  for (int i = 0; i < TRIM_SMALL + TRIM_MID + 1; i++) blk_free(other[i]);
  return NULL;
}

static void t_trim(void) {
  static struct trim_arg args[NTHREADS];
  static struct blk blocks[NTHREADS][TRIM_SMALL + TRIM_MID + 1];
  memset(blocks, 0, sizeof blocks); /* resident before the start is measured */
  pthread_barrier_t barrier;
  pthread_barrier_init(&barrier, NULL, NTHREADS);
  for (int i = 0; i < NTHREADS; i++) args[i] = (struct trim_arg){i, blocks[i], &barrier, args};
  size_t rss0 = rss_bytes();
  run_threads(NTHREADS, trim_worker, args, sizeof args[0]);
  pthread_barrier_destroy(&barrier);
  check_returned(rss0, trim_peak);
}

static const struct test tests[] = {
    {"mixed", t_mixed},
    {"queue", t_queue},
    {"thread_exit", t_thread_exit},
    {"fork", t_fork},
    {"trim", t_trim},
};

/* ---- the variant meson asked for (meson.build) is really on ------------------------------ */

static int thread_named(const char *name) {
  DIR *tasks = opendir("/proc/self/task");
  int found = 0;
  struct dirent *e;
  while (tasks && !found && (e = readdir(tasks))) {
    char path[64], comm[32] = "";
    snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
    FILE *f = fopen(path, "r");
    if (!f) continue;
    found = fgets(comm, sizeof comm, f) && strncmp(comm, name, strlen(name)) == 0 && comm[strlen(name)] == '\n';
    fclose(f);
  }
  if (tasks) closedir(tasks);
  return found;
}

static int env_is(const char *key, const char *value) {
  const char *v = getenv(key);
  return v && strcmp(v, value) == 0;
}

/* An option the library ignored (or a recorder that failed to start, with
 * only a warning) would leave a variant running the plain pool: each variant
 * shows its mark, or the run fails. */
static int check_variant(void) {
  int failed = 0;
  if (!tierpool_loaded()) return 0; /* glibc: nothing to check */
  if ((env_is("TIERPOOL_PROFILE", "1") || env_is("TIERPOOL_VALIDATE", "1")) && !thread_named("tierpool-write")) {
    printf("FAIL variant: recording asked for, but no tierpool-write thread\n");
    failed = 1;
  }
  if (env_is("TIERPOOL_BACKGROUND_THREAD", "on") && !thread_named("tierpool-bg")) {
    printf("FAIL variant: background_thread = on, but no tierpool-bg thread\n");
    failed = 1;
  }
  if (env_is("TIERPOOL_RELEASE_DELAY_MS", "0")) {
    tierpool_stats_t st;
    struct tierpool_api tp = tierpool_lookup();
    uint64_t releases = 0;
    if (tp.stats_get && tp.stats_get(&st) == 0)
      for (int t = 0; t < TIERPOOL_TIER_COUNT; t++) releases += st.tier[t].releases;
    if (!releases) {
      printf("FAIL variant: release_delay_ms = 0, but no memory was released\n");
      failed = 1;
    }
  }
  return failed;
}

int main(int argc, char **argv) {
  int rc = RUN_TESTS(tests, argc, argv);
  return rc == 1 || check_variant() ? 1 : rc;
}
