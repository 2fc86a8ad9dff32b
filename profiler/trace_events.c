/* trace_events.c — a trace as a stream of events (trace_events.h).
 *
 * The columns of a batch are read back as writer.c wrote them: a batch's
 * first id and time are deltas from 0, later ones from the previous element
 * of the same batch; an empty weight column means 1/sample_rate of the
 * section's Process (count mode), empty tenant and usable columns mean 0, and
 * a free's stack is there in validation mode only.  A column shorter than the
 * batch (a damaged or foreign writer) reads as 0 past its end. */
#include "trace_events.h"

#include <stdio.h>
#include <string.h>

/* What the events of a section need from its Process record. */
struct section {
  double default_weight;
};

static int scan_samples(const struct section *sec, const Tierpool__Trace__Samples *s,
                        const struct tp_trace_visitor *v, void *ctx) {
  uint64_t id = 0, us = 0;
  for (size_t i = 0; i < s->n_id_delta; i++) {
    id += s->id_delta[i];
    us += i < s->n_time_delta_us ? s->time_delta_us[i] : 0;
    struct tp_sample_event e = {
        .id = id,
        .time_us = us,
        .size = i < s->n_size ? s->size[i] : 0,
        .usable = i < s->n_usable ? s->usable[i] : 0,
        .weight = i < s->n_weight ? s->weight[i] : sec->default_weight,
        .stack = i < s->n_stack ? s->stack[i] : 0,
        .thread = i < s->n_thread ? s->thread[i] : 0,
        .tenant = i < s->n_tenant ? s->tenant[i] : 0,
        .tier = i < s->n_tier ? s->tier[i] : 0,
        .align_log2 = i < s->n_align_log2 ? s->align_log2[i] : 4,
    };
    int stop = v->sample(ctx, &e);
    if (stop) return stop;
  }
  return 0;
}

static int scan_frees(const Tierpool__Trace__Frees *f, const struct tp_trace_visitor *v, void *ctx) {
  uint64_t id = 0, us = 0;
  for (size_t i = 0; i < f->n_id_delta; i++) {
    id += (uint64_t)f->id_delta[i]; /* sint64: ids may go down within a batch */
    us += i < f->n_time_delta_us ? f->time_delta_us[i] : 0;
    struct tp_free_event e = {id, us, i < f->n_stack ? f->stack[i] : UINT32_MAX};
    int stop = v->free(ctx, &e);
    if (stop) return stop;
  }
  return 0;
}

static int scan_mmaps(const Tierpool__Trace__MmapCalls *m, const struct tp_trace_visitor *v, void *ctx) {
  uint64_t us = 0;
  for (size_t i = 0; i < m->n_kind; i++) {
    us += i < m->n_time_delta_us ? m->time_delta_us[i] : 0;
    struct tp_mmap_event e = {
        .kind = m->kind[i],
        .time_us = us,
        .addr = i < m->n_addr ? m->addr[i] : 0,
        .length = i < m->n_length ? m->length[i] : 0,
        .old_addr = i < m->n_old_addr ? m->old_addr[i] : 0,
        .prot = i < m->n_prot ? m->prot[i] : 0,
        .flags = i < m->n_flags ? m->flags[i] : 0,
        .stack = i < m->n_stack ? m->stack[i] : 0,
        .thread = i < m->n_thread ? m->thread[i] : 0,
    };
    int stop = v->mmap(ctx, &e);
    if (stop) return stop;
  }
  return 0;
}

static int scan_record(struct section *sec, const Tierpool__Trace__Record *rec, const struct tp_trace_visitor *v,
                       void *ctx) {
  if (v->record) {
    int stop = v->record(ctx, rec);
    if (stop) return stop;
  }
  switch (rec->kind_case) {
  case TIERPOOL__TRACE__RECORD__KIND_PROCESS:
    /* Byte mode (rate 0) writes its weights; a section without a rate counts each sample once. */
    sec->default_weight = rec->process->sample_rate > 0 ? 1.0 / rec->process->sample_rate : 1.0;
    return v->process ? v->process(ctx, rec->process) : 0;
  case TIERPOOL__TRACE__RECORD__KIND_MODULE: return v->module ? v->module(ctx, rec->module) : 0;
  case TIERPOOL__TRACE__RECORD__KIND_THREAD: return v->thread ? v->thread(ctx, rec->thread) : 0;
  case TIERPOOL__TRACE__RECORD__KIND_TENANT: return v->tenant ? v->tenant(ctx, rec->tenant) : 0;
  case TIERPOOL__TRACE__RECORD__KIND_STACK: return v->stack ? v->stack(ctx, rec->stack) : 0;
  case TIERPOOL__TRACE__RECORD__KIND_SAMPLES: return v->sample ? scan_samples(sec, rec->samples, v, ctx) : 0;
  case TIERPOOL__TRACE__RECORD__KIND_FREES: return v->free ? scan_frees(rec->frees, v, ctx) : 0;
  case TIERPOOL__TRACE__RECORD__KIND_MMAP_CALLS: return v->mmap ? scan_mmaps(rec->mmap_calls, v, ctx) : 0;
  case TIERPOOL__TRACE__RECORD__KIND_HISTOGRAM: return v->histogram ? v->histogram(ctx, rec->histogram) : 0;
  case TIERPOOL__TRACE__RECORD__KIND_SNAPSHOT: return v->snapshot ? v->snapshot(ctx, rec->snapshot) : 0;
  case TIERPOOL__TRACE__RECORD__KIND_JIT_RANGE: return v->jit_range ? v->jit_range(ctx, rec->jit_range) : 0;
  case TIERPOOL__TRACE__RECORD__KIND_PERF_MAP: return v->perf_map ? v->perf_map(ctx, rec->perf_map) : 0;
  case TIERPOOL__TRACE__RECORD__KIND_END: return v->end ? v->end(ctx, rec->end) : 0;
  case TIERPOOL__TRACE__RECORD__KIND_EXEC: return v->exec ? v->exec(ctx, rec->exec) : 0;
  default: return 0; /* the Header, and kinds of a newer format */
  }
}

int tp_trace_scan(const char *path, const struct tp_trace_visitor *v, void *ctx, struct tp_scan_result *res,
                  char *err, size_t errlen) {
  struct tp_scan_result ignored;
  if (!res) res = &ignored;
  memset(res, 0, sizeof *res);
  if (errlen) err[0] = '\0';
  tp_trace_reader *r = tp_trace_open(path, err, errlen);
  if (!r) return -1;
  struct section sec = {1.0};
  Tierpool__Trace__Record *rec;
  int got = 0, stop = 0;
  while (!stop && (got = tp_trace_next(r, &rec)) > 0) {
    stop = scan_record(&sec, rec, v, ctx);
    tp_trace_record_free(rec);
  }
  res->records = tp_trace_records(r);
  res->frames = tp_trace_frames(r);
  res->truncated = tp_trace_truncated(r);
  if (!stop && got < 0) {
    snprintf(err, errlen, "%s", tp_trace_error(r));
    stop = -1;
  }
  tp_trace_close(r);
  return stop;
}
