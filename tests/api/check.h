/* check.h — the tiny test harness shared by tests/api and tests/stress.
 *
 * Test programs are ordinary glibc executables run with libtierpool.so preloaded; they call
 * malloc & co normally and find the tierpool_* functions with dlsym(RTLD_DEFAULT, ...), so the
 * same binary runs under glibc, mimalloc or jemalloc for comparison:
 *
 *   build/tests/api/api_conform              every test, plain glibc
 *   LD_PRELOAD=.../libmimalloc.so.2 build/tests/api/api_conform memalign
 *
 * CHECK(cond, "fmt", ...) reports file:line, the expression and the optional message, and lets
 * the test go on; REQUIRE(...) ends the test (the whole process when it fails off the runner's
 * thread: a worker, a forked child).  A test is a `static void t(void)`; run_tests() runs the
 * ones named on the command line (all without arguments) and exits 0, 1 (a check failed) or
 * 77 (meson's "skipped": every test named was skipped).
 *
 * Header-only, C and C++.
 */
#ifndef TIERPOOL_TESTS_CHECK_H
#define TIERPOOL_TESTS_CHECK_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tierpool.h"

#define KiB ((size_t)1 << 10)
#define MiB ((size_t)1 << 20)

/* The default tier boundaries (DESIGN.md "The pool"). */
#define SLAB_MAX (32 * KiB)
#define BUDDY_MAX (4 * MiB)

#define CHECK(cond, ...) \
  ((cond) ? 1 : check_failed_(__FILE__, __LINE__, #cond, " " __VA_ARGS__))
#define REQUIRE(cond, ...) \
  ((cond) ? (void)0 : (check_failed_(__FILE__, __LINE__, #cond, " " __VA_ARGS__), check_end_()))

#define CHECK_SHOWN 50 /* failed checks printed per process; the rest are only counted */

static int check_failures_;
static int check_skipped_;
static pid_t check_runner_tid_; /* the thread that runs the tests: REQUIRE ends the test there */
static jmp_buf check_end_jmp_;

/* Ends the running test after a failed REQUIRE: back to the runner on its thread, else (a
 * worker thread, a forked child) the whole process fails. */
__attribute__((noreturn)) static inline void check_end_(void) {
  if (gettid() == check_runner_tid_) longjmp(check_end_jmp_, 1);
  fflush(NULL);
  _exit(1);
}

__attribute__((format(printf, 4, 5))) static inline int check_failed_(
    const char *file, int line, const char *expr, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  int nth = __atomic_add_fetch(&check_failures_, 1, __ATOMIC_RELAXED);
  fflush(stdout);
  if (nth <= CHECK_SHOWN)
    fprintf(stderr, "%s:%d: CHECK(%s) failed:%s\n", file, line, expr, msg);
  else if (nth == CHECK_SHOWN + 1)
    fprintf(stderr, "(further failed checks are counted, not shown)\n");
  fflush(stderr);
  return 0;
}

/* Marks the running test as skipped (it returns right after). */
static inline void skip(const char *why) {
  printf("  skipped: %s\n", why);
  check_skipped_ = 1;
}

/* Keeps the compiler from folding a size or a pointer known at compile time (malloc(SIZE_MAX)
 * is a warning under -Werror, and a malloc/free pair may otherwise be elided). */
static inline size_t opaque(size_t x) {
  volatile size_t v = x;
  return v;
}
static inline void *opaque_ptr(void *p) {
  void *volatile v = p;
  return v;
}

/* ---- tierpool, looked up the way embedders do ------------------------------------------ */

struct tierpool_api {
  const char *(*version)(void);
  int (*stats_get)(tierpool_stats_t *);
  size_t (*release)(void);
};

static inline struct tierpool_api tierpool_lookup(void) {
  struct tierpool_api tp;
  tp.version = (const char *(*)(void))dlsym(RTLD_DEFAULT, "tierpool_version");
  tp.stats_get = (int (*)(tierpool_stats_t *))dlsym(RTLD_DEFAULT, "tierpool_stats_get");
  tp.release = (size_t (*)(void))dlsym(RTLD_DEFAULT, "tierpool_release");
  return tp;
}

/* Whether libtierpool.so serves this process: tierpool-specific checks depend on it. */
static inline int tierpool_loaded(void) {
  return dlsym(RTLD_DEFAULT, "tierpool_stats_get") != NULL;
}

/* ---- content patterns --------------------------------------------------------------------
 * Byte i of a block with seed s is byte (i % 8) of the word s ^ (i / 8) * golden: different
 * seeds give different sequences, and an offset copy does not match. */

static inline uint64_t mix64(uint64_t x) { /* splitmix64 finaliser */
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

static inline uint64_t pattern_word(uint64_t seed, size_t k) {
  return seed ^ ((uint64_t)k * 0x9e3779b97f4a7c15ULL);
}

static inline uint8_t pattern_byte(uint64_t seed, size_t i) {
  return (uint8_t)(pattern_word(seed, i / 8) >> (8 * (i % 8)));
}

/* Writes bytes [from, to) of the pattern into p (offsets relative to p). */
static inline void pattern_fill_range(void *p, size_t from, size_t to, uint64_t seed) {
  uint8_t *b = (uint8_t *)p;
  size_t i = from;
  for (; i < to && i % 8; i++) b[i] = pattern_byte(seed, i);
  for (; i + 8 <= to; i += 8) {
    uint64_t w = pattern_word(seed, i / 8);
    memcpy(b + i, &w, 8);
  }
  for (; i < to; i++) b[i] = pattern_byte(seed, i);
}

/* Returns the offset of the first byte in [from, to) that differs from the pattern, or
 * SIZE_MAX when they all match. */
static inline size_t pattern_check_range(const void *p, size_t from, size_t to, uint64_t seed) {
  const uint8_t *b = (const uint8_t *)p;
  size_t i = from;
  for (; i < to && i % 8; i++)
    if (b[i] != pattern_byte(seed, i)) return i;
  for (; i + 8 <= to; i += 8) {
    uint64_t w = pattern_word(seed, i / 8), v;
    memcpy(&v, b + i, 8);
    if (v != w) break;
  }
  for (; i < to; i++)
    if (b[i] != pattern_byte(seed, i)) return i;
  return SIZE_MAX;
}

static inline void pattern_fill(void *p, size_t n, uint64_t seed) {
  pattern_fill_range(p, 0, n, seed);
}
static inline size_t pattern_check(const void *p, size_t n, uint64_t seed) {
  return pattern_check_range(p, 0, n, seed);
}

/* Sparse variants for big blocks: the first bytes of every page and the last 64 bytes, so
 * every page is touched (it becomes resident) at a fraction of the cost of a full fill. */
#define SPARSE_FULL (64 * KiB) /* blocks up to this size are filled completely */
#define SPARSE_STRIDE 4096
#define SPARSE_CHUNK 64

static inline void pattern_fill_sparse(void *p, size_t n, uint64_t seed) {
  if (n <= SPARSE_FULL) {
    pattern_fill(p, n, seed);
    return;
  }
  for (size_t i = 0; i < n; i += SPARSE_STRIDE)
    pattern_fill_range(p, i, i + SPARSE_CHUNK < n ? i + SPARSE_CHUNK : n, seed);
  pattern_fill_range(p, n - SPARSE_CHUNK, n, seed);
}

static inline size_t pattern_check_sparse(const void *p, size_t n, uint64_t seed) {
  if (n <= SPARSE_FULL) return pattern_check(p, n, seed);
  for (size_t i = 0; i < n; i += SPARSE_STRIDE) {
    size_t bad = pattern_check_range(p, i, i + SPARSE_CHUNK < n ? i + SPARSE_CHUNK : n, seed);
    if (bad != SIZE_MAX) return bad;
  }
  return pattern_check_range(p, n - SPARSE_CHUNK, n, seed);
}

/* The seed of a block, from its address and size. */
static inline uint64_t block_seed(const void *p, size_t n) {
  return mix64((uint64_t)(uintptr_t)p * 31 + n);
}

/* Offset of the first non-zero byte of p[0..n), or SIZE_MAX. */
static inline size_t first_nonzero(const void *p, size_t n) {
  const uint8_t *b = (const uint8_t *)p;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t v;
    memcpy(&v, b + i, 8);
    if (v) break;
  }
  for (; i < n; i++)
    if (b[i]) return i;
  return SIZE_MAX;
}

/* ---- blocks ------------------------------------------------------------------------------ */

/* The alignment malloc must give a block of n bytes: 16 (alignof(max_align_t)) when it fits,
 * else the largest power of two not above n (C17 7.22.3). */
static inline size_t fundamental_alignment(size_t n) {
  size_t a = 16;
  while (a > 1 && a > n) a /= 2;
  return a;
}

/* A block just returned by `call`: non-NULL, aligned, usable over n bytes and writable over
 * its whole usable size. */
static inline void check_block(const char *call, void *p, size_t n, size_t align) {
  REQUIRE(p, "%s(%zu) returned NULL", call, n);
  CHECK((uintptr_t)p % align == 0, "%s(%zu) = %p, not %zu-aligned", call, n, p, align);
  size_t usable = malloc_usable_size(p);
  CHECK(usable >= n, "%s(%zu): malloc_usable_size %zu", call, n, usable);
  memset(p, 0x5a, usable);
}

/* ---- process facts ------------------------------------------------------------------------ */

static inline size_t page_size(void) { return (size_t)sysconf(_SC_PAGESIZE); }

/* Resident set size in bytes, from /proc/self/statm. */
static inline size_t rss_bytes(void) {
  unsigned long size = 0, resident = 0;
  FILE *f = fopen("/proc/self/statm", "r");
  if (!f) return 0;
  if (fscanf(f, "%lu %lu", &size, &resident) != 2) resident = 0;
  fclose(f);
  return (size_t)resident * page_size();
}

static inline double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- runner ------------------------------------------------------------------------------- */

struct test {
  const char *name;
  void (*fn)(void);
};

static inline int run_one_(const struct test *t) {
  int before = check_failures_;
  double t0 = now_s();
  check_skipped_ = 0;
  check_runner_tid_ = gettid();
  printf("-- %s\n", t->name);
  fflush(stdout);
  if (setjmp(check_end_jmp_) == 0) t->fn();
  int failed = check_failures_ - before;
  if (failed)
    printf("FAIL %s: %d check%s failed (%.2f s)\n", t->name, failed, failed == 1 ? "" : "s",
           now_s() - t0);
  else
    printf("%s %s (%.2f s)\n", check_skipped_ ? "SKIP" : "ok", t->name, now_s() - t0);
  fflush(stdout);
  return failed ? 1 : check_skipped_ ? 77 : 0;
}

/* Runs the tests named in argv[1..] (all of them without arguments); an unknown name fails. */
static inline int run_tests(const struct test *tests, size_t count, int argc, char **argv) {
  int ran = 0, failed = 0, skipped = 0;
  printf("allocator: %s\n", tierpool_loaded() ? "tierpool" : "not tierpool");
  /* Asked for but not there (ld.so only warns when it cannot preload): every
   * tierpool-only check would skip and the run would pass on glibc. */
  const char *preload = getenv("LD_PRELOAD");
  if (preload && strstr(preload, "libtierpool") && !tierpool_loaded()) {
    printf("FAIL LD_PRELOAD names libtierpool but it does not serve this process: %s\n", preload);
    return 1;
  }
  for (size_t i = 0; i < count; i++) {
    int wanted = argc < 2;
    for (int a = 1; a < argc; a++) wanted |= strcmp(argv[a], tests[i].name) == 0;
    if (!wanted) continue;
    int r = run_one_(&tests[i]);
    ran++;
    failed += r == 1;
    skipped += r == 77;
  }
  for (int a = 1; a < argc; a++) {
    size_t i = 0;
    while (i < count && strcmp(argv[a], tests[i].name) != 0) i++;
    if (i == count) {
      printf("FAIL unknown test %s\n", argv[a]);
      failed++;
    }
  }
  if (argc < 2) printf("%d tests, %d failed, %d skipped\n", ran, failed, skipped);
  return failed ? 1 : (ran && skipped == ran) ? 77 : 0;
}

#define RUN_TESTS(tests, argc, argv) run_tests(tests, sizeof(tests) / sizeof(tests[0]), argc, argv)

#endif
