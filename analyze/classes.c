/* classes.c — the expected waste of a size-class set on a histogram, the
 * exact fit, and the published class tables (see classes.h). */
#include "classes.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

double tp_waste_percent(const struct tp_waste *w) {
  return w->handed > 0 ? 100.0 * (w->handed - w->requested) / w->handed : 0.0;
}

double tp_waste_coverage(const struct tp_waste *w) {
  return w->allocs > 0 ? w->slab_allocs / w->allocs : 0.0;
}

/* ---- the histogram ---------------------------------------------------------- */

/* Bytes the pool hands out for a size of bucket b above every class: whole
 * pages.  Page bounds are bucket bounds, so the whole bucket gets the same. */
static double page_size_of_bucket(uint32_t b) {
  if (b == 0) return TP_CLASSES_PAGE; /* malloc(0) in the page tiers takes one page */
  double hi = (double)tp_bucket_upper(b);
  return ceil(hi / TP_CLASSES_PAGE) * TP_CLASSES_PAGE;
}

void tp_hist_init(struct tp_hist *h, const uint64_t *allocs, const uint64_t *bytes) {
  h->cum_allocs[0] = h->cum_bytes[0] = 0;
  for (uint32_t b = 0; b < TP_BUCKET_COUNT; b++) {
    h->cum_allocs[b + 1] = h->cum_allocs[b] + (double)allocs[b];
    h->cum_bytes[b + 1] = h->cum_bytes[b] + (double)bytes[b];
  }
  h->tail_handed[TP_BUCKET_COUNT] = 0;
  for (uint32_t b = TP_BUCKET_COUNT; b-- > 0;)
    h->tail_handed[b] = h->tail_handed[b + 1] + (allocs[b] ? (double)allocs[b] * page_size_of_bucket(b) : 0.0);
  h->total_allocs = h->cum_allocs[TP_BUCKET_COUNT];
  h->total_bytes = h->cum_bytes[TP_BUCKET_COUNT];
}

/* Share of bucket b's sizes (integers lower..upper) that are <= x, x inside the bucket. */
static double bucket_share_upto(uint32_t b, uint64_t x) {
  uint64_t lo = tp_bucket_lower(b), hi = tp_bucket_upper(b);
  if (x >= hi) return 1.0;
  return (double)(x - lo + 1) / ((double)(hi - lo) + 1.0);
}

static double upto(const double *cum, uint64_t x) {
  uint32_t b = tp_bucket_of_size(x);
  double in_bucket = cum[b + 1] - cum[b];
  return cum[b] + (in_bucket ? in_bucket * bucket_share_upto(b, x) : 0.0);
}

double tp_hist_allocs_upto(const struct tp_hist *h, uint64_t x) { return upto(h->cum_allocs, x); }
double tp_hist_bytes_upto(const struct tp_hist *h, uint64_t x) { return upto(h->cum_bytes, x); }

/* Pages handed out for every size above x. */
static double tail_handed_above(const struct tp_hist *h, uint64_t x) {
  uint32_t b = tp_bucket_of_size(x);
  double in_bucket = h->cum_allocs[b + 1] - h->cum_allocs[b];
  double rest = in_bucket ? in_bucket * (1.0 - bucket_share_upto(b, x)) * page_size_of_bucket(b) : 0.0;
  return h->tail_handed[b + 1] + rest;
}

static bool on_bucket_bound(uint64_t c) { return tp_bucket_upper(tp_bucket_of_size(c)) == c; }

static bool splits_used_bucket(const struct tp_hist *h, uint64_t c) {
  uint32_t b = tp_bucket_of_size(c);
  return h->cum_allocs[b + 1] > h->cum_allocs[b];
}

void tp_classes_waste(const struct tp_hist *h, const uint32_t *classes, size_t n, struct tp_waste *out) {
  memset(out, 0, sizeof *out);
  out->allocs = h->total_allocs;
  out->requested = h->total_bytes;
  double below = 0; /* allocations served by smaller classes */
  for (size_t k = 0; k < n; k++) {
    double upto_c = tp_hist_allocs_upto(h, classes[k]);
    out->handed += (upto_c - below) * classes[k];
    below = upto_c;
    if (!on_bucket_bound(classes[k]) && splits_used_bucket(h, classes[k])) out->estimated = true;
  }
  out->slab_allocs = below;
  out->handed += n ? tail_handed_above(h, classes[n - 1]) : h->tail_handed[0];
}

/* ---- the fit ---------------------------------------------------------------- */

/* The points a class may sit on: candidates and backbone classes, ascending. */
struct fit_points {
  size_t m;
  uint64_t *size;
  bool *backbone;
  size_t *backbone_before;   /* backbone points with a smaller index; [m] = all */
  double *allocs, *bytes;    /* tp_hist_*_upto at the point */
  double *tail_waste;        /* waste of every size above the point (pages) */
};

static int compare_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return (x > y) - (x < y);
}

static bool fit_points_build(struct fit_points *p, const struct tp_hist *h, const struct tp_fit_request *req) {
  size_t cap = TP_BUCKET_COUNT + req->n_backbone;
  uint64_t *raw = malloc(cap * sizeof *raw);
  if (!raw) return false;
  size_t n = 0;
  for (uint32_t b = 1; b < TP_BUCKET_COUNT; b++) {
    uint64_t u = tp_bucket_upper(b);
    if (u > req->max_slab) break;
    if (u >= req->align && u % req->align == 0) raw[n++] = u << 1;          /* low bit: backbone */
  }
  for (size_t k = 0; k < req->n_backbone; k++) raw[n++] = ((uint64_t)req->backbone[k] << 1) | 1;
  qsort(raw, n, sizeof *raw, compare_u64);
  p->size = malloc(n * sizeof *p->size);
  p->backbone = malloc(n * sizeof *p->backbone);
  p->backbone_before = malloc((n + 1) * sizeof *p->backbone_before);
  p->allocs = malloc(n * sizeof *p->allocs);
  p->bytes = malloc(n * sizeof *p->bytes);
  p->tail_waste = malloc(n * sizeof *p->tail_waste);
  if (!p->size || !p->backbone || !p->backbone_before || !p->allocs || !p->bytes || !p->tail_waste) {
    free(raw);
    return false;
  }
  size_t m = 0;
  for (size_t k = 0; k < n; k++) {
    uint64_t size = raw[k] >> 1;
    bool bb = raw[k] & 1;
    if (m > 0 && p->size[m - 1] == size) { /* a candidate that is also a backbone class */
      p->backbone[m - 1] |= bb;
      continue;
    }
    p->size[m] = size;
    p->backbone[m] = bb;
    m++;
  }
  free(raw);
  p->m = m;
  size_t seen = 0;
  for (size_t j = 0; j < m; j++) {
    p->backbone_before[j] = seen;
    seen += p->backbone[j];
    p->allocs[j] = tp_hist_allocs_upto(h, p->size[j]);
    p->bytes[j] = tp_hist_bytes_upto(h, p->size[j]);
    p->tail_waste[j] = tail_handed_above(h, p->size[j]) - (h->total_bytes - p->bytes[j]);
  }
  p->backbone_before[m] = seen;
  return true;
}

static void fit_points_free(struct fit_points *p) {
  free(p->size);
  free(p->backbone);
  free(p->backbone_before);
  free(p->allocs);
  free(p->bytes);
  free(p->tail_waste);
}

/* Waste of the sizes in (point i, point j] served by class j; i = -1: from size 0. */
static double segment_waste(const struct fit_points *p, ptrdiff_t i, size_t j) {
  double allocs = p->allocs[j] - (i >= 0 ? p->allocs[i] : 0.0);
  double bytes = p->bytes[j] - (i >= 0 ? p->bytes[i] : 0.0);
  return allocs * (double)p->size[j] - bytes;
}

/* The DP.  best[j][e][d]: least waste of the sizes up to point j, with a class
 * on j, e classes that are not backbone, d backbone classes below j skipped. */
size_t tp_classes_fit(const struct tp_hist *h, const struct tp_fit_request *req, uint32_t *out,
                      double *waste_out) {
  struct fit_points p;
  memset(&p, 0, sizeof p);
  if (!fit_points_build(&p, h, req)) return 0;
  size_t m = p.m, E = req->max_extra, nb = p.backbone_before[m];
  size_t D = nb + E > req->max_total ? nb + E - req->max_total : 0;
  if (D > nb) D = nb;
  size_t per_point = (E + 1) * (D + 1), states = m * per_point;
  double *best = malloc(states * sizeof *best);
  int32_t *from = malloc(states * sizeof *from);
  size_t result = 0;
  if (!best || !from || m == 0) goto done;
  for (size_t s = 0; s < states; s++) best[s] = INFINITY;
#define STATE(j, e, d) (((j) * (E + 1) + (e)) * (D + 1) + (d))
  for (size_t j = 0; j < m; j++) {
    size_t step = p.backbone[j] ? 0 : 1;
    if (step > E) continue;
    size_t skipped = p.backbone_before[j];
    if (skipped <= D) {
      best[STATE(j, step, skipped)] = segment_waste(&p, -1, j);
      from[STATE(j, step, skipped)] = -1;
    }
    for (size_t i = 0; i < j; i++) {
      size_t between = p.backbone_before[j] - p.backbone_before[i + 1];
      if (between > D) continue;
      double cost = segment_waste(&p, (ptrdiff_t)i, j);
      for (size_t e = 0; e + step <= E; e++)
        for (size_t d = 0; d + between <= D; d++) {
          double v = best[STATE(i, e, d)];
          if (v == INFINITY) continue;
          size_t to = STATE(j, e + step, d + between);
          if (v + cost < best[to]) {
            best[to] = v + cost;
            from[to] = (int32_t)i;
          }
        }
    }
  }
  /* The last class: enough coverage, every skipped backbone class counted. */
  double need = req->min_coverage * h->total_allocs * (1 - 1e-12);
  double win = INFINITY;
  size_t win_j = 0, win_e = 0, win_d = 0, win_dropped = 0;
  for (size_t j = 0; j < m; j++) {
    if (p.allocs[j] < need) continue;
    size_t after = nb - p.backbone_before[j + 1];
    for (size_t e = 0; e <= E; e++)
      for (size_t d = 0; d + after <= D; d++) {
        if (nb - (d + after) + e > req->max_total) continue;
        double v = best[STATE(j, e, d)] + p.tail_waste[j];
        /* Ties (classes where nothing is allocated) keep the backbone, then add least. */
        bool tie = win < INFINITY && fabs(v - win) <= 1e-9 * fabs(win) + 1e-6;
        if (tie ? d + after < win_dropped || (d + after == win_dropped && e < win_e) : v < win)
          win = v, win_j = j, win_e = e, win_d = d, win_dropped = d + after;
      }
  }
  if (win == INFINITY) goto done;
  /* Walk back; the count of classes is the number of steps. */
  size_t count = 0;
  for (ptrdiff_t j = (ptrdiff_t)win_j, e = (ptrdiff_t)win_e, d = (ptrdiff_t)win_d; j >= 0;) {
    count++;
    int32_t i = from[STATE((size_t)j, (size_t)e, (size_t)d)];
    e -= p.backbone[j] ? 0 : 1;
    if (i >= 0) d -= (ptrdiff_t)(p.backbone_before[j] - p.backbone_before[i + 1]);
    j = i;
  }
  size_t k = count;
  for (ptrdiff_t j = (ptrdiff_t)win_j, e = (ptrdiff_t)win_e, d = (ptrdiff_t)win_d; j >= 0;) {
    out[--k] = (uint32_t)p.size[j];
    int32_t i = from[STATE((size_t)j, (size_t)e, (size_t)d)];
    e -= p.backbone[j] ? 0 : 1;
    if (i >= 0) d -= (ptrdiff_t)(p.backbone_before[j] - p.backbone_before[i + 1]);
    j = i;
  }
#undef STATE
  if (waste_out) *waste_out = win;
  result = count;
done:
  free(best);
  free(from);
  fit_points_free(&p);
  return result;
}

/* ---- published sets ----------------------------------------------------------- */

/* The pool's built-in default: TP_DEFAULT_CLASSES of preload/internal.h
 * (a test checks that the two agree). */
static const uint32_t pool_default[] = {
    16,   32,   48,   64,   80,   96,   112,  128,   144,   160,   176,   192,   208,   224,   240,   256,
    288,  320,  352,  384,  416,  448,  480,  512,   576,   640,   704,   768,   832,   896,   960,   1024,
    1152, 1280, 1408, 1536, 1664, 1792, 1920, 2048,  2304,  2560,  2816,  3072,  3328,  3584,  3840,  4096,
    4608, 5120, 5632, 6144, 6656, 7168, 7680, 8192,  10240, 12288, 14336, 16384, 20480, 24576, 28672, 32768};

/* jemalloc 5.3.0's size classes for LG_QUANTUM=4 (x86-64) and 4 KiB pages, as
 * its sc.c derives them: the tiny class 8, then 4 classes per doubling from
 * 16.  Its small (slab) classes end at 14336; the classes up to 64 KiB (the
 * pool's slab limit) are listed, spaced the same way: 45 classes. */
static const uint32_t jemalloc_classes[] = {
    8,    16,   32,   48,   64,   80,   96,    112,   128,   160,   192,   224,   256,   320,   384,
    448,  512,  640,  768,  896,  1024, 1280,  1536,  1792,  2048,  2560,  3072,  3584,  4096,  5120,
    6144, 7168, 8192, 10240, 12288, 14336, 16384, 20480, 24576, 28672, 32768, 40960, 49152, 57344, 65536};

/* tcmalloc's kSizeClasses for TCMALLOC_PAGE_SHIFT 13 (8 KiB pages, the
 * default) with 16-byte operator-new alignment (x86-64), from
 * google/tcmalloc tcmalloc/size_classes.cc (commit 078e62ee): 85 classes up
 * to its kMaxSize, 256 KiB. */
static const uint32_t tcmalloc_classes[] = {
    8,      16,     32,     48,     64,     80,     96,     112,    128,    144,    160,    176,    192,
    208,    224,    240,    256,    272,    288,    304,    320,    336,    352,    368,    384,    400,
    416,    448,    480,    512,    576,    640,    704,    768,    896,    1024,   1152,   1280,   1408,
    1536,   1792,   2048,   2304,   2688,   2816,   3200,   3456,   3584,   4096,   4736,   5376,   6144,
    6528,   6784,   7168,   8192,   9472,   10240,  12288,  13568,  14336,  16384,  20480,  24576,  28672,
    32768,  40960,  49152,  57344,  65536,  73728,  81920,  90112,  98304,  106496, 122880, 131072, 139264,
    155648, 163840, 180224, 204800, 221184, 237568, 262144};

#define TABLE(var, name, source, array) \
  const struct tp_class_list var = {name, source, array, sizeof array / sizeof array[0]}
TABLE(tp_classes_pool_default, "tierpool default", "preload/internal.h", pool_default);
TABLE(tp_classes_jemalloc, "jemalloc", "jemalloc 5.3.0, lg_quantum 4, 4 KiB pages, to 64 KiB", jemalloc_classes);
TABLE(tp_classes_tcmalloc, "tcmalloc", "tcmalloc size_classes.cc, 8 KiB pages, 16-byte alignment", tcmalloc_classes);
#undef TABLE
