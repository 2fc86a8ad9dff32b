/* report.c — `tierpool report [--json] [--top N] [--by-tenant] TRACE...`: what
 * traces say, first computed into a struct report (report.h), then printed as
 * text here or as JSON (report_json.c).  --by-tenant adds a report per tenant. */
#include "report.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buckets.h"
#include "cli.h"
#include "commands.h"

const char *const report_tier_names[TP_TIERS] = {"slab", "buddy", "large"};
const char *const report_mmap_kinds[5] = {"mmap", "munmap", "mremap", "mprotect", "madvise"};

static const char report_usage[] = "usage: tierpool report [--json] [--top N] TRACE...\n";

static void report_help(void) {
  printf("%s\n"
         "What the traces say, merged: the processes, allocations and bytes (exact), the\n"
         "allocation rate, peak live and resident memory, the size histogram, lifetimes of\n"
         "sampled blocks, the top allocation sites by bytes and by count (symbolised from\n"
         "the modules' build-ids with elfutils), tier, tenant and mmap activity, and the\n"
         "large reservations (Wasm linear memories) and their growth.\n"
         "\n"
         "  --json     one JSON document instead of text (schema: README, \"report --json\")\n"
         "  --top N    sites, processes and reservations listed (default 10)\n"
         "  --by-tenant  each tenant on its own: its exact size histogram, top sites by\n"
         "               bytes and live bytes over time (a strip, one column per period)\n"
         "\n"
         "Exit status 2 if a trace cannot be read; a truncated one (its writer was\n"
         "killed) is used up to its last complete frame, with a warning.\n",
         report_usage);
}

static void *xcalloc(size_t n, size_t size) {
  void *p = calloc(n ? n : 1, size);
  if (!p) {
    fprintf(stderr, "tierpool report: out of memory\n");
    exit(EXIT_USAGE);
  }
  return p;
}

/* ---- Size histogram ----------------------------------------------------------
 * Up to 4 KiB, each power of two (2^k, 2^(k+1)] is split into `split` equal
 * rows (never narrower than a 16-byte bucket); above, a row per power of two.
 * The finest split that needs at most REPORT_HIST_ROWS non-empty rows wins. */

/* The row (lo, hi] that holds bucket b. */
static void row_bounds(uint32_t b, uint64_t split, uint64_t *lo, uint64_t *hi) {
  uint64_t upper = tp_bucket_upper(b);
  if (upper <= 16) { /* size 0, and (0, 16] */
    *lo = 0, *hi = upper;
    return;
  }
  unsigned k = 63u - (unsigned)__builtin_clzll(upper - 1); /* upper in (2^k, 2^(k+1)] */
  if (upper > TP_BUCKET_FINE_MAX) {
    *lo = 1ull << k, *hi = k >= 63 ? UINT64_MAX : 2ull << k;
    return;
  }
  uint64_t width = (1ull << k) / split < 16 ? 16 : (1ull << k) / split;
  *hi = (upper + width - 1) / width * width;
  *lo = *hi - width;
}

/* Exact counts by bucket: the profile's, or one tenant's. */
struct report_counts {
  const uint64_t *allocs, *bytes, *frees;
};

/* The number of non-empty rows at this split; with fill, the rows themselves. */
static size_t build_rows(struct report *r, const struct report_counts *p, uint64_t split, bool fill) {
  size_t n = 0;
  uint64_t last_hi = 0;
  for (uint32_t b = 0; b < TP_BUCKET_COUNT; b++) {
    if (!p->allocs[b] && !p->frees[b]) continue;
    uint64_t lo, hi;
    row_bounds(b, split, &lo, &hi);
    if (n == 0 || hi != last_hi) {
      if (fill) r->rows[n].lo = lo, r->rows[n].hi = hi;
      n++;
      last_hi = hi;
    }
    if (fill) {
      struct report_row *row = &r->rows[n - 1];
      row->allocs += p->allocs[b], row->bytes += p->bytes[b], row->frees += p->frees[b];
      if (row->allocs > r->max_row_allocs) r->max_row_allocs = row->allocs;
    }
  }
  return n;
}

static void build_histogram(struct report *r, const struct report_counts *p) {
  static const uint64_t splits[] = {256, 8, 4, 2, 1};
  uint64_t split = 1;
  for (size_t i = 0; i < sizeof splits / sizeof splits[0]; i++)
    if (build_rows(r, p, splits[i], false) <= REPORT_HIST_ROWS) {
      split = splits[i];
      break;
    }
  r->n_rows = build_rows(r, p, split, false);
  r->rows = xcalloc(r->n_rows, sizeof *r->rows);
  build_rows(r, p, split, true);
}

/* ---- Lifetimes ------------------------------------------------------------ */

/* Weight of a histogram below us µs, a straddling bucket counted pro rata. */
static double weight_below(const double *hist, uint64_t us) {
  double sum = 0;
  for (uint32_t b = 0; b < TP_LIFETIME_BUCKETS; b++) {
    if (hist[b] == 0) continue;
    double lo = (double)tp_lifetime_bucket_lower(b), hi = (double)tp_lifetime_bucket_upper(b);
    if (hi <= (double)us) sum += hist[b];
    else if (lo < (double)us && hi > lo) sum += hist[b] * ((double)us - lo) / (hi - lo);
  }
  return sum;
}

static void build_lifetime(struct report_lifetime *l, const double *hist, double never_freed) {
  for (uint32_t b = 0; b < TP_LIFETIME_BUCKETS; b++) l->freed += hist[b];
  l->never_freed = never_freed;
  l->blocks = l->freed + never_freed;
  if (l->freed > 0) {
    l->p50_us = tp_lifetime_quantile(hist, 0.50);
    l->p90_us = tp_lifetime_quantile(hist, 0.90);
    l->p99_us = tp_lifetime_quantile(hist, 0.99);
  }
  if (l->blocks > 0) {
    double ms = weight_below(hist, 1000), s = weight_below(hist, 1000000);
    l->under_1ms = ms / l->blocks;
    l->ms_to_1s = (s - ms) / l->blocks;
    l->over_1s = (l->freed - s) / l->blocks;
    l->never = never_freed / l->blocks;
  }
}

static void build_lifetimes(struct report *r, const struct tp_profile *p) {
  double all[TP_LIFETIME_BUCKETS] = {0}, never = 0;
  for (int t = 0; t < TP_TIERS; t++) {
    build_lifetime(&r->lifetime[t], p->lifetime[t], p->never_freed[t]);
    for (uint32_t b = 0; b < TP_LIFETIME_BUCKETS; b++) all[b] += p->lifetime[t][b];
    never += p->never_freed[t];
  }
  build_lifetime(&r->lifetime[TP_TIERS], all, never);
}

/* ---- Sites ----------------------------------------------------------------- */

/* The displayed frames of a stack: its site and the site's callers. */
static uint32_t site_frames(struct report *r, const struct tp_prof_stack *st, uint32_t *out) {
  uint32_t first = tp_symbolize_site(r->symbols, st), n = 0;
  for (uint32_t i = first; i < st->depth && n < 1 + REPORT_CALLERS; i++) out[n++] = st->frames[i];
  return n;
}

static uint64_t site_hash(const uint32_t *frames, uint32_t depth) {
  uint64_t h = 1469598103934665603ull ^ depth;
  for (uint32_t i = 0; i < depth; i++) h = (h ^ frames[i]) * 1099511628211ull;
  return h;
}

static void build_sites(struct report *r, const struct tp_profile *p) {
  uint32_t *site_of_stack = xcalloc(p->n_stacks, sizeof *site_of_stack);
  for (size_t i = 0; i < p->n_stacks; i++) site_of_stack[i] = TP_PROFILE_NONE;
  size_t cap = 16;
  while (cap < 2 * p->n_stacks + 2) cap *= 2;
  uint32_t *table = xcalloc(cap, sizeof *table); /* site index + 1, 0 empty */
  r->sites = xcalloc(p->n_stacks + 1, sizeof *r->sites);
  for (size_t i = 0; i < p->n_sites; i++) {
    const struct tp_prof_site *ps = &p->sites[i];
    if (r->tenant != TP_PROFILE_NONE && ps->tenant != r->tenant) continue;
    uint32_t site = TP_PROFILE_NONE;
    if (ps->stack < p->n_stacks) site = site_of_stack[ps->stack];
    if (site == TP_PROFILE_NONE) {
      struct report_site key = {0};
      if (ps->stack < p->n_stacks) key.depth = site_frames(r, &p->stacks[ps->stack], key.frames);
      size_t slot = site_hash(key.frames, key.depth) & (cap - 1);
      for (;; slot = (slot + 1) & (cap - 1)) {
        uint32_t s = table[slot];
        if (s == 0) {
          r->sites[r->n_sites] = key;
          table[slot] = (uint32_t)++r->n_sites;
          site = table[slot] - 1;
          break;
        }
        const struct report_site *other = &r->sites[s - 1];
        if (other->depth == key.depth && memcmp(other->frames, key.frames, key.depth * sizeof key.frames[0]) == 0) {
          site = s - 1;
          break;
        }
      }
      if (ps->stack < p->n_stacks) site_of_stack[ps->stack] = site;
    }
    struct report_site *s = &r->sites[site];
    s->samples += ps->samples;
    s->allocs += ps->allocs, s->bytes += ps->bytes;
    s->live_allocs += ps->live_allocs, s->live_bytes += ps->live_bytes;
    if (ps->tier < TP_TIERS) {
      s->tiers |= 1u << ps->tier;
      struct report_tier *t = &r->tiers[ps->tier];
      t->samples += ps->samples;
      t->allocs += ps->allocs, t->bytes += ps->bytes;
      t->live_allocs += ps->live_allocs, t->live_bytes += ps->live_bytes;
    }
    if (ps->tenant < r->n_tenants) {
      struct report_tenant *t = &r->tenants[ps->tenant];
      t->samples += ps->samples;
      t->allocs += ps->allocs, t->bytes += ps->bytes, t->live_bytes += ps->live_bytes;
    }
    r->sampled_bytes += ps->bytes;
  }
  free(table);
  free(site_of_stack);
}

static int by_bytes(const void *a, const void *b, void *sites) {
  const struct report_site *x = (const struct report_site *)sites + *(const uint32_t *)a;
  const struct report_site *y = (const struct report_site *)sites + *(const uint32_t *)b;
  if (x->bytes != y->bytes) return x->bytes > y->bytes ? -1 : 1;
  if (x->allocs != y->allocs) return x->allocs > y->allocs ? -1 : 1;
  return *(const uint32_t *)a < *(const uint32_t *)b ? -1 : 1;
}

static int by_count(const void *a, const void *b, void *sites) {
  const struct report_site *x = (const struct report_site *)sites + *(const uint32_t *)a;
  const struct report_site *y = (const struct report_site *)sites + *(const uint32_t *)b;
  if (x->allocs != y->allocs) return x->allocs > y->allocs ? -1 : 1;
  if (x->bytes != y->bytes) return x->bytes > y->bytes ? -1 : 1;
  return *(const uint32_t *)a < *(const uint32_t *)b ? -1 : 1;
}

static uint32_t *top_sites(const struct report *r, int (*cmp)(const void *, const void *, void *), size_t *n) {
  uint32_t *order = xcalloc(r->n_sites, sizeof *order);
  for (size_t i = 0; i < r->n_sites; i++) order[i] = (uint32_t)i;
  qsort_r(order, r->n_sites, sizeof *order, cmp, r->sites);
  *n = r->n_sites < r->top ? r->n_sites : r->top;
  return order;
}

static int by_reservation_size(const void *a, const void *b, void *reservations) {
  const struct tp_prof_reservation *x = (const struct tp_prof_reservation *)reservations + *(const uint32_t *)a;
  const struct tp_prof_reservation *y = (const struct tp_prof_reservation *)reservations + *(const uint32_t *)b;
  if (x->max_accessible != y->max_accessible) return x->max_accessible > y->max_accessible ? -1 : 1;
  if (x->size != y->size) return x->size > y->size ? -1 : 1;
  return *(const uint32_t *)a < *(const uint32_t *)b ? -1 : 1;
}

void report_build(struct report *r, const struct tp_profile *p, size_t top, char *const *traces, size_t n_traces) {
  memset(r, 0, sizeof *r);
  r->profile = p;
  r->tenant = TP_PROFILE_NONE;
  r->top = top;
  r->traces = traces, r->n_traces = n_traces;
  r->symbols = tp_symbolizer_new(p);
  r->allocs = tp_profile_total_allocs(p);
  r->bytes = tp_profile_total_bytes(p);
  for (uint32_t b = 0; b < TP_BUCKET_COUNT; b++) r->frees += p->frees[b];
  for (size_t i = 0; i < p->n_processes; i++) {
    const struct tp_prof_process *proc = &p->processes[i];
    r->duration_us += proc->duration_us;
    r->dropped += proc->dropped;
    if (proc->peak_live > r->peak_live) r->peak_live = proc->peak_live;
    if (proc->peak_resident > r->peak_resident) r->peak_resident = proc->peak_resident;
    if (proc->peak_rss > r->peak_rss) r->peak_rss = proc->peak_rss;
  }
  r->samples = p->samples;
  if (r->duration_us) {
    r->allocs_per_s = (double)r->allocs * 1e6 / (double)r->duration_us;
    r->bytes_per_s = (double)r->bytes * 1e6 / (double)r->duration_us;
  }
  build_histogram(r, &(struct report_counts){p->allocs, p->bytes, p->frees});
  build_lifetimes(r, p);
  r->n_tenants = p->n_tenants;
  r->tenants = xcalloc(p->n_tenants, sizeof *r->tenants);
  for (size_t i = 0; i < p->n_tenants; i++) r->tenants[i].name = p->tenants[i];
  build_sites(r, p);
  r->by_bytes = top_sites(r, by_bytes, &r->n_by_bytes);
  r->by_count = top_sites(r, by_count, &r->n_by_count);
  r->reservations = xcalloc(p->n_reservations, sizeof *r->reservations);
  for (size_t i = 0; i < p->n_reservations; i++) r->reservations[i] = (uint32_t)i;
  qsort_r(r->reservations, p->n_reservations, sizeof *r->reservations, by_reservation_size, p->reservations);
  r->n_reservations = p->n_reservations < top ? p->n_reservations : top;
}

/* ---- By tenant ---------------------------------------------------------------- */

/* One process's live bytes into vals[] at step_us per value: max within a value. */
static void strip_add(uint64_t *vals, size_t n, uint64_t step_us, const struct tp_series *s) {
  uint64_t run = 0;
  size_t at = 0;
  for (uint32_t j = 0; j < s->n; j++) {
    size_t k = (size_t)((uint64_t)j * s->step_us / step_us);
    if (k != at) vals[at] += run, run = 0, at = k;
    if (s->live[j] > run) run = s->live[j];
  }
  if (at < n) vals[at] += run;
}

/* The tenant's series: its own in processes that had tenants in their
 * snapshots; for the default tenant, the whole of the other processes. */
static size_t tenant_series(const struct tp_profile *p, uint32_t tenant, const struct tp_series **out) {
  size_t n = 0;
  for (size_t i = 0; i < p->n_tenant_series; i++)
    if (p->tenant_series[i].tenant == tenant) out[n++] = &p->tenant_series[i].series;
  for (size_t i = 0; tenant == 0 && p->series && i < p->n_processes; i++) {
    bool split = false;
    for (size_t k = 0; k < p->n_tenant_series && !split; k++) split = p->tenant_series[k].process == i;
    if (!split) out[n++] = &p->series[i];
  }
  return n;
}

/* Live bytes over time in at most REPORT_STRIP_WIDTH columns: the series on
 * the coarsest step among them, summed, then neighbours merged (max). */
static void build_strip(struct report *r, const struct tp_profile *p) {
  const struct tp_series **list = xcalloc(p->n_tenant_series + p->n_processes, sizeof *list);
  size_t n_list = tenant_series(p, r->tenant, list), n = 0;
  uint64_t step = 0;
  for (size_t i = 0; i < n_list; i++)
    if (list[i]->step_us > step) step = list[i]->step_us;
  for (size_t i = 0; i < n_list; i++) {
    size_t len = (size_t)(((uint64_t)list[i]->n * list[i]->step_us + step - 1) / step);
    if (len > n) n = len;
  }
  if (n) {
    uint64_t *vals = xcalloc(n, sizeof *vals);
    for (size_t i = 0; i < n_list; i++) strip_add(vals, n, step, list[i]);
    size_t group = (n + REPORT_STRIP_WIDTH - 1) / REPORT_STRIP_WIDTH;
    r->n_strip = (n + group - 1) / group;
    r->strip_step_us = step * group;
    for (size_t i = 0; i < n; i++) {
      if (vals[i] > r->strip[i / group]) r->strip[i / group] = vals[i];
      if (vals[i] > r->strip_peak) r->strip_peak = vals[i];
    }
    free(vals);
  }
  free(list);
}

static void build_tenant(struct report *t, const struct report *r, uint32_t tenant) {
  const struct tp_profile *p = r->profile;
  memset(t, 0, sizeof *t);
  t->profile = p, t->symbols = r->symbols, t->top = r->top;
  t->traces = r->traces, t->n_traces = r->n_traces;
  t->tenant = tenant;
  static const uint64_t none[TP_BUCKET_COUNT];
  const struct tp_prof_tenant_hist *h = tenant < p->n_tenant_hists ? &p->tenant_hists[tenant] : NULL;
  struct report_counts counts = {h ? h->allocs : none, h ? h->bytes : none, h ? h->frees : none};
  for (uint32_t b = 0; b < TP_BUCKET_COUNT; b++)
    t->allocs += counts.allocs[b], t->bytes += counts.bytes[b], t->frees += counts.frees[b];
  build_histogram(t, &counts);
  build_sites(t, p);
  for (size_t i = 0; i < t->n_sites; i++) t->samples += t->sites[i].samples;
  t->by_bytes = top_sites(t, by_bytes, &t->n_by_bytes);
  t->by_count = top_sites(t, by_count, &t->n_by_count);
  build_strip(t, p);
  t->peak_live = t->strip_peak;
}

void report_build_by_tenant(struct report *r) {
  r->n_by_tenant = r->profile->n_tenants;
  r->by_tenant = xcalloc(r->n_by_tenant, sizeof *r->by_tenant);
  for (size_t i = 0; i < r->n_by_tenant; i++) build_tenant(&r->by_tenant[i], r, (uint32_t)i);
}

void report_free(struct report *r) {
  for (size_t i = 0; i < r->n_by_tenant; i++) report_free(&r->by_tenant[i]);
  free(r->by_tenant);
  if (r->tenant == TP_PROFILE_NONE) tp_symbolizer_free(r->symbols); /* a tenant's is its parent's */
  free(r->rows);
  free(r->tenants);
  free(r->sites);
  free(r->by_bytes);
  free(r->by_count);
  free(r->reservations);
}

/* ---- Text ----------------------------------------------------------------- */

/* Three significant digits and a binary unit: "512 B", "1.06 MiB". */
static const char *fmt_bytes(char *buf, double v) {
  static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  int u = 0;
  while (v >= 1024 && u < 6) v /= 1024, u++;
  if (u == 0) snprintf(buf, 32, "%.0f B", v);
  else snprintf(buf, 32, v < 9.995 ? "%.2f %s" : v < 99.95 ? "%.1f %s" : "%.0f %s", v, units[u]);
  return buf;
}

/* Counts: exact below 10000, then "12.3k", "4.56M", "1.2G". */
static const char *fmt_count(char *buf, double v) {
  static const char *const units[] = {"", "k", "M", "G", "T", "P"};
  int u = 0;
  if (v < 9999.5) {
    snprintf(buf, 32, "%.0f", v);
    return buf;
  }
  while (v >= 999.95 && u < 5) v /= 1000, u++;
  snprintf(buf, 32, v < 9.995 ? "%.2f%s" : v < 99.95 ? "%.1f%s" : "%.0f%s", v, units[u]);
  return buf;
}

/* Exact integers with thousands separators: "1,234,567". */
static const char *fmt_exact(char *buf, uint64_t v) {
  char digits[32];
  int n = snprintf(digits, sizeof digits, "%" PRIu64, v), o = 0;
  for (int i = 0; i < n; i++) {
    if (i && (n - i) % 3 == 0) buf[o++] = ',';
    buf[o++] = digits[i];
  }
  buf[o] = '\0';
  return buf;
}

static const char *fmt_us(char *buf, double us) {
  if (us < 1000) snprintf(buf, 32, "%.0f us", us);
  else if (us < 1e6) snprintf(buf, 32, "%.3g ms", us / 1e3);
  else if (us < 120e6) snprintf(buf, 32, "%.3g s", us / 1e6);
  else if (us < 7200e6) snprintf(buf, 32, "%.3g min", us / 60e6);
  else snprintf(buf, 32, "%.3g h", us / 3600e6);
  return buf;
}

/* A histogram bound: exact bytes up to 4 KiB, then whole KiB/MiB/GiB when exact. */
static const char *fmt_bound(char *buf, uint64_t v) {
  static const char units[] = "KMGTPE";
  int u = -1;
  if (v <= TP_BUCKET_FINE_MAX) {
    snprintf(buf, 32, "%" PRIu64, v);
    return buf;
  }
  while (v % 1024 == 0 && u < 5) v /= 1024, u++;
  if (u < 0) snprintf(buf, 32, "%" PRIu64, v);
  else snprintf(buf, 32, "%" PRIu64 "%c", v, units[u]);
  return buf;
}

static double pct(double part, double whole) {
  return whole > 0 ? 100.0 * part / whole : 0;
}

/* A command line on one line of at most width characters: control
 * characters as spaces, the rest cut with "...". */
static const char *fmt_command(char *buf, size_t width, const struct tp_prof_process *proc) {
  const char *cmd = proc->argv && proc->argv[0] ? proc->argv : proc->executable ? proc->executable : "?";
  size_t n = 0;
  for (; cmd[n] && n < width; n++) buf[n] = (unsigned char)cmd[n] < 0x20 ? ' ' : cmd[n];
  if (cmd[n] && width >= 3) memcpy(buf + width - 3, "...", 3), n = width;
  buf[n] = '\0';
  return buf;
}

static void print_process(const struct tp_prof_process *proc) {
  char a[32], b[32], c[32], d[32], e[32], cmd[256];
  printf("\nprocess %" PRIu32 " (parent %" PRIu32 ")  %s\n", proc->pid, proc->ppid, fmt_command(cmd, 200, proc));
  time_t start = (time_t)(proc->start_unix_ns / 1000000000u);
  struct tm tm;
  char when[32] = "?";
  if (gmtime_r(&start, &tm)) strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S UTC", &tm);
  printf("  %s on %s, started %s, ran %s, ", proc->executable ? proc->executable : "?",
         proc->hostname ? proc->hostname : "?", when, fmt_us(a, (double)proc->duration_us));
  if (proc->truncated) printf("trace truncated (writer killed?)\n");
  else if (proc->ended) printf("ended\n");
  else if (proc->exec_path) printf("exec'd %s\n", proc->exec_path[0] ? proc->exec_path : "(a descriptor)");
  else printf("no end record\n");
  if (proc->validate) printf("  validation mode: every allocation sampled");
  else if (proc->sample_bytes) printf("  sampling every %s on average", fmt_bytes(a, (double)proc->sample_bytes));
  else printf("  sampling 1 in %.4g allocations", proc->sample_rate > 0 ? 1 / proc->sample_rate : 0);
  printf(": %s samples, %s dropped;  ", fmt_count(a, (double)proc->samples), fmt_count(b, (double)proc->dropped));
  if (proc->snapshots)
    printf("peak live %s, resident %s, RSS %s\n", fmt_bytes(c, (double)proc->peak_live),
           fmt_bytes(d, (double)proc->peak_resident), fmt_bytes(e, (double)proc->peak_rss));
  else
    printf("no snapshot: peaks unknown\n");
}

static int by_allocations(const void *a, const void *b, void *processes) {
  const struct tp_prof_process *x = (const struct tp_prof_process *)processes + *(const uint32_t *)a;
  const struct tp_prof_process *y = (const struct tp_prof_process *)processes + *(const uint32_t *)b;
  if (x->allocations != y->allocations) return x->allocations > y->allocations ? -1 : 1;
  if (x->samples != y->samples) return x->samples > y->samples ? -1 : 1;
  return *(const uint32_t *)a < *(const uint32_t *)b ? -1 : 1;
}

/* One process in full; several as a table, the busiest first. */
static void print_processes(const struct report *r) {
  const struct tp_profile *p = r->profile;
  printf("tierpool report: %zu trace%s, %zu process%s\n", r->n_traces, r->n_traces == 1 ? "" : "s", p->n_processes,
         p->n_processes == 1 ? "" : "es");
  if (p->n_processes == 1) {
    print_process(&p->processes[0]);
    return;
  }
  uint32_t *order = xcalloc(p->n_processes, sizeof *order);
  for (size_t i = 0; i < p->n_processes; i++) order[i] = (uint32_t)i;
  qsort_r(order, p->n_processes, sizeof *order, by_allocations, p->processes);
  size_t shown = p->n_processes < r->top ? p->n_processes : r->top;
  printf("\nprocesses by allocations (End records)\n  %8s %8s %9s %11s %8s %10s %-9s %s\n", "pid", "ppid", "ran",
         "allocs", "samples", "peak live", "status", "command");
  for (size_t i = 0; i < shown; i++) {
    const struct tp_prof_process *proc = &p->processes[order[i]];
    char a[32], b[32], c[32], d[32], cmd[64];
    printf("  %8" PRIu32 " %8" PRIu32 " %9s %11s %8s %10s %-9s %s\n", proc->pid, proc->ppid,
           fmt_us(a, (double)proc->duration_us), fmt_count(b, (double)proc->allocations),
           fmt_count(c, (double)proc->samples), proc->snapshots ? fmt_bytes(d, (double)proc->peak_live) : "-",
           proc->truncated ? "truncated" : proc->ended ? "ended" : proc->exec_path ? "exec'd" : "no end",
           fmt_command(cmd, 60, proc));
  }
  if (shown < p->n_processes) printf("  ... and %zu more (--top)\n", p->n_processes - shown);
  free(order);
}

static void print_totals(const struct report *r) {
  char a[32], b[32], c[32], d[32];
  printf("\nallocations   %s (%s requested), %s frees\n", fmt_exact(a, r->allocs), fmt_bytes(b, (double)r->bytes),
         fmt_exact(c, r->frees));
  if (r->duration_us)
    printf("rate          %s allocations/s, %s/s%s\n", fmt_count(a, r->allocs_per_s), fmt_bytes(b, r->bytes_per_s),
           r->profile->n_processes > 1 ? " (per process-second)" : "");
  if (r->profile->snapshots)
    printf("peak          live %s, resident %s, process RSS %s%s\n", fmt_bytes(a, (double)r->peak_live),
           fmt_bytes(b, (double)r->peak_resident), fmt_bytes(c, (double)r->peak_rss),
           r->profile->n_processes > 1 ? " (largest process)" : "");
  else
    printf("peak          unknown: no snapshot in the trace%s\n", r->n_traces > 1 ? "s" : "");
  printf("samples       %s (%s dropped), frees matched %s, unmatched %s\n", fmt_count(a, (double)r->samples),
         fmt_count(b, (double)r->dropped), fmt_count(c, (double)r->profile->frees_matched),
         fmt_count(d, (double)r->profile->frees_unmatched));
}

#define BAR_WIDTH 40

static void print_histogram(const struct report *r) {
  char a[32], b[32], c[32], range[72];
  printf("\nrequested sizes (exact)\n  %-20s %9s %7s %10s\n", "size (bytes)", "allocs", "%", "bytes");
  for (size_t i = 0; i < r->n_rows; i++) {
    const struct report_row *row = &r->rows[i];
    if (row->hi == 0) snprintf(range, sizeof range, "0");
    else snprintf(range, sizeof range, "(%s, %s]", fmt_bound(a, row->lo), fmt_bound(b, row->hi));
    int bar = r->max_row_allocs ? (int)((double)row->allocs * BAR_WIDTH / (double)r->max_row_allocs + 0.5) : 0;
    if (bar == 0 && row->allocs) bar = 1;
    printf("  %-20s %9s %6.1f%% %10s  %.*s\n", range, fmt_count(a, (double)row->allocs),
           pct((double)row->allocs, (double)r->allocs), fmt_bytes(c, (double)row->bytes), bar,
           "########################################");
  }
}

static void print_lifetimes(const struct report *r) {
  char a[32], b[32], c[32], d[32];
  printf("\nlifetimes of sampled blocks (estimated allocations)\n  %-6s %9s %9s %9s %9s %7s %8s %7s %7s\n", "tier",
         "blocks", "p50", "p90", "p99", "<1ms", "1ms-1s", ">=1s", "never");
  for (int i = 0; i <= TP_TIERS; i++) {
    int t = i == 0 ? TP_TIERS : i - 1; /* all tiers first */
    const struct report_lifetime *l = &r->lifetime[t];
    if (t < TP_TIERS && l->blocks == 0) continue;
    printf("  %-6s %9s %9s %9s %9s %6.1f%% %7.1f%% %6.1f%% %6.1f%%\n", t == TP_TIERS ? "all" : report_tier_names[t],
           fmt_count(a, l->blocks), l->freed ? fmt_us(b, l->p50_us) : "-", l->freed ? fmt_us(c, l->p90_us) : "-",
           l->freed ? fmt_us(d, l->p99_us) : "-", 100 * l->under_1ms, 100 * l->ms_to_1s, 100 * l->over_1s,
           100 * l->never);
  }
}

static void print_site_list(const struct report *r, const uint32_t *order, size_t n, const char *what) {
  char a[32], b[32], c[32];
  printf("\ntop %zu allocation sites by %s (estimated from samples)\n  %10s %6s %9s %6s %10s %-6s %s\n", n, what,
         "bytes", "%", "allocs", "%", "live", "tier", "site");
  for (size_t i = 0; i < n; i++) {
    const struct report_site *s = &r->sites[order[i]];
    const char *tier = "mixed";
    for (int t = 0; t < TP_TIERS; t++)
      if (s->tiers == 1u << t) tier = report_tier_names[t];
    const char *name = s->depth ? tp_symbolize(r->symbols, s->frames[0])->display : "(no stack)";
    printf("  %10s %5.1f%% %9s %5.1f%% %10s %-6s %s\n", fmt_bytes(a, s->bytes), pct(s->bytes, r->sampled_bytes),
           fmt_count(b, s->allocs), pct(s->allocs, (double)r->allocs), fmt_bytes(c, s->live_bytes), tier, name);
    for (uint32_t d = 1; d < s->depth; d++)
      printf("  %10s %6s %9s %6s %10s %-6s   <- %s\n", "", "", "", "", "", "",
             tp_symbolize(r->symbols, s->frames[d])->display);
  }
}

static void print_tenants(const struct report *r) {
  char a[32], b[32], c[32];
  printf("\ntenants (estimated from samples)\n  %-20s %9s %10s %10s\n", "tenant", "allocs", "bytes", "live");
  for (size_t i = 0; i < r->n_tenants; i++)
    printf("  %-20s %9s %10s %10s\n", r->tenants[i].name ? r->tenants[i].name : "?", fmt_count(a, r->tenants[i].allocs),
           fmt_bytes(b, r->tenants[i].bytes), fmt_bytes(c, r->tenants[i].live_bytes));
}

static void print_activity(const struct report *r) {
  const struct tp_profile *p = r->profile;
  char a[32], b[32], c[32];
  printf("\ntiers (estimated from samples)\n  %-6s %9s %10s %10s %9s\n", "tier", "allocs", "bytes", "live", "samples");
  for (int t = 0; t < TP_TIERS; t++) {
    const struct report_tier *x = &r->tiers[t];
    printf("  %-6s %9s %10s %10s %9s\n", report_tier_names[t], fmt_count(a, x->allocs), fmt_bytes(b, x->bytes),
           fmt_bytes(c, x->live_bytes), fmt_count((char[32]){0}, (double)x->samples));
  }
  if (r->n_tenants > 1) print_tenants(r);
  uint64_t calls = 0;
  for (int k = 0; k < 5; k++) calls += p->mmap_calls[k];
  printf("\nmmap calls by the program (not the pool's)%s\n", calls ? "" : ": none");
  for (int k = 0; k < 5 && calls; k++)
    printf("  %-9s %9s calls %10s\n", report_mmap_kinds[k], fmt_count(a, (double)p->mmap_calls[k]),
           fmt_bytes(b, (double)p->mmap_bytes[k]));
  printf("\nlarge reservations (Wasm linear memories)%s\n", r->n_reservations ? "" : ": none");
  if (r->n_reservations)
    printf("  %7s %18s %10s   %-36s %s\n", "pid", "start", "size", "accessible: first -> last -> max", "seen");
  for (size_t i = 0; i < r->n_reservations; i++) {
    const struct tp_prof_reservation *res = &p->reservations[r->reservations[i]];
    char growth[128], seen[72];
    snprintf(growth, sizeof growth, "%s -> %s -> %s", fmt_bytes(a, (double)res->first_accessible),
             fmt_bytes(b, (double)res->last_accessible), fmt_bytes(c, (double)res->max_accessible));
    snprintf(seen, sizeof seen, "%s .. %s", fmt_us(a, (double)res->first_us), fmt_us(b, (double)res->last_us));
    uint32_t pid = res->process < p->n_processes ? p->processes[res->process].pid : 0;
    printf("  %7" PRIu32 " %#18" PRIx64 " %10s   %-36s %s\n", pid, res->start, fmt_bytes(c, (double)res->size), growth,
           seen);
  }
  if (p->n_reservations > r->n_reservations)
    printf("  ... and %zu more (--top)\n", p->n_reservations - r->n_reservations);
}

/* A tenant's live bytes as one line of levels, the peak as '@'. */
static void print_strip(const struct report *t) {
  static const char levels[] = ".:-=+*#%@";
  char a[32], b[32], c[32], line[REPORT_STRIP_WIDTH + 1];
  if (!t->n_strip) {
    printf("live bytes    no snapshots\n");
    return;
  }
  for (size_t i = 0; i < t->n_strip; i++) {
    double level = t->strip_peak ? (double)t->strip[i] * 9 / (double)t->strip_peak : 0;
    int k = (int)level - (level == (int)level); /* ceil - 1: the peak is the top level */
    line[i] = t->strip[i] == 0 ? ' ' : levels[k < 0 ? 0 : k > 8 ? 8 : k];
  }
  line[t->n_strip] = '\0';
  printf("live bytes    |%s|  peak %s; %s per column, %s in all\n", line, fmt_bytes(a, (double)t->strip_peak),
         fmt_us(b, (double)t->strip_step_us), fmt_us(c, (double)(t->strip_step_us * t->n_strip)));
}

/* --by-tenant: after the processes and totals, each tenant on its own. */
static void print_by_tenant(const struct report *r) {
  print_processes(r);
  print_totals(r);
  if (r->n_tenants > 1) print_tenants(r);
  for (size_t i = 0; i < r->n_by_tenant; i++) {
    const struct report *t = &r->by_tenant[i];
    char a[32], b[32], c[32], d[32];
    printf("\n=== tenant %s (%zu of %zu) ===\n", r->profile->tenants[t->tenant], i + 1, r->n_by_tenant);
    printf("allocations   %s (%s requested), %s frees\n", fmt_exact(a, t->allocs), fmt_bytes(b, (double)t->bytes),
           fmt_exact(c, t->frees));
    printf("samples       %s (an estimated %s at its sites)\n", fmt_count(d, (double)t->samples),
           fmt_bytes(a, t->sampled_bytes));
    print_strip(t);
    if (t->n_rows) print_histogram(t);
    if (t->n_sites) print_site_list(t, t->by_bytes, t->n_by_bytes, "bytes");
  }
}

static void print_text(const struct report *r) {
  print_processes(r);
  print_totals(r);
  print_histogram(r);
  print_lifetimes(r);
  if (r->n_sites) {
    print_site_list(r, r->by_bytes, r->n_by_bytes, "bytes");
    print_site_list(r, r->by_count, r->n_by_count, "count");
  } else {
    printf("\nallocation sites: no samples\n");
  }
  print_activity(r);
}

/* ---- The command ------------------------------------------------------------ */

static int parse_top(const char *arg, size_t *top) {
  char *end;
  unsigned long long v = strtoull(arg, &end, 10);
  if (!*arg || *end || arg[0] == '-' || v == 0 || v > 1000000) {
    fprintf(stderr, "tierpool report: --top wants a number from 1 to 1000000, not '%s'\n", arg);
    return -1;
  }
  *top = (size_t)v;
  return 0;
}

int cmd_report(int argc, char **argv) {
  bool json = false, by_tenant = false;
  size_t top = 10;
  int i = 1, got;
  const char *value;
  for (; cli_is_option(argc, argv, &i); i++) {
    if (cli_is_help(argv[i])) {
      report_help();
      return 0;
    } else if (strcmp(argv[i], "--json") == 0) {
      json = true;
    } else if (strcmp(argv[i], "--by-tenant") == 0) {
      by_tenant = true;
    } else if ((got = cli_option(argc, argv, &i, "--top", &value)) != 0) {
      if (got < 0) return cli_error("report", "--top needs a number");
      if (parse_top(value, &top) != 0) return EXIT_USAGE;
    } else {
      fprintf(stderr, "tierpool report: unknown option '%s' (see 'tierpool report --help')\n", argv[i]);
      return EXIT_USAGE;
    }
  }
  if (i >= argc) {
    fprintf(stderr, "tierpool report: no trace given (see 'tierpool report --help')\n");
    return EXIT_USAGE;
  }
  size_t n = (size_t)(argc - i);
  if (cli_skip_unstarted("report", argv + i, &n) != 0) return EXIT_USAGE;
  struct tp_profile p;
  tp_profile_init(&p);
  if (cli_load_profile("report", argv + i, n, &p) != 0) {
    tp_profile_free(&p);
    return EXIT_USAGE;
  }
  struct report r;
  report_build(&r, &p, top, argv + i, n);
  if (by_tenant) report_build_by_tenant(&r);
  if (json) report_print_json(stdout, &r);
  else if (by_tenant) print_by_tenant(&r);
  else print_text(&r);
  report_free(&r);
  tp_profile_free(&p);
  if (fflush(stdout) != 0 || ferror(stdout)) {
    fprintf(stderr, "tierpool report: writing the report failed\n");
    return EXIT_USAGE;
  }
  return 0;
}
