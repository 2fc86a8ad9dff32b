/* compact.c — format 1 records back into the compact encodings (compact.h).
 * Each conversion is the inverse of one in profiler/trace_reader.c. */
#include "compact.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "buckets.h"
#include "hash_set.h"
#include "stack_tree.h"

/* Stacks in one Stacks record, at most: the recorder's batch size. */
#define COMPACT_STACKS_MAX 4096u

struct tp_compactor {
  tp_compact_put_fn put;
  void *ctx;
  tp_stack_tree tree;        /* the section's nodes, as its reader numbers them */
  uint32_t sample_stack_max; /* the section's highest sample stack id (Samples.stack_back) */
  /* The Stacks batch being gathered: consecutive ids from first_id. */
  uint32_t first_id, n, *from, *count, *truncated, n_truncated;
  uint64_t *frames;
  size_t n_frames, frames_cap;
};

static void *zeroed(size_t bytes) { return calloc(1, bytes); }
static void release(void *p, size_t bytes) {
  (void)bytes;
  free(p);
}

tp_compactor *tp_compactor_new(tp_compact_put_fn put, void *ctx) {
  tp_compactor *c = calloc(1, sizeof *c);
  if (!c) return NULL;
  c->put = put, c->ctx = ctx;
  c->tree = (tp_stack_tree){.map = zeroed, .unmap = release, .key = tp_hash_key};
  c->from = malloc(COMPACT_STACKS_MAX * sizeof *c->from);
  c->count = malloc(COMPACT_STACKS_MAX * sizeof *c->count);
  c->truncated = malloc(COMPACT_STACKS_MAX * sizeof *c->truncated);
  if (!c->from || !c->count || !c->truncated) {
    tp_compactor_free(c);
    return NULL;
  }
  return c;
}

void tp_compactor_free(tp_compactor *c) {
  if (!c) return;
  tp_stack_tree_reset(&c->tree);
  free(c->from), free(c->count), free(c->truncated), free(c->frames);
  free(c);
}

int tp_compactor_flush(tp_compactor *c) {
  if (!c->n) return 0;
  Tierpool__Trace__Stacks stacks = TIERPOOL__TRACE__STACKS__INIT;
  stacks.first_id = c->first_id;
  stacks.n_from = stacks.n_count = c->n;
  stacks.from = c->from, stacks.count = c->count;
  stacks.n_frames = c->n_frames, stacks.frames = c->frames;
  stacks.n_truncated = c->n_truncated, stacks.truncated = c->truncated;
  Tierpool__Trace__Record rec = TIERPOOL__TRACE__RECORD__INIT;
  rec.kind_case = TIERPOOL__TRACE__RECORD__KIND_STACKS;
  rec.stacks = &stacks;
  c->n = c->n_truncated = 0;
  c->n_frames = 0;
  return c->put(c->ctx, &rec);
}

/* A Stack record into the batch: its frames the tree has not seen, from the
 * outermost one in. */
static int hold_stack(tp_compactor *c, const Tierpool__Trace__Stack *s) {
  if (c->n && (c->n == COMPACT_STACKS_MAX || s->id != c->first_id + c->n) && tp_compactor_flush(c) < 0) return -1;
  if (s->n_frames > UINT32_MAX) return -1;
  uint32_t depth = (uint32_t)s->n_frames, node, shared;
  if (c->n_frames + depth > c->frames_cap) {
    size_t cap = c->frames_cap ? c->frames_cap : 65536;
    while (cap < c->n_frames + depth) cap *= 2;
    uint64_t *frames = realloc(c->frames, cap * sizeof *frames);
    if (!frames) return -1;
    c->frames = frames, c->frames_cap = cap;
  }
  if (!c->n) c->first_id = s->id;
  uint32_t written = tp_stack_tree_add(&c->tree, s->frames, depth, &node, &shared);
  c->from[c->n] = shared ? written + 1 - node : 0;
  c->count[c->n] = depth - shared;
  for (uint32_t k = depth - shared; k > 0; k--) c->frames[c->n_frames++] = s->frames[k - 1];
  if (s->truncated) c->truncated[c->n_truncated++] = c->n;
  c->n++;
  return 0;
}

/* Samples.stack as stack_back: how far below the section's highest stack id
 * so far, plus one (mostly small: samples mostly name recent stacks). */
static int samples_compact(tp_compactor *c, Tierpool__Trace__Samples *s) {
  if (!s->n_stack || s->n_stack_back) return 0;
  int32_t *back = malloc(s->n_stack * sizeof *back);
  if (!back) return -1;
  for (size_t i = 0; i < s->n_stack; i++) {
    back[i] = (int32_t)(c->sample_stack_max + 1 - s->stack[i]); /* mod 2^32 */
    if (s->stack[i] > c->sample_stack_max) c->sample_stack_max = s->stack[i];
  }
  free(s->stack);
  s->stack = NULL;
  s->stack_back = back, s->n_stack_back = s->n_stack;
  s->n_stack = 0;
  return 0;
}

static int histogram_compact(Tierpool__Trace__Histogram *h) {
  if (h->n_bucket && !h->n_bucket_step) {
    uint32_t *step = malloc(h->n_bucket * sizeof *step);
    if (!step) return -1;
    for (size_t i = 0; i < h->n_bucket; i++) step[i] = h->bucket[i] - (i ? h->bucket[i - 1] : 0);
    if (h->n_bytes && !h->n_bytes_over) {
      uint64_t *over = malloc(h->n_bytes * sizeof *over);
      if (!over) {
        free(step);
        return -1;
      }
      for (size_t i = 0; i < h->n_bytes; i++) {
        uint32_t b = i < h->n_bucket ? h->bucket[i] : 0;
        uint64_t allocs = i < h->n_allocs ? h->allocs[i] : 0;
        over[i] = h->bytes[i] - allocs * (b < TP_BUCKET_COUNT ? tp_bucket_lower(b) : 0); /* mod 2^64 */
      }
      free(h->bytes);
      h->bytes = NULL;
      h->bytes_over = over, h->n_bytes_over = h->n_bytes;
      h->n_bytes = 0;
    }
    free(h->bucket);
    h->bucket = NULL;
    h->bucket_step = step, h->n_bucket_step = h->n_bucket;
    h->n_bucket = 0;
  }
  return 0;
}

static int mmaps_compact(Tierpool__Trace__MmapCalls *m) {
  if (m->n_addr && !m->n_addr_delta) {
    int64_t *delta = malloc(m->n_addr * sizeof *delta);
    if (!delta) return -1;
    for (size_t i = 0; i < m->n_addr; i++) delta[i] = (int64_t)(m->addr[i] - (i ? m->addr[i - 1] : 0));
    free(m->addr);
    m->addr = NULL;
    m->addr_delta = delta, m->n_addr_delta = m->n_addr;
    m->n_addr = 0;
  }
  if (m->n_stack && !m->n_stack_delta) {
    int32_t *delta = malloc(m->n_stack * sizeof *delta);
    if (!delta) return -1;
    for (size_t i = 0; i < m->n_stack; i++) delta[i] = (int32_t)(m->stack[i] - (i ? m->stack[i - 1] : 0));
    free(m->stack);
    m->stack = NULL;
    m->stack_delta = delta, m->n_stack_delta = m->n_stack;
    m->n_stack = 0;
  }
  return 0;
}

int tp_compactor_record(tp_compactor *c, Tierpool__Trace__Record *rec) {
  if (rec->kind_case == TIERPOOL__TRACE__RECORD__KIND_STACK) return hold_stack(c, rec->stack);
  if (tp_compactor_flush(c) < 0) return -1;
  int ok = 0;
  switch (rec->kind_case) {
  case TIERPOOL__TRACE__RECORD__KIND_PROCESS: /* node numbers and stack ids are the section's */
    tp_stack_tree_reset(&c->tree);
    c->sample_stack_max = 0;
    break;
  case TIERPOOL__TRACE__RECORD__KIND_SAMPLES: ok = samples_compact(c, rec->samples); break;
  case TIERPOOL__TRACE__RECORD__KIND_HISTOGRAM: ok = histogram_compact(rec->histogram); break;
  case TIERPOOL__TRACE__RECORD__KIND_MMAP_CALLS: ok = mmaps_compact(rec->mmap_calls); break;
  default: break;
  }
  return ok < 0 ? -1 : c->put(c->ctx, rec);
}
