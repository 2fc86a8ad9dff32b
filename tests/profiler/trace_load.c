/* trace_load.c — reading a whole trace into a struct tl_trace (trace_load.h). */
#include "trace_load.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Grows *array (of elem bytes each) so that index n fits. */
static void *grow(void *array, size_t *cap, size_t n, size_t elem) {
  if (n < *cap) return array;
  size_t c = *cap ? *cap * 2 : 64;
  while (c <= n) c *= 2;
  void *bigger = realloc(array, c * elem);
  if (!bigger) {
    fprintf(stderr, "trace_load: out of memory\n");
    exit(2);
  }
  memset((char *)bigger + *cap * elem, 0, (c - *cap) * elem);
  *cap = c;
  return bigger;
}

static void add_samples(struct tl_trace *t, size_t *cap, const Tierpool__Trace__Samples *s) {
  uint64_t id = 0, us = 0;
  for (size_t i = 0; i < s->n_id_delta; i++) {
    t->samples = grow(t->samples, cap, t->n_samples, sizeof *t->samples);
    struct tl_sample *x = &t->samples[t->n_samples++];
    id += s->id_delta[i];
    us += i < s->n_time_delta_us ? s->time_delta_us[i] : 0;
    x->id = id, x->time_us = us;
    x->size = i < s->n_size ? s->size[i] : 0;
    x->usable = i < s->n_usable ? s->usable[i] : 0;
    x->stack = i < s->n_stack ? s->stack[i] : 0;
    x->thread = i < s->n_thread ? s->thread[i] : 0;
    x->tier = i < s->n_tier ? s->tier[i] : 0;
    x->align_log2 = i < s->n_align_log2 ? s->align_log2[i] : 0;
  }
}

static int by_id(const void *a, const void *b) {
  uint64_t x = ((const struct tl_sample *)a)->id, y = ((const struct tl_sample *)b)->id;
  return x < y ? -1 : x > y;
}

struct tl_sample *tl_sample_by_id(const struct tl_trace *t, uint64_t id) {
  struct tl_sample key = {.id = id};
  if (!t->n_samples) return NULL;
  return bsearch(&key, t->samples, t->n_samples, sizeof key, by_id);
}

/* After all samples are in: each free finds its sample (frees may come in a
 * later batch than their sample). */
static void match_frees(struct tl_trace *t) {
  if (t->n_samples) qsort(t->samples, t->n_samples, sizeof *t->samples, by_id);
  for (size_t r = 0; r < t->n_records; r++) {
    if (t->records[r]->kind_case != TIERPOOL__TRACE__RECORD__KIND_FREES) continue;
    const Tierpool__Trace__Frees *f = t->records[r]->frees;
    uint64_t id = 0, us = 0;
    for (size_t i = 0; i < f->n_id_delta; i++) {
      id += (uint64_t)f->id_delta[i];
      us += i < f->n_time_delta_us ? f->time_delta_us[i] : 0;
      t->n_frees++;
      struct tl_sample *s = tl_sample_by_id(t, id);
      if (!s) {
        t->unmatched_frees++;
        continue;
      }
      s->freed = true;
      s->free_us = us;
    }
  }
}

static void add_record(struct tl_trace *t, Tierpool__Trace__Record *rec, size_t *sample_cap, size_t *module_cap,
                       size_t *stack_cap) {
  switch (rec->kind_case) {
  case TIERPOOL__TRACE__RECORD__KIND_PROCESS:
    if (!t->processes++) t->process = rec->process;
    break;
  case TIERPOOL__TRACE__RECORD__KIND_MODULE:
    t->modules = grow(t->modules, module_cap, t->n_modules, sizeof *t->modules);
    t->modules[t->n_modules++] = rec->module;
    break;
  case TIERPOOL__TRACE__RECORD__KIND_STACK:
    t->stacks = grow(t->stacks, stack_cap, rec->stack->id, sizeof *t->stacks);
    t->stacks[rec->stack->id] = rec->stack;
    if (rec->stack->id >= t->n_stacks) t->n_stacks = rec->stack->id + 1;
    break;
  case TIERPOOL__TRACE__RECORD__KIND_SAMPLES: add_samples(t, sample_cap, rec->samples); break;
  case TIERPOOL__TRACE__RECORD__KIND_HISTOGRAM: {
    const Tierpool__Trace__Histogram *h = rec->histogram;
    for (size_t i = 0; i < h->n_bucket; i++) {
      uint32_t b = h->bucket[i];
      if (b >= TP_BUCKET_COUNT) continue;
      t->allocs[b] += i < h->n_allocs ? h->allocs[i] : 0;
      t->bytes[b] += i < h->n_bytes ? h->bytes[i] : 0;
      t->frees[b] += i < h->n_frees ? h->frees[i] : 0;
    }
    break;
  }
  case TIERPOOL__TRACE__RECORD__KIND_END: t->end = rec->end; break;
  default: break;
  }
}

int tl_load(const char *path, struct tl_trace *t) {
  memset(t, 0, sizeof *t);
  char err[512];
  tp_trace_reader *r = tp_trace_open(path, err, sizeof err);
  if (!r) {
    fprintf(stderr, "%s\n", err);
    return -1;
  }
  size_t record_cap = 0, sample_cap = 0, module_cap = 0, stack_cap = 0;
  Tierpool__Trace__Record *rec;
  int got;
  while ((got = tp_trace_next(r, &rec)) > 0) {
    t->records = grow(t->records, &record_cap, t->n_records, sizeof *t->records);
    t->records[t->n_records++] = rec;
    add_record(t, rec, &sample_cap, &module_cap, &stack_cap);
  }
  t->frames = tp_trace_frames(r);
  if (got < 0) fprintf(stderr, "%s\n", tp_trace_error(r));
  tp_trace_close(r);
  if (got < 0) return -1;
  match_frees(t);
  return 0;
}

void tl_free(struct tl_trace *t) {
  for (size_t i = 0; i < t->n_records; i++) tp_trace_record_free(t->records[i]);
  free(t->records);
  free(t->modules);
  free(t->stacks);
  free(t->samples);
  memset(t, 0, sizeof *t);
}
