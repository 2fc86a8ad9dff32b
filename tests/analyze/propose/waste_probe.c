/* waste_probe.c — a preloaded module that prints, at exit, the pool's exact
 * waste counters from its own statistics (tierpool_stats_get): one line
 *   waste_probe: slab R A buddy R A large R A
 * with R the bytes requested and A the bytes handed out per tier.  The
 * TIERPOOL_STATS=1 table gives per-tier percentages only, and a new class
 * set moves sizes between tiers: the loop test compares the total. */
#include <dlfcn.h>
#include <inttypes.h>
#include <stdio.h>

#include "tierpool.h"

__attribute__((destructor)) static void waste_probe_report(void) {
  int (*get)(tierpool_stats_t *) = (int (*)(tierpool_stats_t *))dlsym(RTLD_DEFAULT, "tierpool_stats_get");
  if (!get) {
    fprintf(stderr, "waste_probe: tierpool_stats_get not found (is libtierpool.so preloaded?)\n");
    return;
  }
  tierpool_stats_t s;
  get(&s);
  static const char *const names[TIERPOOL_TIER_COUNT] = {"slab", "buddy", "large"};
  fprintf(stderr, "waste_probe:");
  for (int t = 0; t < TIERPOOL_TIER_COUNT; t++)
    fprintf(stderr, " %s %" PRIu64 " %" PRIu64, names[t], s.tier[t].bytes_requested, s.tier[t].bytes_allocated);
  fprintf(stderr, "\n");
}
