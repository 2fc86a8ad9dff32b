/* check_facts.c — `facts TRACE KEY=VALUE...`: a trace's process and counts are
 * what a test expects.  Keys:
 *   pid, ppid        Process.pid, Process.ppid
 *   exe              the executable's file name (Process.executable, last part)
 *   argv1            the process's first argument
 *   end              1: the trace has its End record (the process exited), 0: not
 *   bucket:SIZE      exact allocations counted in the histogram bucket of SIZE bytes
 *   threads          Thread records
 *   unnamed-samples  samples whose thread (0, or an id no Thread record has) is unknown
 *   samples, frees   Samples and Frees entries (most-samples, least-frees: at most, at
 *                    least); unmatched-frees: frees of no sample
 *   live             samples never freed; freed-early: freed before they were sampled
 *   dropped          End.dropped (events the recorder had no room for) */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checker.h"

static const char *base_name(const char *path) {
  const char *slash = path ? strrchr(path, '/') : NULL;
  return slash ? slash + 1 : path ? path : "";
}

/* Thread records, and samples naming no thread of them. */
static void count_threads(const struct tl_trace *t, uint64_t *threads, uint64_t *unnamed) {
  uint32_t max_id = 0;
  *threads = 0;
  for (size_t i = 0; i < t->n_records; i++)
    if (t->records[i]->kind_case == TIERPOOL__TRACE__RECORD__KIND_THREAD) {
      ++*threads;
      if (t->records[i]->thread->id > max_id) max_id = t->records[i]->thread->id;
    }
  bool *known = calloc((size_t)max_id + 1, sizeof *known);
  if (!known) abort();
  for (size_t i = 0; i < t->n_records; i++)
    if (t->records[i]->kind_case == TIERPOOL__TRACE__RECORD__KIND_THREAD) known[t->records[i]->thread->id] = true;
  *unnamed = 0;
  for (size_t i = 0; i < t->n_samples; i++) {
    uint32_t id = t->samples[i].thread;
    if (id == 0 || id > max_id || !known[id]) ++*unnamed;
  }
  free(known);
}

static bool check_one(const struct tl_trace *t, const char *key, const char *value) {
  const Tierpool__Trace__Process *p = t->process;
  uint64_t n = strtoull(value, NULL, 10);
  if (strcmp(key, "pid") == 0) return expect(p && p->pid == n, "pid %" PRIu32 " (want %s)", p ? p->pid : 0, value);
  if (strcmp(key, "ppid") == 0)
    return expect(p && p->ppid == n, "ppid %" PRIu32 " (want %s)", p ? p->ppid : 0, value);
  if (strcmp(key, "exe") == 0) {
    const char *exe = base_name(p ? p->executable : NULL);
    return expect(strcmp(exe, value) == 0, "executable %s (want %s)", exe, value);
  }
  if (strcmp(key, "argv1") == 0) {
    const char *arg = p && p->n_argv > 1 ? p->argv[1] : "";
    return expect(strcmp(arg, value) == 0, "argv[1] '%s' (want '%s')", arg, value);
  }
  if (strcmp(key, "end") == 0)
    return expect((t->end != NULL) == (n != 0), "End record %s (want %s)", t->end ? "present" : "absent",
                  n ? "present" : "absent");
  if (strncmp(key, "bucket:", 7) == 0) {
    uint32_t b = tp_bucket_of_size(strtoull(key + 7, NULL, 10));
    return expect(t->allocs[b] == n, "bucket of %s B: %" PRIu64 " allocations (want %s)", key + 7, t->allocs[b],
                  value);
  }
  uint64_t threads, unnamed;
  if (strcmp(key, "threads") == 0) {
    count_threads(t, &threads, &unnamed);
    return expect(threads == n, "%" PRIu64 " Thread records (want %s)", threads, value);
  }
  if (strcmp(key, "unnamed-samples") == 0) {
    count_threads(t, &threads, &unnamed);
    return expect(unnamed == n, "%" PRIu64 " samples of no recorded thread (want %s)", unnamed, value);
  }
  if (strcmp(key, "samples") == 0)
    return expect(t->n_samples == n, "%zu samples (want %s)", t->n_samples, value);
  if (strcmp(key, "most-samples") == 0)
    return expect(t->n_samples <= n, "%zu samples (want at most %s)", t->n_samples, value);
  if (strcmp(key, "frees") == 0) return expect(t->n_frees == n, "%" PRIu64 " frees (want %s)", t->n_frees, value);
  if (strcmp(key, "least-frees") == 0)
    return expect(t->n_frees >= n, "%" PRIu64 " frees (want at least %s)", t->n_frees, value);
  if (strcmp(key, "unmatched-frees") == 0)
    return expect(t->unmatched_frees == n, "%" PRIu64 " frees of no sample (want %s)", t->unmatched_frees, value);
  if (strcmp(key, "live") == 0 || strcmp(key, "freed-early") == 0) {
    uint64_t live = 0, early = 0;
    for (size_t i = 0; i < t->n_samples; i++) {
      live += !t->samples[i].freed;
      early += t->samples[i].freed && t->samples[i].free_us < t->samples[i].time_us;
    }
    uint64_t got = key[0] == 'l' ? live : early;
    return expect(got == n, "%" PRIu64 " %s samples (want %s)", got, key, value);
  }
  if (strcmp(key, "dropped") == 0) {
    uint64_t dropped = t->end ? t->end->dropped : UINT64_MAX;
    return expect(dropped == n, "End.dropped %" PRIu64 " (want %s)", dropped, value);
  }
  fprintf(stderr, "trace_check facts: unknown key '%s'\n", key);
  return expect(false, "known key %s", key);
}

int check_facts(int argc, char **argv) {
  if (argc < 2) return -1;
  struct tl_trace t;
  if (tl_load(argv[1], &t) != 0) return -1;
  expect(t.processes == 1, "one process section (%" PRIu64 ")", t.processes);
  for (int i = 2; i < argc; i++) {
    char key[64];
    const char *eq = strchr(argv[i], '=');
    if (!eq || (size_t)(eq - argv[i]) >= sizeof key) {
      fprintf(stderr, "trace_check facts: want KEY=VALUE, not '%s'\n", argv[i]);
      tl_free(&t);
      return -1;
    }
    memcpy(key, argv[i], (size_t)(eq - argv[i]));
    key[eq - argv[i]] = '\0';
    check_one(&t, key, eq + 1);
  }
  tl_free(&t);
  return checker_failures;
}
