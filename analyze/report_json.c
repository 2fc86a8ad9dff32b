/* report_json.c — `tierpool report --json`: the report as one JSON document.
 * The schema is versioned ("schema": "tierpool-report/1") and documented in
 * README; fields are only ever added.  Exact counts are integers, estimates
 * from samples are numbers with a fraction, times are µs, sizes are bytes. */
#include <inttypes.h>
#include <math.h>
#include <string.h>

#include "buckets.h"
#include "json.h"
#include "report.h"

/* A streaming writer: commas and indentation follow the nesting. */
struct json {
  FILE *out;
  int depth;
  bool first; /* nothing written yet at this level */
};

static void json_indent(struct json *j) {
  fputc('\n', j->out);
  for (int i = 0; i < j->depth; i++) fputs("  ", j->out);
}

/* Before a value: the comma, and the key when there is one. */
static void json_next(struct json *j, const char *key) {
  if (j->depth > 0) {
    if (!j->first) fputc(',', j->out);
    json_indent(j);
  }
  j->first = false;
  if (key) {
    tp_json_string(j->out, key);
    fputs(": ", j->out);
  }
}

static void json_open(struct json *j, const char *key, char bracket) {
  json_next(j, key);
  fputc(bracket, j->out);
  j->depth++;
  j->first = true;
}

static void json_close(struct json *j, char bracket) {
  j->depth--;
  if (!j->first) json_indent(j);
  fputc(bracket, j->out);
  j->first = false;
}

static void json_str(struct json *j, const char *key, const char *v) {
  json_next(j, key);
  tp_json_string(j->out, v);
}

static void json_u64(struct json *j, const char *key, uint64_t v) {
  json_next(j, key);
  fprintf(j->out, "%" PRIu64, v);
}

static void json_num(struct json *j, const char *key, double v) {
  json_next(j, key);
  if (isfinite(v)) fprintf(j->out, "%.15g", v);
  else fputs("null", j->out);
}

static void json_bool(struct json *j, const char *key, bool v) {
  json_next(j, key);
  fputs(v ? "true" : "false", j->out);
}

/* ---- Sections ---------------------------------------------------------------- */

static void json_processes(struct json *j, const struct report *r) {
  const struct tp_profile *p = r->profile;
  json_open(j, "processes", '[');
  for (size_t i = 0; i < p->n_processes; i++) {
    const struct tp_prof_process *proc = &p->processes[i];
    json_open(j, NULL, '{');
    json_u64(j, "pid", proc->pid);
    json_u64(j, "ppid", proc->ppid);
    json_str(j, "executable", proc->executable);
    json_str(j, "argv", proc->argv);
    json_str(j, "hostname", proc->hostname);
    json_u64(j, "start_unix_ns", proc->start_unix_ns);
    json_u64(j, "duration_us", proc->duration_us);
    json_bool(j, "ended", proc->ended);
    json_bool(j, "truncated", proc->truncated);
    json_bool(j, "validate", proc->validate);
    json_num(j, "sample_rate", proc->sample_rate);
    json_u64(j, "sample_bytes", proc->sample_bytes);
    json_u64(j, "samples", proc->samples);
    json_u64(j, "dropped", proc->dropped);
    json_u64(j, "allocations", proc->allocations);
    json_u64(j, "peak_live", proc->peak_live);
    json_u64(j, "peak_resident", proc->peak_resident);
    json_u64(j, "peak_rss", proc->peak_rss);
    json_u64(j, "snapshots", proc->snapshots);
    json_str(j, "exec", proc->exec_path); /* null: not replaced by an exec */
    json_str(j, "trace", proc->source);
    json_close(j, '}');
  }
  json_close(j, ']');
}

static void json_totals(struct json *j, const struct report *r) {
  json_open(j, "totals", '{');
  json_u64(j, "allocations", r->allocs);
  json_u64(j, "bytes", r->bytes);
  json_u64(j, "frees", r->frees);
  json_u64(j, "duration_us", r->duration_us);
  json_num(j, "allocations_per_second", r->allocs_per_s);
  json_num(j, "bytes_per_second", r->bytes_per_s);
  json_u64(j, "peak_live", r->peak_live);
  json_u64(j, "peak_resident", r->peak_resident);
  json_u64(j, "peak_rss", r->peak_rss);
  json_u64(j, "samples", r->samples);
  json_u64(j, "dropped", r->dropped);
  json_u64(j, "frees_matched", r->profile->frees_matched);
  json_u64(j, "frees_unmatched", r->profile->frees_unmatched);
  json_num(j, "sampled_bytes", r->sampled_bytes);
  json_close(j, '}');
}

static void json_row(struct json *j, uint64_t lo, uint64_t hi, uint64_t allocs, uint64_t bytes, uint64_t frees) {
  json_open(j, NULL, '{');
  json_u64(j, "lo", lo);
  json_u64(j, "hi", hi);
  json_u64(j, "allocations", allocs);
  json_u64(j, "bytes", bytes);
  json_u64(j, "frees", frees);
  json_close(j, '}');
}

static void json_histogram(struct json *j, const struct report *r) {
  json_open(j, "histogram", '[');
  for (size_t i = 0; i < r->n_rows; i++) {
    const struct report_row *row = &r->rows[i];
    json_row(j, row->lo, row->hi, row->allocs, row->bytes, row->frees);
  }
  json_close(j, ']');
  const struct tp_profile *p = r->profile;
  json_open(j, "size_buckets", '[');
  for (uint32_t b = 0; b < TP_BUCKET_COUNT; b++)
    if (p->allocs[b] || p->frees[b])
      json_row(j, b == 0 ? 0 : tp_bucket_lower(b) - 1, tp_bucket_upper(b), p->allocs[b], p->bytes[b], p->frees[b]);
  json_close(j, ']');
}

static void json_lifetime(struct json *j, const char *key, const struct report_lifetime *l) {
  json_open(j, key, '{');
  json_num(j, "blocks", l->blocks);
  json_num(j, "freed", l->freed);
  json_num(j, "never_freed", l->never_freed);
  json_num(j, "p50_us", l->freed > 0 ? l->p50_us : NAN);
  json_num(j, "p90_us", l->freed > 0 ? l->p90_us : NAN);
  json_num(j, "p99_us", l->freed > 0 ? l->p99_us : NAN);
  json_num(j, "share_under_1ms", l->under_1ms);
  json_num(j, "share_1ms_to_1s", l->ms_to_1s);
  json_num(j, "share_over_1s", l->over_1s);
  json_num(j, "share_never_freed", l->never);
  json_close(j, '}');
}

static void json_frame(struct json *j, const struct tp_symbol *sym) {
  json_open(j, NULL, '{');
  json_str(j, "function", sym->function);
  json_str(j, "file", sym->file);
  json_u64(j, "line", sym->line);
  json_str(j, "module", sym->module);
  json_u64(j, "offset", sym->offset);
  json_bool(j, "jit", sym->jit);
  json_str(j, "display", sym->display);
  json_close(j, '}');
}

static void json_sites(struct json *j, const char *key, const struct report *r, const uint32_t *order, size_t n) {
  json_open(j, key, '[');
  for (size_t i = 0; i < n; i++) {
    const struct report_site *s = &r->sites[order[i]];
    json_open(j, NULL, '{');
    json_num(j, "bytes", s->bytes);
    json_num(j, "allocations", s->allocs);
    json_num(j, "live_bytes", s->live_bytes);
    json_num(j, "live_allocations", s->live_allocs);
    json_u64(j, "samples", s->samples);
    json_open(j, "tiers", '[');
    for (int t = 0; t < TP_TIERS; t++)
      if (s->tiers & (1u << t)) json_str(j, NULL, report_tier_names[t]);
    json_close(j, ']');
    json_open(j, "frames", '[');
    for (uint32_t d = 0; d < s->depth; d++) json_frame(j, tp_symbolize(r->symbols, s->frames[d]));
    json_close(j, ']');
    json_close(j, '}');
  }
  json_close(j, ']');
}

/* --by-tenant: a tenant's exact histogram, its sites and its live bytes. */
static void json_tenant_detail(struct json *j, const struct report *t) {
  json_open(j, "exact", '{');
  json_u64(j, "allocations", t->allocs);
  json_u64(j, "bytes", t->bytes);
  json_u64(j, "frees", t->frees);
  json_close(j, '}');
  json_open(j, "histogram", '[');
  for (size_t i = 0; i < t->n_rows; i++) {
    const struct report_row *row = &t->rows[i];
    json_row(j, row->lo, row->hi, row->allocs, row->bytes, row->frees);
  }
  json_close(j, ']');
  json_num(j, "sampled_bytes", t->sampled_bytes);
  json_sites(j, "top_by_bytes", t, t->by_bytes, t->n_by_bytes);
  json_sites(j, "top_by_count", t, t->by_count, t->n_by_count);
  json_open(j, "live_over_time", '{');
  json_u64(j, "step_us", t->strip_step_us);
  json_u64(j, "peak", t->strip_peak);
  json_open(j, "points", '[');
  for (size_t i = 0; i < t->n_strip; i++) json_u64(j, NULL, t->strip[i]);
  json_close(j, ']');
  json_close(j, '}');
}

static void json_activity(struct json *j, const struct report *r) {
  const struct tp_profile *p = r->profile;
  json_open(j, "tiers", '{');
  for (int t = 0; t < TP_TIERS; t++) {
    const struct report_tier *x = &r->tiers[t];
    json_open(j, report_tier_names[t], '{');
    json_num(j, "allocations", x->allocs);
    json_num(j, "bytes", x->bytes);
    json_num(j, "live_allocations", x->live_allocs);
    json_num(j, "live_bytes", x->live_bytes);
    json_u64(j, "samples", x->samples);
    json_close(j, '}');
  }
  json_close(j, '}');
  json_open(j, "tenants", '[');
  for (size_t i = 0; i < r->n_tenants; i++) {
    const struct report_tenant *t = &r->tenants[i];
    json_open(j, NULL, '{');
    json_str(j, "name", t->name);
    json_num(j, "allocations", t->allocs);
    json_num(j, "bytes", t->bytes);
    json_num(j, "live_bytes", t->live_bytes);
    json_u64(j, "samples", t->samples);
    if (i < r->n_by_tenant) json_tenant_detail(j, &r->by_tenant[i]);
    json_close(j, '}');
  }
  json_close(j, ']');
  json_open(j, "mmap", '{');
  for (int k = 0; k < 5; k++) {
    json_open(j, report_mmap_kinds[k], '{');
    json_u64(j, "calls", p->mmap_calls[k]);
    json_u64(j, "bytes", p->mmap_bytes[k]);
    json_close(j, '}');
  }
  json_close(j, '}');
  json_u64(j, "reservations_total", p->n_reservations);
  json_open(j, "reservations", '[');
  for (size_t i = 0; i < r->n_reservations; i++) {
    const struct tp_prof_reservation *res = &p->reservations[r->reservations[i]];
    json_open(j, NULL, '{');
    json_u64(j, "pid", res->process < p->n_processes ? p->processes[res->process].pid : 0);
    json_u64(j, "start", res->start);
    json_u64(j, "size", res->size);
    json_u64(j, "first_accessible", res->first_accessible);
    json_u64(j, "last_accessible", res->last_accessible);
    json_u64(j, "max_accessible", res->max_accessible);
    json_u64(j, "first_us", res->first_us);
    json_u64(j, "last_us", res->last_us);
    json_close(j, '}');
  }
  json_close(j, ']');
}

void report_print_json(FILE *out, const struct report *r) {
  struct json j = {out, 0, true};
  json_open(&j, NULL, '{');
  json_str(&j, "schema", "tierpool-report/1");
  json_open(&j, "traces", '[');
  for (size_t i = 0; i < r->n_traces; i++) json_str(&j, NULL, r->traces[i]);
  json_close(&j, ']');
  json_processes(&j, r);
  json_totals(&j, r);
  json_histogram(&j, r);
  json_open(&j, "lifetimes", '{');
  json_lifetime(&j, "all", &r->lifetime[TP_TIERS]);
  for (int t = 0; t < TP_TIERS; t++) json_lifetime(&j, report_tier_names[t], &r->lifetime[t]);
  json_close(&j, '}');
  json_u64(&j, "top", r->top);
  json_sites(&j, "top_by_bytes", r, r->by_bytes, r->n_by_bytes);
  json_sites(&j, "top_by_count", r, r->by_count, r->n_by_count);
  json_activity(&j, r);
  json_close(&j, '}');
  fputc('\n', out);
}
