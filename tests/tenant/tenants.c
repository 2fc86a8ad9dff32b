/* tenants.c — tenants, preloaded: limits, the shared overflow, zeroing across
 * tenants, isolation, cross-tenant frees, switching, thread-name rules and
 * on_limit = abort.  The configuration comes from tests/tenant/tenants.conf
 * (TIERPOOL_CONFIG, set by meson), so every number below is the file's. */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#include "check.h"

static int (*tenant_set)(const char *);
static const char *(*tenant_get)(void);
static int (*tenant_stats)(const char *, tierpool_tenant_stats_t *);

static int lookup(void) {
  tenant_set = (int (*)(const char *))dlsym(RTLD_DEFAULT, "tierpool_tenant_set");
  tenant_get = (const char *(*)(void))dlsym(RTLD_DEFAULT, "tierpool_tenant_get");
  tenant_stats = (int (*)(const char *, tierpool_tenant_stats_t *))dlsym(RTLD_DEFAULT, "tierpool_tenant_stats_get");
  if (tenant_set && tenant_get && tenant_stats) return 1;
  skip("libtierpool.so with tenants is not loaded");
  return 0;
}

static tierpool_tenant_stats_t stats_of(const char *name) {
  tierpool_tenant_stats_t s;
  memset(&s, 0, sizeof s);
  CHECK(tenant_stats(name, &s) == 0, "no statistics for tenant %s", name);
  return s;
}

#define MAX_BLOCKS 4096

/* Allocates blocks cycling through `sizes` until malloc fails; returns the count. */
static size_t fill_until_refused(void **blocks, const size_t *sizes, size_t nsizes, size_t *bytes) {
  size_t n = 0;
  *bytes = 0;
  errno = 0;
  while (n < MAX_BLOCKS) {
    size_t size = sizes[n % nsizes];
    void *p = malloc(opaque(size));
    if (!p) break;
    memset(p, 0x5a, size < 4096 ? size : 4096);
    blocks[n++] = p;
    *bytes += size;
  }
  return n;
}

/* tenant.a.limit = 16M: a loop of mixed sizes stops at the limit (within one
 * grow_chunk and a block), with ENOMEM; other tenants go on; freeing lets a
 * allocate again. */
static void t_limit(void) {
  if (!lookup()) return;
  static void *blocks[MAX_BLOCKS];
  static const size_t sizes[] = {1000, 64 * KiB, 24 * KiB, 1 * MiB, 200};
  REQUIRE(tenant_set("a") == 0);
  CHECK(strcmp(tenant_get(), "a") == 0);
  size_t bytes, n = fill_until_refused(blocks, sizes, 5, &bytes);
  CHECK(errno == ENOMEM, "errno %d after the refusal", errno);
  tierpool_tenant_stats_t a = stats_of("a");
  CHECK(n < MAX_BLOCKS, "never refused");
  CHECK(a.limit_bytes == 16 * MiB);
  CHECK(a.resident_bytes <= 16 * MiB, "a holds %llu", (unsigned long long)a.resident_bytes);
  CHECK(a.resident_bytes + 2 * MiB >= 16 * MiB, "a stopped early, at %llu", (unsigned long long)a.resident_bytes);
  CHECK(bytes + 3 * MiB >= 16 * MiB, "only %zu bytes served", bytes);
  CHECK(a.limit_hits >= 1);
  /* The others are not affected: b (limit 16M too) and default (none). */
  REQUIRE(tenant_set("b") == 0);
  void *b1 = malloc(opaque(8 * MiB)), *b2 = malloc(opaque(3000));
  CHECK(b1 && b2, "tenant b refused after a's limit");
  REQUIRE(tenant_set(NULL) == 0);
  void *d = malloc(opaque(40 * MiB));
  CHECK(d != NULL, "the default tenant refused 40 MiB");
  if (d) memset(d, 1, 40 * MiB);
  free(d), free(b1), free(b2);
  /* a's blocks freed by a thread of another tenant: a can allocate again. */
  for (size_t i = 0; i < n; i++) free(blocks[i]);
  REQUIRE(tenant_set("a") == 0);
  void *again = malloc(opaque(4 * MiB));
  CHECK(again != NULL, "a refused after freeing everything");
  free(again);
  tenant_set(NULL);
}

struct overflow_arg {
  const char *tenant;
  size_t bytes;
  void **blocks;
  size_t count;
};

static void *overflow_worker(void *p) {
  struct overflow_arg *arg = p;
  static const size_t sizes[] = {256 * KiB, 4000, 512 * KiB};
  if (tenant_set(arg->tenant) != 0) return NULL;
  arg->count = fill_until_refused(arg->blocks, sizes, 3, &arg->bytes);
  return NULL;
}

/* r1 and r2 reserve 4M each and share overflow_limit = 8M (with every other
 * tenant): allocating at once, together they never pass 4 + 4 + 8 MiB. */
static void t_overflow(void) {
  if (!lookup()) return;
  static void *blocks[2][MAX_BLOCKS];
  struct overflow_arg args[2] = {{"r1", 0, blocks[0], 0}, {"r2", 0, blocks[1], 0}};
  pthread_t threads[2];
  for (int i = 0; i < 2; i++) pthread_create(&threads[i], NULL, overflow_worker, &args[i]);
  for (int i = 0; i < 2; i++) pthread_join(threads[i], NULL);
  tierpool_tenant_stats_t r1 = stats_of("r1"), r2 = stats_of("r2"), def = stats_of("default");
  uint64_t overflow = r1.overflow_bytes + r2.overflow_bytes + def.overflow_bytes;
  CHECK(r1.reserve_bytes == 4 * MiB && r2.reserve_bytes == 4 * MiB);
  CHECK(overflow <= 8 * MiB, "overflow in use %llu", (unsigned long long)overflow);
  CHECK(r1.resident_bytes + r2.resident_bytes <= 16 * MiB, "r1 %llu + r2 %llu", (unsigned long long)r1.resident_bytes,
        (unsigned long long)r2.resident_bytes);
  CHECK(r1.resident_bytes + r2.resident_bytes + def.overflow_bytes + 2 * MiB >= 16 * MiB,
        "stopped early: r1 %llu, r2 %llu", (unsigned long long)r1.resident_bytes, (unsigned long long)r2.resident_bytes);
  CHECK(r1.resident_bytes >= 4 * MiB && r2.resident_bytes >= 4 * MiB, "a reserve was not honoured");
  CHECK(r1.limit_hits >= 1 && r2.limit_hits >= 1);
  for (int i = 0; i < 2; i++)
    for (size_t k = 0; k < args[i].count; k++) free(args[i].blocks[k]);
  /* Freed: the overflow is back for whoever needs it. */
  tierpool_tenant_stats_t after = stats_of("r1");
  CHECK(after.overflow_bytes == 0 || after.resident_bytes > 4 * MiB, "r1 keeps overflow it does not hold");
}

/* n blocks of 1 MiB for the current tenant, every page written: buddy blocks
 * under tenant a (its buddy_max is a quarter of its 16M limit). */
static void hold_mib_blocks(void **blocks, int n) {
  for (int i = 0; i < n; i++) {
    REQUIRE(blocks[i] = malloc(opaque(MiB)), "block %d of 1 MiB refused", i);
    memset(blocks[i], 1, MiB);
  }
}

/* tenant.a.limit = 16M: a large request that fits is served even when the
 * cached mapping it would reuse (here tenant b's 12 MiB) is larger than a's
 * budget has room for — the mapping's tail goes; it was refused, or with
 * on_limit = abort stopped the process. */
static void t_cached_larger(void) {
  if (!lookup()) return;
  REQUIRE(tenant_set("a") == 0);
  enum { HELD = 8 };
  void *held[HELD];
  hold_mib_blocks(held, HELD);
  REQUIRE(tenant_set("b") == 0);
  for (int i = 0; i < 2; i++) { /* the cache learns from the first free: the second 12 MiB is kept */
    char *big = malloc(opaque(12 * MiB));
    REQUIRE(big);
    memset(big, 1, 12 * MiB);
    free(big);
  }
  REQUIRE(tenant_set("a") == 0);
  char *p = malloc(opaque(5 * MiB)); /* fits: about 14 of 16 MiB; the cached 12 MiB would not */
  CHECK(p != NULL, "5 MiB refused with ~9 MiB held of a 16 MiB limit (errno %d)", errno);
  if (p) memset(p, 1, 5 * MiB);
  tierpool_tenant_stats_t a = stats_of("a");
  CHECK(a.resident_bytes <= 16 * MiB, "a holds %llu", (unsigned long long)a.resident_bytes);
  free(p);
  for (int i = 0; i < HELD; i++) free(held[i]);
  tenant_set(NULL);
}

/* tenant.a.limit = 16M counts a's free resident pages too: a request the
 * budget cannot take gives those back first, and is served when that makes
 * room.  14 blocks of 1 MiB, every other one freed (the halves cannot merge:
 * their buddies live), then 8 MiB: it was refused with 7 MiB free. */
static void t_refused_frees_room(void) {
  if (!lookup()) return;
  REQUIRE(tenant_set("a") == 0);
  enum { BLOCKS = 14 };
  void *blocks[BLOCKS];
  hold_mib_blocks(blocks, BLOCKS);
  for (int i = 0; i < BLOCKS; i += 2) free(blocks[i]);
  char *big = malloc(opaque(8 * MiB));
  CHECK(big != NULL, "8 MiB refused with 7 MiB held and 7 MiB free of a 16 MiB limit (errno %d)", errno);
  if (big) memset(big, 1, 8 * MiB);
  tierpool_tenant_stats_t a = stats_of("a");
  CHECK(a.resident_bytes <= 16 * MiB, "a holds %llu", (unsigned long long)a.resident_bytes);
  free(big);
  for (int i = 1; i < BLOCKS; i += 2) free(blocks[i]);
  tenant_set(NULL);
}

/* A buddy block that realloc moves out into a mapping of its own takes its
 * pages along: only the growth is charged.  a holds 12 MiB of 16 and grows a
 * 3 MiB block to 5 MiB (past a's buddy_max, 4M): 14 MiB.  It was charged as
 * 12 + 5 and refused. */
static void t_move_out_charge(void) {
  if (!lookup()) return;
  REQUIRE(tenant_set("a") == 0);
  enum { HELD = 9 };
  void *held[HELD];
  hold_mib_blocks(held, HELD);
  char *p = malloc(opaque(3 * MiB));
  REQUIRE(p);
  memset(p, 7, 3 * MiB);
  char *q = realloc(p, opaque(5 * MiB));
  CHECK(q != NULL, "realloc 3 -> 5 MiB refused at 12 MiB of a 16 MiB limit (errno %d)", errno);
  if (q) {
    CHECK(q[0] == 7 && q[3 * MiB - 1] == 7, "contents lost in the move");
    p = q;
  }
  free(p);
  for (int i = 0; i < HELD; i++) free(held[i]);
  CHECK(stats_of("a").limit_bytes == 16 * MiB);
  tenant_set(NULL);
}

/* An isolated tenant without a reserve (tenant.iso) never draws from the
 * shared overflow, so freeing must give none back: it once "gave" a wrapped
 * amount, which left the overflow counted as used by 8 MiB it never held, and
 * r1 (reserve 4M) was refused past its reserve. */
static void t_isolated_free(void) {
  if (!lookup()) return;
  REQUIRE(tenant_set("iso") == 0);
  void *one = malloc(opaque(8 * MiB)), *two = malloc(opaque(8 * MiB));
  REQUIRE(one && two, "the isolated tenant (limit 64M) refused 16 MiB");
  memset(one, 1, 8 * MiB), memset(two, 1, 8 * MiB);
  free(two);
  CHECK(stats_of("iso").overflow_bytes == 0, "an isolated tenant draws overflow");
  REQUIRE(tenant_set("r1") == 0);
  enum { BLOCKS = 10 };
  void *blocks[BLOCKS];
  int served = 0;
  for (int i = 0; i < BLOCKS; i++) /* 4 MiB of reserve, then 6 of the 8 MiB overflow */
    if ((blocks[i] = malloc(opaque(MiB)))) memset(blocks[i], 1, MiB), served++;
  CHECK(served == BLOCKS, "r1 got %d MiB of 10: the isolated tenant's free left the overflow counted as used", served);
  for (int i = 0; i < BLOCKS; i++) free(blocks[i]);
  tenant_set(NULL);
  free(one);
}

/* Blocks of every tier: tenant za fills them with a pattern and frees them;
 * zb's (malloc, not calloc) and the isolated tenant's never contain it. */
static const size_t zero_sizes[] = {48, 1000, 20000, 100 * KiB, 1 * MiB, 8 * MiB, 20 * MiB};
#define ZERO_SIZES (sizeof zero_sizes / sizeof zero_sizes[0])
#define ZERO_COPIES 4

static int contains_pattern(const unsigned char *p, size_t size) {
  for (size_t i = 0; i + 8 <= size; i += 8)
    if (memcmp(p + i, "\xa5\xa5\xa5\xa5\xa5\xa5\xa5\xa5", 8) == 0) return 1;
  return 0;
}

static void fill_and_free(void) {
  void *blocks[ZERO_SIZES][ZERO_COPIES];
  for (int round = 0; round < 2; round++) { /* twice: the large cache keeps sizes freed before */
    for (size_t s = 0; s < ZERO_SIZES; s++)
      for (int c = 0; c < ZERO_COPIES; c++) {
        blocks[s][c] = malloc(opaque(zero_sizes[s]));
        REQUIRE(blocks[s][c] != NULL);
        memset(blocks[s][c], 0xa5, zero_sizes[s]);
      }
    for (size_t s = 0; s < ZERO_SIZES; s++)
      for (int c = 0; c < ZERO_COPIES; c++) free(blocks[s][c]);
  }
}

/* Largest first: a heap that grows drops the large cache (pages are about to
 * be faulted in), so small blocks first would hide the cached mappings. */
static void check_clean(const char *tenant) {
  REQUIRE(tenant_set(tenant) == 0);
  void *blocks[ZERO_SIZES][ZERO_COPIES];
  for (size_t s = ZERO_SIZES; s-- > 0;)
    for (int c = 0; c < ZERO_COPIES; c++) {
      unsigned char *p = blocks[s][c] = malloc(opaque(zero_sizes[s]));
      REQUIRE(p != NULL);
      CHECK(!contains_pattern(p, zero_sizes[s]), "tenant %s got %zu bytes holding za's data", tenant, zero_sizes[s]);
    }
  for (size_t s = 0; s < ZERO_SIZES; s++)
    for (int c = 0; c < ZERO_COPIES; c++) free(blocks[s][c]);
}

static void t_zero(void) {
  if (!lookup()) return;
  REQUIRE(tenant_set("za") == 0);
  fill_and_free();
  check_clean("zb");
  REQUIRE(tenant_set("za") == 0);
  fill_and_free();
  check_clean("iso");
  /* The isolated tenant's large blocks come fresh: nothing resident before use. */
  REQUIRE(tenant_set("za") == 0);
  fill_and_free();
  REQUIRE(tenant_set("iso") == 0);
  unsigned char *big = malloc(opaque(20 * MiB));
  REQUIRE(big != NULL);
  unsigned char vec[20 * MiB / 4096];
  CHECK(mincore(big, 20 * MiB, vec) == 0);
  size_t resident = 0;
  for (size_t i = 0; i < sizeof vec; i++) resident += vec[i] & 1;
  CHECK(resident == 0, "the isolated tenant's fresh 20 MiB block has %zu resident pages", resident);
  free(big);
  /* za's freed mapping stays cached (za gets it back right after), yet the
   * isolated tenant is never handed it, not even emptied.  The cache starts
   * empty, so the isolated tenant has nothing of its own to take instead. */
  struct tierpool_api api = tierpool_lookup();
  REQUIRE(api.release != NULL);
  api.release();
  REQUIRE(tenant_set("za") == 0);
  void *mine = malloc(opaque(20 * MiB));
  REQUIRE(mine != NULL);
  memset(mine, 0xa5, 20 * MiB);
  free(mine);
  REQUIRE(tenant_set("iso") == 0);
  void *theirs = malloc(opaque(20 * MiB));
  REQUIRE(tenant_set("za") == 0);
  void *back = malloc(opaque(20 * MiB));
  CHECK(theirs != mine, "the isolated tenant was handed za's cached mapping");
  CHECK(back == mine, "za's mapping was not cached: the check above proved nothing");
  free(back), free(theirs);
  tenant_set(NULL);
}

/* Blocks allocated as tenant x, freed by a thread of tenant y: they go back
 * to x (its live bytes fall to where they were). */
static void *free_as_y(void *p) {
  void **blocks = p;
  if (tenant_set("y") != 0) return NULL;
  for (int i = 0; blocks[i]; i++) free(blocks[i]);
  return NULL;
}

static void t_cross_free(void) {
  if (!lookup()) return;
  static void *blocks[301];
  REQUIRE(tenant_set("x") == 0);
  tierpool_tenant_stats_t before = stats_of("x");
  for (int i = 0; i < 300; i++) blocks[i] = malloc(opaque(i % 3 == 0 ? 96 : i % 3 == 1 ? 40 * KiB : 5 * MiB));
  blocks[300] = NULL;
  tierpool_tenant_stats_t full = stats_of("x");
  CHECK(full.live_bytes >= before.live_bytes + 100 * (96 + 40 * KiB + 5 * MiB));
  pthread_t t;
  pthread_create(&t, NULL, free_as_y, blocks);
  pthread_join(t, NULL);
  tierpool_tenant_stats_t after = stats_of("x"), y = stats_of("y");
  /* pthread_create allocated the new thread's TLS as x: a few hundred bytes. */
  CHECK(after.live_bytes <= before.live_bytes + 4 * KiB, "x live %llu after the frees (was %llu)",
        (unsigned long long)after.live_bytes, (unsigned long long)before.live_bytes);
  CHECK(after.tier[TIERPOOL_TIER_LARGE].live_bytes == 0);
  CHECK(y.live_bytes < 64 * KiB, "y holds %llu: x's blocks went to y", (unsigned long long)y.live_bytes);
  /* x's freed slab blocks are reused by x. */
  void *again = malloc(opaque(96));
  CHECK(again != NULL);
  free(again);
  tenant_set(NULL);
}

/* One thread, three tenants in turn: each allocation is its tenant's. */
static void t_switch(void) {
  if (!lookup()) return;
  void *s1[100], *s2[50];
  REQUIRE(tenant_set("s1") == 0);
  for (int i = 0; i < 100; i++) s1[i] = malloc(opaque(1000));
  REQUIRE(tenant_set("s2") == 0);
  CHECK(strcmp(tenant_get(), "s2") == 0);
  for (int i = 0; i < 50; i++) s2[i] = malloc(opaque(3000));
  tierpool_tenant_stats_t a = stats_of("s1"), b = stats_of("s2");
  CHECK(a.tier[TIERPOOL_TIER_SLAB].live_bytes >= 100 * 1000 && a.tier[TIERPOOL_TIER_SLAB].live_bytes < 100 * 1200,
        "s1 slab live %llu", (unsigned long long)a.tier[TIERPOOL_TIER_SLAB].live_bytes);
  CHECK(b.tier[TIERPOOL_TIER_SLAB].live_bytes >= 50 * 3000 && b.tier[TIERPOOL_TIER_SLAB].live_bytes < 50 * 3600,
        "s2 slab live %llu", (unsigned long long)b.tier[TIERPOOL_TIER_SLAB].live_bytes);
  REQUIRE(tenant_set("s1") == 0);
  for (int i = 0; i < 100; i++) free(s1[i]);
  for (int i = 0; i < 50; i++) free(s2[i]);
  CHECK(stats_of("s1").live_bytes == 0, "s1 live %llu", (unsigned long long)stats_of("s1").live_bytes);
  CHECK(stats_of("s2").live_bytes == 0, "s2 live %llu", (unsigned long long)stats_of("s2").live_bytes);
  CHECK(tenant_set("no spaces") == -1 && errno == EINVAL);
  tenant_set(NULL);
}

/* tenant_threads = worker-*=w, io?=io; TIERPOOL_TENANT=proc for the rest. */
struct rule_arg {
  const char *name;
  int by_prctl;
  char tenant[64], after_set[64], after_reset[64];
};

static void *rule_worker(void *p) {
  struct rule_arg *arg = p;
  if (arg->name && arg->by_prctl) prctl(PR_SET_NAME, arg->name, 0, 0, 0);
  else if (arg->name) pthread_setname_np(pthread_self(), arg->name);
  free(malloc(opaque(64)));
  snprintf(arg->tenant, sizeof arg->tenant, "%s", tenant_get());
  tenant_set("explicit");
  pthread_setname_np(pthread_self(), "worker-9"); /* a chosen tenant outranks the rules */
  snprintf(arg->after_set, sizeof arg->after_set, "%s", tenant_get());
  tenant_set(NULL);
  snprintf(arg->after_reset, sizeof arg->after_reset, "%s", tenant_get());
  return NULL;
}

static void t_rules(void) {
  if (!lookup()) return;
  struct rule_arg args[] = {{"worker-7", 0, "", "", ""}, {"io1", 1, "", "", ""}, {"other", 0, "", "", ""},
                            {NULL, 0, "", "", ""}};
  const char *want[] = {"w", "io", "proc", "proc"};
  for (size_t i = 0; i < 4; i++) {
    pthread_t t;
    pthread_create(&t, NULL, rule_worker, &args[i]);
    pthread_join(t, NULL);
    CHECK(strcmp(args[i].tenant, want[i]) == 0, "thread %s: tenant %s, want %s", args[i].name ? args[i].name : "(unnamed)",
          args[i].tenant, want[i]);
    CHECK(strcmp(args[i].after_set, "explicit") == 0, "after tenant_set: %s", args[i].after_set);
    CHECK(strcmp(args[i].after_reset, "w") == 0, "after tenant_set(NULL) as worker-9: %s", args[i].after_reset);
  }
}

/* tests/tenant/globs.conf: forty stars before an 'x' against 15-byte names
 * (once ~10^13 recursive calls in the thread's first malloc: a hang), a set
 * with a range and '?', a negated set. */
static void *glob_worker(void *p) {
  struct rule_arg *arg = p;
  pthread_setname_np(pthread_self(), arg->name);
  free(malloc(opaque(64)));
  snprintf(arg->tenant, sizeof arg->tenant, "%s", tenant_get());
  return NULL;
}

static void t_globs(void) {
  if (!lookup()) return;
  struct rule_arg args[] = {{"aaaaaaaaaaaaaaa", 0, "", "", ""}, {"bbbbbbbbbbbbbbx", 0, "", "", ""},
                            {"w5q-zz", 0, "", "", ""}, {"wq5-zz", 0, "", "", ""}, {"9abc", 0, "", "", ""}};
  const char *want[] = {"default", "stars", "set", "default", "nonlower"};
  for (size_t i = 0; i < sizeof args / sizeof args[0]; i++) {
    pthread_t t;
    pthread_create(&t, NULL, glob_worker, &args[i]);
    pthread_join(t, NULL);
    CHECK(strcmp(args[i].tenant, want[i]) == 0, "thread %s: tenant %s, want %s", args[i].name, args[i].tenant, want[i]);
  }
}

/* on_limit = abort (tests/tenant/abort.conf): the process stops with one line
 * naming the tenant, its limit and the request. */
static void t_abort(void) {
  if (!lookup()) return;
  int fds[2];
  REQUIRE(pipe(fds) == 0);
  pid_t pid = fork();
  if (pid == 0) {
    dup2(fds[1], 2);
    tenant_set("capped");
    for (int i = 0; i < 1000; i++) malloc(opaque(512 * KiB));
    _exit(0);
  }
  close(fds[1]);
  char text[1024] = {0};
  size_t got = 0;
  ssize_t r;
  while (got < sizeof text - 1 && (r = read(fds[0], text + got, sizeof text - 1 - got)) > 0) got += (size_t)r;
  close(fds[0]);
  int status;
  waitpid(pid, &status, 0);
  CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT, "status %#x", status);
  CHECK(strstr(text, "tierpool: tenant capped: limit of 8388608 bytes reached by a request of 524288 bytes") != NULL,
        "message: %s", text);
}

/* 8 threads switch among 4 tenants while they allocate blocks of every tier
 * and free each other's through a shared ring: contents survive, and at the
 * end every tenant's live bytes are back where they started. */
#define STRESS_THREADS 8
#define STRESS_RING 1024
#define STRESS_OPS 40000
static struct {
  pthread_mutex_t lock;
  unsigned char *slot[STRESS_RING];
  size_t size[STRESS_RING];
} ring = {PTHREAD_MUTEX_INITIALIZER, {0}, {0}};

static void *stress_worker(void *p) {
  uint64_t rng = 0x9e3779b97f4a7c15ULL * (uint64_t)(uintptr_t)p + 1;
  static const char *names[] = {"st0", "st1", "st2", "st3"};
  for (int op = 0; op < STRESS_OPS; op++) {
    rng = mix64(rng);
    if (op % 500 == 0) tenant_set(names[rng % 4]);
    size_t size = rng % 100 < 80 ? 16 + rng % 2000 : rng % 100 < 98 ? 40 * KiB + rng % (600 * KiB) : 5 * MiB;
    unsigned char *b = malloc(opaque(size));
    REQUIRE(b != NULL);
    b[0] = (unsigned char)size, b[size - 1] = (unsigned char)(size >> 8);
    size_t at = (rng >> 20) % STRESS_RING;
    pthread_mutex_lock(&ring.lock);
    unsigned char *old = ring.slot[at];
    size_t old_size = ring.size[at];
    ring.slot[at] = b, ring.size[at] = size;
    pthread_mutex_unlock(&ring.lock);
    if (old) {
      CHECK(old[0] == (unsigned char)old_size && old[old_size - 1] == (unsigned char)(old_size >> 8),
            "block of %zu bytes changed", old_size);
      free(old);
    }
  }
  return NULL;
}

static void t_stress(void) {
  if (!lookup()) return;
  pthread_t threads[STRESS_THREADS];
  for (intptr_t i = 0; i < STRESS_THREADS; i++) pthread_create(&threads[i], NULL, stress_worker, (void *)i);
  for (int i = 0; i < STRESS_THREADS; i++) pthread_join(threads[i], NULL);
  for (int i = 0; i < STRESS_RING; i++) free(ring.slot[i]);
  static const char *names[] = {"st0", "st1", "st2", "st3"};
  for (int t = 0; t < 4; t++) {
    tierpool_tenant_stats_t s = stats_of(names[t]);
    /* Thread start-up (TLS) may have been allocated as one of them: a little. */
    CHECK(s.live_bytes < 64 * KiB, "%s still has %llu bytes live", names[t], (unsigned long long)s.live_bytes);
    CHECK(s.tier[TIERPOOL_TIER_SLAB].allocs > 1000, "%s served %llu slab blocks", names[t],
          (unsigned long long)s.tier[TIERPOOL_TIER_SLAB].allocs);
  }
}

/* limit = 48M for the whole process (tests/tenant/process.conf): two tenants
 * without limits of their own stop together at it. */
static void t_process_limit(void) {
  if (!lookup()) return;
  static void *blocks[2][MAX_BLOCKS];
  static const size_t sizes[] = {256 * KiB, 3000, 1 * MiB};
  size_t bytes[2], n[2];
  for (int i = 0; i < 2; i++) {
    REQUIRE(tenant_set(i ? "p2" : "p1") == 0);
    n[i] = fill_until_refused(blocks[i], sizes, 3, &bytes[i]);
    CHECK(errno == ENOMEM, "errno %d", errno);
  }
  uint64_t held = stats_of("p1").resident_bytes + stats_of("p2").resident_bytes + stats_of("default").resident_bytes;
  CHECK(held <= 48 * MiB, "the process holds %llu", (unsigned long long)held);
  CHECK(held + 2 * MiB >= 48 * MiB, "stopped early, at %llu", (unsigned long long)held);
  CHECK(bytes[0] > 8 * MiB, "p1 got only %zu bytes", bytes[0]);
  for (int i = 0; i < 2; i++)
    for (size_t k = 0; k < n[i]; k++) free(blocks[i][k]);
  tenant_set(NULL);
}

/* fork in a process with tenants: the child allocates in its tenants, frees
 * the parent's blocks, and its budget starts from what it inherited. */
static void t_fork(void) {
  if (!lookup()) return;
  REQUIRE(tenant_set("fa") == 0);
  void *before = malloc(opaque(5000)), *big = malloc(opaque(8 * MiB));
  REQUIRE(before && big);
  pid_t pid = fork();
  if (pid == 0) {
    int ok = strcmp(tenant_get(), "fa") == 0;
    free(before), free(big);
    ok &= tenant_set("fb") == 0;
    for (int i = 0; i < 1000 && ok; i++) {
      void *p = malloc(opaque((size_t)(i % 7 + 1) * 300));
      ok &= p != NULL;
      free(p);
    }
    ok &= stats_of("fa").tier[TIERPOOL_TIER_LARGE].live_bytes == 0;
    _exit(ok ? 0 : 1);
  }
  int status;
  waitpid(pid, &status, 0);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %#x", status);
  CHECK(stats_of("fa").tier[TIERPOOL_TIER_LARGE].live_bytes == 8 * MiB, "the parent's block is the parent's");
  free(before), free(big);
  tenant_set(NULL);
}

/* Blocks a thread allocates in its own TLS destructors, after its cache is
 * gone, are its tenant's in the statistics too: counted when allocated and
 * when freed (by another thread), so the tenant's live bytes come back to 0
 * instead of wrapping below it. */
static pthread_key_t late_key;
static void *late_blocks[100];

static void late_destructor(void *arg) {
  (void)arg;
  for (int i = 0; i < 100; i++) late_blocks[i] = malloc(opaque(48));
}

static void *late_worker(void *p) {
  (void)p;
  tenant_set("late");
  free(malloc(opaque(48))); /* the thread's cache exists: its destructor runs before ours */
  pthread_setspecific(late_key, (void *)1);
  return NULL;
}

static void t_exit_counts(void) {
  if (!lookup()) return;
  REQUIRE(pthread_key_create(&late_key, late_destructor) == 0);
  pthread_t t;
  pthread_create(&t, NULL, late_worker, NULL);
  pthread_join(t, NULL);
  tierpool_tenant_stats_t s = stats_of("late");
  CHECK(s.tier[TIERPOOL_TIER_SLAB].allocs == 101, "late slab allocs %llu", (unsigned long long)s.tier[TIERPOOL_TIER_SLAB].allocs);
  CHECK(s.live_bytes == 100 * 48, "late live %llu", (unsigned long long)s.live_bytes);
  for (int i = 0; i < 100; i++) free(late_blocks[i]);
  s = stats_of("late");
  CHECK(s.tier[TIERPOOL_TIER_SLAB].frees == 101, "late slab frees %llu", (unsigned long long)s.tier[TIERPOOL_TIER_SLAB].frees);
  CHECK(s.live_bytes == 0, "late live after the frees %llu", (unsigned long long)s.live_bytes);
}

static const struct test tests[] = {
    {"stress", t_stress},
    {"process_limit", t_process_limit},
    {"fork", t_fork},
    {"isolated_free", t_isolated_free},
    {"cached_larger", t_cached_larger},
    {"refused_frees_room", t_refused_frees_room},
    {"move_out_charge", t_move_out_charge},
    {"limit", t_limit},   {"overflow", t_overflow}, {"zero", t_zero},   {"cross_free", t_cross_free},
    {"globs", t_globs},
    {"switch", t_switch}, {"rules", t_rules},       {"abort", t_abort},  {"exit_counts", t_exit_counts},
};

int main(int argc, char **argv) { return RUN_TESTS(tests, argc, argv); }
