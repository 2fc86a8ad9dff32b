/* classes.h — size-class sets and their expected internal waste on a
 * profile's exact size histogram, and the sets that minimise it.
 *
 * Waste is what the pool itself counts (preload/stats.c): bytes handed out
 * minus bytes asked for.  A size up to a set's largest class gets the
 * smallest class that holds it; a larger one is rounded up to whole pages,
 * as the pool's buddy and large tiers do (preload/alloc.c): so every set is
 * judged on every allocation of the histogram, and sets that cover different
 * ranges compare fairly.  Size 0 gets the smallest class, as in the pool.
 *
 * The histogram's buckets (buckets.h) hold exact counts and byte sums.  A
 * class on a bucket's upper bound costs exactly allocs*class - bytes for the
 * bucket; every multiple of 16 up to 4 KiB is such a bound, and above 4 KiB
 * the fit only uses bounds.  A class inside a bucket (jemalloc's and
 * tcmalloc's 8-byte class, tcmalloc's 4736…) splits it as if its sizes were
 * spread evenly: such waste figures are estimates (tp_waste.estimated). */
#ifndef TP_CLASSES_H
#define TP_CLASSES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buckets.h"

#define TP_CLASSES_LIMIT 64            /* the pool's most classes (preload/types.h) */
#define TP_CLASSES_SLAB_MAX 65536u     /* the pool's largest class */
#define TP_CLASSES_PAGE 4096u          /* buddy and large blocks are whole pages */

/* What a set does to a histogram. */
struct tp_waste {
  double allocs, requested, handed;    /* handed - requested is the waste */
  double slab_allocs;                  /* allocations that a class serves */
  bool estimated;                      /* a class splits a bucket that has allocations */
};

/* 100 * waste / handed, the pool's own "waste" column; 0 for an empty histogram. */
double tp_waste_percent(const struct tp_waste *w);
/* Share of allocations the slab tier serves, 0..1. */
double tp_waste_coverage(const struct tp_waste *w);

/* A histogram prepared for fast questions: cumulative counts at bucket bounds. */
struct tp_hist {
  double cum_allocs[TP_BUCKET_COUNT + 1], cum_bytes[TP_BUCKET_COUNT + 1];
  double tail_handed[TP_BUCKET_COUNT + 1]; /* pages handed out for buckets b.. */
  double total_allocs, total_bytes;
};

void tp_hist_init(struct tp_hist *h, const uint64_t *allocs, const uint64_t *bytes);
/* Allocations (and their bytes) of size <= x; split evenly inside a bucket. */
double tp_hist_allocs_upto(const struct tp_hist *h, uint64_t x);
double tp_hist_bytes_upto(const struct tp_hist *h, uint64_t x);

/* The waste of an ascending set of classes (n may be 0: every size gets pages). */
void tp_classes_waste(const struct tp_hist *h, const uint32_t *classes, size_t n, struct tp_waste *out);

/* The fit.  Candidates are the bucket upper bounds that are multiples of
 * align, from align up to max_slab.  With no backbone it picks at most
 * max_extra classes (the pure fit).  With a backbone it adds at most
 * max_extra candidates to it; if backbone + extra would exceed max_total,
 * the backbone classes whose loss costs least are dropped (only as many as
 * needed).  The slab tier serves at least min_coverage (0..1) of the
 * allocations.  Exact: dynamic programming over the sorted candidate and
 * backbone points, O(points^2 * extra * dropped).
 * Returns the number of classes written to out (ascending, out holds
 * max_total), or 0 when min_coverage cannot be met. */
struct tp_fit_request {
  uint32_t align, max_slab;
  const uint32_t *backbone;            /* ascending; may be NULL */
  size_t n_backbone;
  size_t max_extra, max_total;
  double min_coverage;
};
size_t tp_classes_fit(const struct tp_hist *h, const struct tp_fit_request *req, uint32_t *out,
                      double *waste_out);

/* Published class sets (sources in classes.c) and the pool's default. */
struct tp_class_list {
  const char *name, *source;
  const uint32_t *classes;
  size_t n;
};
extern const struct tp_class_list tp_classes_pool_default, tp_classes_jemalloc, tp_classes_tcmalloc;

#endif /* TP_CLASSES_H */
