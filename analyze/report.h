/* report.h — what `tierpool report` computes from a profile, once, for its two
 * printers: text (report.c) and JSON (report_json.c). */
#ifndef TP_REPORT_H
#define TP_REPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "profile.h"
#include "symbols.h"

#define REPORT_CALLERS 3        /* callers shown under a site's own frame */
#define REPORT_HIST_ROWS 30     /* at most this many size rows, when the grid allows */
#define REPORT_STRIP_WIDTH 60   /* columns of a tenant's live-bytes strip */

/* A row of the size histogram: requested sizes in (lo, hi]; lo = hi = 0 is size 0. */
struct report_row {
  uint64_t lo, hi;
  uint64_t allocs, bytes, frees;
};

/* Lifetimes of sampled blocks (weighted), of one tier or all. Shares are of
 * blocks (freed + never freed) and add up to 1. */
struct report_lifetime {
  double blocks, freed, never_freed;
  double p50_us, p90_us, p99_us;         /* of freed blocks */
  double under_1ms, ms_to_1s, over_1s, never;
};

/* An allocation site: the innermost frame that is not allocator plumbing and
 * its callers (frames[0..depth)); the profile's sites with those frames summed. */
struct report_site {
  uint32_t frames[1 + REPORT_CALLERS];
  uint32_t depth;
  uint64_t samples;
  double allocs, bytes, live_allocs, live_bytes;
  uint32_t tiers;                         /* bit per tier seen */
};

struct report_tier {
  uint64_t samples;
  double allocs, bytes, live_allocs, live_bytes;
};

struct report_tenant {
  const char *name;
  uint64_t samples;
  double allocs, bytes, live_bytes;
};

struct report {
  const struct tp_profile *profile;
  struct tp_symbolizer *symbols;
  size_t top;                             /* --top N */
  char *const *traces;                    /* the files, as given */
  size_t n_traces;

  uint64_t allocs, bytes, frees;          /* exact */
  uint64_t duration_us;                   /* summed over processes */
  double allocs_per_s, bytes_per_s;       /* per process-second; 0 if no duration */
  uint64_t peak_live, peak_resident, peak_rss;   /* the largest process's */
  uint64_t samples, dropped;
  double sampled_bytes;                   /* estimated bytes of all sites */

  struct report_row *rows;
  size_t n_rows;
  uint64_t max_row_allocs;

  struct report_lifetime lifetime[TP_TIERS + 1];   /* per tier, then all */
  struct report_tier tiers[TP_TIERS];
  struct report_tenant *tenants;
  size_t n_tenants;

  struct report_site *sites;              /* merged by displayed frames */
  size_t n_sites;
  uint32_t *by_bytes, *by_count;          /* indices in sites, the top first */
  size_t n_by_bytes, n_by_count;

  uint32_t *reservations;                 /* indices in profile->reservations, largest first */
  size_t n_reservations;

  /* --by-tenant: one report per tenant of the profile (same order), each with
   * the tenant's exact histogram, its sites, and its live bytes over time. */
  uint32_t tenant;                        /* TP_PROFILE_NONE: the whole profile */
  struct report *by_tenant;
  size_t n_by_tenant;
  uint64_t strip[REPORT_STRIP_WIDTH];     /* live bytes, max per column, summed over processes */
  size_t n_strip;
  uint64_t strip_step_us, strip_peak;     /* time per column (since each process's start) */
};

extern const char *const report_tier_names[TP_TIERS];
extern const char *const report_mmap_kinds[5];

/* Fills r from p (p and traces must outlive r). */
void report_build(struct report *r, const struct tp_profile *p, size_t top, char *const *traces, size_t n_traces);
void report_free(struct report *r);
/* Adds r->by_tenant (after report_build). */
void report_build_by_tenant(struct report *r);

/* The --json document (schema in README: "tierpool report --json"). */
void report_print_json(FILE *out, const struct report *r);

#endif /* TP_REPORT_H */
