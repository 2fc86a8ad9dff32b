/* diff.c — `tierpool diff OLD NEW`: how far the allocation profile moved.
 *
 * The measure is the total variation distance between the two normalised
 * exact size histograms (half the sum of the absolute differences of the
 * buckets' shares of allocations: 0 for the same shape, 1 for disjoint
 * sizes).  Beside it: the sampled lifetimes' percentiles, and the allocation
 * sites whose share of the sampled bytes moved most, a site being its call
 * stack by content (each frame: module build-id or path + module-relative
 * address; JIT frames by name), so that the same code in two processes or two
 * builds' traces matches.  Exit status 1 above the threshold, for alerts. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "commands.h"
#include "profile.h"
#include "symbols.h"

#define DEFAULT_THRESHOLD 0.10
#define DEFAULT_TOP 10
#define SHIFTED_BUCKETS 5

static const char diff_usage[] =
    "usage: tierpool diff OLD NEW [--threshold T] [--top N]\n"
    "       tierpool diff OLD... -- NEW... [--threshold T] [--top N]\n";

static void diff_help(void) {
  printf("%s\n"
         "How far the allocation profile moved from OLD to NEW (each one trace, or with\n"
         "'--' between them, a group of traces merged):\n"
         "  - the total variation distance (TVD) between the two exact size histograms,\n"
         "    normalised: half the sum over buckets of |share in OLD - share in NEW|, from\n"
         "    0 (same shape) to 1 (no size in common); and the buckets that moved most;\n"
         "  - the 50th, 90th and 99th percentiles of the sampled blocks' lifetimes;\n"
         "  - the allocation sites (call stacks, matched by module build-id and offset)\n"
         "    whose share of the sampled bytes moved most.\n"
         "\n"
         "  --threshold T  the TVD above which the profile counts as moved (default %.2f)\n"
         "  --top N        how many sites to list (default %d; 0: none)\n"
         "\n"
         "Exit status: 0 when TVD <= T, 1 when TVD > T (time to run 'tierpool propose'\n"
         "again), 2 on error (one line on stderr).\n",
         diff_usage, DEFAULT_THRESHOLD, DEFAULT_TOP);
}

/* Prints "tierpool diff: ..."; returns EXIT_USAGE. */
#define fail(...) cli_error("diff", __VA_ARGS__)

struct diff_options {
  char **old, **new;
  size_t n_old, n_new;
  double threshold;
  long top;
};

static int parse_args(int argc, char **argv, struct diff_options *o) {
  char **pos = calloc((size_t)argc + 1, sizeof *pos);
  if (!pos) return fail("out of memory");
  o->old = pos;
  o->threshold = DEFAULT_THRESHOLD;
  o->top = DEFAULT_TOP;
  size_t n = 0, split = (size_t)-1;
  for (int i = 1; i < argc; i++) {
    char *a = argv[i];
    const char *v = NULL, *names[] = {"--threshold", "--top"};
    int matched = 0;
    for (int k = 0; k < 2 && !matched; k++) {
      matched = cli_option(argc, argv, &i, names[k], &v);
      if (matched < 0) return fail("%s needs a value", names[k]);
      if (matched) {
        char *end;
        errno = 0;
        if (k == 0) {
          o->threshold = strtod(v, &end);
          if (end == v || *end || !(o->threshold >= 0 && o->threshold <= 1))
            return fail("bad --threshold '%s' (want a number from 0 to 1)", v);
        } else {
          o->top = strtol(v, &end, 10);
          if (end == v || *end || errno || o->top < 0 || o->top > 1000)
            return fail("bad --top '%s' (want 0 to 1000)", v);
        }
      }
    }
    if (matched) continue;
    if (strcmp(a, "--") == 0) {
      if (split != (size_t)-1) return fail("'--' comes once, between the OLD and the NEW traces");
      split = n;
    } else if (a[0] == '-' && a[1] != '\0') {
      return fail("unknown option '%s' (see 'tierpool diff --help')", a);
    } else {
      pos[n++] = a;
    }
  }
  if (split == (size_t)-1) {
    if (n != 2) return fail("want two traces, OLD and NEW, or 'OLD... -- NEW...' (got %zu)", n);
    split = 1;
  }
  if (split == 0 || split == n) return fail("'OLD... -- NEW...' needs traces on both sides of '--'");
  o->n_old = split;
  o->new = pos + split;
  o->n_new = n - split;
  return 0;
}

/* ---- sizes ------------------------------------------------------------------ */

static double share(const struct tp_profile *p, uint32_t b, double total) { return (double)p->allocs[b] / total; }

static double total_variation(const struct tp_profile *a, const struct tp_profile *b) {
  double ta = (double)tp_profile_total_allocs(a), tb = (double)tp_profile_total_allocs(b), sum = 0;
  for (uint32_t k = 0; k < TP_BUCKET_COUNT; k++) sum += fabs(share(a, k, ta) - share(b, k, tb));
  return sum / 2;
}

static void bucket_label(uint32_t b, char out[48]) {
  if (b == 0) snprintf(out, 48, "0");
  else snprintf(out, 48, "%" PRIu64 "..%" PRIu64, tp_bucket_lower(b), tp_bucket_upper(b));
}

static void print_sizes(const struct tp_profile *a, const struct tp_profile *b, double tvd, double threshold) {
  double ta = (double)tp_profile_total_allocs(a), tb = (double)tp_profile_total_allocs(b);
  printf("size histogram: total variation distance %.4f (threshold %.2f)\n", tvd, threshold);
  /* The buckets whose share moved most, largest first. */
  uint32_t top[SHIFTED_BUCKETS];
  size_t n = 0;
  for (uint32_t k = 0; k < TP_BUCKET_COUNT; k++) {
    double d = fabs(share(a, k, ta) - share(b, k, tb));
    if (d == 0) continue;
    size_t at = n < SHIFTED_BUCKETS ? n++ : SHIFTED_BUCKETS;
    while (at > 0 && fabs(share(a, top[at - 1], ta) - share(b, top[at - 1], tb)) < d) {
      if (at < SHIFTED_BUCKETS) top[at] = top[at - 1];
      at--;
    }
    if (at < SHIFTED_BUCKETS) top[at] = k;
  }
  if (n) printf("  %-20s %8s %8s %8s\n", "size (bytes)", "old", "new", "change");
  for (size_t i = 0; i < n; i++) {
    char label[48];
    bucket_label(top[i], label);
    double x = share(a, top[i], ta), y = share(b, top[i], tb);
    printf("  %-20s %7.2f%% %7.2f%% %+7.2f\n", label, 100 * x, 100 * y, 100 * (y - x));
  }
}

/* ---- lifetimes ---------------------------------------------------------------- */

static void duration_text(double us, char out[32]) {
  if (us < 1000) snprintf(out, 32, "%.0f us", us);
  else if (us < 1e6) snprintf(out, 32, "%.3g ms", us / 1e3);
  else snprintf(out, 32, "%.3g s", us / 1e6);
}

static void print_lifetimes(const struct tp_profile *a, const struct tp_profile *b) {
  double ha[TP_LIFETIME_BUCKETS] = {0}, hb[TP_LIFETIME_BUCKETS] = {0}, na = 0, nb = 0;
  for (int t = 0; t < TP_TIERS; t++)
    for (int k = 0; k < TP_LIFETIME_BUCKETS; k++) {
      ha[k] += a->lifetime[t][k], hb[k] += b->lifetime[t][k];
      na += a->lifetime[t][k], nb += b->lifetime[t][k];
    }
  printf("\nlifetimes of sampled blocks (freed ones):\n");
  if (na == 0 || nb == 0) {
    printf("  %s has no freed sampled block\n", na == 0 ? "OLD" : "NEW");
    return;
  }
  printf("  %-10s %10s %10s %8s\n", "percentile", "old", "new", "ratio");
  static const double qs[] = {0.50, 0.90, 0.99};
  for (size_t i = 0; i < 3; i++) {
    double x = tp_lifetime_quantile(ha, qs[i]), y = tp_lifetime_quantile(hb, qs[i]);
    char sx[32], sy[32];
    duration_text(x, sx), duration_text(y, sy);
    printf("  p%-9.0f %10s %10s", qs[i] * 100, sx, sy);
    if (x > 0) printf("  x%.3g\n", y / x);
    else printf("  -\n");
  }
}

/* ---- sites ------------------------------------------------------------------ */

/* A site: the first frames of a stack past the allocator plumbing
 * (tp_symbolize_site), as `tierpool report` groups them.  Its identity is
 * their content, comparable across profiles; the name shows the site and its
 * caller. */
#define SITE_FRAMES 3

static size_t frame_key(const struct tp_profile *p, uint32_t frame, char *key, size_t cap) {
  const struct tp_prof_frame *f = &p->frames[frame];
  size_t n = 0;
  if (f->module != TP_PROFILE_NONE) {
    const struct tp_prof_module *m = &p->modules[f->module];
    if (m->build_id_len)
      for (size_t k = 0; k < m->build_id_len && k < 64; k++) n += (size_t)snprintf(key + n, cap - n, "%02x", m->build_id[k]);
    else
      n += (size_t)snprintf(key + n, cap - n, "%.200s", m->path ? m->path : "?");
    n += (size_t)snprintf(key + n, cap - n, "+%" PRIx64 ";", f->addr);
  } else if (f->jit) {
    n += (size_t)snprintf(key + n, cap - n, "jit:%.200s;", f->jit_name ? f->jit_name : "");
  } else {
    n += (size_t)snprintf(key + n, cap - n, "?%" PRIx64 ";", f->addr);
  }
  return n;
}

/* The site of a stack: its key (malloc'ed) and its name (in name, cap bytes). */
static char *site_of(const struct tp_profile *p, struct tp_symbolizer *sym, uint32_t stack, char *name, size_t cap) {
  const struct tp_prof_stack *s = &p->stacks[stack];
  uint32_t first = tp_symbolize_site(sym, s);
  size_t key_cap = SITE_FRAMES * 300 + 1, n = 0, m = 0;
  char *key = malloc(key_cap);
  if (!key) return NULL;
  key[0] = name[0] = '\0';
  for (uint32_t i = first; i < s->depth && i < first + SITE_FRAMES; i++) {
    n += frame_key(p, s->frames[i], key + n, key_cap - n);
    if (i < first + 2 && m < cap) {
      const struct tp_symbol *y = tp_symbolize(sym, s->frames[i]);
      m += (size_t)snprintf(name + m, cap - m, "%s%s", i > first ? " < " : "", y && y->display ? y->display : "?");
    }
  }
  if (s->depth == 0) snprintf(name, cap, "(no stack)");
  return key;
}

struct site_entry {
  char *key, *name;
  double bytes[2];        /* sampled (estimated) bytes in OLD, NEW */
  bool seen[2];
  struct site_entry *next;
};

struct site_table {
  struct site_entry **slots;
  size_t n_slots, count;
  struct site_entry **all;
};

static uint64_t hash_text(const char *s) {
  uint64_t h = 1469598103934665603ull;
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
  return h;
}

static int site_add(struct site_table *t, const struct tp_profile *p, struct tp_symbolizer *sym, int side,
                    const struct tp_prof_site *site) {
  char name[512];
  char *key = site_of(p, sym, site->stack, name, sizeof name);
  if (!key) return -1;
  uint64_t h = hash_text(key) % t->n_slots;
  struct site_entry *e = t->slots[h];
  while (e && strcmp(e->key, key) != 0) e = e->next;
  if (e) {
    free(key);
  } else {
    e = calloc(1, sizeof *e);
    struct site_entry **all = realloc(t->all, (t->count + 1) * sizeof *all);
    if (all) t->all = all;
    if (!e || !all || !(e->name = strdup(name))) return free(e), free(key), -1;
    e->key = key;
    e->next = t->slots[h];
    t->slots[h] = e;
    t->all[t->count++] = e;
  }
  e->bytes[side] += site->bytes;
  e->seen[side] = true;
  return 0;
}

static double total_site_bytes(const struct tp_profile *p) {
  double sum = 0;
  for (size_t i = 0; i < p->n_sites; i++) sum += p->sites[i].bytes;
  return sum;
}

static const double *sort_totals;
static int by_movement(const void *x, const void *y) {
  const struct site_entry *a = *(struct site_entry *const *)x, *b = *(struct site_entry *const *)y;
  double ma = fabs(a->bytes[1] / sort_totals[1] - a->bytes[0] / sort_totals[0]);
  double mb = fabs(b->bytes[1] / sort_totals[1] - b->bytes[0] / sort_totals[0]);
  return (ma < mb) - (ma > mb);
}

static int print_sites(const struct tp_profile *a, const struct tp_profile *b, long top) {
  if (top == 0) return 0;
  double totals[2] = {total_site_bytes(a), total_site_bytes(b)};
  printf("\nsites whose share of sampled bytes moved most:\n");
  if (totals[0] <= 0 || totals[1] <= 0) {
    printf("  %s has no sampled allocation\n", totals[0] <= 0 ? "OLD" : "NEW");
    return 0;
  }
  struct site_table t = {0};
  t.n_slots = (a->n_sites + b->n_sites) * 2 + 1;
  t.slots = calloc(t.n_slots, sizeof *t.slots);
  struct tp_symbolizer *sa = tp_symbolizer_new(a), *sb = tp_symbolizer_new(b);
  int rc = t.slots && sa && sb ? 0 : -1;
  for (size_t i = 0; !rc && i < a->n_sites; i++) rc = site_add(&t, a, sa, 0, &a->sites[i]);
  for (size_t i = 0; !rc && i < b->n_sites; i++) rc = site_add(&t, b, sb, 1, &b->sites[i]);
  if (!rc) {
    sort_totals = totals;
    qsort(t.all, t.count, sizeof *t.all, by_movement);
    printf("  %8s %8s %8s  %s\n", "old", "new", "change", "site < caller");
    for (size_t i = 0; i < t.count && i < (size_t)top; i++) {
      const struct site_entry *e = t.all[i];
      double x = e->bytes[0] / totals[0], y = e->bytes[1] / totals[1];
      if (x == y) break;
      printf("  %7.2f%% %7.2f%% %+8.2f  %s%s\n", 100 * x, 100 * y, 100 * (y - x), e->name,
             !e->seen[0] ? "  [new]" : !e->seen[1] ? "  [gone]" : "");
    }
  }
  if (sa) tp_symbolizer_free(sa);
  if (sb) tp_symbolizer_free(sb);
  for (size_t i = 0; i < t.count; i++) {
    free(t.all[i]->key);
    free(t.all[i]->name);
    free(t.all[i]);
  }
  free(t.all);
  free(t.slots);
  return rc ? fail("out of memory") : 0;
}

/* ---- the command -------------------------------------------------------------- */

int cmd_diff(int argc, char **argv) {
  if (cli_asks_help(argc, argv)) {
    diff_help();
    return 0;
  }
  struct diff_options o;
  memset(&o, 0, sizeof o);
  int rc = parse_args(argc, argv, &o);
  struct tp_profile a, b;
  tp_profile_init(&a);
  tp_profile_init(&b);
  if (!rc) rc = cli_skip_unstarted("diff", o.old, &o.n_old);
  if (!rc) rc = cli_skip_unstarted("diff", o.new, &o.n_new);
  if (!rc) rc = cli_load_histogram("diff", o.old, o.n_old, &a);
  if (!rc) rc = cli_load_histogram("diff", o.new, o.n_new, &b);
  if (!rc) {
    double tvd = total_variation(&a, &b);
    printf("old: %zu trace%s, %" PRIu64 " allocations; new: %zu trace%s, %" PRIu64 " allocations\n", o.n_old,
           o.n_old == 1 ? "" : "s", tp_profile_total_allocs(&a), o.n_new, o.n_new == 1 ? "" : "s",
           tp_profile_total_allocs(&b));
    print_sizes(&a, &b, tvd, o.threshold);
    print_lifetimes(&a, &b);
    rc = print_sites(&a, &b, o.top);
    if (!rc) {
      printf("\n%s: total variation distance %.4f %s %.2f\n", tvd > o.threshold ? "moved" : "steady", tvd,
             tvd > o.threshold ? ">" : "<=", o.threshold);
      rc = tvd > o.threshold ? 1 : 0;
    }
  }
  tp_profile_free(&a);
  tp_profile_free(&b);
  free(o.old);
  return cli_stdout_written("diff", rc);
}
