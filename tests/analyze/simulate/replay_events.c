/* replay_events.c — `replay_events CONFIG < EVENTS`: drives the replay engine
 * of `tierpool simulate` (analyze/simulate_replay.c and simulate_pool.c, built
 * with the sanitizers) with a hand-made event list, no trace file, and prints
 * its numbers as key=value lines.  One config per run: the pool is global.
 * `replay_events CONFIG --trace FILE` replays a trace file instead
 * (simulate_trace.c, sanitized too); exit status 3 when it cannot be read.
 *
 * EVENTS: one per line, `#` comments and blank lines ignored:
 *   sample ID T_US SIZE [ALIGN_LOG2 [WEIGHT]]
 *   free ID T_US
 *   section                      a new process section
 *   repeat N SIZE [WEIGHT]       N samples (ids from 1000000 on) at t=0, never freed
 * Exit status 0; 2 when the config is bad (its message on stderr); 1 on a bad line. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "simulate.h"

int main(int argc, char **argv) {
  if (argc != 2 && !(argc == 4 && strcmp(argv[2], "--trace") == 0)) {
    fprintf(stderr, "usage: replay_events CONFIG < EVENTS | replay_events CONFIG --trace FILE\n");
    return 1;
  }
  char err[600];
  if (!sim_pool_configure(argv[1], err, sizeof err)) {
    fprintf(stderr, "replay_events: %s\n", err);
    return 2;
  }
  struct sim_replay *r = sim_replay_new();
  if (!r) return 1;
  char line[512];
  uint64_t next_id = 1000000;
  if (argc == 4) {
    bool truncated;
    if (sim_replay_trace(r, argv[3], &truncated, err, sizeof err) != 0) {
      fprintf(stderr, "replay_events: %s\n", err);
      sim_replay_delete(r);
      return 3;
    }
    if (truncated) printf("truncated=1\n");
  }
  for (unsigned line_no = 1; argc == 2 && fgets(line, sizeof line, stdin); line_no++) {
    char *hash = strchr(line, '#');
    if (hash) *hash = '\0';
    char word[16];
    uint64_t id, t, size, n;
    unsigned align = 4;
    double weight = 1;
    bool ok = true;
    if (sscanf(line, "%15s", word) != 1) continue;
    if (strcmp(word, "sample") == 0) {
      ok = sscanf(line, "%*s %" SCNu64 " %" SCNu64 " %" SCNu64 " %u %lf", &id, &t, &size, &align, &weight) >= 3 &&
           sim_replay_sample(r, id, t, size, align, weight);
    } else if (strcmp(word, "free") == 0) {
      ok = sscanf(line, "%*s %" SCNu64 " %" SCNu64, &id, &t) == 2 && sim_replay_free(r, id, t);
    } else if (strcmp(word, "section") == 0) {
      sim_replay_section(r, false);
    } else if (strcmp(word, "repeat") == 0) {
      ok = sscanf(line, "%*s %" SCNu64 " %" SCNu64 " %lf", &n, &size, &weight) >= 2;
      for (uint64_t i = 0; ok && i < n; i++) ok = sim_replay_sample(r, next_id++, 0, size, 4, weight);
    } else {
      ok = false;
    }
    if (!ok) {
      fprintf(stderr, "replay_events: line %u: bad event\n", line_no);
      return 1;
    }
  }
  struct sim_numbers s;
  sim_replay_numbers(r, &s);
  printf("samples=%" PRIu64 " allocations=%" PRIu64 " failed=%" PRIu64 " frees=%" PRIu64 "\n", s.samples,
         s.allocations, s.failed, s.frees);
  printf("peak_live=%" PRIu64 " peak_usable=%" PRIu64 " measured_live=%" PRIu64 " measured_usable=%" PRIu64
         " resident_at_peak=%" PRIu64 "\n",
         s.peak_live, s.peak_usable, s.measured_live, s.measured_usable, s.measured_resident);
  printf("peak_resident=%" PRIu64 " peak_accounted=%" PRIu64 " mean_resident=%" PRIu64 " measures=%" PRIu64 "\n",
         s.peak_resident, s.peak_accounted, s.mean_resident, s.measures);
  printf("sections=%" PRIu64 " exact_sections=%" PRIu64 " unmatched_frees=%" PRIu64 " late_events=%" PRIu64
         " duration_ms=%" PRIu64 " live_usable=%" PRIu64 "\n",
         s.sections, s.exact_sections, s.unmatched_frees, s.late_events, s.duration_ms, s.final_live_usable);
  printf("pool_allocs=%" PRIu64 " pool_frees=%" PRIu64 " pool_requested=%" PRIu64 " pool_allocated=%" PRIu64
         " pool_live=%" PRIu64 "\n",
         s.pool.allocs, s.pool.frees, s.pool.bytes_requested, s.pool.bytes_allocated, s.pool.live_bytes);
  sim_replay_delete(r);
  return 0;
}
