/* check_profile.c — tp_profile_load and tp_profile_merge (analyze/profile*.c)
 * on make_trace traces whose contents the checks below spell out, built with
 * ASan and UBSan.
 *
 *   check_profile                 the synthetic checks (needs MAKE_TRACE)
 *   check_profile totals TRACE... loads the traces and prints one line of
 *                                 totals in `tierpool dump --summary`'s keys
 *
 * Exit status 0, 1 when a check failed, 2 on bad usage. */
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check_profile.h"

static int failures;
static char dir[] = "/tmp/check_profile.XXXXXX";

bool check(bool cond, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs(cond ? "ok: " : "FAIL: ", stdout);
  vprintf(fmt, ap);
  putchar('\n');
  va_end(ap);
  failures += !cond;
  return cond;
}

const char *scratch(const char *name) {
  static char paths[8][300];
  static int n;
  char *path = paths[n++ % 8];
  snprintf(path, 300, "%s/%s", dir, name);
  return path;
}

const char *make(const char *name, const char *spec) {
  static char paths[32][256];
  static int n;
  char spec_path[300], cmd[1024];
  snprintf(spec_path, sizeof spec_path, "%s/%s.spec", dir, name);
  FILE *f = fopen(spec_path, "w");
  if (!f || fputs(spec, f) < 0 || fclose(f) != 0) {
    perror(spec_path);
    exit(2);
  }
  char *path = paths[n++ % 32];
  snprintf(path, 256, "%s/%s.tpt", dir, name);
  snprintf(cmd, sizeof cmd, "\"%s\" \"%s\" \"%s\"", getenv("MAKE_TRACE"), spec_path, path);
  if (system(cmd) != 0) {
    fprintf(stderr, "check_profile: make_trace failed on %s\n", spec_path);
    exit(2);
  }
  return path;
}

bool near(double a, double b) { return fabs(a - b) <= 1e-9 * (fabs(a) + fabs(b) + 1); }

void load_all(struct tp_profile *p, const char *const *paths, int want) {
  tp_profile_init(p);
  char err[512];
  for (; *paths; paths++) {
    int rc = tp_profile_load(p, *paths, err, sizeof err);
    if (rc != want) check(false, "loading %s: status %d (want %d): %s", *paths, rc, want, err);
  }
}

/* ---- the profile as sorted text: equal texts, equal profiles ------------- */

struct lines {
  char **line;
  size_t n, cap;
};

__attribute__((format(printf, 2, 3))) static void add(struct lines *l, const char *fmt, ...) {
  if (l->n == l->cap) l->line = realloc(l->line, (l->cap = l->cap ? l->cap * 2 : 256) * sizeof *l->line);
  va_list ap;
  va_start(ap, fmt);
  if (vasprintf(&l->line[l->n++], fmt, ap) < 0) exit(2);
  va_end(ap);
}

static int by_text(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void describe_frame(const struct tp_profile *p, uint32_t i, FILE *out) {
  const struct tp_prof_frame *f = &p->frames[i];
  if (f->module != TP_PROFILE_NONE) {
    const struct tp_prof_module *m = &p->modules[f->module];
    fprintf(out, "%s@", m->path);
    for (size_t k = 0; k < m->build_id_len; k++) fprintf(out, "%02x", m->build_id[k]);
    fprintf(out, "+0x%" PRIx64, f->addr);
  } else {
    fprintf(out, "%s:%s@0x%" PRIx64, f->jit ? "jit" : "?", f->jit_name ? f->jit_name : "", f->addr);
  }
}

char *describe_stack(const struct tp_profile *p, uint32_t s) {
  char *text;
  size_t len;
  FILE *out = open_memstream(&text, &len);
  for (uint32_t d = 0; d < p->stacks[s].depth; d++) {
    if (d) fputc(';', out);
    describe_frame(p, p->stacks[s].frames[d], out);
  }
  if (p->stacks[s].truncated) fputs(";...", out);
  fclose(out);
  return text;
}

char *canon(const struct tp_profile *p) {
  struct lines l = {0};
  for (uint32_t b = 0; b < TP_BUCKET_COUNT; b++)
    if (p->allocs[b] || p->bytes[b] || p->frees[b] || p->sampled_by_bucket[b])
      add(&l, "bucket %4u %" PRIu64 " %" PRIu64 " %" PRIu64 " %.17g", b, p->allocs[b], p->bytes[b], p->frees[b],
          p->sampled_by_bucket[b]);
  for (int t = 0; t < TP_TIERS; t++) {
    add(&l, "never_freed %d %.17g", t, p->never_freed[t]);
    for (uint32_t b = 0; b < TP_LIFETIME_BUCKETS; b++)
      if (p->lifetime[t][b]) add(&l, "lifetime %d %u %.17g", t, b, p->lifetime[t][b]);
  }
  for (int k = 0; k < 5; k++) add(&l, "mmap %d %" PRIu64 " %" PRIu64, k, p->mmap_calls[k], p->mmap_bytes[k]);
  add(&l, "counts modules=%zu frames=%zu stacks=%zu sites=%zu tenants=%zu processes=%zu reservations=%zu",
      p->n_modules, p->n_frames, p->n_stacks, p->n_sites, p->n_tenants, p->n_processes, p->n_reservations);
  add(&l, "totals samples=%" PRIu64 " matched=%" PRIu64 " unmatched=%" PRIu64 " snapshots=%" PRIu64, p->samples,
      p->frees_matched, p->frees_unmatched, p->snapshots);
  for (size_t i = 0; i < p->n_sites; i++) {
    const struct tp_prof_site *s = &p->sites[i];
    char *stack = describe_stack(p, s->stack);
    add(&l, "site %s tier=%u tenant=%s samples=%" PRIu64 " %.17g %.17g %.17g %.17g", stack, s->tier,
        p->tenants[s->tenant], s->samples, s->allocs, s->bytes, s->live_allocs, s->live_bytes);
    free(stack);
  }
  for (size_t i = 0; i < p->n_processes; i++) {
    const struct tp_prof_process *x = &p->processes[i];
    const struct tp_series *s = &p->series[i];
    uint64_t live_sum = 0;
    for (uint32_t k = 0; k < s->n; k++) live_sum += s->live[k] + s->resident[k];
    add(&l, "process %u/%u %s [%s] %s start=%" PRIu64 " dur=%" PRIu64 " rate=%g ended=%d trunc=%d %" PRIu64
            "/%" PRIu64 "/%" PRIu64 " peaks=%" PRIu64 "/%" PRIu64 "/%" PRIu64 " classes=%zu series=%u/%" PRIu64
            "/%" PRIu64,
        x->pid, x->ppid, x->executable, x->argv, x->hostname, x->start_unix_ns, x->duration_us, x->sample_rate,
        x->ended, x->truncated, x->samples, x->dropped, x->allocations, x->peak_live, x->peak_resident, x->peak_rss,
        x->n_size_classes, s->n, s->step_us, live_sum);
  }
  for (size_t i = 0; i < p->n_reservations; i++) {
    const struct tp_prof_reservation *r = &p->reservations[i];
    add(&l, "reservation pid=%u 0x%" PRIx64 " %" PRIu64 " %" PRIu64 "/%" PRIu64 "/%" PRIu64 " %" PRIu64 "-%" PRIu64,
        p->processes[r->process].pid, r->start, r->size, r->first_accessible, r->last_accessible, r->max_accessible,
        r->first_us, r->last_us);
  }
  qsort(l.line, l.n, sizeof *l.line, by_text);
  char *text;
  size_t len;
  FILE *out = open_memstream(&text, &len);
  for (size_t i = 0; i < l.n; i++) fprintf(out, "%s\n", l.line[i]), free(l.line[i]);
  fclose(out);
  free(l.line);
  return text;
}

/* On a difference, shows the first differing line. */
void check_same(const struct tp_profile *a, const struct tp_profile *b, const char *what) {
  char *x = canon(a), *y = canon(b);
  size_t i = 0;
  while (x[i] && x[i] == y[i]) i++;
  if (!check(strcmp(x, y) == 0, "%s", what)) {
    size_t start = i;
    while (start && x[start - 1] != '\n') start--;
    fprintf(stdout, "    first difference:\n    < %.*s\n    > %.*s\n", (int)strcspn(x + start, "\n"), x + start,
            (int)strcspn(y + start, "\n"), y + start);
  }
  free(x), free(y);
}

/* ---- the checks ------------------------------------------------------------ */

static const struct tp_prof_site *find_site(const struct tp_profile *p, const char *stack, uint32_t tier,
                                            const char *tenant) {
  for (size_t i = 0; i < p->n_sites; i++) {
    char *s = describe_stack(p, p->sites[i].stack);
    bool same = strcmp(s, stack) == 0 && p->sites[i].tier == tier && strcmp(p->tenants[p->sites[i].tenant], tenant) == 0;
    free(s);
    if (same) return &p->sites[i];
  }
  return NULL;
}

const struct tp_prof_process *find_process(const struct tp_profile *p, uint32_t pid) {
  for (size_t i = 0; i < p->n_processes; i++)
    if (p->processes[i].pid == pid) return &p->processes[i];
  return NULL;
}

void check_site(const struct tp_profile *p, const char *stack, uint32_t tier, const char *tenant,
                       uint64_t samples, double allocs, double bytes, double live_allocs, double live_bytes) {
  const struct tp_prof_site *s = find_site(p, stack, tier, tenant);
  check(s && s->samples == samples && near(s->allocs, allocs) && near(s->bytes, bytes) &&
            near(s->live_allocs, live_allocs) && near(s->live_bytes, live_bytes),
        "site %s tier %u tenant %s: %" PRIu64 " samples, %g allocs, %g bytes, live %g / %g (got %" PRIu64
        " %g %g %g %g)",
        stack, tier, tenant, samples, allocs, bytes, live_allocs, live_bytes, s ? s->samples : 0, s ? s->allocs : -1,
        s ? s->bytes : -1, s ? s->live_allocs : -1, s ? s->live_bytes : -1);
}

/* The keys of `tierpool dump --summary` that a profile knows, summed over the traces. */
static int print_totals(int n, char **paths) {
  struct tp_profile p;
  tp_profile_init(&p);
  char err[512];
  int status = 0;
  for (int i = 0; i < n; i++) {
    int rc = tp_profile_load(&p, paths[i], err, sizeof err);
    if (rc != 0) fprintf(stderr, "check_profile: %s\n", err);
    if (rc < 0) status = 2;
  }
  uint64_t frees = 0, ends = 0, end_samples = 0, end_dropped = 0, end_allocations = 0, truncated = 0;
  for (uint32_t b = 0; b < TP_BUCKET_COUNT; b++) frees += p.frees[b];
  for (size_t i = 0; i < p.n_processes; i++) {
    const struct tp_prof_process *x = &p.processes[i];
    ends += x->ended, truncated += x->truncated;
    end_samples += x->samples, end_dropped += x->dropped, end_allocations += x->allocations;
  }
  uint64_t mmaps = 0;
  for (int k = 0; k < 5; k++) mmaps += p.mmap_calls[k];
  printf("processes=%zu samples=%" PRIu64 " frees=%" PRIu64 " mmap_calls=%" PRIu64 " histogram_allocs=%" PRIu64
         " histogram_frees=%" PRIu64 " histogram_bytes=%" PRIu64 " snapshots=%" PRIu64 " ends=%" PRIu64
         " end_samples=%" PRIu64 " end_dropped=%" PRIu64 " end_allocations=%" PRIu64 " truncated=%" PRIu64 "\n",
         p.n_processes, p.samples, p.frees_matched + p.frees_unmatched, mmaps, tp_profile_total_allocs(&p), frees,
         tp_profile_total_bytes(&p), p.snapshots, ends, end_samples, end_dropped, end_allocations, truncated);
  /* The sites account for every sample, and the lifetimes for every matched free. */
  uint64_t site_samples = 0, module_frames = 0, jit_frames = 0, named_frames = 0;
  for (size_t i = 0; i < p.n_sites; i++) site_samples += p.sites[i].samples;
  for (size_t i = 0; i < p.n_frames; i++) {
    module_frames += p.frames[i].module != TP_PROFILE_NONE;
    jit_frames += p.frames[i].jit, named_frames += p.frames[i].jit_name != NULL;
  }
  printf("site_samples=%" PRIu64 " sites=%zu stacks=%zu frames=%zu module_frames=%" PRIu64 " jit_frames=%" PRIu64
         " named_frames=%" PRIu64 " modules=%zu unmatched=%" PRIu64 "\n",
         site_samples, p.n_sites, p.n_stacks, p.n_frames, module_frames, jit_frames, named_frames, p.n_modules,
         p.frees_unmatched);
  tp_profile_free(&p);
  return status;
}

int main(int argc, char **argv) {
  if (argc >= 3 && strcmp(argv[1], "totals") == 0) return print_totals(argc - 2, argv + 2);
  if (argc != 1 || !getenv("MAKE_TRACE")) {
    fprintf(stderr, "usage: MAKE_TRACE=PATH check_profile | check_profile totals TRACE...\n");
    return 2;
  }
  if (!mkdtemp(dir)) {
    perror("mkdtemp");
    return 2;
  }
  check_lifetime_buckets();
  check_live_table();
  check_one_trace();
  check_two_layouts();
  check_overlapping_modules();
  check_merge_order();
  check_truncated();
  check_errors();
  check_series();
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (failures == 0 && system(cmd) != 0) fprintf(stderr, "check_profile: could not remove %s\n", dir);
  if (failures) fprintf(stderr, "check_profile: %d check(s) failed (traces kept in %s)\n", failures, dir);
  return failures ? 1 : 0;
}
