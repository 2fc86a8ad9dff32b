/* dump.c — `tierpool dump [--summary] TRACE...`: prints a trace's records as
 * text, or counts them on one stable key=value line (for tests and scripts). */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "commands.h"
#include "dump.h"
#include "trace_reader.h"

static const char dump_usage[] = "usage: tierpool dump [--summary] TRACE...\n";

static void dump_help(void) {
  printf("%s\n"
         "Prints every record of each TRACE as a line of text (batches: a line per element).\n"
         "\n"
         "  --summary  instead, counts on one line:\n"
         "             records= processes= modules= threads= stacks= samples= frees= mmap_calls=\n"
         "             histogram_allocs= histogram_frees= histogram_bytes= snapshots= jit_ranges=\n"
         "             perf_map_bytes= ends= truncated=0|1\n"
         "             and a second line: frames= sample_batches= free_batches= mmap_batches=\n"
         "             histograms= tenants= unknown= end_samples= end_dropped= end_allocations=\n"
         "             execs= (Exec records: the program called exec there, and one more for each that failed)\n"
         "\n"
         "With several TRACEs, each one's output follows a line file=TRACE.\n"
         "Exit status 2 if a trace is unreadable; a truncated one (its writer was killed)\n"
         "is still printed up to its last complete frame, then reported.\n",
         dump_usage);
}

/* Counts of --summary: samples, frees and mmap_calls count elements of batches. */
struct summary {
  uint64_t records, processes, modules, threads, stacks, samples, frees, mmap_calls;
  uint64_t histogram_allocs, histogram_frees, histogram_bytes, snapshots, jit_ranges, perf_map_bytes, ends;
  uint64_t sample_batches, free_batches, mmap_batches, histograms, tenants, unknown;
  uint64_t end_samples, end_dropped, end_allocations, execs;
};

static uint64_t sum(const uint64_t *v, size_t n) {
  uint64_t total = 0;
  for (size_t i = 0; i < n; i++) total += v[i];
  return total;
}

static void count(struct summary *s, const Tierpool__Trace__Record *rec) {
  s->records++;
  switch (rec->kind_case) {
  case TIERPOOL__TRACE__RECORD__KIND_HEADER: break;
  case TIERPOOL__TRACE__RECORD__KIND_PROCESS: s->processes++; break;
  case TIERPOOL__TRACE__RECORD__KIND_MODULE: s->modules++; break;
  case TIERPOOL__TRACE__RECORD__KIND_THREAD: s->threads++; break;
  case TIERPOOL__TRACE__RECORD__KIND_TENANT: s->tenants++; break;
  case TIERPOOL__TRACE__RECORD__KIND_STACK: s->stacks++; break;
  case TIERPOOL__TRACE__RECORD__KIND_SAMPLES:
    s->sample_batches++;
    s->samples += rec->samples->n_id_delta;
    break;
  case TIERPOOL__TRACE__RECORD__KIND_FREES:
    s->free_batches++;
    s->frees += rec->frees->n_id_delta;
    break;
  case TIERPOOL__TRACE__RECORD__KIND_MMAP_CALLS:
    s->mmap_batches++;
    s->mmap_calls += rec->mmap_calls->n_kind;
    break;
  case TIERPOOL__TRACE__RECORD__KIND_HISTOGRAM:
    s->histograms++;
    s->histogram_allocs += sum(rec->histogram->allocs, rec->histogram->n_allocs);
    s->histogram_frees += sum(rec->histogram->frees, rec->histogram->n_frees);
    s->histogram_bytes += sum(rec->histogram->bytes, rec->histogram->n_bytes);
    break;
  case TIERPOOL__TRACE__RECORD__KIND_SNAPSHOT: s->snapshots++; break;
  case TIERPOOL__TRACE__RECORD__KIND_JIT_RANGE: s->jit_ranges++; break;
  case TIERPOOL__TRACE__RECORD__KIND_PERF_MAP: s->perf_map_bytes += rec->perf_map->text.len; break;
  case TIERPOOL__TRACE__RECORD__KIND_END:
    s->ends++;
    s->end_samples += rec->end->samples;
    s->end_dropped += rec->end->dropped;
    s->end_allocations += rec->end->allocations;
    break;
  case TIERPOOL__TRACE__RECORD__KIND_EXEC: s->execs++; break;
  default: s->unknown++; break;
  }
}

static void print_summary(const struct summary *s, uint64_t frames, bool truncated) {
  printf("records=%" PRIu64 " processes=%" PRIu64 " modules=%" PRIu64 " threads=%" PRIu64 " stacks=%" PRIu64
         " samples=%" PRIu64 " frees=%" PRIu64 " mmap_calls=%" PRIu64 " histogram_allocs=%" PRIu64
         " histogram_frees=%" PRIu64 " histogram_bytes=%" PRIu64 " snapshots=%" PRIu64 " jit_ranges=%" PRIu64
         " perf_map_bytes=%" PRIu64 " ends=%" PRIu64 " truncated=%d\n",
         s->records, s->processes, s->modules, s->threads, s->stacks, s->samples, s->frees, s->mmap_calls,
         s->histogram_allocs, s->histogram_frees, s->histogram_bytes, s->snapshots, s->jit_ranges,
         s->perf_map_bytes, s->ends, (int)truncated);
  printf("frames=%" PRIu64 " sample_batches=%" PRIu64 " free_batches=%" PRIu64 " mmap_batches=%" PRIu64
         " histograms=%" PRIu64 " tenants=%" PRIu64 " unknown=%" PRIu64 " end_samples=%" PRIu64
         " end_dropped=%" PRIu64 " end_allocations=%" PRIu64 " execs=%" PRIu64 "\n",
         frames, s->sample_batches, s->free_batches, s->mmap_batches, s->histograms, s->tenants, s->unknown,
         s->end_samples, s->end_dropped, s->end_allocations, s->execs);
}

/* Dumps one trace; 0, or EXIT_USAGE if it could not be read to its end. */
static int dump_file(const char *path, bool summary_only) {
  char err[512];
  tp_trace_reader *r = tp_trace_open(path, err, sizeof err);
  if (!r) {
    fprintf(stderr, "tierpool: %s\n", err);
    return EXIT_USAGE;
  }
  struct summary s = {0};
  Tierpool__Trace__Record *rec;
  int got;
  while ((got = tp_trace_next(r, &rec)) > 0) {
    if (summary_only) count(&s, rec);
    else dump_record(stdout, rec);
    tp_trace_record_free(rec);
  }
  bool truncated = tp_trace_truncated(r);
  /* What a truncated trace holds is still worth a summary; a corrupt one's is not. */
  if (summary_only && (got == 0 || truncated)) print_summary(&s, tp_trace_frames(r), truncated);
  fflush(stdout);
  if (got < 0) fprintf(stderr, "tierpool: %s\n", tp_trace_error(r));
  tp_trace_close(r);
  return got < 0 ? EXIT_USAGE : 0;
}

int cmd_dump(int argc, char **argv) {
  bool summary_only = false;
  int i = 1;
  for (; cli_is_option(argc, argv, &i); i++) {
    if (cli_is_help(argv[i])) {
      dump_help();
      return 0;
    } else if (strcmp(argv[i], "--summary") == 0) {
      summary_only = true;
    } else {
      fprintf(stderr, "tierpool dump: unknown option '%s'\n%s", argv[i], dump_usage);
      return EXIT_USAGE;
    }
  }
  if (i >= argc) {
    fprintf(stderr, "tierpool dump: no trace given\n%s", dump_usage);
    return EXIT_USAGE;
  }
  int status = 0;
  for (int first = i; i < argc; i++) {
    if (argc - first > 1) printf("file=%s\n", argv[i]);
    if (dump_file(argv[i], summary_only) != 0) status = EXIT_USAGE;
  }
  return cli_stdout_written("dump", status);
}
