/* export_csv.c — `tierpool export --format csv`: one row per sampled
 * allocation, streamed from the traces (trace_events.h), for spreadsheets and
 * SQL engines.
 *
 * A sample's row is written when its free is seen (with its lifetime), or when
 * its process section ends (still live: freed=0, no lifetime), so memory holds
 * only the live samples, never the trace.  Stacks are named like the other
 * formats' frames (frames.h); that needs every stack's frames before the
 * symbolizer is made, so each trace is read twice: once for its modules, JIT
 * code and stacks, then for its samples and frees. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "export.h"
#include "frames.h"
#include "live_table.h"
#include "trace_events.h"

/* Sections bigger than this in thread or tenant ids are damaged: their ids are
 * printed as numbers rather than looked up. */
#define CSV_MAX_ID (1u << 20)

static const char csv_header[] = "pid,sample_id,time_us,size,usable,align,tier,tenant,thread,weight,freed,"
                                 "lifetime_us,stack\n";

/* ---- pass 1: the stacks of each section, as stacks of a profile ------------ */

struct stack_ref {
  uint32_t id, stack;    /* section stack id -> profile stack */
};

struct section_stacks {
  struct stack_ref *refs;  /* sorted by id */
  size_t n;
};

struct stack_pass {
  struct tp_profile *profile;
  struct tp_frames *frames;                 /* of the open section */
  struct section_stacks *sections;          /* all traces' */
  size_t n_sections;
  const char *path;
  char error[256];                          /* why the scan stopped */
  bool in_section;
};

/* Stops the scan (the visitors return it): sp->error says why. */
static int stop(struct stack_pass *sp, const char *why) {
  snprintf(sp->error, sizeof sp->error, "%s: %s", sp->path, why);
  return 1;
}

static int by_id(const void *a, const void *b) {
  const struct stack_ref *x = a, *y = b;
  return x->id < y->id ? -1 : x->id > y->id;
}

/* The section ends: its stacks become profile stacks, named as every other
 * format names them (frames.h). */
static int close_section(struct stack_pass *sp) {
  int rc = 0;
  if (sp->in_section) {
    tp_frames_resolve(sp->frames, sp->profile);
    size_t n = tp_frames_count(sp->frames);
    struct section_stacks sec = {malloc((n + 1) * sizeof(struct stack_ref)), n};
    struct section_stacks *all = realloc(sp->sections, (sp->n_sections + 1) * sizeof *all);
    if (all) sp->sections = all;
    if (sec.refs && all) {
      for (size_t i = 0; i < n; i++) {
        sec.refs[i].id = tp_frames_stack_id(sp->frames, i);
        sec.refs[i].stack = tp_frames_stack(sp->frames, sp->profile, sec.refs[i].id);
      }
      qsort(sec.refs, sec.n, sizeof *sec.refs, by_id);
      sp->sections[sp->n_sections++] = sec;
    } else {
      free(sec.refs);
      rc = stop(sp, "out of memory");
    }
  }
  sp->in_section = false;
  tp_frames_clear(sp->frames);
  return rc;
}

/* A Process record opens a section; so does any other record (but the
 * Header) before a trace's first Process, as the loader does. */
static int pass1_record(void *ctx, const Tierpool__Trace__Record *rec) {
  struct stack_pass *sp = ctx;
  if (rec->kind_case == TIERPOOL__TRACE__RECORD__KIND_PROCESS && close_section(sp)) return 1;
  if (rec->kind_case != TIERPOOL__TRACE__RECORD__KIND_HEADER) sp->in_section = true;
  return 0;
}

static int pass1_module(void *ctx, const Tierpool__Trace__Module *m) {
  struct stack_pass *sp = ctx;
  tp_frames_add_module(sp->frames, sp->profile, m);
  return 0;
}

static int pass1_jit_range(void *ctx, const Tierpool__Trace__JitRange *range) {
  tp_frames_add_jit_range(((struct stack_pass *)ctx)->frames, range);
  return 0;
}

static int pass1_perf_map(void *ctx, const Tierpool__Trace__PerfMap *text) {
  tp_frames_add_perf_map(((struct stack_pass *)ctx)->frames, text);
  return 0;
}

static int pass1_stack(void *ctx, const Tierpool__Trace__Stack *s) {
  struct stack_pass *sp = ctx;
  return tp_frames_add_stack(sp->frames, s) ? 0 : stop(sp, "corrupt trace: a stack of 2^32 frames or more");
}

/* ---- pass 2: the rows ------------------------------------------------------ */

struct row_pass {
  FILE *out;
  struct tp_export names;
  char **stack_names;                 /* per profile stack, made on first use */
  const struct section_stacks *sections;
  size_t n_sections, section;         /* section: 1-based index of the open one (0: none) */
  bool in_section;
  uint32_t pid;
  uint32_t *tids;                     /* thread id -> tid (0: unknown) */
  char **tenants;                     /* tenant id -> name */
  size_t n_tids, n_tenants;
  struct tp_live_table live;          /* of struct tp_sample_event */
  uint64_t rows;
  bool failed;
};

/* A CSV field: quoted when it holds a comma, a quote or a line break. */
static void put_field(FILE *out, const char *s) {
  if (!strpbrk(s, ",\"\n\r")) {
    fputs(s, out);
    return;
  }
  fputc('"', out);
  for (; *s; s++) {
    if (*s == '"') fputc('"', out);
    fputc(*s, out);
  }
  fputc('"', out);
}

/* "inner;...;outer" names of a section's stack id, or "" when it is unknown. */
static const char *stack_name(struct row_pass *rp, uint32_t id) {
  if (rp->section == 0 || rp->section > rp->n_sections) return "";
  const struct section_stacks *sec = &rp->sections[rp->section - 1];
  struct stack_ref key = {id, 0};
  const struct stack_ref *ref = bsearch(&key, sec->refs, sec->n, sizeof key, by_id);
  if (!ref) return "";
  if (rp->stack_names[ref->stack]) return rp->stack_names[ref->stack];
  const struct tp_prof_stack *st = &rp->names.profile->stacks[ref->stack];
  char *text = NULL;
  size_t len = 0;
  FILE *mem = open_memstream(&text, &len);
  if (!mem) return "";
  for (uint32_t d = 0; d < st->depth; d++) {
    const struct tp_symbol *sym = tp_export_symbol(&rp->names, st->frames[d]);
    if (d) fputc(';', mem);
    for (const char *c = sym ? sym->display : "?"; *c; c++) fputc(*c == ';' ? ':' : *c, mem);
  }
  if (st->truncated) fputs(st->depth ? ";[truncated]" : "[truncated]", mem);
  fclose(mem);
  if (!text) return "";
  return rp->stack_names[ref->stack] = text;
}

static void put_row(struct row_pass *rp, const struct tp_sample_event *s, bool freed, uint64_t free_us) {
  char tier_buf[32];
  fprintf(rp->out, "%" PRIu32 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%s,", rp->pid, s->id,
          s->time_us, s->size, s->usable, s->align_log2 < 64 ? UINT64_C(1) << s->align_log2 : 0,
          tp_export_tier_name(s->tier, tier_buf, sizeof tier_buf));
  if (s->tenant < rp->n_tenants && rp->tenants[s->tenant]) put_field(rp->out, rp->tenants[s->tenant]);
  else if (s->tenant == 0) fputs("default", rp->out);
  else fprintf(rp->out, "tenant-%" PRIu32, s->tenant); /* as the other exports name a tenant the trace never named */
  /* The thread's tid; empty when the trace has no Thread record for it (its
   * index in the trace is no tid). */
  uint32_t tid = s->thread < rp->n_tids ? rp->tids[s->thread] : 0;
  if (tid) fprintf(rp->out, ",%" PRIu32 ",%.10g,%d,", tid, s->weight, (int)freed);
  else fprintf(rp->out, ",,%.10g,%d,", s->weight, (int)freed);
  if (freed) fprintf(rp->out, "%" PRIu64, free_us > s->time_us ? free_us - s->time_us : 0);
  fputc(',', rp->out);
  put_field(rp->out, stack_name(rp, s->stack));
  fputc('\n', rp->out);
  rp->rows++;
}

static int by_sample_id(const void *a, const void *b) {
  const struct tp_sample_event *x = a, *y = b;
  return x->id < y->id ? -1 : x->id > y->id;
}

/* The section ends: its samples never freed get their rows, by id. */
static void flush_live(struct row_pass *rp) {
  struct tp_live_table *t = &rp->live;
  struct tp_sample_event *rest = malloc((t->count + 1) * sizeof *rest);
  if (!rest) {
    rp->failed = true;
    return;
  }
  size_t n = 0;
  for (size_t i = 0; i < t->cap; i++)
    if (t->used[i]) rest[n++] = *(const struct tp_sample_event *)tp_live_slot(t, i);
  qsort(rest, n, sizeof *rest, by_sample_id);
  for (size_t i = 0; i < n; i++) put_row(rp, &rest[i], false, 0);
  free(rest);
  tp_live_clear(t);
}

static void reset_ids(struct row_pass *rp) {
  for (size_t i = 0; i < rp->n_tenants; i++) free(rp->tenants[i]);
  free(rp->tenants);
  free(rp->tids);
  rp->tenants = NULL;
  rp->tids = NULL;
  rp->n_tenants = rp->n_tids = 0;
}

/* Sections open as in the first pass (pass1_record); an implicit one has pid 0. */
static int pass2_record(void *ctx, const Tierpool__Trace__Record *rec) {
  struct row_pass *rp = ctx;
  bool process = rec->kind_case == TIERPOOL__TRACE__RECORD__KIND_PROCESS;
  if (process) {
    flush_live(rp);
    reset_ids(rp);
    rp->in_section = false;
  }
  if (rec->kind_case != TIERPOOL__TRACE__RECORD__KIND_HEADER && !rp->in_section) {
    rp->in_section = true;
    rp->section++;
    rp->pid = process ? rec->process->pid : 0;
  }
  return rp->failed;
}

/* Makes (*array)[id] exist (zeroed when new); false for ids past CSV_MAX_ID. */
static bool grow_ids(void **array, size_t *n, uint32_t id, size_t elem) {
  if (id < *n) return true;
  if (id >= CSV_MAX_ID) return false;
  size_t cap = *n ? *n : 16;
  while (cap <= id) cap *= 2;
  void *grown = realloc(*array, cap * elem);
  if (!grown) return false;
  memset((char *)grown + *n * elem, 0, (cap - *n) * elem);
  *array = grown;
  *n = cap;
  return true;
}

static int pass2_thread(void *ctx, const Tierpool__Trace__Thread *thread) {
  struct row_pass *rp = ctx;
  if (grow_ids((void **)&rp->tids, &rp->n_tids, thread->id, sizeof *rp->tids)) rp->tids[thread->id] = thread->tid;
  return 0;
}

static int pass2_tenant(void *ctx, const Tierpool__Trace__Tenant *tenant) {
  struct row_pass *rp = ctx;
  if (!tenant->name || !grow_ids((void **)&rp->tenants, &rp->n_tenants, tenant->id, sizeof *rp->tenants)) return 0;
  free(rp->tenants[tenant->id]);
  rp->tenants[tenant->id] = strdup(tenant->name);
  return 0;
}

static int pass2_sample(void *ctx, const struct tp_sample_event *sample) {
  struct row_pass *rp = ctx;
  struct tp_sample_event earlier;
  /* An id seen twice (a damaged trace): the first one's row is written as is. */
  if (tp_live_take(&rp->live, sample->id, &earlier)) put_row(rp, &earlier, false, 0);
  tp_live_put(&rp->live, sample);
  return 0;
}

static int pass2_free(void *ctx, const struct tp_free_event *f) {
  struct row_pass *rp = ctx;
  struct tp_sample_event s;
  if (tp_live_take(&rp->live, f->id, &s)) put_row(rp, &s, true, f->time_us);
  return 0;
}

static int pass2_end(void *ctx, const Tierpool__Trace__End *end) {
  (void)end;
  flush_live(ctx);
  return ((struct row_pass *)ctx)->failed;
}

/* ---- both passes ----------------------------------------------------------- */

int tp_export_csv(char **traces, size_t n_traces, bool symbolize, FILE *out, char *err, size_t errlen) {
  struct tp_profile profile;
  tp_profile_init(&profile);
  struct stack_pass sp = {.profile = &profile, .frames = tp_frames_new()};
  struct tp_trace_visitor v1 = {.record = pass1_record, .module = pass1_module, .jit_range = pass1_jit_range,
                                .perf_map = pass1_perf_map, .stack = pass1_stack};
  struct tp_scan_result res;
  int status = 0;
  for (size_t i = 0; i < n_traces && status == 0; i++) {
    sp.path = traces[i];
    int got = tp_trace_scan(traces[i], &v1, &sp, &res, err, errlen);
    if (close_section(&sp) || got > 0) {
      snprintf(err, errlen, "%s", sp.error);
      status = -1;
    } else if (got < 0 && res.truncated) {
      cli_warn_truncated("export", err);
    } else if (got != 0) {
      status = -1;
    }
  }

  struct row_pass rp = {.out = out,
                        .names = {.profile = &profile, .traces = traces, .n_traces = n_traces},
                        .sections = sp.sections,
                        .n_sections = sp.n_sections};
  tp_live_init(&rp.live, sizeof(struct tp_sample_event));
  rp.stack_names = calloc(profile.n_stacks + 1, sizeof *rp.stack_names);
  if (status == 0 && !rp.stack_names) {
    snprintf(err, errlen, "out of memory");
    status = -1;
  }
  if (status == 0 && symbolize && !(rp.names.symbols = tp_symbolizer_new(&profile)))
    fprintf(stderr, "tierpool export: warning: cannot symbolize (frames named module+offset)\n");
  struct tp_trace_visitor v2 = {.record = pass2_record, .thread = pass2_thread, .tenant = pass2_tenant,
                                .sample = pass2_sample, .free = pass2_free, .end = pass2_end};
  if (status == 0) fputs(csv_header, out);
  for (size_t i = 0; i < n_traces && status == 0; i++) {
    int got = tp_trace_scan(traces[i], &v2, &rp, &res, err, errlen);
    flush_live(&rp);
    reset_ids(&rp);
    rp.in_section = false;
    if (rp.failed) {
      snprintf(err, errlen, "%s: out of memory", traces[i]);
      status = -1;
    } else if (got != 0 && !(got < 0 && res.truncated)) {
      status = -1; /* the file changed since the first pass */
    }
  }
  if (status == 0 && ferror(out)) {
    snprintf(err, errlen, "write error");
    status = -1;
  }

  for (size_t i = 0; rp.stack_names && i < profile.n_stacks; i++) free(rp.stack_names[i]);
  free(rp.stack_names);
  tp_live_free(&rp.live);
  tp_export_fini(&rp.names);
  for (size_t i = 0; i < sp.n_sections; i++) free(sp.sections[i].refs);
  free(sp.sections);
  tp_frames_free(sp.frames);
  tp_profile_free(&profile);
  return status;
}
