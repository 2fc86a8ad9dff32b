/* check_lifetimes.c — `lifetimes TRACE`: `subject lifetimes` recorded at rate 1
 * frees its blocks after known sleeps; each sample's lifetime (free time minus
 * sample time) is at least the sleep, and not much more: the upper slack
 * allows for a loaded machine. */
#include <inttypes.h>
#include <stdio.h>

#include "checker.h"

#define SLACK_US 250000 /* 250 ms of scheduling delay on a busy test machine */

static const struct {
  uint64_t size, sleep_us;
  const char *how;
} blocks[] = {
    {1111, 0, "freed at once"},
    {2223, 20000, "freed after 20 ms"},
    {3335, 200000, "freed after 200 ms"},
    {4447, 50000, "freed by another thread after 50 ms"},
};
#define NBLOCKS (sizeof blocks / sizeof blocks[0])

int check_lifetimes(int argc, char **argv) {
  if (argc != 2) return -1;
  struct tl_trace t;
  if (tl_load(argv[1], &t) != 0) return -1;
  expect(t.process && t.process->sample_rate == 1.0, "recorded at rate 1");
  const struct tl_sample *found[NBLOCKS] = {0};
  for (size_t b = 0; b < NBLOCKS; b++) {
    int count = 0;
    for (size_t i = 0; i < t.n_samples; i++)
      if (t.samples[i].size == blocks[b].size) found[b] = &t.samples[i], count++;
    if (!expect(count == 1, "one sample of %" PRIu64 " bytes (%d)", blocks[b].size, count)) continue;
    const struct tl_sample *s = found[b];
    if (!expect(s->freed, "the %" PRIu64 "-byte block has its free", blocks[b].size)) continue;
    uint64_t life = s->free_us - s->time_us;
    /* Times are whole microseconds, each rounded down: 1 µs of rounding. */
    expect(s->free_us >= s->time_us && life + 1 >= blocks[b].sleep_us && life <= blocks[b].sleep_us + SLACK_US,
           "%" PRIu64 " bytes, %s: lifetime %.3f ms", blocks[b].size, blocks[b].how, (double)life / 1000);
  }
  /* The main thread's blocks follow one another. */
  if (found[0] && found[1] && found[2])
    expect(found[0]->time_us <= found[1]->time_us && found[1]->free_us <= found[2]->time_us + 1 &&
               found[0]->free_us <= found[1]->time_us + 1,
           "the blocks of one thread come one after the other in time");
  tl_free(&t);
  return checker_failures;
}
