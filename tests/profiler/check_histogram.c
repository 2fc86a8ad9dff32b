/* check_histogram.c — `histogram TRACE RATE`: the round trip of `subject
 * histogram`.  Its own allocations (sizes no start-up code uses) are counted
 * exactly in the histogram, and sampled at RATE: the sample count is within
 * 5 standard deviations of the binomial mean, every sample of those sizes has
 * its free, and the End record agrees with what came before it. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "checker.h"

struct known {
  uint64_t size, count;
  uint32_t align_log2;
};

/* What subject.c's run_histogram allocates (777 B: 1000 mallocs, 500 of them
 * later realloc'd to 30000 B, which counts as a free and an allocation). */
static const struct known known[] = {{777, 1000, 4}, {4000, 2000, 4}, {12345, 3000, 6}, {30000, 500, 4}};
#define NKNOWN (sizeof known / sizeof known[0])

/* Within k standard deviations of Binomial(n, p)'s mean. */
static bool binomial_ok(uint64_t got, uint64_t n, double p, double k, double *mean, double *sd) {
  *mean = (double)n * p;
  *sd = sqrt((double)n * p * (1 - p));
  return fabs((double)got - *mean) <= k * *sd;
}

int check_histogram(int argc, char **argv) {
  if (argc != 3) return -1;
  double rate = atof(argv[2]);
  struct tl_trace t;
  if (tl_load(argv[1], &t) != 0) return -1;
  expect(t.processes == 1 && t.process, "one process section (%" PRIu64 ")", t.processes);
  expect(t.process && fabs(t.process->sample_rate - rate) < 1e-12, "Process.sample_rate is %g", rate);
  expect(t.end != NULL, "the trace has its End record");

  uint64_t known_allocs = 0, total_allocs = 0;
  for (size_t k = 0; k < NKNOWN; k++) {
    uint32_t b = tp_bucket_of_size(known[k].size);
    expect(t.allocs[b] == known[k].count && t.bytes[b] == known[k].count * known[k].size,
           "bucket %u (%" PRIu64 "..%" PRIu64 " B): %" PRIu64 " allocations of %" PRIu64 " bytes (want %" PRIu64
           " of %" PRIu64 ")",
           b, tp_bucket_lower(b), tp_bucket_upper(b), t.allocs[b], t.bytes[b], known[k].count,
           known[k].count * known[k].size);
    known_allocs += known[k].count;
  }
  for (uint32_t b = 0; b < TP_BUCKET_COUNT; b++) total_allocs += t.allocs[b];

  /* Samples of the known sizes: their count, their columns, their frees. */
  uint64_t known_samples = 0, unfreed = 0, bad_columns = 0;
  for (size_t i = 0; i < t.n_samples; i++) {
    const struct tl_sample *s = &t.samples[i];
    for (size_t k = 0; k < NKNOWN; k++) {
      if (s->size != known[k].size) continue;
      known_samples++;
      if (!s->freed) unfreed++;
      /* usable is written in validation mode only (0 here: derived from the classes). */
      if ((s->usable && s->usable < s->size) || s->align_log2 != known[k].align_log2 || s->tier != 0 || !s->stack)
        bad_columns++;
    }
  }
  double mean, sd;
  bool ok = binomial_ok(known_samples, known_allocs, rate, 5, &mean, &sd);
  expect(ok, "%" PRIu64 " samples of the program's %" PRIu64 " allocations at rate %g (mean %.1f, sd %.1f)",
         known_samples, known_allocs, rate, mean, sd);
  ok = binomial_ok(t.n_samples, total_allocs, rate, 5, &mean, &sd);
  expect(ok, "%zu samples of all %" PRIu64 " allocations (mean %.1f, sd %.1f)", t.n_samples, total_allocs, mean, sd);
  expect(unfreed == 0, "every sample of the program's sizes has its free (%" PRIu64 " without)", unfreed);
  expect(bad_columns == 0, "samples say the alignment asked for, the slab tier and a stack (%" PRIu64 " do not)",
         bad_columns);
  expect(t.unmatched_frees == 0, "every free names a sample (%" PRIu64 " do not)", t.unmatched_frees);
  /* Frees are counted by usable size: the 30000-byte blocks' size class (the
   * smallest of Process.size_classes that holds them) is theirs alone. */
  uint64_t usable = 0;
  for (size_t c = 0; t.process && c < t.process->n_size_classes && !usable; c++)
    if (t.process->size_classes[c] >= 30000) usable = t.process->size_classes[c];
  uint32_t fb = tp_bucket_of_size(usable);
  expect(usable && t.frees[fb] >= 500 && t.frees[fb] <= 500 + 5,
         "histogram frees in bucket %u (class %" PRIu64 " B of the 30000-byte blocks): %" PRIu64 " (want 500..505)", fb,
         usable, t.frees[fb]);
  if (t.end) {
    expect(t.end->samples == t.n_samples && t.end->dropped == 0,
           "End: %" PRIu64 " samples (%zu in the trace), %" PRIu64 " dropped", t.end->samples, t.n_samples,
           t.end->dropped);
    expect(t.end->allocations == total_allocs, "End: %" PRIu64 " allocations (%" PRIu64 " in the histograms)",
           t.end->allocations, total_allocs);
  }
  tl_free(&t);
  return checker_failures;
}
