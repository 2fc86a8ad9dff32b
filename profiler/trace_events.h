/* trace_events.h — a trace as a stream of events: the columnar batches of
 * trace.proto turned back into one call per sample, free and mmap call, with
 * absolute ids and times.  Built on trace_reader: streamed, memory bounded by
 * one frame.  Used by the analyzer (profile.c, simulate.c) and the tests.
 *
 * Ids (stack, thread, tenant, sample) are scoped to the process section they
 * appear in; `process` is called when a section opens, so a visitor that keeps
 * per-section tables resets them there. */
#ifndef TP_TRACE_EVENTS_H
#define TP_TRACE_EVENTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "trace_reader.h"

struct tp_sample_event {
  uint64_t id;          /* section-scoped sample id */
  uint64_t time_us;     /* since the process's start_mono_ns */
  uint64_t size;        /* requested bytes */
  uint64_t usable;      /* bytes handed out; 0 when the trace did not record it */
  double weight;        /* allocations this sample stands for (1/sample_rate, or the byte-mode weight) */
  uint32_t stack, thread, tenant, tier, align_log2;
};

struct tp_free_event {
  uint64_t id;          /* the sample freed */
  uint64_t time_us;
  uint32_t stack;       /* validation mode: stack of the free; else UINT32_MAX */
};

struct tp_mmap_event {
  uint32_t kind;        /* TIERPOOL__TRACE__MMAP_KIND__* */
  uint64_t time_us, addr, length, old_addr;
  uint32_t prot, flags, stack, thread;
};

/* Every callback may be NULL.  A callback returns 0 to go on, non-zero to
 * stop the scan (tp_trace_scan then returns that value). Records passed by
 * pointer live only for the call. */
struct tp_trace_visitor {
  int (*process)(void *ctx, const Tierpool__Trace__Process *process);
  int (*module)(void *ctx, const Tierpool__Trace__Module *module);
  int (*thread)(void *ctx, const Tierpool__Trace__Thread *thread);
  int (*tenant)(void *ctx, const Tierpool__Trace__Tenant *tenant);
  int (*stack)(void *ctx, const Tierpool__Trace__Stack *stack);
  int (*sample)(void *ctx, const struct tp_sample_event *sample);
  int (*free)(void *ctx, const struct tp_free_event *free);
  int (*mmap)(void *ctx, const struct tp_mmap_event *call);
  int (*histogram)(void *ctx, const Tierpool__Trace__Histogram *delta);
  int (*snapshot)(void *ctx, const Tierpool__Trace__Snapshot *snapshot);
  int (*jit_range)(void *ctx, const Tierpool__Trace__JitRange *range);
  int (*perf_map)(void *ctx, const Tierpool__Trace__PerfMap *text);
  int (*end)(void *ctx, const Tierpool__Trace__End *end);
  int (*exec)(void *ctx, const Tierpool__Trace__Exec *exec);
  /* Every record, before the calls above (merge copies them through). */
  int (*record)(void *ctx, const Tierpool__Trace__Record *record);
};

struct tp_scan_result {
  uint64_t records, frames;
  bool truncated;       /* the file ends inside a frame: everything before it was scanned */
};

/* Scans path from start to end.  Returns 0 when the whole file was read, or a
 * visitor's non-zero value, or -1 on error with "PATH: offset N: what" in err
 * (a truncated file is -1 with res->truncated set, after every complete frame
 * was visited). A file that is not a trace, or empty, is an error. */
int tp_trace_scan(const char *path, const struct tp_trace_visitor *v, void *ctx,
                  struct tp_scan_result *res, char *err, size_t errlen);

#endif /* TP_TRACE_EVENTS_H */
