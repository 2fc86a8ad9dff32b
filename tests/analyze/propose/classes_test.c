/* classes_test.c — the fit of analyze/classes.c against brute force.
 *
 * On small random histograms (10–14 buckets of 16 bytes), every subset of the
 * candidate classes is tried with an independent waste function; the DP's
 * waste must equal the least found under the same constraints (pure fit, or
 * a backbone plus extras under a class limit, with and without the coverage
 * rule), and no other set tried may beat it.  Also: the published tables, the
 * pool default against preload/internal.h, and exact waste above 4 KiB. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "classes.h"
#include "internal.h" /* TP_DEFAULT_CLASSES, the pool's own default */

static int failures, checks;

#define CHECK(cond, ...)                          \
  do {                                            \
    checks++;                                     \
    if (!(cond)) {                                \
      failures++;                                 \
      fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
      fprintf(stderr, __VA_ARGS__);               \
      fputc('\n', stderr);                        \
    }                                             \
  } while (0)

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return rng_state;
}

static uint64_t allocs[TP_BUCKET_COUNT], bytes[TP_BUCKET_COUNT];

/* A histogram over fine buckets 1..nb (sizes 1..16*nb), some buckets empty;
 * bucket 0 (malloc(0)) sometimes used. */
static void random_histogram(uint32_t nb) {
  memset(allocs, 0, sizeof allocs);
  memset(bytes, 0, sizeof bytes);
  for (uint32_t b = 0; b <= nb; b++) {
    if (rnd() % 3 == 0) continue;
    if (b == 0 && rnd() % 2) continue;
    uint64_t n = 1 + rnd() % 1000;
    allocs[b] = n;
    /* byte sum of n sizes within (16(b-1), 16b] */
    for (uint64_t k = 0; k < n; k++) bytes[b] += b == 0 ? 0 : 16 * (b - 1) + 1 + rnd() % 16;
  }
}

/* Independent waste of a set of fine classes on fine buckets 0..nb. */
static double brute_waste(uint32_t nb, const uint32_t *set, size_t n, double *coverage) {
  double handed = 0, requested = 0, total = 0, served = 0;
  for (uint32_t b = 0; b <= nb; b++) {
    if (!allocs[b]) continue;
    uint64_t hi = 16ull * b, cls = 0;
    for (size_t k = 0; k < n && !cls; k++)
      if (set[k] >= hi) cls = set[k];
    requested += (double)bytes[b];
    total += (double)allocs[b];
    if (cls) {
      handed += (double)allocs[b] * (double)cls;
      served += (double)allocs[b];
    } else {
      handed += (double)allocs[b] * 4096.0; /* every size here is under a page */
    }
  }
  *coverage = total ? served / total : 1;
  return handed - requested;
}

struct brute_result {
  double best;
  size_t sets;
};

/* Every subset of the candidates (multiples of align up to 16*nb) with at
 * most max_extra classes outside backbone and at most max_total classes. */
static struct brute_result brute_force(uint32_t nb, uint32_t align, const uint32_t *backbone, size_t n_backbone,
                                       size_t max_extra, size_t max_total, double min_coverage) {
  uint32_t cand[64];
  bool in_backbone[64];
  size_t m = 0;
  for (uint32_t c = 16; c <= 16 * nb; c += 16) {
    bool bb = false;
    for (size_t k = 0; k < n_backbone; k++) bb |= backbone[k] == c;
    if (c % align == 0 || bb) {
      in_backbone[m] = bb;
      cand[m++] = c;
    }
  }
  struct brute_result r = {INFINITY, 0};
  for (uint32_t mask = 0; mask < (1u << m); mask++) {
    uint32_t set[64];
    size_t n = 0, extra = 0;
    for (size_t k = 0; k < m; k++)
      if (mask >> k & 1) {
        set[n++] = cand[k];
        extra += !in_backbone[k];
      }
    if (n == 0 || extra > max_extra || n > max_total) continue;
    double coverage, w = brute_waste(nb, set, n, &coverage);
    if (coverage < min_coverage - 1e-12) continue;
    r.sets++;
    if (w < r.best) r.best = w;
  }
  return r;
}

static void check_fit(const char *what, uint32_t nb, uint32_t align, const uint32_t *backbone, size_t n_backbone,
                      size_t max_extra, size_t max_total, double min_coverage) {
  struct tp_hist *h = malloc(sizeof *h);
  tp_hist_init(h, allocs, bytes);
  struct tp_fit_request req = {align, 16 * nb, backbone, n_backbone, max_extra, max_total, min_coverage};
  uint32_t out[TP_CLASSES_LIMIT + 64];
  double fit_waste = NAN;
  size_t n = tp_classes_fit(h, &req, out, &fit_waste);
  struct brute_result brute = brute_force(nb, align, backbone, n_backbone, max_extra, max_total, min_coverage);
  if (brute.sets == 0 || h->total_allocs == 0) {
    CHECK(n == 0 || h->total_allocs == 0, "%s: fit found a set where brute force found none", what);
    free(h);
    return;
  }
  CHECK(n > 0, "%s: fit found no set (brute force: waste %.0f)", what, brute.best);
  if (n == 0) {
    free(h);
    return;
  }
  CHECK(fit_waste == brute.best, "%s: fit waste %.0f, brute force %.0f over %zu sets", what, fit_waste, brute.best,
        brute.sets);
  /* The set it returns is what it claims, under the rules. */
  double coverage, again = brute_waste(nb, out, n, &coverage);
  CHECK(again == fit_waste, "%s: the returned set wastes %.0f, the fit said %.0f", what, again, fit_waste);
  CHECK(coverage >= min_coverage - 1e-12, "%s: coverage %.3f < %.3f", what, coverage, min_coverage);
  size_t extra = 0;
  for (size_t k = 0; k < n; k++) {
    bool bb = false;
    for (size_t j = 0; j < n_backbone; j++) bb |= backbone[j] == out[k];
    extra += !bb;
    CHECK(k == 0 || out[k] > out[k - 1], "%s: not ascending", what);
    CHECK(bb || out[k] % align == 0, "%s: class %u is not a multiple of %u", what, out[k], align);
  }
  CHECK(extra <= max_extra && n <= max_total, "%s: %zu classes, %zu extra", what, n, extra);
  if (n_backbone + max_extra <= max_total) /* room for all: the backbone is kept whole */
    for (size_t j = 0; j < n_backbone; j++) {
      bool kept = false;
      for (size_t k = 0; k < n; k++) kept |= out[k] == backbone[j];
      CHECK(kept, "%s: backbone class %u dropped", what, backbone[j]);
    }
  /* tp_classes_waste agrees with the fit. */
  struct tp_waste w;
  tp_classes_waste(h, out, n, &w);
  CHECK(w.handed - w.requested == fit_waste && !w.estimated, "%s: tp_classes_waste %.0f", what,
        w.handed - w.requested);
  /* Random sets of the same size never beat it (when the rules allow them). */
  for (int t = 0; t < 200 && n_backbone == 0; t++) {
    uint32_t set[16];
    size_t k = 0;
    for (uint32_t c = align; c <= 16 * nb && k < n; c += align)
      if (rnd() % (16 * nb / align) < n) set[k++] = c;
    if (k == 0) continue;
    double cov, other = brute_waste(nb, set, k, &cov);
    if (cov >= min_coverage) CHECK(other >= fit_waste, "%s: a random set wastes %.0f < %.0f", what, other, fit_waste);
  }
  free(h);
}

static void test_against_brute_force(void) {
  char what[160];
  for (int round = 0; round < 60; round++) {
    uint32_t nb = 10 + (uint32_t)(rnd() % 5);
    random_histogram(nb);
    for (size_t k = 1; k <= 4; k++) {
      snprintf(what, sizeof what, "round %d, %u buckets, pure K=%zu", round, nb, k);
      check_fit(what, nb, 16, NULL, 0, k, k, 0.0);
      snprintf(what, sizeof what, "round %d, %u buckets, pure K=%zu, coverage 0.9", round, nb, k);
      check_fit(what, nb, 16, NULL, 0, k, k, 0.9);
      snprintf(what, sizeof what, "round %d, %u buckets, pure K=%zu, align 32", round, nb, k);
      check_fit(what, nb, 32, NULL, 0, k, k, 0.0);
    }
    /* A backbone of 3–5 classes, 1–3 extra, with and without room for all. */
    uint32_t backbone[8];
    size_t n_backbone = 0;
    for (uint32_t c = 16; c <= 16 * nb && n_backbone < 5; c += 16)
      if (rnd() % 4 == 0) backbone[n_backbone++] = c;
    if (n_backbone == 0) backbone[n_backbone++] = 16 * nb;
    for (size_t extra = 1; extra <= 3; extra++) {
      snprintf(what, sizeof what, "round %d, backbone %zu + %zu", round, n_backbone, extra);
      check_fit(what, nb, 16, backbone, n_backbone, extra, 64, 0.0);
      snprintf(what, sizeof what, "round %d, backbone %zu + %zu, limit %zu", round, n_backbone, extra, n_backbone);
      check_fit(what, nb, 16, backbone, n_backbone, extra, n_backbone, 0.0);
      snprintf(what, sizeof what, "round %d, backbone %zu + %zu, align 64, coverage 0.9", round, n_backbone, extra);
      check_fit(what, nb, 64, backbone, n_backbone, extra, n_backbone + 1, 0.9);
    }
  }
}

static void check_table(const struct tp_class_list *t, size_t want, uint32_t first, uint32_t last) {
  CHECK(t->n == want, "%s: %zu classes, expected %zu", t->name, t->n, want);
  CHECK(t->classes[0] == first && t->classes[t->n - 1] == last, "%s: %u..%u", t->name, t->classes[0],
        t->classes[t->n - 1]);
  for (size_t k = 1; k < t->n; k++) CHECK(t->classes[k] > t->classes[k - 1], "%s: not ascending at %zu", t->name, k);
}

static void test_tables(void) {
  check_table(&tp_classes_pool_default, 64, 16, 32768);
  check_table(&tp_classes_jemalloc, 45, 8, 65536);
  check_table(&tp_classes_tcmalloc, 85, 8, 262144);
  /* The pool's default, from the pool's own source. */
  const char *text = TP_DEFAULT_CLASSES;
  size_t k = 0;
  for (const char *s = text; *s;) {
    char *end;
    unsigned long v = strtoul(s, &end, 10);
    CHECK(k < tp_classes_pool_default.n && tp_classes_pool_default.classes[k] == v,
          "pool default class %zu: %lu in preload/internal.h", k, v);
    k++;
    s = *end == ',' ? end + 1 : end;
  }
  CHECK(k == tp_classes_pool_default.n, "preload/internal.h has %zu default classes", k);
}

/* Exact figures above 4 KiB and the page tiers; a class inside a bucket. */
static void test_known_waste(void) {
  memset(allocs, 0, sizeof allocs);
  memset(bytes, 0, sizeof bytes);
  allocs[tp_bucket_of_size(5000)] = 10, bytes[tp_bucket_of_size(5000)] = 50000;     /* (4608, 5120] */
  allocs[tp_bucket_of_size(40000)] = 2, bytes[tp_bucket_of_size(40000)] = 80000;    /* pages: 40960 */
  allocs[tp_bucket_of_size(100)] = 4, bytes[tp_bucket_of_size(100)] = 400;          /* (96, 112] */
  allocs[0] = 1;                                                                   /* malloc(0) */
  struct tp_hist *h = malloc(sizeof *h);
  tp_hist_init(h, allocs, bytes);
  struct tp_waste w;
  uint32_t set[] = {112, 5120};
  tp_classes_waste(h, set, 2, &w);
  CHECK(w.requested == 130400, "requested %.0f", w.requested);
  CHECK(w.handed == 112 * 5 + 5120 * 10 + 40960 * 2, "handed %.0f", w.handed);
  CHECK(w.slab_allocs == 15 && w.allocs == 17 && !w.estimated, "coverage %.0f/%.0f", w.slab_allocs, w.allocs);
  uint32_t none[] = {0};
  tp_classes_waste(h, none, 0, &w);
  CHECK(w.handed == 4096 * 5 + 8192 * 10 + 40960 * 2, "no classes: handed %.0f", w.handed);
  /* 4864 splits (4608, 5120] in half: 5 blocks of 4864, 5 of 5120. */
  uint32_t split[] = {112, 4864, 5120};
  tp_classes_waste(h, split, 3, &w);
  CHECK(w.estimated && fabs(w.handed - (112 * 5 + 4864 * 5 + 5120 * 5 + 40960 * 2)) < 1e-6, "split: handed %.1f",
        w.handed);
  /* The pure fit above 4 KiB: three classes, 112, 5120 and 40960. */
  struct tp_fit_request req = {16, 65536, NULL, 0, 3, 3, 0.9};
  uint32_t out[8];
  double waste;
  size_t n = tp_classes_fit(h, &req, out, &waste);
  CHECK(n == 3 && out[0] == 112 && out[1] == 5120 && out[2] == 40960, "fit above 4K: %zu classes, %u %u %u", n,
        out[0], out[1], n > 2 ? out[2] : 0);
  CHECK(waste == 112 * 5 + 5120 * 10 + 40960 * 2 - 130400, "fit above 4K: waste %.0f", waste);
  /* Coverage that no class can give: no set. */
  struct tp_fit_request small = {16, 1024, NULL, 0, 3, 3, 0.9};
  CHECK(tp_classes_fit(h, &small, out, &waste) == 0, "coverage 0.9 under 1 KiB should be impossible");
  free(h);
}

int main(void) {
  test_tables();
  test_known_waste();
  test_against_brute_force();
  printf("%d checks, %d failures\n", checks, failures);
  return failures ? 1 : 0;
}
