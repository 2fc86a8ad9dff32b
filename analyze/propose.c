/* propose.c — `tierpool propose TRACE...`: size classes that minimise the
 * expected internal waste of the traces' exact size histogram (classes.h),
 * plus buddy_max, coalesce_delay_ms and release_threshold from the traces'
 * sizes, lifetimes and live-bytes series, written as a config file in the
 * pool's own format, with a table of the waste of the current, proposed,
 * jemalloc's and tcmalloc's class sets (and on held-out traces). */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "classes.h"
#include "cli.h"
#include "commands.h"
#include "outfile.h"
#include "profile.h"

#define DEFAULT_EXTRA 8
#define DEFAULT_OUTPUT "tierpool.conf"
#define MIN_COVERAGE 0.90
#define DEFAULT_BUDDY_MAX ((uint64_t)4 << 20)
#define BUDDY_MAX_LIMIT ((uint64_t)16 << 20)  /* the pool clamps buddy_max here */
#define DEFAULT_COALESCE_MS 50
#define MIN_BUDDY_SAMPLES 20                  /* fewer: lifetimes say too little */
#define TIER_BUDDY 1                          /* trace.proto's TIER_BUDDY */

static const char propose_usage[] =
    "usage: tierpool propose TRACE... [--classes K | --extra K] [--align A] [--max-slab BYTES]\n"
    "                        [--limit BYTES] [--holdout TRACE...] [-o FILE]\n";

static void propose_help(void) {
  printf("%s\n"
         "Fits size classes to the exact size histogram of the TRACEs (merged) so that the\n"
         "expected internal waste (bytes handed out minus bytes asked for) is least, solved\n"
         "exactly by dynamic programming over the histogram's buckets, with the slab tier\n"
         "serving at least 90%% of the allocations.  Writes the classes, buddy_max,\n"
         "coalesce_delay_ms and release_threshold as a config file for TIERPOOL_CONFIG\n"
         "(or 'tierpool run --config FILE'), and prints the waste of the classes the\n"
         "traces ran with, of the proposal, and of jemalloc's and tcmalloc's classes.\n"
         "\n"
         "  --extra K         keep the classes the traces ran with (else the pool's default)\n"
         "                    and add the K that cut waste most (default: --extra %d); if\n"
         "                    that would pass 64 classes, the backbone classes whose loss\n"
         "                    costs least make room\n"
         "  --classes K       the pure fit: the best K classes (1..64) for these traces only\n"
         "  --align A         every new class a multiple of A (16, the default; 64 keeps\n"
         "                    blocks on cache lines)\n"
         "  --max-slab BYTES  the largest class allowed (default and most: 64K)\n"
         "  --limit BYTES     the memory limit the program will run under: buddy_max is\n"
         "                    25%% of it\n"
         "  --holdout TRACE...  traces the fit does not see: the same waste columns on them,\n"
         "                    to show over-fitting before it ships\n"
         "  -o, --output FILE the config file (default %s); written whole or not at all\n"
         "\n"
         "Waste counts every allocation: sizes above a set's largest class are rounded up\n"
         "to whole pages, as the pool's buddy and large tiers do, so sets that cover\n"
         "different ranges compare on the same bytes.  The percentage is of the bytes\n"
         "handed out, like the 'waste' column of TIERPOOL_STATS=1.  Figures marked ~ are\n"
         "estimates: a class inside a histogram bucket (the 8-byte classes, tcmalloc's\n"
         "4736...) splits it as if its sizes were spread evenly.\n"
         "\n"
         "The other keys: buddy_max is 25%% of --limit, else 4M unless sizes of 4M..16M\n"
         "are 5%% or more of the page-tier allocations (then a power of two that holds\n"
         "99%% of them); coalesce_delay_ms is the 90th percentile of the sampled buddy\n"
         "blocks' lifetimes (1-2-5 steps, 1..1000 ms; 50 with under 20 samples);\n"
         "release_threshold is 0.70 for steady work and 0.50 for bursty work, burstiness\n"
         "being the coefficient of variation (stddev/mean) of each process's live bytes\n"
         "between the first and last snapshot at half its peak or more: <= 0.10 steady,\n"
         ">= 0.30 bursty, linear in between.\n"
         "\n"
         "Exit status 0, or 2 (one line on stderr) for a bad flag or an unreadable trace.\n",
         propose_usage, DEFAULT_EXTRA, DEFAULT_OUTPUT);
}

struct propose_options {
  char **traces, **holdout;
  size_t n_traces, n_holdout;
  int pure;                        /* --classes */
  uint64_t k, align, max_slab, limit;
  const char *output;
};

/* Prints "tierpool propose: ..."; returns EXIT_USAGE. */
#define fail(...) cli_error("propose", __VA_ARGS__)

/* "4M", "512K", or bytes: the shortest exact spelling the pool reads. */
static const char *size_text(uint64_t v, char buf[32]) {
  if (v && v % (1 << 20) == 0) snprintf(buf, 32, "%" PRIu64 "M", v >> 20);
  else if (v && v % (1 << 10) == 0) snprintf(buf, 32, "%" PRIu64 "K", v >> 10);
  else snprintf(buf, 32, "%" PRIu64, v);
  return buf;
}

static int parse_args(int argc, char **argv, struct propose_options *o) {
  o->traces = calloc((size_t)argc, sizeof *o->traces);
  o->holdout = calloc((size_t)argc, sizeof *o->holdout);
  if (!o->traces || !o->holdout) return fail("out of memory");
  o->k = DEFAULT_EXTRA;
  o->align = 16;
  o->max_slab = TP_CLASSES_SLAB_MAX;
  o->output = DEFAULT_OUTPUT;
  int mode_given = 0, in_holdout = 0, holdout_given = 0;
  for (int i = 1; i < argc; i++) {
    char *a = argv[i];
    if (strcmp(a, "--holdout") == 0) {
      in_holdout = holdout_given = 1;
      continue;
    }
    if (a[0] != '-' || strcmp(a, "-") == 0) {
      if (in_holdout) o->holdout[o->n_holdout++] = a;
      else o->traces[o->n_traces++] = a;
      continue;
    }
    in_holdout = 0;
    static const char *const with_value[] = {"--classes", "--extra", "--align", "--max-slab", "--limit",
                                             "-o", "--output"};
    const char *name = NULL, *v = NULL;
    for (size_t k = 0; k < sizeof with_value / sizeof *with_value && !name; k++) {
      int got = cli_option(argc, argv, &i, with_value[k], &v);
      if (got < 0) return fail("%s needs a value", a);
      if (got > 0) name = with_value[k];
    }
    if (!name) return fail("unknown option '%s' (see 'tierpool propose --help')", a);
    if (strcmp(name, "--classes") == 0 || strcmp(name, "--extra") == 0) {
      int pure = strcmp(name, "--classes") == 0;
      if (mode_given++) return fail("--classes and --extra exclude each other, and come once");
      char *end;
      errno = 0;
      unsigned long long k = strtoull(v, &end, 10);
      if (*v < '0' || *v > '9' || *end || errno || k > TP_CLASSES_LIMIT || (pure && k == 0))
        return fail("bad %s '%s' (want %s to 64)", pure ? "--classes" : "--extra", v, pure ? "1" : "0");
      o->pure = pure;
      o->k = k;
    } else if (strcmp(name, "--align") == 0) {
      if (cli_parse_size(v, &o->align) || o->align == 0 || o->align % 16 || o->align > 4096)
        return fail("bad --align '%s' (want a multiple of 16 up to 4096)", v);
    } else if (strcmp(name, "--max-slab") == 0) {
      if (cli_parse_size(v, &o->max_slab) || o->max_slab < 16 || o->max_slab > TP_CLASSES_SLAB_MAX)
        return fail("bad --max-slab '%s' (want a size from 16 to 64K)", v);
    } else if (strcmp(name, "--limit") == 0) {
      if (cli_parse_size(v, &o->limit) || o->limit < ((uint64_t)1 << 20))
        return fail("bad --limit '%s' (want a size of 1M or more, like 2G)", v);
    } else {
      if (!*v || v[strlen(v) - 1] == '/') return fail("bad -o '%s' (want a file name)", v);
      o->output = v;
    }
  }
  if (o->n_traces == 0) return fail("no trace given (see 'tierpool propose --help')");
  if (holdout_given && o->n_holdout == 0) return fail("--holdout needs at least one trace");
  if (o->max_slab < o->align) return fail("--max-slab (%" PRIu64 ") is below --align (%" PRIu64 ")", o->max_slab, o->align);
  return 0;
}

/* ---- traces ----------------------------------------------------------------- */

/* The classes the traces ran with: the first process that recorded them
 * (a note if others differ), else the pool's default. */
static const uint32_t *current_classes(const struct tp_profile *p, size_t *n, const char **whence) {
  const struct tp_prof_process *first = NULL;
  for (size_t i = 0; i < p->n_processes; i++) {
    const struct tp_prof_process *q = &p->processes[i];
    if (!q->n_size_classes) continue;
    bool valid = true; /* as the pool takes them: ascending multiples of 16 */
    for (size_t k = 0; k < q->n_size_classes; k++)
      valid &= q->size_classes[k] % 16 == 0 && q->size_classes[k] > 0 && (k == 0 || q->size_classes[k] > q->size_classes[k - 1]);
    if (!valid) continue;
    if (!first) {
      first = q;
    } else if (q->n_size_classes != first->n_size_classes ||
               memcmp(q->size_classes, first->size_classes, q->n_size_classes * sizeof *q->size_classes)) {
      fprintf(stderr, "tierpool propose: note: the traces ran with different classes; using those of pid %" PRIu32 "\n",
              first->pid);
      break;
    }
  }
  if (first) {
    *n = first->n_size_classes;
    *whence = "the traces'";
    return first->size_classes;
  }
  *n = tp_classes_pool_default.n;
  *whence = "the pool's default";
  return tp_classes_pool_default.classes;
}

/* ---- the other keys ----------------------------------------------------------- */

struct tuned {
  uint64_t buddy_max, coalesce_ms;
  double release_threshold, burstiness;
  char why_buddy[160], why_coalesce[160], why_release[160];
};

/* buddy_max: 25% of the limit when there is one (a single mid-size block
 * must not take a large share of it); else the default, unless sizes just
 * above it are common: then the smallest power of two (up to 16M) that holds
 * 99% of them, so that they come from resident buddy pages instead of an
 * mmap and fresh page faults each. */
static void tune_buddy_max(const struct tp_profile *p, uint64_t limit, uint32_t largest_class, struct tuned *t) {
  char a[32], b[32];
  if (limit) {
    uint64_t v = limit / 4 / 4096 * 4096;
    if (v > BUDDY_MAX_LIMIT) v = BUDDY_MAX_LIMIT;
    if (v < 65536) v = 65536;
    if (v < largest_class) v = (largest_class + 4095) / 4096 * 4096;
    t->buddy_max = v;
    snprintf(t->why_buddy, sizeof t->why_buddy, "25%% of --limit %s%s", size_text(limit, a),
             v == BUDDY_MAX_LIMIT && limit / 4 > v ? ", clamped to the pool's 16M" : "");
    return;
  }
  double above_class = 0, between = 0, between_seen = 0;
  uint32_t top = 0;
  for (uint32_t bk = 0; bk < TP_BUCKET_COUNT; bk++) {
    if (tp_bucket_lower(bk) > largest_class) above_class += (double)p->allocs[bk];
    if (tp_bucket_lower(bk) > DEFAULT_BUDDY_MAX && tp_bucket_upper(bk) <= BUDDY_MAX_LIMIT) between += (double)p->allocs[bk];
  }
  t->buddy_max = DEFAULT_BUDDY_MAX;
  if (above_class > 0 && between >= 0.05 * above_class) {
    for (uint32_t bk = 0; bk < TP_BUCKET_COUNT; bk++) {
      if (tp_bucket_lower(bk) <= DEFAULT_BUDDY_MAX || tp_bucket_upper(bk) > BUDDY_MAX_LIMIT) continue;
      between_seen += (double)p->allocs[bk];
      if (between_seen >= 0.99 * between) {
        top = bk;
        break;
      }
    }
    uint64_t v = DEFAULT_BUDDY_MAX;
    while (v < tp_bucket_upper(top) && v < BUDDY_MAX_LIMIT) v <<= 1;
    t->buddy_max = v;
    snprintf(t->why_buddy, sizeof t->why_buddy, "%.0f%% of the page-tier allocations are 4M..16M: 99%% of them fit %s",
             100.0 * between / above_class, size_text(v, b));
    return;
  }
  if (above_class > 0) snprintf(a, sizeof a, "%.1f%%", 100.0 * between / above_class);
  else snprintf(a, sizeof a, "none");
  snprintf(t->why_buddy, sizeof t->why_buddy, "the default: no --limit, and %s of the page-tier allocations are 4M..16M", a);
}

/* coalesce_delay_ms: the 90th percentile of the lifetimes of sampled buddy
 * blocks, rounded up to 1-2-5 steps in 1..1000 ms.  A freed block waits that
 * long before it is merged, so that the alloc/free cycle of nine in ten
 * mid-size blocks completes on a block of the right size instead of paying
 * for a merge and a split each time. */
static void tune_coalesce(const struct tp_profile *p, struct tuned *t) {
  uint64_t samples = 0;
  for (size_t i = 0; i < p->n_sites; i++)
    if (p->sites[i].tier == TIER_BUDDY) samples += p->sites[i].samples;
  if (samples < MIN_BUDDY_SAMPLES) {
    t->coalesce_ms = DEFAULT_COALESCE_MS;
    snprintf(t->why_coalesce, sizeof t->why_coalesce, "the default: %" PRIu64 " sampled buddy-tier blocks are too few",
             samples);
    return;
  }
  /* Blocks never freed are the longest lifetimes: the 90th percentile of
   * all is the freed blocks' quantile 0.9 / (freed share), or past the run. */
  double freed = 0, never = p->never_freed[TIER_BUDDY];
  for (uint32_t b = 0; b < TP_LIFETIME_BUCKETS; b++) freed += p->lifetime[TIER_BUDDY][b];
  if (freed <= 0 || 0.90 * (freed + never) > freed) {
    t->coalesce_ms = 1000;
    snprintf(t->why_coalesce, sizeof t->why_coalesce,
             "more than 10%% of %" PRIu64 " sampled buddy-tier blocks were never freed: the longest delay", samples);
    return;
  }
  double p90_us = tp_lifetime_quantile(p->lifetime[TIER_BUDDY], 0.90 * (freed + never) / freed);
  static const uint64_t steps[] = {1, 2, 5, 10, 20, 50, 100, 200, 500, 1000};
  uint64_t ms = 1000;
  for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++)
    if ((double)steps[i] * 1000.0 >= p90_us) {
      ms = steps[i];
      break;
    }
  t->coalesce_ms = ms;
  snprintf(t->why_coalesce, sizeof t->why_coalesce, "90%% of %" PRIu64 " sampled buddy-tier blocks lived under %.3g ms",
           samples, p90_us / 1000.0);
}

/* Burstiness of one process's live bytes: the coefficient of variation
 * (stddev / mean) of its live-bytes series over its busy window, from the
 * first to the last point at or above half its peak (start-up and teardown
 * left out).  Steady work stays near 0; work whose live bytes swing up and
 * down (phases, request bursts) is 0.3 and more.  *weight: its mean live bytes. */
static double series_burstiness(const struct tp_series *s, double *weight) {
  uint64_t peak = 0;
  for (uint32_t i = 0; i < s->n; i++)
    if (s->live[i] > peak) peak = s->live[i];
  uint32_t first = s->n, last = 0;
  for (uint32_t i = 0; i < s->n; i++)
    if (s->live[i] * 2 >= peak && peak) {
      if (first == s->n) first = i;
      last = i;
    }
  *weight = 0;
  /* A point at 0 inside the busy window is one no snapshot fell in (they
   * come every 1.0-1.25 s, the points every 1 s), not a process at rest:
   * counted, such gaps made steady work look bursty. */
  double sum = 0, sq = 0, n = 0;
  for (uint32_t i = first; i <= last && first < s->n; i++)
    if (s->live[i]) sum += (double)s->live[i], n++;
  if (n < 4) return 0;
  double mean = sum / n;
  for (uint32_t i = first; i <= last; i++)
    if (s->live[i]) sq += ((double)s->live[i] - mean) * ((double)s->live[i] - mean);
  *weight = mean;
  return mean > 0 ? sqrt(sq / n) / mean : 0;
}

/* release_threshold: 0.70 for steady work (burstiness <= 0.10), 0.50 for
 * bursty work (>= 0.30), in between linearly (rounded to 0.05).  Bursty work
 * should not give back pages at a 30% dip that it takes again at the next
 * burst. */
static void tune_release(const struct tp_profile *p, struct tuned *t) {
  double total = 0, weighted = 0;
  size_t used = 0;
  for (size_t i = 0; i < p->n_processes && p->series; i++) {
    double w, b = series_burstiness(&p->series[i], &w);
    if (w <= 0) continue;
    weighted += b * w;
    total += w;
    used++;
  }
  if (used == 0) {
    t->release_threshold = 0.70;
    t->burstiness = NAN;
    snprintf(t->why_release, sizeof t->why_release, "the default: no process has 4 live-bytes snapshots");
    return;
  }
  double b = weighted / total, x = (b - 0.10) / 0.20;
  x = x < 0 ? 0 : x > 1 ? 1 : x;
  t->burstiness = b;
  t->release_threshold = round((0.70 - 0.20 * x) * 20) / 20;
  snprintf(t->why_release, sizeof t->why_release, "burstiness %.2f (%s) over %zu process%s", b,
           b <= 0.10 ? "steady" : b >= 0.30 ? "bursty" : "between steady and bursty", used, used == 1 ? "" : "es");
}

/* ---- the table and the file --------------------------------------------------- */

struct set_row {
  const char *name;
  const uint32_t *classes;
  size_t n;
  struct tp_waste fit, held;
};

static void print_waste(const struct tp_waste *w) {
  printf("  %6.1f%%  %s%5.1f%%", 100.0 * tp_waste_coverage(w), w->estimated ? "~" : " ", tp_waste_percent(w));
}

static void print_table(struct set_row *rows, size_t n, int holdout) {
  printf("%-28s %7s  %7s  %6s", "class set", "classes", "slab", "waste");
  if (holdout) printf("  %7s  %6s", "slab", "waste");
  printf("\n%-28s %7s  %7s  %6s", "", "", "(fit)", "(fit)");
  if (holdout) printf("  %7s  %6s", "(held)", "(held)");
  printf("\n");
  for (size_t i = 0; i < n; i++) {
    printf("%-28s %7zu", rows[i].name, rows[i].n);
    print_waste(&rows[i].fit);
    if (holdout) print_waste(&rows[i].held);
    printf("\n");
  }
}

/* The classes of a that b lacks, on one line after label ("none" if none). */
static void print_missing(const char *label, const uint32_t *a, size_t na, const uint32_t *b, size_t nb) {
  printf("%s", label);
  size_t shown = 0;
  for (size_t i = 0, j = 0; i < na; i++) {
    while (j < nb && b[j] < a[i]) j++;
    if (j < nb && b[j] == a[i]) continue;
    printf("%s%" PRIu32, shown++ ? ", " : "", a[i]);
  }
  printf("%s\n", shown ? "" : "none");
}

#define PROPOSE_TRACES_LISTED 20

/* Text in a '#' comment: a newline in a path would start a line of its own. */
static void comment_text(FILE *f, const char *text) {
  for (const unsigned char *c = (const unsigned char *)text; *c; c++) fputc(*c < 0x20 || *c == 0x7f ? '?' : *c, f);
}

/* Writes the config whole or not at all (outfile.h). */
static int write_config(const struct propose_options *o, const struct tp_profile *p, const uint32_t *classes,
                        size_t n, const struct tuned *t, const char *mode, const struct set_row *cur,
                        const struct set_row *prop) {
  struct tp_outfile out;
  char err[1024];
  /* "-o -" is a file named "-": stdout carries the table. */
  if (tp_outfile_open(&out, strcmp(o->output, "-") == 0 ? "./-" : o->output, err, sizeof err) < 0)
    return fail("%s", err);
  FILE *f = out.file;
  char date[64], a[32];
  time_t now = time(NULL);
  strftime(date, sizeof date, "%Y-%m-%d %H:%M:%S UTC", gmtime(&now));
  fprintf(f, "# tierpool configuration proposed by `tierpool propose` on %s\n", date);
  fprintf(f, "# %" PRIu64 " allocations in the size histogram of %zu process%s; %s\n", tp_profile_total_allocs(p),
          p->n_processes, p->n_processes == 1 ? "" : "es", mode);
  fprintf(f, "# expected waste: %.1f%% with the current classes, %.1f%% with these (slab tier: %.1f%% of allocations)\n",
          tp_waste_percent(&cur->fit), tp_waste_percent(&prop->fit), 100.0 * tp_waste_coverage(&prop->fit));
  fprintf(f, "size_classes = ");
  for (size_t i = 0; i < n; i++) fprintf(f, "%s%" PRIu32, i ? ", " : "", classes[i]);
  fprintf(f, "\n# %s\nbuddy_max = %s\n", t->why_buddy, size_text(t->buddy_max, a));
  fprintf(f, "# %s\ncoalesce_delay_ms = %" PRIu64 "\n", t->why_coalesce, t->coalesce_ms);
  fprintf(f, "# %s\nrelease_threshold = %.2f\n", t->why_release, t->release_threshold);
  /* The traces last, and a few of them: the pool reads 64 KiB of a config
   * (a fleet of a thousand processes once pushed every key past it). */
  for (size_t i = 0; i < p->n_processes && i < PROPOSE_TRACES_LISTED; i++) {
    const struct tp_prof_process *q = &p->processes[i];
    fprintf(f, "# trace ");
    comment_text(f, q->source ? q->source : "?");
    fprintf(f, ": pid %" PRIu32 " (", q->pid);
    comment_text(f, q->executable ? q->executable : "?");
    fprintf(f, "), %" PRIu64 " allocations, %" PRIu64 " samples\n", q->allocations, q->samples);
  }
  if (p->n_processes > PROPOSE_TRACES_LISTED)
    fprintf(f, "# ... and %zu more processes\n", p->n_processes - PROPOSE_TRACES_LISTED);
  return tp_outfile_commit(&out, err, sizeof err) < 0 ? fail("%s", err) : 0;
}

/* ---- the command -------------------------------------------------------------- */

/* Before the traces are read (which may take a while): can the file be made? */
static int check_output_dir(const char *output) {
  const char *slash = strrchr(output, '/');
  char dir[4096];
  if (!slash) snprintf(dir, sizeof dir, ".");
  else snprintf(dir, sizeof dir, "%.*s", slash == output ? 1 : (int)(slash - output), output);
  if (access(dir, W_OK | X_OK) != 0) return fail("%s: cannot write into %s: %s", output, dir, strerror(errno));
  return 0;
}

static void evaluate(struct set_row *r, const struct tp_hist *fit, const struct tp_hist *held) {
  tp_classes_waste(fit, r->classes, r->n, &r->fit);
  if (held) tp_classes_waste(held, r->classes, r->n, &r->held);
}

static int propose(const struct propose_options *o, struct tp_profile *p, struct tp_profile *held_p) {
  struct tp_hist *hist = malloc(sizeof *hist), *held = NULL;
  if (!hist) return fail("out of memory");
  tp_hist_init(hist, p->allocs, p->bytes);
  if (held_p) {
    held = malloc(sizeof *held);
    if (!held) return free(hist), fail("out of memory");
    tp_hist_init(held, held_p->allocs, held_p->bytes);
  }
  size_t n_current;
  const char *whence;
  const uint32_t *current = current_classes(p, &n_current, &whence);

  /* The coverage rule, relaxed (with a note) when sizes above --max-slab are
   * too many for any set to meet it. */
  double coverage = MIN_COVERAGE, reach = tp_hist_allocs_upto(hist, o->max_slab) / hist->total_allocs;
  if (reach < coverage) {
    fprintf(stderr, "tierpool propose: note: only %.1f%% of the allocations are at most --max-slab %" PRIu64
                    ": the slab tier cannot serve 90%%\n", 100.0 * reach, o->max_slab);
    coverage = reach;
  }
  struct tp_fit_request req = {(uint32_t)o->align, (uint32_t)o->max_slab, NULL, 0, o->k, o->k, coverage};
  if (!o->pure) {
    req.backbone = current;
    req.n_backbone = n_current;
    req.max_total = TP_CLASSES_LIMIT;
  }
  uint32_t proposed[TP_CLASSES_LIMIT + 1];
  double waste;
  size_t n = tp_classes_fit(hist, &req, proposed, &waste);
  if (n == 0) {
    free(hist), free(held);
    return fail("no set of classes meets the rules (coverage %.0f%%)", 100.0 * req.min_coverage);
  }

  char mode[200], name[64];
  if (o->pure)
    snprintf(mode, sizeof mode, "--classes %" PRIu64 " (pure fit), align %" PRIu64, o->k, o->align);
  else
    snprintf(mode, sizeof mode, "--extra %" PRIu64 " on %s %zu classes, align %" PRIu64, o->k, whence, n_current,
             o->align);
  snprintf(name, sizeof name, o->pure ? "proposed (pure fit)" : "proposed (current + extra)");
  struct set_row rows[] = {
      {.name = strcmp(whence, "the traces'") == 0 ? "current (traces)" : "current (pool default)",
       .classes = current, .n = n_current},
      {.name = name, .classes = proposed, .n = n},
      {.name = "jemalloc 5.3 (to 64K)", .classes = tp_classes_jemalloc.classes, .n = tp_classes_jemalloc.n},
      {.name = "tcmalloc (8K pages)", .classes = tp_classes_tcmalloc.classes, .n = tp_classes_tcmalloc.n},
  };
  for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) evaluate(&rows[i], hist, held);

  struct tuned t;
  memset(&t, 0, sizeof t);
  tune_buddy_max(p, o->limit, proposed[n - 1], &t);
  tune_coalesce(p, &t);
  tune_release(p, &t);

  /* The file first: if it cannot be written, nothing is printed but the error. */
  int rc = write_config(o, p, proposed, n, &t, mode, &rows[0], &rows[1]);
  if (rc) {
    free(hist), free(held);
    return rc;
  }
  printf("fitted to %zu trace%s (%zu process%s), %" PRIu64 " allocations, %" PRIu64 " bytes requested\n",
         o->n_traces, o->n_traces == 1 ? "" : "s", p->n_processes, p->n_processes == 1 ? "" : "es",
         tp_profile_total_allocs(p), tp_profile_total_bytes(p));
  if (held_p)
    printf("held out: %zu trace%s, %" PRIu64 " allocations\n", o->n_holdout, o->n_holdout == 1 ? "" : "s",
           tp_profile_total_allocs(held_p));
  printf("%s\n\n", mode);
  print_table(rows, sizeof rows / sizeof rows[0], held != NULL);
  printf("\nwaste: bytes handed out minus bytes asked for, %% of bytes handed out; sizes above a set's\n"
         "largest class count as whole pages (buddy and large tiers); ~ an estimate (a class inside a bucket)\n\n");
  if (!o->pure) {
    print_missing("added:   ", proposed, n, current, n_current);
    print_missing("dropped: ", current, n_current, proposed, n);
  }
  printf("size_classes = ");
  for (size_t i = 0; i < n; i++) printf("%s%" PRIu32, i ? ", " : "", proposed[i]);
  char a[32];
  printf("\nbuddy_max = %s  (%s)\n", size_text(t.buddy_max, a), t.why_buddy);
  printf("coalesce_delay_ms = %" PRIu64 "  (%s)\n", t.coalesce_ms, t.why_coalesce);
  printf("release_threshold = %.2f  (%s)\n", t.release_threshold, t.why_release);
  printf("config: %s\n", o->output);
  free(hist);
  free(held);
  return rc;
}

int cmd_propose(int argc, char **argv) {
  if (cli_asks_help(argc, argv)) {
    propose_help();
    return 0;
  }
  struct propose_options o;
  memset(&o, 0, sizeof o);
  int rc = parse_args(argc, argv, &o);
  if (!rc) rc = check_output_dir(o.output);
  struct tp_profile p, held;
  tp_profile_init(&p);
  tp_profile_init(&held);
  if (!rc) rc = cli_skip_unstarted("propose", o.traces, &o.n_traces);
  if (!rc) rc = cli_skip_unstarted("propose", o.holdout, &o.n_holdout);
  if (!rc) rc = cli_load_histogram("propose", o.traces, o.n_traces, &p);
  if (!rc && o.n_holdout) rc = cli_load_histogram("propose", o.holdout, o.n_holdout, &held);
  if (!rc) rc = propose(&o, &p, o.n_holdout ? &held : NULL);
  tp_profile_free(&p);
  tp_profile_free(&held);
  free(o.traces);
  free(o.holdout);
  return cli_stdout_written("propose", rc);
}
