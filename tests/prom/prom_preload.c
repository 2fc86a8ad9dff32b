/* prom_preload.c — an ordinary program, run with libtierpool.so preloaded and
 * TIERPOOL_PROM_FILE set: the pool itself must keep the file current.
 *
 *   prom_preload PATH   allocates a known pattern (kept until exit), then goes
 *       through allocation slow paths for up to 3 s until PATH appears; prints
 *       "pattern tier bytes count" lines and "seen 0|1" */
#include <dlfcn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tierpool.h"

int main(int argc, char **argv) {
  if (argc != 2) return fprintf(stderr, "usage: prom_preload PATH\n"), 2;
  unsigned (*count)(void) = (unsigned (*)(void))dlsym(RTLD_DEFAULT, "tierpool_tenant_count");
  if (!count || count() < 1) return fprintf(stderr, "libtierpool.so is not preloaded\n"), 1;

  static const struct { const char *tier; size_t size, count; } pattern[] = {
      {"slab", 100, 1000}, {"buddy", 64 << 10, 20}, {"large", 8 << 20, 3}};
  for (size_t p = 0; p < 3; p++)
    for (size_t i = 0; i < pattern[p].count; i++) {
      char *block = malloc(pattern[p].size);
      if (!block) return perror("malloc"), 1;
      memset(block, 0x5a, pattern[p].size);
    }

  /* Large blocks go through the slow path every time; tierpool_release too. */
  size_t (*release)(void) = (size_t (*)(void))dlsym(RTLD_DEFAULT, "tierpool_release");
  bool seen = false;
  for (int round = 0; round < 150 && !seen; round++) {
    free(malloc(16 << 20));
    if (release && round % 10 == 9) release();
    struct timespec delay = {0, 20 * 1000 * 1000};
    nanosleep(&delay, NULL);
    seen = access(argv[1], F_OK) == 0;
  }
  for (size_t p = 0; p < 3; p++) printf("pattern %s %zu %zu\n", pattern[p].tier, pattern[p].size, pattern[p].count);
  printf("seen %d\n", seen);
  return 0;
}
