/* events.c — tp_trace_scan (profiler/trace_events.c) read back two ways:
 *
 *   events print TRACE   one line per event, for a golden comparison with what
 *                        a make_trace spec put in (events.sh)
 *   events agree TRACE   the events equal what the profiler tests' own decoder
 *                        (tests/profiler/trace_load.c) makes of the same trace
 *
 * Exit status 0, 1 when a check failed, 2 when the trace could not be read. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "trace_events.h"
#include "trace_load.h"

static int print_process(void *ctx, const Tierpool__Trace__Process *p) {
  (void)ctx;
  printf("process pid=%u rate=%g sample_bytes=%" PRIu64 "\n", p->pid, p->sample_rate, p->sample_bytes);
  return 0;
}

static int print_sample(void *ctx, const struct tp_sample_event *s) {
  (void)ctx;
  printf("sample id=%" PRIu64 " t=%" PRIu64 " size=%" PRIu64 " usable=%" PRIu64 " weight=%g stack=%u thread=%u"
         " tenant=%u tier=%u align=%u\n",
         s->id, s->time_us, s->size, s->usable, s->weight, s->stack, s->thread, s->tenant, s->tier, s->align_log2);
  return 0;
}

static int print_free(void *ctx, const struct tp_free_event *f) {
  (void)ctx;
  printf("free id=%" PRIu64 " t=%" PRIu64 " stack=%d\n", f->id, f->time_us,
         f->stack == UINT32_MAX ? -1 : (int)f->stack);
  return 0;
}

static int print_mmap(void *ctx, const struct tp_mmap_event *m) {
  (void)ctx;
  printf("mmap kind=%u t=%" PRIu64 " addr=0x%" PRIx64 " length=%" PRIu64 " old=0x%" PRIx64
         " prot=%u flags=%u stack=%u thread=%u\n",
         m->kind, m->time_us, m->addr, m->length, m->old_addr, m->prot, m->flags, m->stack, m->thread);
  return 0;
}

static int print_end(void *ctx, const Tierpool__Trace__End *e) {
  (void)ctx;
  printf("end t=%" PRIu64 " samples=%" PRIu64 "\n", e->time_us, e->samples);
  return 0;
}

/* Stops the scan at the sample with id *ctx: the visitor's value comes back. */
static int stop_at(void *ctx, const struct tp_sample_event *s) { return s->id == *(uint64_t *)ctx ? 42 : 0; }

static int print(const char *path) {
  struct tp_trace_visitor v = {.process = print_process, .sample = print_sample, .free = print_free,
                               .mmap = print_mmap, .end = print_end};
  struct tp_scan_result res;
  char err[512];
  int rc = tp_trace_scan(path, &v, NULL, &res, err, sizeof err);
  printf("result rc=%d records=%" PRIu64 " frames=%" PRIu64 " truncated=%d\n", rc, res.records, res.frames,
         (int)res.truncated);
  if (rc < 0) printf("error %s\n", err);
  uint64_t nine = 9;
  struct tp_trace_visitor stop = {.sample = stop_at};
  printf("stop rc=%d\n", tp_trace_scan(path, &stop, &nine, &res, err, sizeof err));
  return 0;
}

/* ---- agreement with trace_load ------------------------------------------- */

struct agree {
  struct tl_trace *t;
  double rate;
  uint64_t samples, frees, sample_mismatch, free_mismatch, free_unmatched;
};

static int agree_process(void *ctx, const Tierpool__Trace__Process *p) {
  ((struct agree *)ctx)->rate = p->sample_rate;
  return 0;
}

static int agree_sample(void *ctx, const struct tp_sample_event *s) {
  struct agree *a = ctx;
  a->samples++;
  const struct tl_sample *x = tl_sample_by_id(a->t, s->id);
  double want_weight = a->rate > 0 ? 1.0 / a->rate : s->weight;
  if (!x || x->time_us != s->time_us || x->size != s->size || x->usable != s->usable || x->stack != s->stack ||
      x->thread != s->thread || x->tier != s->tier || x->align_log2 != s->align_log2 || s->weight != want_weight ||
      s->tenant != 0) {
    if (a->sample_mismatch++ < 5)
      fprintf(stderr, "sample %" PRIu64 " t=%" PRIu64 " size=%" PRIu64 " differs from trace_load's\n", s->id,
              s->time_us, s->size);
  }
  return 0;
}

static int agree_free(void *ctx, const struct tp_free_event *f) {
  struct agree *a = ctx;
  a->frees++;
  const struct tl_sample *x = tl_sample_by_id(a->t, f->id);
  if (!x) {
    a->free_unmatched++;
    return 0;
  }
  if (!x->freed || x->free_us != f->time_us || f->time_us < x->time_us) {
    if (a->free_mismatch++ < 5)
      fprintf(stderr, "free of %" PRIu64 " at %" PRIu64 " differs from trace_load's\n", f->id, f->time_us);
  }
  return 0;
}

static int agree(const char *path) {
  struct tl_trace t;
  if (tl_load(path, &t) != 0) return 2;
  struct agree a = {.t = &t};
  struct tp_trace_visitor v = {.process = agree_process, .sample = agree_sample, .free = agree_free};
  char err[512];
  struct tp_scan_result res;
  int rc = tp_trace_scan(path, &v, &a, &res, err, sizeof err), failed = 0;
#define CHECK(cond, ...)                                  \
  do {                                                    \
    printf("%s: ", (cond) ? "ok" : "FAIL");               \
    printf(__VA_ARGS__);                                  \
    putchar('\n');                                        \
    failed += !(cond);                                    \
  } while (0)
  CHECK(rc == 0, "scan returns 0 (%d %s)", rc, err);
  CHECK(a.samples == t.n_samples && a.samples > 0, "%" PRIu64 " samples, trace_load has %zu", a.samples,
        t.n_samples);
  CHECK(a.sample_mismatch == 0, "every sample's columns agree (%" PRIu64 " differ)", a.sample_mismatch);
  CHECK(a.frees == t.n_frees && a.frees > 0, "%" PRIu64 " frees, trace_load has %" PRIu64, a.frees, t.n_frees);
  CHECK(a.free_unmatched == t.unmatched_frees, "unmatched frees %" PRIu64 " (trace_load %" PRIu64 ")",
        a.free_unmatched, t.unmatched_frees);
  CHECK(a.free_mismatch == 0, "every free's id and time agree (%" PRIu64 " differ)", a.free_mismatch);
  CHECK(res.records == t.n_records && res.frames == t.frames, "records %" PRIu64 " frames %" PRIu64,
        res.records, res.frames);
  tl_free(&t);
  return failed ? 1 : 0;
}

int main(int argc, char **argv) {
  if (argc == 3 && strcmp(argv[1], "print") == 0) return print(argv[2]);
  if (argc == 3 && strcmp(argv[1], "agree") == 0) return agree(argv[2]);
  fprintf(stderr, "usage: events print|agree TRACE\n");
  return 2;
}
