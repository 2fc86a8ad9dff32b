/* conform.c — the allocation API behaves like glibc 2.36's, across all three tiers.
 *
 * Runs preloaded with libtierpool.so (meson suite 'api'); every test but `active` and `stats`
 * passes on plain glibc too, or skips there when it checks what only the pool promises.  Checks that only tierpool has to meet (where glibc 2.36 differs
 * from the C/POSIX answer the pool gives) are asserted only when tierpool is loaded.
 */
#include "check.h"

#include <dirent.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>

/* Sizes on both sides of each tier boundary: slab up to 32 KiB, buddy up to 4 MiB, large. */
static const size_t tier_sizes[] = {
    1, 8, 16, 24, 100, 1000, 4096, SLAB_MAX - 1, SLAB_MAX, SLAB_MAX + 1, 100 * KiB,
    MiB, BUDDY_MAX - 1, BUDDY_MAX, BUDDY_MAX + 1, 16 * MiB, 64 * MiB,
};
#define N_TIER_SIZES (sizeof tier_sizes / sizeof tier_sizes[0])

/* Sizes for the aligned allocators: around each boundary, up to just above 4 MiB. */
static const size_t align_sizes[] = {
    1, 24, 4095, SLAB_MAX - 1, SLAB_MAX, SLAB_MAX + 1, MiB, BUDDY_MAX - 1, BUDDY_MAX, BUDDY_MAX + 1,
};
#define N_ALIGN_SIZES (sizeof align_sizes / sizeof align_sizes[0])
#define MIN_ALIGN_LOG 3  /* 8 B   */
#define MAX_ALIGN_LOG 22 /* 4 MiB */

static int is_aligned(const void *p, size_t a) { return (uintptr_t)p % a == 0; }

/* How many blocks of n bytes to use: budget / n, within [lo, hi]. */
static size_t block_count(size_t n, size_t budget, size_t lo, size_t hi) {
  size_t count = budget / n;
  return count < lo ? lo : count > hi ? hi : count;
}
static size_t round_up(size_t n, size_t a) { return (n + a - 1) / a * a; }

/* Fills count blocks over their whole usable size with distinct patterns, checks that their
 * address ranges do not overlap, then that every pattern is intact.  Frees nothing. */
static int cmp_ptr(const void *a, const void *b) {
  uintptr_t x = (uintptr_t) * (void *const *)a, y = (uintptr_t) * (void *const *)b;
  return x < y ? -1 : x > y;
}
static void check_disjoint(void **blocks, size_t count, const char *what) {
  for (size_t i = 0; i < count; i++)
    pattern_fill(blocks[i], malloc_usable_size(blocks[i]), mix64(i + 1));
  int bad = 0;
  for (size_t i = 0; i < count && bad < 3; i++) {
    size_t off = pattern_check(blocks[i], malloc_usable_size(blocks[i]), mix64(i + 1));
    bad += !CHECK(off == SIZE_MAX, "%s: block %zu of %zu (%p) overwritten at offset %zu", what,
                  i, count, blocks[i], off);
  }
  void **sorted = malloc(count * sizeof *sorted);
  REQUIRE(sorted);
  memcpy(sorted, blocks, count * sizeof *sorted);
  qsort(sorted, count, sizeof *sorted, cmp_ptr);
  for (size_t i = 0; i + 1 < count && bad < 3; i++) {
    uintptr_t end = (uintptr_t)sorted[i] + malloc_usable_size(sorted[i]);
    bad += !CHECK(end <= (uintptr_t)sorted[i + 1], "%s: %p + usable %zu overlaps %p", what,
                  sorted[i], malloc_usable_size(sorted[i]), sorted[i + 1]);
  }
  free(sorted);
}

static void free_all(void **blocks, size_t count) {
  for (size_t i = 0; i < count; i++) free(blocks[i]);
}

/* The call failed with NULL and the errno expected. */
#define CHECK_FAILS(expr, err)                                                               \
  do {                                                                                       \
    errno = 0;                                                                               \
    void *p_ = (expr);                                                                       \
    int e_ = errno;                                                                          \
    CHECK(p_ == NULL, "%s returned %p", #expr, p_);                                          \
    CHECK(e_ == (err), "%s: errno %d (%s), expected %s", #expr, e_, strerror(e_), #err);     \
    if (p_) free(p_);                                                                        \
  } while (0)

/* ---- the library is there ------------------------------------------------------------------ */

/* Fails without the preload: the tierpool symbols are found and its statistics count the
 * allocations of each tier. */
static void t_active(void) {
  struct tierpool_api tp = tierpool_lookup();
  REQUIRE(tp.stats_get, "tierpool_stats_get not found: libtierpool.so is not preloaded");
  REQUIRE(tp.version && tp.release, "tierpool_version/tierpool_release not found");
  CHECK(strcmp(tp.version(), TIERPOOL_VERSION) == 0, "version \"%s\"", tp.version());

  tierpool_stats_t before, after;
  REQUIRE(tp.stats_get(&before) == 0, "tierpool_stats_get failed");
  enum { SMALL = 1000 };
  static void *small[SMALL];
  for (int i = 0; i < SMALL; i++) small[i] = malloc(opaque(100));
  void *mid = malloc(opaque(100 * KiB)), *big = malloc(opaque(8 * MiB));
  REQUIRE(mid && big);
  memset(mid, 1, 100 * KiB);
  memset(big, 1, 8 * MiB);
  REQUIRE(tp.stats_get(&after) == 0, "tierpool_stats_get failed");
  static const char *const names[] = {"slab", "buddy", "large"};
  for (int t = 0; t < TIERPOOL_TIER_COUNT; t++) {
    CHECK(after.tier[t].allocs > before.tier[t].allocs, "%s tier: allocs %llu -> %llu",
          names[t], (unsigned long long)before.tier[t].allocs,
          (unsigned long long)after.tier[t].allocs);
    CHECK(after.tier[t].bytes_requested > before.tier[t].bytes_requested,
          "%s tier: bytes_requested did not grow", names[t]);
  }
  CHECK(after.tier[TIERPOOL_TIER_BUDDY].live_bytes >= 100 * KiB, "buddy live %llu",
        (unsigned long long)after.tier[TIERPOOL_TIER_BUDDY].live_bytes);
  CHECK(after.tier[TIERPOOL_TIER_LARGE].live_bytes >= 8 * MiB, "large live %llu",
        (unsigned long long)after.tier[TIERPOOL_TIER_LARGE].live_bytes);
  free_all(small, SMALL);
  free(mid);
  free(big);
}

/* Blocks a thread freed into its cache and stopped allocating go back to the central lists
 * (where their slabs can empty and be released): a bin no allocation took from between two
 * passes of the cache's scavenge (on slow paths, 100 ms apart at least) is emptied.  node's
 * main thread kept 500 KiB that way after its start-up.  The trigger is 600 allocations of
 * 24 B (class 32, which holds at most 256 blocks, so it refills), twice, 150 ms apart: after
 * them only class 32's bin may hold blocks (8 KiB at most); the idle bins of 64 B and 1 KiB
 * blocks held 16 KiB or more. */
static void t_idle_cache_returned(void) {
  struct tierpool_api tp = tierpool_lookup();
  REQUIRE(tp.stats_get, "tierpool_stats_get not found: libtierpool.so is not preloaded");
  enum { IDLE = 600, TRIGGER = 600 };
  static void *idle[2 * IDLE], *trigger[2 * TRIGGER];
  for (int i = 0; i < IDLE; i++) idle[i] = malloc(opaque(64)), idle[IDLE + i] = malloc(opaque(1000));
  free_all(idle, 2 * IDLE);
  tierpool_stats_t held, after;
  REQUIRE(tp.stats_get(&held) == 0);
  CHECK(held.thread_cache_bytes >= 16 * KiB, "the cache holds %llu B after the frees",
        (unsigned long long)held.thread_cache_bytes);
  for (int round = 0; round < 2; round++) {
    struct timespec pause = {0, 150 * 1000 * 1000};
    nanosleep(&pause, NULL);
    for (int i = 0; i < TRIGGER; i++) trigger[round * TRIGGER + i] = malloc(opaque(24));
  }
  REQUIRE(tp.stats_get(&after) == 0);
  CHECK(after.thread_cache_bytes <= 256 * 32, "the cache holds %llu B after 300 ms idle (%llu B before)",
        (unsigned long long)after.thread_cache_bytes, (unsigned long long)held.thread_cache_bytes);
  free_all(trigger, 2 * TRIGGER);
}

/* Statistics invariants, and malloc_trim() empties the large-block cache.  (Resident may be
 * below live: the pool counts resident pages with mincore, and a block need not be touched.) */
static void t_stats(void) {
  struct tierpool_api tp = tierpool_lookup();
  if (!tp.stats_get) {
    skip("tierpool not loaded");
    return;
  }
  tierpool_stats_t s0, s1, s2;
  void *big = malloc(opaque(16 * MiB));
  REQUIRE(big);
  memset(big, 1, 16 * MiB);
  REQUIRE(tp.stats_get(&s0) == 0);
  free(big);
  REQUIRE(tp.stats_get(&s1) == 0);
  malloc_trim(0);
  REQUIRE(tp.stats_get(&s2) == 0);
  const tierpool_tier_stats_t *l0 = &s0.tier[TIERPOOL_TIER_LARGE], *l1 = &s1.tier[TIERPOOL_TIER_LARGE],
                              *l2 = &s2.tier[TIERPOOL_TIER_LARGE];
  CHECK(l1->frees > l0->frees, "large frees %llu -> %llu", (unsigned long long)l0->frees,
        (unsigned long long)l1->frees);
  CHECK(l1->live_bytes + 16 * MiB <= l0->live_bytes, "large live %llu -> %llu after free",
        (unsigned long long)l0->live_bytes, (unsigned long long)l1->live_bytes);
  CHECK(l2->resident_bytes <= l2->live_bytes + MiB,
        "large tier after malloc_trim: resident %llu, live %llu", (unsigned long long)l2->resident_bytes,
        (unsigned long long)l2->live_bytes);
  for (int t = 0; t < TIERPOOL_TIER_COUNT; t++) {
    const tierpool_tier_stats_t *x = &s0.tier[t];
    CHECK(x->peak_bytes >= x->live_bytes, "tier %d: peak %llu < live %llu", t,
          (unsigned long long)x->peak_bytes, (unsigned long long)x->live_bytes);
    CHECK(x->bytes_allocated >= x->bytes_requested, "tier %d: allocated < requested", t);
    CHECK(x->allocs >= x->frees, "tier %d: more frees than allocs", t);
  }
}

/* ---- malloc, free, malloc_usable_size ----------------------------------------------------- */

static void t_malloc_zero(void) {
  enum { COUNT = 64 };
  void *blocks[COUNT];
  for (int i = 0; i < COUNT; i++) {
    blocks[i] = malloc(opaque(0));
    REQUIRE(blocks[i], "malloc(0) returned NULL");
  }
  for (int i = 0; i < COUNT; i++)
    for (int j = 0; j < i; j++)
      CHECK(blocks[i] != blocks[j], "malloc(0) returned %p twice", blocks[i]);
  check_disjoint(blocks, COUNT, "malloc(0)");
  free_all(blocks, COUNT);
  free(NULL);
  free(opaque_ptr(NULL));
  CHECK(malloc_usable_size(NULL) == 0);
  void *p = realloc(NULL, opaque(0));
  CHECK(p != NULL, "realloc(NULL, 0) returned NULL");
  free(p);
}

static void t_malloc_sizes(void) {
  for (size_t n = 0; n <= 4 * KiB + 64; n++) {
    void *p = malloc(opaque(n));
    check_block("malloc", p, n, fundamental_alignment(n));
    free(p);
  }
  for (size_t i = 0; i < N_TIER_SIZES; i++) {
    size_t n = tier_sizes[i];
    void *p = malloc(opaque(n));
    check_block("malloc", p, n, fundamental_alignment(n));
    free(p);
  }
}

/* Many blocks of one size are distinct and do not overlap, in every tier. */
static void t_distinct(void) {
  enum { MAX_BLOCKS = 10000 };
  static void *blocks[MAX_BLOCKS];
  for (size_t i = 0; i < N_TIER_SIZES; i++) {
    size_t n = tier_sizes[i], count = block_count(n, 64 * MiB, 2, MAX_BLOCKS);
    for (size_t b = 0; b < count; b++) REQUIRE(blocks[b] = malloc(opaque(n)), "malloc(%zu)", n);
    char what[32];
    snprintf(what, sizeof what, "malloc(%zu)", n);
    check_disjoint(blocks, count, what);
    free_all(blocks, count);
  }
}

/* ---- realloc, reallocarray -------------------------------------------------------------- */

/* realloc keeps the first min(old, new) bytes; refills with a new pattern for the next step. */
static void *realloc_checked(void *p, size_t old, size_t n, uint64_t *seed) {
  void *q = realloc(p, opaque(n));
  REQUIRE(q, "realloc(%p, %zu) returned NULL", p, n);
  size_t keep = old < n ? old : n;
  size_t off = pattern_check(q, keep, *seed);
  CHECK(off == SIZE_MAX, "realloc %zu -> %zu: byte %zu of %zu lost", old, n, off, keep);
  CHECK(malloc_usable_size(q) >= n, "realloc to %zu: usable %zu", n, malloc_usable_size(q));
  *seed = mix64(*seed + n);
  pattern_fill(q, n, *seed);
  return q;
}

static void t_realloc_tiers(void) {
  uint64_t seed = 1;
  size_t old = 0;
  void *p = NULL;
  /* Up through every tier, back down, and up again. */
  for (int pass = 0; pass < 3; pass++)
    for (size_t k = 0; k < N_TIER_SIZES; k++) {
      size_t n = tier_sizes[pass == 1 ? N_TIER_SIZES - 1 - k : k];
      p = realloc_checked(p, old, n, &seed);
      old = n;
    }
  /* Small steps through the slab classes, up and down. */
  for (size_t n = 1; n < 3000; n += 7) p = realloc_checked(p, old, n, &seed), old = n;
  for (size_t n = 3000; n > 0; n -= 5) p = realloc_checked(p, old, n, &seed), old = n;
  free(p);

  /* Aligned blocks can be reallocated: the pool finds them from an aligned pointer. */
  static const size_t aligns[] = {64, 4096, 64 * KiB, MiB, 4 * MiB};
  for (size_t a = 0; a < sizeof aligns / sizeof aligns[0]; a++) {
    p = memalign(opaque(aligns[a]), opaque(1000));
    REQUIRE(p);
    seed = mix64(a);
    pattern_fill(p, 1000, seed);
    p = realloc_checked(p, 1000, 100 * KiB, &seed);
    p = realloc_checked(p, 100 * KiB, 10, &seed);
    free(p);
  }
}

/* A vector that doubles: a buddy block of 128 KiB or more that cannot grow in place moves
 * into a mapping of its own (the large tier) instead of being copied, keeps its bytes, grows
 * by mremap from then on, and its free unmaps it (no copy of it stays resident). */
static void t_realloc_moves_out(void) {
  struct tierpool_api tp = tierpool_lookup();
  uint64_t seed = 7;
  size_t old = 64 * KiB;
  char *p = malloc(opaque(old));
  REQUIRE(p);
  pattern_fill(p, old, seed);
  enum { FILLERS = 64 }; /* buddy blocks carved after p: it cannot grow in place for long */
  void *fillers[FILLERS];
  for (int i = 0; i < FILLERS; i++) REQUIRE(fillers[i] = malloc(opaque(64 * KiB)));
  tierpool_stats_t before, after, freed;
  if (tp.stats_get) REQUIRE(tp.stats_get(&before) == 0);
  for (size_t n = 160 * KiB; n <= 3 * MiB; n = n * 3 / 2) p = realloc_checked(p, old, n, &seed), old = n;
  if (tp.stats_get) {
    REQUIRE(tp.stats_get(&after) == 0);
    const tierpool_tier_stats_t *l0 = &before.tier[TIERPOOL_TIER_LARGE], *l1 = &after.tier[TIERPOOL_TIER_LARGE];
    CHECK(l1->live_bytes >= l0->live_bytes + old, "the grown block is not a mapping: large live %llu -> %llu",
          (unsigned long long)l0->live_bytes, (unsigned long long)l1->live_bytes);
  }
  free(p);
  if (tp.stats_get) {
    REQUIRE(tp.stats_get(&freed) == 0);
    CHECK(freed.tier[TIERPOOL_TIER_LARGE].resident_bytes + old <= after.tier[TIERPOOL_TIER_LARGE].resident_bytes,
          "the freed block stayed resident: large resident %llu -> %llu",
          (unsigned long long)after.tier[TIERPOOL_TIER_LARGE].resident_bytes,
          (unsigned long long)freed.tier[TIERPOOL_TIER_LARGE].resident_bytes);
  }
  free_all(fillers, FILLERS);
}

/* The host maps memory it will write (a runtime's heap or Wasm memory grows): the pool's
 * free buddy blocks of 32 KiB and more go back to the OS at once, not after the release
 * delay — they are idle, and the process should not hold both.  (The heap holds less than
 * the 4 MiB from which it releases for low utilisation, so only this path returns them.) */
static void t_host_growth(void) {
  struct tierpool_api tp = tierpool_lookup();
  if (!tp.stats_get) {
    skip("tierpool not loaded");
    return;
  }
  enum { BLOCKS = 16 };
  void *blocks[BLOCKS];
  for (int i = 0; i < BLOCKS; i++) {
    REQUIRE(blocks[i] = malloc(opaque(128 * KiB)));
    memset(blocks[i], 1, 128 * KiB);
  }
  usleep(10 * 1000); /* host growth is looked at most once per 5 ms */
  tierpool_stats_t freed, grown;
  free_all(blocks, BLOCKS);
  REQUIRE(tp.stats_get(&freed) == 0);
  char *host = mmap(NULL, 4 * MiB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  REQUIRE(host != MAP_FAILED);
  REQUIRE(tp.stats_get(&grown) == 0);
  uint64_t before = freed.tier[TIERPOOL_TIER_BUDDY].resident_bytes, after = grown.tier[TIERPOOL_TIER_BUDDY].resident_bytes;
  CHECK(after + BLOCKS * 128 * KiB <= before + 128 * KiB, "free buddy blocks stayed resident: %llu KiB -> %llu KiB",
        (unsigned long long)before >> 10, (unsigned long long)after >> 10);
  munmap(host, 4 * MiB);
}

/* A freed large mapping is cached for large_cache_ms (100 ms here), then unmapped, also
 * without the background thread: the pool's maintenance on its other paths expires it.
 * (Only the next large free did, so a program done with its big buffers kept up to
 * large_cache_max of dead pages for good.) */
static void t_large_cache_expires(void) {
  struct tierpool_api tp = tierpool_lookup();
  if (!tp.stats_get) {
    skip("tierpool not loaded");
    return;
  }
  for (int i = 0; i < 2; i++) { /* the cache learns from the first free: the second is kept */
    char *p = malloc(opaque(8 * MiB));
    REQUIRE(p);
    memset(p, 1, 8 * MiB);
    free(p);
  }
  tierpool_stats_t cached, later;
  REQUIRE(tp.stats_get(&cached) == 0);
  CHECK(cached.tier[TIERPOOL_TIER_LARGE].resident_bytes >= 8 * MiB, "the freed 8 MiB mapping was not cached (%llu KiB)",
        (unsigned long long)cached.tier[TIERPOOL_TIER_LARGE].resident_bytes >> 10);
  usleep(300 * 1000);
  for (int i = 0; i < 50; i++) { /* buddy traffic, a millisecond apart: maintenance runs */
    free(malloc(opaque(64 * KiB)));
    usleep(1000);
  }
  REQUIRE(tp.stats_get(&later) == 0);
  CHECK(later.tier[TIERPOOL_TIER_LARGE].resident_bytes == 0, "a freed mapping still cached after 350 ms: %llu KiB",
        (unsigned long long)later.tier[TIERPOOL_TIER_LARGE].resident_bytes >> 10);
}

/* ... but not when each such purge is undone right away: a program that maps memory of its
 * own between freeing and reallocating the same blocks (Python maps an arena whenever its
 * objects need one) would have them released and faulted in again every time.  Regretted
 * purges back off: 40 rounds give far fewer than 40 releases. */
static void t_host_growth_regret(void) {
  struct tierpool_api tp = tierpool_lookup();
  if (!tp.stats_get) {
    skip("tierpool not loaded");
    return;
  }
  enum { BLOCKS = 16, ROUNDS = 40 };
  tierpool_stats_t before, after;
  REQUIRE(tp.stats_get(&before) == 0);
  for (int round = 0; round < ROUNDS; round++) {
    void *blocks[BLOCKS];
    for (int i = 0; i < BLOCKS; i++) {
      REQUIRE(blocks[i] = malloc(opaque(128 * KiB)));
      memset(blocks[i], 1, 128 * KiB);
    }
    free_all(blocks, BLOCKS);
    usleep(15 * 1000); /* past the 5 ms between two looks at host growth, on a clock of 4-10 ms ticks */
    char *host = mmap(NULL, MiB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    REQUIRE(host != MAP_FAILED);
    munmap(host, MiB);
  }
  REQUIRE(tp.stats_get(&after) == 0);
  uint64_t releases = after.os.pool_madvise - before.os.pool_madvise;
  CHECK(releases <= ROUNDS / 2, "%llu madvise calls in %d rounds: purges that are undone at once do not back off",
        (unsigned long long)releases, ROUNDS);
}

/* Bytes a program never wrote may hold anything the pool left there, free
 * slab blocks' free marks included: pages of 16 KiB slab blocks, freed and
 * given back to the buddy, come back as page-tier blocks whose first words
 * were never written; realloc copies them into a small block, whose free must
 * still be an ordinary free (it once read as a double free and aborted). */
static void t_realloc_stale_words(void) {
  enum { SLAB_BLOCKS = 64, BIG = 16 };
  void *slab_blocks[SLAB_BLOCKS], *big[BIG];
  for (int i = 0; i < SLAB_BLOCKS; i++) REQUIRE(slab_blocks[i] = malloc(opaque(16 * KiB)));
  free_all(slab_blocks, SLAB_BLOCKS);
  for (int i = 0; i < BIG; i++) {
    REQUIRE(big[i] = malloc(opaque(48 * KiB)));
    memset((char *)big[i] + 64, 0x5a, 48 * KiB - 64); /* all but the first words */
  }
  for (int i = 0; i < BIG; i++) {
    char *q = realloc(big[i], opaque(100));
    REQUIRE(q);
    for (int k = 64; k < 100; k++) CHECK(q[k] == 0x5a, "realloc lost byte %d", k);
    free(q);
  }
}

/* The same leftovers copied by the program itself: the first words of each
 * page-tier block, never written, copied into a small block that is freed
 * unchanged.  A free mark is tied to its block's address, so a copied one
 * never reads as a double free. */
static void t_copy_stale_words(void) {
  enum { SLAB_BLOCKS = 64, BIG = 16 };
  void *slab_blocks[SLAB_BLOCKS], *big[BIG];
  for (int i = 0; i < SLAB_BLOCKS; i++) REQUIRE(slab_blocks[i] = malloc(opaque(16 * KiB)));
  free_all(slab_blocks, SLAB_BLOCKS);
  for (int i = 0; i < BIG; i++) REQUIRE(big[i] = malloc(opaque(48 * KiB)));
  for (int i = 0; i < BIG; i++) {
    for (size_t offset = 0; offset < 48 * KiB; offset += 16 * KiB) {
      char *q = malloc(opaque(100));
      REQUIRE(q);
      memcpy(q, (char *)big[i] + offset, 64); /* bytes nobody wrote */
      free(q);
    }
  }
  free_all(big, BIG);
}

static void t_realloc_null_and_zero(void) {
  for (size_t i = 0; i < N_TIER_SIZES; i++) {
    void *p = realloc(NULL, opaque(tier_sizes[i]));
    check_block("realloc(NULL)", p, tier_sizes[i], fundamental_alignment(tier_sizes[i]));
    free(p);
  }
  /* realloc(p, 0) frees p and returns NULL (glibc's REALLOC_ZERO_BYTES_FREES): a loop that
   * leaked would grow the resident set by 200 MiB per size. */
  static const size_t sizes[] = {1000, 100 * KiB, 8 * MiB};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    size_t n = sizes[i], rounds = 200 * MiB / n, returned = 0;
    size_t rss0 = rss_bytes();
    for (size_t r = 0; r < rounds; r++) {
      char *p = malloc(opaque(n));
      REQUIRE(p);
      memset(p, 1, n);
      errno = 0;
      void *q = realloc(p, opaque(0));
      if (q) returned++, free(q);
    }
    size_t rss1 = rss_bytes();
    CHECK(returned == 0, "realloc(p of %zu, 0) returned non-NULL %zu times", n, returned);
    CHECK(rss1 < rss0 + 64 * MiB, "realloc(p of %zu, 0) x %zu: resident %zu -> %zu MiB", n,
          rounds, rss0 / MiB, rss1 / MiB);
  }
}

static void t_realloc_fail(void) {
  char *p = malloc(100);
  REQUIRE(p);
  pattern_fill(p, 100, 7);
  CHECK_FAILS(realloc(opaque_ptr(p), opaque(SIZE_MAX)), ENOMEM);
  CHECK_FAILS(realloc(opaque_ptr(p), opaque((size_t)PTRDIFF_MAX + 1)), ENOMEM);
  CHECK_FAILS(reallocarray(opaque_ptr(p), opaque(SIZE_MAX / 2 + 1), opaque(2)), ENOMEM);
  CHECK_FAILS(reallocarray(opaque_ptr(p), opaque((size_t)1 << 33), opaque((size_t)1 << 33)), ENOMEM);
  CHECK(pattern_check(p, 100, 7) == SIZE_MAX, "failed realloc changed the block");
  free(p);
  CHECK_FAILS(reallocarray(NULL, opaque(SIZE_MAX / 2 + 1), opaque(2)), ENOMEM);
}

/* The first page boundary 100 pages into a large block (glibc's mmapped chunks start 16 bytes in). */
static char *page_inside(char *p) { return (char *)(((uintptr_t)p + 4095) & ~(uintptr_t)4095) + 100 * 4096; }

/* A large block the program split into several mappings (madvise on one page
 * of it) still grows: mremap refuses such a range, and realloc copies instead
 * of failing, as glibc does. */
static void t_realloc_split_large(void) {
  size_t n = 8 * MiB;
  char *p = malloc(opaque(n));
  REQUIRE(p);
  pattern_fill(p, n, 11);
  REQUIRE(madvise(page_inside(p), 4096, MADV_DONTDUMP) == 0, "madvise: %s", strerror(errno));
  errno = 0;
  char *q = realloc(p, opaque(2 * n));
  REQUIRE(q, "realloc of a split %zu-byte block to %zu failed: %s", n, 2 * n, strerror(errno));
  CHECK(pattern_check(q, n, 11) == SIZE_MAX, "realloc of a split block lost its bytes");
  free(q);
}

/* What the program did to a freed large block's pages does not reach the
 * next block that gets them: a read-only page (a guard page of a stack the
 * program malloc'ed) or a page wiped in fork children.  The pool's cache of
 * freed mappings hands out plain ones.  (glibc fails this test: once a free
 * has raised its mmap threshold, the block comes from the heap, and the next
 * one gets the read-only page.) */
static void t_large_reuse_plain(void) {
  if (!tierpool_lookup().stats_get) {
    skip("tierpool not loaded (glibc reuses the page as it was left)");
    return;
  }
  size_t n = 8 * MiB;
  for (int round = 0; round < 3; round++) free(malloc(opaque(n))); /* the cache knows the size */
  char *b = malloc(opaque(n));
  REQUIRE(b);
  REQUIRE(mprotect(page_inside(b), 4096, PROT_READ) == 0, "mprotect: %s", strerror(errno));
  REQUIRE(madvise(page_inside(b) + 4096, 4096, MADV_WIPEONFORK) == 0, "madvise: %s", strerror(errno));
  free(b);
  char *c = malloc(opaque(n));
  REQUIRE(c);
  memset(c, 0x5a, n); /* SIGSEGV on a page left read-only */
  fflush(NULL);
  pid_t child = fork();
  REQUIRE(child >= 0, "fork: %s", strerror(errno));
  if (child == 0) _exit(c[page_inside(c) + 4096 - c] == 0x5a && c[n - 1] == 0x5a ? 0 : 3);
  int status = 0;
  REQUIRE(waitpid(child, &status, 0) == child);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "a fork child saw the reused block's page wiped");
  free(c);
}

/* The VmFlags of the mapping holding p ("rd wr mr mw me ac lo ..."), or "". */
static void vm_flags_of(const void *p, char *out, size_t cap) {
  FILE *f = fopen("/proc/self/smaps", "r");
  char line[512];
  int inside = 0;
  out[0] = 0;
  while (f && fgets(line, sizeof line, f)) {
    unsigned long lo, hi;
    if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' '))
      inside = (uintptr_t)p >= lo && (uintptr_t)p < hi;
    else if (inside && strncmp(line, "VmFlags:", 8) == 0) snprintf(out, cap, "%s", line + 8);
  }
  if (f) fclose(f);
}

/* A program that locked its memory keeps it locked: growing a mid-size block
 * does not unlock its neighbours (moving pages out with MREMAP_DONTUNMAP
 * clears the lock of the whole mapping they leave). */
static void t_mlockall_kept(void) {
  if (mlockall(MCL_CURRENT | MCL_FUTURE) != 0) {
    skip("mlockall refused (no CAP_IPC_LOCK, low RLIMIT_MEMLOCK)");
    return;
  }
  char *a = malloc(opaque(256 * KiB)), *b = malloc(opaque(256 * KiB));
  REQUIRE(a && b);
  memset(a, 1, 256 * KiB), memset(b, 2, 256 * KiB);
  char before[256], after[256];
  vm_flags_of(b, before, sizeof before);
  a = realloc(a, opaque(8 * MiB));
  REQUIRE(a);
  vm_flags_of(b, after, sizeof after);
  CHECK(strstr(before, " lo") != NULL, "b's mapping not locked after mlockall: VmFlags%s", before);
  CHECK(strstr(after, " lo") != NULL, "growing another block unlocked b's mapping: VmFlags%s", after);
  CHECK(a[256 * KiB - 1] == 1 && b[0] == 2, "contents changed");
  free(a), free(b);
  munlockall();
}

/* True when a thread of this process is named `name` within a second. */
static int thread_named(const char *name) {
  for (int tries = 0; tries < 100; tries++) {
    DIR *tasks = opendir("/proc/self/task");
    struct dirent *d;
    int found = 0;
    while (tasks && !found && (d = readdir(tasks)) != NULL) {
      char path[300], comm[32] = "";
      snprintf(path, sizeof path, "/proc/self/task/%s/comm", d->d_name);
      FILE *f = fopen(path, "r");
      if (f && fgets(comm, sizeof comm, f)) found = strncmp(comm, name, strlen(name)) == 0;
      if (f) fclose(f);
    }
    if (tasks) closedir(tasks);
    if (found) return 1;
    usleep(10 * 1000);
  }
  return 0;
}

/* background_thread = on (the test's environment) holds in a forked child
 * too: its maintenance thread is started again there, as the recorder's
 * writer is, or an idle child kept its cached large mappings for good. */
static void t_background_fork(void) {
  if (!tierpool_lookup().stats_get) {
    skip("tierpool not loaded");
    return;
  }
  REQUIRE(thread_named("tierpool-bg"), "no tierpool-bg thread in the parent (is TIERPOOL_BACKGROUND_THREAD=on?)");
  fflush(NULL);
  pid_t child = fork();
  REQUIRE(child >= 0, "fork: %s", strerror(errno));
  if (child == 0) _exit(thread_named("tierpool-bg") ? 0 : 3);
  int status = 0;
  REQUIRE(waitpid(child, &status, 0) == child);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the forked child has no tierpool-bg thread (status %d)",
        status);
}

static void t_reallocarray(void) {
  uint64_t seed = 3;
  char *p = reallocarray(NULL, opaque(10), opaque(10));
  REQUIRE(p);
  CHECK(malloc_usable_size(p) >= 100);
  pattern_fill(p, 100, seed);
  static const size_t counts[] = {50, 5000, 500000, 20};
  size_t old = 100;
  for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++) {
    size_t n = counts[i] * 20;
    p = reallocarray(p, opaque(counts[i]), opaque(20));
    REQUIRE(p, "reallocarray(%zu, 20)", counts[i]);
    size_t keep = old < n ? old : n;
    CHECK(pattern_check(p, keep, seed) == SIZE_MAX, "reallocarray to %zu lost data", n);
    CHECK(malloc_usable_size(p) >= n);
    seed++;
    pattern_fill(p, n, seed);
    old = n;
  }
  free(p);
}

/* ---- calloc -------------------------------------------------------------------------------- */

/* calloc zeroes recycled memory: blocks of each size are filled with 0xa5 and freed, then the
 * same sizes are calloc'ed (so they reuse that memory) and must read as zero. */
static void t_calloc_recycled(void) {
  enum { MAX_BLOCKS = 256 };
  void *blocks[MAX_BLOCKS];
  for (size_t i = 0; i < N_TIER_SIZES; i++) {
    size_t n = tier_sizes[i], count = block_count(n, 32 * MiB, 1, MAX_BLOCKS);
    for (int round = 0; round < 2; round++) {
      for (size_t b = 0; b < count; b++) {
        REQUIRE(blocks[b] = malloc(opaque(n)));
        memset(blocks[b], 0xa5, malloc_usable_size(blocks[b]));
      }
      free_all(blocks, count);
      int bad = 0;
      for (size_t b = 0; b < count; b++) {
        /* Alternate the factor order: calloc(1, n), calloc(n, 1), calloc(n / 8, 8). */
        size_t nmemb = b % 3 == 0 ? 1 : b % 3 == 1 ? n : n / 8 ? n / 8 : 1;
        size_t size = b % 3 == 0 ? n : b % 3 == 1 ? 1 : n / 8 ? 8 : n;
        REQUIRE(blocks[b] = calloc(opaque(nmemb), opaque(size)), "calloc(%zu, %zu)", nmemb, size);
        size_t off = first_nonzero(blocks[b], nmemb * size);
        if (bad < 3)
          bad += !CHECK(off == SIZE_MAX, "calloc(%zu, %zu) round %d: byte %zu not zero", nmemb,
                        size, round, off);
      }
      free_all(blocks, count);
    }
  }
}

/* A process that locked its memory (mlockall: databases, real-time and security-minded
 * programs) cannot have pages dropped with MADV_DONTNEED (EINVAL on locked pages).  Memory the
 * pool releases must still read as zero when calloc hands it out: a 2 MiB calloc zeroes its
 * block by releasing it, and free buddy blocks purged when the host maps memory are taken as
 * zero pages.  (Both once came back full of the old bytes.) */
static void t_calloc_locked(void) {
  struct rlimit unlimited = {RLIM_INFINITY, RLIM_INFINITY};
  setrlimit(RLIMIT_MEMLOCK, &unlimited); /* root may; otherwise mlockall may still fit */
  if (mlockall(MCL_CURRENT | MCL_FUTURE) != 0) {
    skip("mlockall refused (no CAP_IPC_LOCK, RLIMIT_MEMLOCK too small)");
    return;
  }
  enum { BLOCKS = 16 };
  for (int round = 0; round < 3; round++) {
    char *big = malloc(opaque(2 * MiB));
    REQUIRE(big);
    memset(big, 0xa5, 2 * MiB);
    free(big);
    char *zeroed = calloc(opaque(1), opaque(2 * MiB));
    REQUIRE(zeroed);
    size_t off = first_nonzero(zeroed, 2 * MiB);
    CHECK(off == SIZE_MAX, "calloc(1, 2 MiB) after a free of 2 MiB, memory locked: byte %zu is 0x%02x", off,
          off == SIZE_MAX ? 0 : (unsigned char)zeroed[off]);
    free(zeroed);

    void *blocks[BLOCKS];
    for (int i = 0; i < BLOCKS; i++) {
      REQUIRE(blocks[i] = malloc(opaque(128 * KiB)));
      memset(blocks[i], 0xa5, 128 * KiB);
    }
    free_all(blocks, BLOCKS);
    usleep(15 * 1000); /* host growth is looked at at most once per 5 ms */
    char *host = mmap(NULL, MiB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    REQUIRE(host != MAP_FAILED);
    munmap(host, MiB);
    int bad = 0;
    for (int i = 0; i < BLOCKS; i++) {
      REQUIRE(blocks[i] = calloc(opaque(1), opaque(128 * KiB)));
      off = first_nonzero(blocks[i], 128 * KiB);
      if (bad < 3) bad += !CHECK(off == SIZE_MAX, "calloc(1, 128 KiB) after a host mapping, memory locked: byte %zu not zero", off);
    }
    free_all(blocks, BLOCKS);
  }
  munlockall();
}

/* A block freed with one page of it still mlock'ed (a key, a password buffer) keeps that
 * page, and only that: the rest of the pool's free memory still goes back, and a calloc over
 * the locked page reads zero.  (The page made MADV_DONTNEED refuse a whole range, and the pool
 * stopped giving memory back for good: 72 MiB resident after malloc_trim, glibc 1.5.) */
static void t_mlocked_block_freed(void) {
  enum { BLOCKS = 128, SIZE = 256 * KiB };
  void *blocks[BLOCKS];
  size_t start = rss_bytes();
  REQUIRE(start > 0);
  for (int round = 0; round < 3; round++) {
    for (int i = 0; i < BLOCKS; i++) {
      REQUIRE(blocks[i] = round ? calloc(opaque(1), opaque(SIZE)) : malloc(opaque(SIZE)));
      size_t off = round ? first_nonzero(blocks[i], SIZE) : SIZE_MAX;
      CHECK(off == SIZE_MAX, "round %d: calloc(1, 256 KiB) #%d: byte %zu not zero", round, i, off);
      memset(blocks[i], 0xa5, SIZE);
    }
    if (round == 0 && mlock(blocks[BLOCKS / 2], 4096) != 0) {
      free_all(blocks, BLOCKS);
      skip("mlock refused (RLIMIT_MEMLOCK)");
      return;
    }
    free_all(blocks, BLOCKS);
    malloc_trim(0);
  }
  size_t end = rss_bytes();
  CHECK(end < start + 8 * MiB, "resident after the blocks were freed and trimmed: %zu KiB, %zu at the start", end >> 10,
        start >> 10);
}

static void t_calloc_edges(void) {
  void *p = calloc(opaque(0), opaque(5)), *q = calloc(opaque(5), opaque(0));
  CHECK(p && q, "calloc(0, 5) = %p, calloc(5, 0) = %p", p, q);
  free(p);
  free(q);
  CHECK_FAILS(calloc(opaque(SIZE_MAX), opaque(2)), ENOMEM);
  CHECK_FAILS(calloc(opaque(2), opaque(SIZE_MAX)), ENOMEM);
  CHECK_FAILS(calloc(opaque((size_t)1 << 33), opaque((size_t)1 << 33)), ENOMEM);
  CHECK_FAILS(calloc(opaque(PTRDIFF_MAX / 2 + 1), opaque(2)), ENOMEM);
}

/* ---- sizes no allocator can serve -------------------------------------------------------- */

static void t_enomem(void) {
  CHECK_FAILS(malloc(opaque(SIZE_MAX)), ENOMEM);
  CHECK_FAILS(malloc(opaque(SIZE_MAX - 4096)), ENOMEM);
  CHECK_FAILS(malloc(opaque((size_t)PTRDIFF_MAX + 1)), ENOMEM);
  CHECK_FAILS(realloc(NULL, opaque(SIZE_MAX)), ENOMEM);
  CHECK_FAILS(memalign(opaque(64), opaque(SIZE_MAX)), ENOMEM);
  CHECK_FAILS(memalign(opaque(MiB), opaque(SIZE_MAX - MiB)), ENOMEM);
  CHECK_FAILS(memalign(opaque(SIZE_MAX / 2 + 1), opaque(16)), ENOMEM);
  CHECK_FAILS(aligned_alloc(opaque(64), opaque(SIZE_MAX)), ENOMEM);
  CHECK_FAILS(valloc(opaque(SIZE_MAX)), ENOMEM);
  CHECK_FAILS(pvalloc(opaque(SIZE_MAX)), ENOMEM);
  CHECK_FAILS(pvalloc(opaque(SIZE_MAX - 100)), ENOMEM); /* rounding up overflows */
}

/* ---- aligned allocation -------------------------------------------------------------------- */

typedef void *aligned_fn(size_t align, size_t n);

static void *posix_memalign_or_null(size_t align, size_t n) {
  void *p = NULL;
  int r = posix_memalign(&p, align, n);
  CHECK(r == 0, "posix_memalign(%zu, %zu) = %d", align, n, r);
  return r == 0 ? p : NULL;
}

/* Every power-of-two alignment 8 B .. 4 MiB with sizes around each tier boundary: aligned,
 * usable >= requested, writable over the size, and the blocks of one alignment disjoint. */
static void aligned_sweep(const char *name, aligned_fn *alloc) {
  enum { PER_ALIGN = N_ALIGN_SIZES + 3 * 8 };
  void *blocks[PER_ALIGN];
  for (int lg = MIN_ALIGN_LOG; lg <= MAX_ALIGN_LOG; lg++) {
    size_t a = (size_t)1 << lg;
    /* The boundary sizes, then eight each of a / 2, a and a + 1 (mimalloc 2.0.9 misaligned
     * size == alignment for 256 .. 1024: microsoft/mimalloc#700). */
    for (size_t i = 0; i < PER_ALIGN; i++) {
      size_t j = i - N_ALIGN_SIZES;
      size_t n = i < N_ALIGN_SIZES ? align_sizes[i] : j < 8 ? a / 2 : j < 16 ? a : a + 1;
      void *p = blocks[i] = alloc(opaque(a), opaque(n));
      REQUIRE(p, "%s(%zu, %zu) returned NULL", name, a, n);
      CHECK(is_aligned(p, a), "%s(%zu, %zu) = %p", name, a, n, p);
      CHECK(malloc_usable_size(p) >= n, "%s(%zu, %zu): usable %zu", name, a, n,
            malloc_usable_size(p));
    }
    char what[48];
    snprintf(what, sizeof what, "%s(%zu, ...)", name, a);
    check_disjoint(blocks, PER_ALIGN, what);
    free_all(blocks, PER_ALIGN);
  }
}

static void t_memalign(void) {
  aligned_sweep("memalign", memalign);
  /* glibc rounds a non-power-of-two alignment up (and serves 0 like malloc); beyond 2^63 it
   * cannot, and says EINVAL. */
  static const size_t odd[] = {0, 1, 3, 24, 48, 100, 4097, 3 * MiB};
  for (size_t i = 0; i < sizeof odd / sizeof odd[0]; i++) {
    size_t a = 1, want = odd[i];
    while (a < want) a *= 2;
    void *p = memalign(opaque(want), opaque(100));
    CHECK(p && is_aligned(p, a), "memalign(%zu, 100) = %p, glibc gives a %zu-aligned block",
          want, p, a);
    free(p);
  }
  CHECK_FAILS(memalign(opaque(SIZE_MAX / 2 + 2), opaque(16)), EINVAL);
}

static void t_aligned_alloc(void) {
  aligned_sweep("aligned_alloc", aligned_alloc);
  /* C17 (DR 460) and glibc >= 2.38: an alignment that is not a power of two gives NULL and
   * EINVAL.  glibc 2.36 still rounds it up like memalign: asserted only for tierpool. */
  static const size_t odd[] = {0, 3, 24, 48, 4097};
  for (size_t i = 0; i < sizeof odd / sizeof odd[0]; i++) {
    errno = 0;
    void *p = aligned_alloc(opaque(odd[i]), opaque(100));
    int e = errno;
    if (tierpool_loaded())
      CHECK(!p && e == EINVAL, "aligned_alloc(%zu, 100) = %p, errno %d", odd[i], p, e);
    else if (p)
      printf("  note: aligned_alloc(%zu, 100) = %p (not tierpool: not asserted)\n", odd[i], p);
    free(p);
  }
}

static void t_posix_memalign(void) {
  aligned_sweep("posix_memalign", posix_memalign_or_null);
  /* EINVAL for 0, a non-power-of-two, or less than sizeof(void *); errno and *memptr stay. */
  static const size_t bad[] = {0, 1, 2, 4, 12, 24, 48, 4097, 3 * MiB, SIZE_MAX / 2 + 2};
  void *const marker = (void *)&t_posix_memalign;
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    void *p = marker;
    errno = 1234;
    int r = posix_memalign(&p, opaque(bad[i]), opaque(100));
    CHECK(r == EINVAL, "posix_memalign(%zu, 100) = %d, expected EINVAL", bad[i], r);
    CHECK(errno == 1234, "posix_memalign(%zu, 100) set errno to %d", bad[i], errno);
    CHECK(p == marker, "posix_memalign(%zu, 100) changed *memptr to %p", bad[i], p);
    if (r == 0) free(p);
  }
  /* ENOMEM; glibc 2.36 sets errno = ENOMEM there too, POSIX says errno is not set: the errno
   * part is asserted only for tierpool. */
  static const size_t huge[] = {SIZE_MAX, SIZE_MAX - 64 * MiB, (size_t)PTRDIFF_MAX + 1};
  for (size_t i = 0; i < sizeof huge / sizeof huge[0]; i++) {
    void *p = marker;
    errno = 1234;
    int r = posix_memalign(&p, opaque(64), opaque(huge[i]));
    int e = errno;
    CHECK(r == ENOMEM, "posix_memalign(64, %zu) = %d, expected ENOMEM", huge[i], r);
    CHECK(p == marker, "posix_memalign(64, %zu) changed *memptr to %p", huge[i], p);
    if (tierpool_loaded())
      CHECK(e == 1234, "posix_memalign(64, %zu) set errno to %d", huge[i], e);
    else if (e != 1234)
      printf("  note: posix_memalign(64, %zu) set errno %d (not tierpool: not asserted)\n",
             huge[i], e);
  }
}

static void t_valloc_pvalloc(void) {
  size_t page = page_size();
  for (size_t i = 0; i < N_ALIGN_SIZES; i++) {
    size_t n = align_sizes[i];
    void *p = valloc(opaque(n));
    check_block("valloc", p, n, page);
    free(p);
    size_t want = round_up(n, page);
    p = pvalloc(opaque(n));
    check_block("pvalloc", p, want, page);
    if (tierpool_loaded())
      CHECK(malloc_usable_size(p) % page == 0, "pvalloc(%zu): usable %zu not a page multiple",
            n, malloc_usable_size(p));
    free(p);
  }
  void *p = pvalloc(opaque(0));
  check_block("pvalloc", p, 0, page);
  free(p);
  p = valloc(opaque(0));
  check_block("valloc", p, 0, page);
  free(p);
}

/* The l-variants of exec, which the library builds an argv for: the
 * arguments and execle's environment arrive whole, 5000 arguments too (a
 * fixed 4096-slot array refused them with E2BIG). */
static void exec_l_check(const char *what, int variant, const char *want) {
  int fds[2];
  REQUIRE(pipe(fds) == 0);
  fflush(NULL);
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    dup2(fds[1], 1);
    close(fds[0]);
    char *env[] = {"TP_EXEC_CHECK=le", NULL};
    if (variant == 0) execl("/bin/sh", "sh", "-c", "echo $0 $1", "l", "one", (char *)NULL);
    if (variant == 1) execlp("sh", "sh", "-c", "echo $0 $1", "lp", "two", (char *)NULL);
    if (variant == 2) execle("/bin/sh", "sh", "-c", "echo $TP_EXEC_CHECK", (char *)NULL, env);
    if (variant == 3) { /* 5000 arguments through execl: the literal list, built by a macro */
#define A10 "x", "x", "x", "x", "x", "x", "x", "x", "x", "x"
#define A100 A10, A10, A10, A10, A10, A10, A10, A10, A10, A10
#define A1000 A100, A100, A100, A100, A100, A100, A100, A100, A100, A100
      execl("/bin/sh", "sh", "-c", "echo $#", A1000, A1000, A1000, A1000, A1000, (char *)NULL);
    }
    _exit(127);
  }
  close(fds[1]);
  char out[256] = {0};
  size_t len = 0;
  ssize_t r;
  while (len < sizeof out - 1 && ((r = read(fds[0], out + len, sizeof out - 1 - len)) > 0 || (r < 0 && errno == EINTR)))
    len += r > 0 ? (size_t)r : 0;
  close(fds[0]);
  int status;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0 && strcmp(out, want) == 0, "%s: printed \"%s\", status %d", what,
        out, status);
}

static void t_exec_l(void) {
  exec_l_check("execl", 0, "l one\n");
  exec_l_check("execlp", 1, "lp two\n");
  exec_l_check("execle", 2, "le\n");
  exec_l_check("execl with 5000 arguments", 3, "4999\n");
}

/* glibc's other names for its allocator (__libc_malloc & co; cfree, which
 * old binaries call): the same heap as malloc's, so that a block passes from
 * one set of names to the other (under a preload that left them to glibc,
 * free() of a __libc_malloc block is an invalid pointer). */
static void t_libc_names(void) {
  void *(*libc_malloc)(size_t) = (void *(*)(size_t))dlsym(RTLD_DEFAULT, "__libc_malloc");
  void (*libc_free)(void *) = (void (*)(void *))dlsym(RTLD_DEFAULT, "__libc_free");
  void *(*libc_calloc)(size_t, size_t) = (void *(*)(size_t, size_t))dlsym(RTLD_DEFAULT, "__libc_calloc");
  void *(*libc_realloc)(void *, size_t) = (void *(*)(void *, size_t))dlsym(RTLD_DEFAULT, "__libc_realloc");
  void *(*libc_memalign)(size_t, size_t) = (void *(*)(size_t, size_t))dlsym(RTLD_DEFAULT, "__libc_memalign");
  void *(*libc_valloc)(size_t) = (void *(*)(size_t))dlsym(RTLD_DEFAULT, "__libc_valloc");
  void *(*libc_pvalloc)(size_t) = (void *(*)(size_t))dlsym(RTLD_DEFAULT, "__libc_pvalloc");
  REQUIRE(libc_malloc && libc_free && libc_calloc && libc_realloc && libc_memalign && libc_valloc && libc_pvalloc,
          "__libc_malloc, __libc_free, __libc_calloc, __libc_realloc, __libc_memalign, __libc_valloc or "
          "__libc_pvalloc not found");
  /* glibc's own cfree is a compatibility symbol that dlsym does not find. */
  void (*cfree_fn)(void *) = (void (*)(void *))dlsym(RTLD_DEFAULT, "cfree");
  if (tierpool_loaded()) CHECK(cfree_fn != NULL, "cfree not found");
  if (!cfree_fn) cfree_fn = libc_free;
  size_t page = page_size();
  for (size_t n = 1; n <= ((size_t)8 << 20); n *= 7) { /* every tier */
    void *p = libc_malloc(opaque(n));
    check_block("__libc_malloc", p, n, fundamental_alignment(n));
    free(p);
    p = malloc(opaque(n));
    check_block("malloc", p, n, fundamental_alignment(n));
    p = libc_realloc(p, opaque(n * 3));
    check_block("__libc_realloc", p, n * 3, fundamental_alignment(n * 3));
    libc_free(p);
    unsigned char *z = libc_calloc(opaque(n), 1);
    REQUIRE(z, "__libc_calloc(%zu, 1) returned NULL", n);
    for (size_t i = 0; i < n; i++) CHECK(z[i] == 0, "__libc_calloc(%zu, 1): byte %zu is %d", n, i, z[i]);
    cfree_fn(z);
    p = libc_memalign(4096, opaque(n));
    check_block("__libc_memalign", p, n, 4096);
    free(p);
    p = libc_valloc(opaque(n));
    check_block("__libc_valloc", p, n, page);
    libc_free(p);
    p = libc_pvalloc(opaque(n));
    check_block("__libc_pvalloc", p, n, page);
    free(p);
  }
}

static const struct test tests[] = {
    {"active", t_active},
    {"libc_names", t_libc_names},
    {"exec_l", t_exec_l},
    {"stats", t_stats},
    {"idle_cache_returned", t_idle_cache_returned},
    {"host_growth", t_host_growth},
    {"host_growth_regret", t_host_growth_regret},
    {"large_cache_expires", t_large_cache_expires},
    {"malloc_zero", t_malloc_zero},
    {"malloc_sizes", t_malloc_sizes},
    {"distinct", t_distinct},
    {"realloc_tiers", t_realloc_tiers},
    {"realloc_moves_out", t_realloc_moves_out},
    {"realloc_stale_words", t_realloc_stale_words},
    {"copy_stale_words", t_copy_stale_words},
    {"realloc_null_and_zero", t_realloc_null_and_zero},
    {"realloc_fail", t_realloc_fail},
    {"realloc_split_large", t_realloc_split_large},
    {"large_reuse_plain", t_large_reuse_plain},
    {"mlockall_kept", t_mlockall_kept},
    {"background_fork", t_background_fork},
    {"reallocarray", t_reallocarray},
    {"calloc_recycled", t_calloc_recycled},
    {"calloc_edges", t_calloc_edges},
    {"calloc_locked", t_calloc_locked},
    {"mlocked_block_freed", t_mlocked_block_freed},
    {"enomem", t_enomem},
    {"memalign", t_memalign},
    {"aligned_alloc", t_aligned_alloc},
    {"posix_memalign", t_posix_memalign},
    {"valloc_pvalloc", t_valloc_pvalloc},
};

int main(int argc, char **argv) { return RUN_TESTS(tests, argc, argv); }
