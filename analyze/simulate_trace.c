/* simulate_trace.c — a trace's allocation stream for the replay, in time
 * order.
 *
 * A trace is not: the recorder's writer drains its batches every 250 ms and
 * writes each flush's samples, then its frees, so a block freed within the
 * same 250 ms comes after every sample of that time — replayed in file order,
 * a whole flush's blocks would be live at once.  Each column is in time order
 * and flushes follow each other, so a window of events (a min-heap on time,
 * bigger than two full batches of the recorder) puts them back; an event out
 * of order by more than the window is replayed late (sim_numbers.late_events).
 * At equal times frees go first: a block that lived under a microsecond
 * never overlaps the next.  Memory: the window, whatever the trace's length. */
#include <stdio.h>
#include <stdlib.h>

#include "simulate.h"
#include "trace_events.h"

#define SIM_WINDOW (1u << 18) /* events; the recorder's batches hold 65536 */

struct sim_event {
  uint64_t time_us, seq, id, size;
  double weight;
  uint32_t align_log2;
  bool is_free;
};

struct sim_order {
  struct sim_replay *r;
  struct sim_event *heap;
  size_t count, capacity;
  uint64_t seq;     /* file order, the last tie-break */
  bool failed;      /* out of memory */
};

static bool sim_before(const struct sim_event *a, const struct sim_event *b) {
  if (a->time_us != b->time_us) return a->time_us < b->time_us;
  if (a->is_free != b->is_free) return a->is_free;
  return a->seq < b->seq;
}

static void sim_apply(struct sim_order *o, const struct sim_event *e) {
  bool ok = e->is_free ? sim_replay_free(o->r, e->id, e->time_us)
                       : sim_replay_sample(o->r, e->id, e->time_us, e->size, e->align_log2, e->weight);
  if (!ok) o->failed = true;
}

/* Takes the earliest event off the heap and replays it. */
static void sim_pop(struct sim_order *o) {
  struct sim_event first = o->heap[0], last = o->heap[--o->count];
  size_t i = 0;
  for (;;) { /* sift the last one down from the root */
    size_t child = 2 * i + 1;
    if (child >= o->count) break;
    if (child + 1 < o->count && sim_before(&o->heap[child + 1], &o->heap[child])) child++;
    if (!sim_before(&o->heap[child], &last)) break;
    o->heap[i] = o->heap[child];
    i = child;
  }
  if (o->count) o->heap[i] = last;
  sim_apply(o, &first);
}

static void sim_push(struct sim_order *o, struct sim_event e) {
  if (o->count == SIM_WINDOW) sim_pop(o);
  if (o->count == o->capacity) {
    size_t capacity = o->capacity ? o->capacity * 2 : 4096;
    struct sim_event *heap = realloc(o->heap, capacity * sizeof *heap);
    if (!heap) {
      o->failed = true;
      sim_apply(o, &e); /* no room to wait: replayed now */
      return;
    }
    o->heap = heap;
    o->capacity = capacity;
  }
  e.seq = o->seq++;
  size_t i = o->count++;
  while (i > 0 && sim_before(&e, &o->heap[(i - 1) / 2])) { /* sift up */
    o->heap[i] = o->heap[(i - 1) / 2];
    i = (i - 1) / 2;
  }
  o->heap[i] = e;
}

static void sim_drain(struct sim_order *o) {
  while (o->count) sim_pop(o);
}

static int sim_on_process(void *ctx, const Tierpool__Trace__Process *process) {
  struct sim_order *o = ctx;
  sim_drain(o); /* the previous process's events all go before it ends */
  sim_replay_section(o->r, process->validate);
  return o->failed;
}

static int sim_on_sample(void *ctx, const struct tp_sample_event *s) {
  struct sim_order *o = ctx;
  sim_push(o, (struct sim_event){.time_us = s->time_us, .id = s->id, .size = s->size, .weight = s->weight,
                                 .align_log2 = s->align_log2});
  return o->failed;
}

static int sim_on_free(void *ctx, const struct tp_free_event *f) {
  struct sim_order *o = ctx;
  sim_push(o, (struct sim_event){.time_us = f->time_us, .id = f->id, .is_free = true});
  return o->failed;
}

int sim_replay_trace(struct sim_replay *r, const char *path, bool *truncated, char *err, size_t errlen) {
  const struct tp_trace_visitor visitor = {
      .process = sim_on_process,
      .sample = sim_on_sample,
      .free = sim_on_free,
  };
  struct sim_order o = {.r = r};
  struct tp_scan_result res = {0};
  int rc = tp_trace_scan(path, &visitor, &o, &res, err, errlen);
  *truncated = res.truncated;
  if (rc >= 0 || res.truncated) sim_drain(&o);
  free(o.heap);
  if (o.failed) {
    snprintf(err, errlen, "%s: out of memory for the replay", path);
    return -1;
  }
  return rc < 0 && !res.truncated ? -1 : 0;
}
