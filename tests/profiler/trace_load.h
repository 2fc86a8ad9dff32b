/* trace_load.h — a whole (small) trace in memory, for the checkers: the
 * columnar batches turned back into one struct per sample, frees matched to
 * their samples, histogram deltas summed. */
#ifndef TP_TEST_TRACE_LOAD_H
#define TP_TEST_TRACE_LOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buckets.h"
#include "trace_reader.h"

struct tl_sample {
  uint64_t id, time_us, size, usable;
  uint32_t stack, thread, tier, align_log2;
  bool freed;
  uint64_t free_us; /* when freed */
};

struct tl_trace {
  Tierpool__Trace__Record **records; /* all of them, owned */
  size_t n_records;
  const Tierpool__Trace__Process *process;
  const Tierpool__Trace__End *end;             /* NULL: the process did not exit normally */
  const Tierpool__Trace__Module **modules;
  size_t n_modules;
  const Tierpool__Trace__Stack **stacks;       /* indexed by Stack.id; NULL where none */
  size_t n_stacks;                             /* highest id + 1 */
  struct tl_sample *samples;                   /* in id order */
  size_t n_samples;
  uint64_t n_frees, unmatched_frees;           /* frees of ids never sampled */
  uint64_t allocs[TP_BUCKET_COUNT], bytes[TP_BUCKET_COUNT], frees[TP_BUCKET_COUNT];
  uint64_t processes, frames;
};

/* Reads path whole.  0, or -1 after printing the reader's error on stderr (a
 * truncated trace is an error here: checkers want complete traces). */
int tl_load(const char *path, struct tl_trace *t);
void tl_free(struct tl_trace *t);

/* The sample with this id, or NULL. */
struct tl_sample *tl_sample_by_id(const struct tl_trace *t, uint64_t id);

#endif
