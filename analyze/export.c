/* export.c — `tierpool export --format pprof|folded|json|csv TRACE... [-o FILE]`:
 * the traces' allocation sites in other tools' formats.  pprof, folded and
 * json are written from the merged profile (profile.h), csv streams the
 * samples from the traces (export_csv.c).  The formats' shared helpers, and
 * folded and json, live here. */
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "commands.h"
#include "export.h"
#include "json.h"
#include "outfile.h"

static const char export_usage[] =
    "usage: tierpool export --format pprof|folded|json|csv [--value bytes|count|inuse-bytes|inuse-count]\n"
    "                       [--no-symbolize] [-o FILE] TRACE...\n";

static void export_help(void) {
  printf("%s\n"
         "Writes the allocation sites of the TRACEs (merged: many processes, many\n"
         "machines) for other tools.\n"
         "\n"
         "  --format pprof    pprof's profile.proto, gzip'd, for `go tool pprof`, Grafana\n"
         "                    Pyroscope and Parca: one sample per call stack, tier and\n"
         "                    tenant, with values alloc_objects, alloc_space, inuse_objects,\n"
         "                    inuse_space (shown first, as for Go heap profiles; inuse =\n"
         "                    not freed when the trace ended), labels tier and tenant,\n"
         "                    mappings with build-ids\n"
         "  --format folded   one line per call stack, \"outer;...;inner VALUE\", sorted,\n"
         "                    for flamegraph.pl and speedscope\n"
         "  --format json     the sites with their stacks, frames and estimates (schema in\n"
         "                    README)\n"
         "  --format csv      one row per sampled allocation, streamed from the traces:\n"
         "                    pid,sample_id,time_us,size,usable,align,tier,tenant,thread,\n"
         "                    weight,freed,lifetime_us,stack (innermost frame first)\n"
         "  --value V         folded: bytes (default), count, inuse-bytes or inuse-count\n"
         "  --no-symbolize    name frames module+0xOFFSET instead of reading debug info\n"
         "                    (pprof can symbolize them later from the build-ids)\n"
         "  -o, --output FILE write to FILE (whole or not at all) instead of stdout\n"
         "\n"
         "Values are estimates: each sampled allocation counts for the allocations its\n"
         "weight stands for (1/rate); they are rounded so that each column's total is\n"
         "the rounded total estimate.  A truncated TRACE is used up to its last complete\n"
         "frame, with a warning.\n",
         export_usage);
}

enum export_format { FORMAT_NONE, FORMAT_PPROF, FORMAT_FOLDED, FORMAT_JSON, FORMAT_CSV };
enum folded_value { VALUE_BYTES, VALUE_COUNT, VALUE_INUSE_BYTES, VALUE_INUSE_COUNT };

/* ---- shared helpers -------------------------------------------------------- */

const char *tp_export_tier_name(uint32_t tier, char *buf, size_t len) {
  static const char *const names[TP_TIERS] = {"slab", "buddy", "large"};
  if (tier < TP_TIERS) return names[tier];
  snprintf(buf, len, "tier%" PRIu32, tier);
  return buf;
}

int64_t tp_export_round(double v, double *carry) {
  double before = *carry;
  *carry += v;
  /* In doubles: llround of a total past 2^63 (a damaged trace's sizes) is
   * undefined, and the difference of two such would overflow. */
  double step = round(*carry) - round(before);
  if (isnan(step)) return 0;
  if (step >= 0x1p63) return INT64_MAX;
  if (step < -0x1p63) return INT64_MIN;
  return (int64_t)step;
}

static const char *base_name(const char *path) {
  const char *slash = path ? strrchr(path, '/') : NULL;
  return slash ? slash + 1 : path ? path : "?";
}

/* The name of a frame when even its fallback name could not be made. */
static const char unnamed[] = "?";

const struct tp_symbol *tp_export_symbol(struct tp_export *x, uint32_t frame) {
  if (x->symbols) return tp_symbolize(x->symbols, frame);
  const struct tp_profile *p = x->profile;
  if (!x->fallback && !(x->fallback = calloc(p->n_frames + 1, sizeof *x->fallback))) return NULL;
  struct tp_symbol *s = &x->fallback[frame];
  if (s->display) return s;
  const struct tp_prof_frame *f = &p->frames[frame];
  char *name = NULL;
  int n;
  if (f->module < p->n_modules) {
    s->module = p->modules[f->module].path;
    s->offset = f->addr ? f->addr - 1 : 0;
    n = asprintf(&name, "%s+0x%" PRIx64, base_name(s->module), s->offset);
  } else if (f->jit) {
    s->jit = true;
    n = f->jit_name ? asprintf(&name, "[jit] %s", f->jit_name) : asprintf(&name, "[jit]");
  } else {
    n = asprintf(&name, "0x%" PRIx64, f->addr);
  }
  s->display = n < 0 ? unnamed : name;
  return s;
}

void tp_export_fini(struct tp_export *x) {
  if (x->fallback) {
    for (size_t i = 0; i < x->profile->n_frames; i++)
      if (x->fallback[i].display != unnamed) free((char *)x->fallback[i].display);
    free(x->fallback);
  }
  if (x->symbols) tp_symbolizer_free(x->symbols);
  x->fallback = NULL;
  x->symbols = NULL;
}

/* ---- folded ---------------------------------------------------------------- */

/* A frame name as one folded element: no ';' (the separator) nor line breaks. */
static void put_folded_name(FILE *out, const char *name) {
  for (const char *c = name; *c; c++) fputc(*c == ';' ? ':' : (*c == '\n' || *c == '\r') ? ' ' : *c, out);
}

static double site_value(const struct tp_prof_site *s, enum folded_value v) {
  switch (v) {
  case VALUE_COUNT: return s->allocs;
  case VALUE_INUSE_BYTES: return s->live_bytes;
  case VALUE_INUSE_COUNT: return s->live_allocs;
  default: return s->bytes;
  }
}

struct folded_line {
  char *text;  /* "outer;...;inner" */
  double value;
};

static int by_text(const void *a, const void *b) {
  return strcmp(((const struct folded_line *)a)->text, ((const struct folded_line *)b)->text);
}

/* The folded text of a stack: outermost frame first; a truncated stack
 * starts with "[truncated]", an empty one is "[no stack]". */
static char *folded_text(struct tp_export *x, const struct tp_prof_stack *st) {
  char *text = NULL;
  size_t len = 0;
  FILE *mem = open_memstream(&text, &len);
  if (!mem) return NULL;
  bool first = true;
  if (st->truncated || st->depth == 0) {
    fputs(st->depth ? "[truncated]" : "[no stack]", mem);
    first = false;
  }
  for (uint32_t d = st->depth; d-- > 0;) {
    const struct tp_symbol *sym = tp_export_symbol(x, st->frames[d]);
    if (!first) fputc(';', mem);
    put_folded_name(mem, sym ? sym->display : "?");
    first = false;
  }
  return fclose(mem) == 0 ? text : (free(text), NULL);
}

/* One line per distinct folded stack, sorted: sites of every tier and tenant,
 * and stacks that differ only in addresses within the same functions, summed. */
static int export_folded(struct tp_export *x, enum folded_value which, FILE *out) {
  const struct tp_profile *p = x->profile;
  double *per_stack = calloc(p->n_stacks + 1, sizeof *per_stack);
  struct folded_line *lines = calloc(p->n_stacks + 1, sizeof *lines);
  size_t n = 0;
  int status = per_stack && lines ? 0 : -1;
  for (size_t i = 0; i < p->n_sites && status == 0; i++) per_stack[p->sites[i].stack] += site_value(&p->sites[i], which);
  for (size_t s = 0; s < p->n_stacks && status == 0; s++) {
    if (per_stack[s] <= 0) continue;
    lines[n].value = per_stack[s];
    if (!(lines[n++].text = folded_text(x, &p->stacks[s]))) status = -1;
  }
  if (status == 0) qsort(lines, n, sizeof *lines, by_text);
  double carry = 0;
  for (size_t i = 0; i < n && status == 0; i++) {
    double value = lines[i].value;
    while (i + 1 < n && strcmp(lines[i].text, lines[i + 1].text) == 0) value += lines[++i].value;
    int64_t rounded = tp_export_round(value, &carry);
    if (rounded > 0) fprintf(out, "%s %" PRId64 "\n", lines[i].text, rounded);
  }
  for (size_t i = 0; i < n; i++) free(lines[i].text);
  free(lines);
  free(per_stack);
  return status;
}

/* ---- json ------------------------------------------------------------------ */

/* A JSON number: estimates are finite, but never write NaN. */
static void put_json_number(FILE *out, double v) {
  if (!isfinite(v)) v = 0;
  if (v == floor(v) && fabs(v) < 9e15) fprintf(out, "%.0f", v);
  else fprintf(out, "%.6f", v);
}

/* Members after the first of an object: ', "KEY": VALUE'. */
static void put_json_string_member(FILE *out, const char *key, const char *v) {
  fprintf(out, ", \"%s\": ", key);
  tp_json_string(out, v);
}

static void put_json_number_member(FILE *out, const char *key, double v) {
  fprintf(out, ", \"%s\": ", key);
  put_json_number(out, v);
}

/* A site's estimates (or their totals). */
static void put_json_estimates(FILE *out, const struct tp_prof_site *s) {
  put_json_number_member(out, "allocs", s->allocs);
  put_json_number_member(out, "bytes", s->bytes);
  put_json_number_member(out, "live_allocs", s->live_allocs);
  put_json_number_member(out, "live_bytes", s->live_bytes);
}

static int by_bytes_desc(const void *a, const void *b, void *profile) {
  const struct tp_prof_site *x = &((const struct tp_profile *)profile)->sites[*(const uint32_t *)a];
  const struct tp_prof_site *y = &((const struct tp_profile *)profile)->sites[*(const uint32_t *)b];
  if (x->bytes != y->bytes) return x->bytes < y->bytes ? 1 : -1;
  return *(const uint32_t *)a < *(const uint32_t *)b ? -1 : 1;
}

static void json_processes(const struct tp_profile *p, FILE *out) {
  fputs("  \"processes\": [", out);
  for (size_t i = 0; i < p->n_processes; i++) {
    const struct tp_prof_process *pr = &p->processes[i];
    fprintf(out, "%s\n    {\"pid\": %" PRIu32 ", \"ppid\": %" PRIu32, i ? "," : "", pr->pid, pr->ppid);
    put_json_string_member(out, "executable", pr->executable);
    put_json_string_member(out, "argv", pr->argv);
    put_json_string_member(out, "hostname", pr->hostname);
    put_json_string_member(out, "trace", pr->source);
    put_json_string_member(out, "exec", pr->exec_path); /* null: not replaced by an exec */
    fprintf(out,
            ", \"start_unix_ns\": %" PRIu64 ", \"duration_us\": %" PRIu64 ", \"sample_rate\": %g"
            ", \"sample_bytes\": %" PRIu64 ", \"samples\": %" PRIu64 ", \"allocations\": %" PRIu64
            ", \"validate\": %s, \"ended\": %s, \"truncated\": %s}",
            pr->start_unix_ns, pr->duration_us, pr->sample_rate, pr->sample_bytes, pr->samples, pr->allocations,
            pr->validate ? "true" : "false", pr->ended ? "true" : "false", pr->truncated ? "true" : "false");
  }
  fputs(p->n_processes ? "\n  ],\n" : "],\n", out);
}

static void json_modules(const struct tp_profile *p, FILE *out) {
  fputs("  \"modules\": [", out);
  for (size_t i = 0; i < p->n_modules; i++) {
    const struct tp_prof_module *m = &p->modules[i];
    fprintf(out, "%s\n    {\"path\": ", i ? "," : "");
    tp_json_string(out, m->path);
    fputs(", \"build_id\": \"", out);
    for (size_t b = 0; b < m->build_id_len && b < sizeof m->build_id; b++) fprintf(out, "%02x", m->build_id[b]);
    fputs("\"}", out);
  }
  fputs(p->n_modules ? "\n  ],\n" : "],\n", out);
}

/* The frames the sites use, numbered in order of first use (json_index). */
static void json_frames(struct tp_export *x, const uint32_t *order, uint32_t *json_index, FILE *out) {
  const struct tp_profile *p = x->profile;
  uint32_t n = 0;
  fputs("  \"frames\": [", out);
  for (size_t i = 0; i < p->n_sites; i++) {
    const struct tp_prof_stack *st = &p->stacks[p->sites[order[i]].stack];
    for (uint32_t d = 0; d < st->depth; d++) {
      uint32_t f = st->frames[d];
      if (json_index[f] != UINT32_MAX) continue;
      json_index[f] = n;
      const struct tp_prof_frame *fr = &p->frames[f];
      const struct tp_symbol *sym = tp_export_symbol(x, f);
      fprintf(out, "%s\n    {\"module\": ", n++ ? "," : "");
      if (fr->module < p->n_modules) fprintf(out, "%" PRIu32, fr->module);
      else fputs("null", out);
      fprintf(out, ", \"address\": \"0x%" PRIx64 "\", \"jit\": %s", fr->addr, fr->jit ? "true" : "false");
      put_json_string_member(out, "function", sym ? sym->function : NULL);
      put_json_string_member(out, "file", sym ? sym->file : NULL);
      fprintf(out, ", \"line\": %" PRIu32, sym ? sym->line : 0);
      put_json_string_member(out, "name", sym ? sym->display : "?");
      fputc('}', out);
    }
  }
  fputs(n ? "\n  ],\n" : "],\n", out);
}

static int export_json(struct tp_export *x, FILE *out) {
  const struct tp_profile *p = x->profile;
  uint32_t *order = malloc((p->n_sites + 1) * sizeof *order);
  uint32_t *json_index = malloc((p->n_frames + 1) * sizeof *json_index);
  if (!order || !json_index) {
    free(order);
    free(json_index);
    return -1;
  }
  for (size_t i = 0; i < p->n_sites; i++) order[i] = (uint32_t)i;
  qsort_r(order, p->n_sites, sizeof *order, by_bytes_desc, (void *)p);
  memset(json_index, 0xff, (p->n_frames + 1) * sizeof *json_index);

  struct tp_prof_site total = {0};
  for (size_t i = 0; i < p->n_sites; i++) {
    total.allocs += p->sites[i].allocs;
    total.bytes += p->sites[i].bytes;
    total.live_allocs += p->sites[i].live_allocs;
    total.live_bytes += p->sites[i].live_bytes;
  }
  fputs("{\n  \"format\": \"tierpool-export\",\n  \"version\": 1,\n  \"traces\": [", out);
  for (size_t i = 0; i < x->n_traces; i++) {
    if (i) fputs(", ", out);
    tp_json_string(out, x->traces[i]);
  }
  fputs("],\n", out);
  json_processes(p, out);
  fprintf(out, "  \"totals\": {\"samples\": %" PRIu64, p->samples);
  put_json_estimates(out, &total);
  fprintf(out, ", \"exact_allocs\": %" PRIu64 ", \"exact_bytes\": %" PRIu64 "},\n", tp_profile_total_allocs(p),
          tp_profile_total_bytes(p));
  json_modules(p, out);
  json_frames(x, order, json_index, out);
  fputs("  \"sites\": [", out);
  for (size_t i = 0; i < p->n_sites; i++) {
    const struct tp_prof_site *s = &p->sites[order[i]];
    const struct tp_prof_stack *st = &p->stacks[s->stack];
    char tier_buf[32];
    fprintf(out, "%s\n    {\"tier\": \"%s\"", i ? "," : "", tp_export_tier_name(s->tier, tier_buf, sizeof tier_buf));
    put_json_string_member(out, "tenant", s->tenant < p->n_tenants ? p->tenants[s->tenant] : "default");
    fprintf(out, ", \"samples\": %" PRIu64, s->samples);
    put_json_estimates(out, s);
    fprintf(out, ", \"truncated\": %s, \"stack\": [", st->truncated ? "true" : "false");
    for (uint32_t d = 0; d < st->depth; d++) fprintf(out, "%s%" PRIu32, d ? ", " : "", json_index[st->frames[d]]);
    fputs("]}", out);
  }
  fputs(p->n_sites ? "\n  ]\n}\n" : "]\n}\n", out);
  free(order);
  free(json_index);
  return 0;
}

/* ---- the command ----------------------------------------------------------- */

struct export_options {
  enum export_format format;
  enum folded_value value;
  bool symbolize;
  const char *output;
  char **traces;
  size_t n_traces;
};

static int export_profile(const struct export_options *o, struct tp_outfile *out) {
  struct tp_profile p;
  tp_profile_init(&p);
  int status = cli_load_profile("export", o->traces, o->n_traces, &p);
  struct tp_export x = {.profile = &p, .traces = o->traces, .n_traces = o->n_traces};
  if (status == 0 && o->symbolize && !(x.symbols = tp_symbolizer_new(&p)))
    fprintf(stderr, "tierpool export: warning: cannot symbolize (frames named module+offset)\n");
  char err[256] = "out of memory";
  if (status == 0) {
    int got = o->format == FORMAT_PPROF    ? tp_export_pprof(&x, out->file, err, sizeof err)
              : o->format == FORMAT_FOLDED ? export_folded(&x, o->value, out->file)
                                           : export_json(&x, out->file);
    if (got < 0) {
      fprintf(stderr, "tierpool export: %s: %s\n", o->output ? o->output : "<stdout>", err);
      status = EXIT_USAGE;
    }
  }
  tp_export_fini(&x);
  tp_profile_free(&p);
  return status;
}

static int parse_options(int argc, char **argv, struct export_options *o) {
  bool options_done = false;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *value = NULL;
    if (options_done || a[0] != '-' || a[1] == '\0') {
      o->traces[o->n_traces++] = argv[i];
      continue;
    }
    if (strcmp(a, "--") == 0) {
      options_done = true;
      continue;
    }
    if (cli_is_help(a)) {
      export_help();
      return 0;
    }
    if (strcmp(a, "--no-symbolize") == 0) {
      o->symbolize = false;
      continue;
    }
    /* The options that take a value: "--opt VALUE" or "--opt=VALUE". */
    static const char *const with_value[] = {"--format", "--value", "--output", "-o"};
    const char *name = NULL;
    for (size_t k = 0; k < sizeof with_value / sizeof *with_value && !name; k++) {
      int got = cli_option(argc, argv, &i, with_value[k], &value);
      if (got < 0) return cli_error("export", "%s needs a value (see 'tierpool export --help')", a);
      if (got > 0) name = with_value[k];
    }
    if (!name) {
      fprintf(stderr, "tierpool export: unknown option '%s' (see 'tierpool export --help')\n", a);
      return EXIT_USAGE;
    }
    if (strcmp(name, "--format") == 0) {
      static const char *const formats[] = {"", "pprof", "folded", "json", "csv"};
      o->format = FORMAT_NONE;
      for (int f = FORMAT_PPROF; f <= FORMAT_CSV; f++)
        if (strcmp(value, formats[f]) == 0) o->format = (enum export_format)f;
      if (o->format == FORMAT_NONE) {
        fprintf(stderr, "tierpool export: bad --format '%s' (want pprof, folded, json or csv)\n", value);
        return EXIT_USAGE;
      }
    } else if (strcmp(name, "--value") == 0) {
      static const char *const values[] = {"bytes", "count", "inuse-bytes", "inuse-count"};
      int found = -1;
      for (int v = 0; v < 4; v++)
        if (strcmp(value, values[v]) == 0) found = v;
      if (found < 0) {
        fprintf(stderr, "tierpool export: bad --value '%s' (want bytes, count, inuse-bytes or inuse-count)\n",
                value);
        return EXIT_USAGE;
      }
      o->value = (enum folded_value)found;
    } else {
      o->output = value;
    }
  }
  return -1; /* go on */
}

int cmd_export(int argc, char **argv) {
  struct export_options o = {.value = VALUE_BYTES, .symbolize = true};
  o.traces = calloc((size_t)argc, sizeof *o.traces);
  if (!o.traces) {
    fprintf(stderr, "tierpool export: out of memory\n");
    return EXIT_USAGE;
  }
  int status = parse_options(argc, argv, &o);
  if (status < 0 && o.format == FORMAT_NONE) {
    fprintf(stderr, "tierpool export: no --format given (pprof, folded, json or csv)\n");
    status = EXIT_USAGE;
  } else if (status < 0 && o.n_traces == 0) {
    fprintf(stderr, "tierpool export: no trace given (see 'tierpool export --help')\n");
    status = EXIT_USAGE;
  } else if (status < 0 && o.format == FORMAT_PPROF && (!o.output || strcmp(o.output, "-") == 0) &&
             isatty(STDOUT_FILENO)) {
    fprintf(stderr, "tierpool export: pprof output is binary: give -o FILE or redirect stdout\n");
    status = EXIT_USAGE;
  }
  if (status >= 0) {
    free(o.traces);
    return status;
  }
  char err[1024];
  struct tp_outfile out;
  if (tp_outfile_open(&out, o.output ? o.output : "-", err, sizeof err) < 0) {
    fprintf(stderr, "tierpool export: %s\n", err);
    free(o.traces);
    return EXIT_USAGE;
  }
  if (cli_skip_unstarted("export", o.traces, &o.n_traces) != 0) {
    status = EXIT_USAGE;
  } else if (o.format == FORMAT_CSV) {
    if (tp_export_csv(o.traces, o.n_traces, o.symbolize, out.file, err, sizeof err) < 0) {
      fprintf(stderr, "tierpool export: %s\n", err);
      status = EXIT_USAGE;
    } else {
      status = 0;
    }
  } else {
    status = export_profile(&o, &out);
  }
  if (status == 0 && tp_outfile_commit(&out, err, sizeof err) < 0) {
    fprintf(stderr, "tierpool export: %s\n", err);
    status = EXIT_USAGE;
  }
  if (status != 0) tp_outfile_abort(&out);
  free(o.traces);
  return status;
}
