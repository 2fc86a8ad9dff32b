/* grab.c — holds up to WANT MiB in 1 MiB blocks, retrying every 20 ms, and
 * keeps STATUS (a file) at the number of MiB it holds, for SECONDS.  Three
 * of them share a node budget in tests/tenant/node_budget.sh. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
  if (argc != 4) return 2;
  size_t want = strtoul(argv[1], NULL, 10), have = 0;
  double seconds = atof(argv[3]);
  static void *blocks[4096];
  char tmp[4096];
  snprintf(tmp, sizeof tmp, "%s.tmp", argv[2]);
  struct timespec start, now;
  clock_gettime(CLOCK_MONOTONIC, &start);
  do {
    while (have < want && have < 4096 && (blocks[have] = malloc(1 << 20)) != NULL) memset(blocks[have++], 1, 1 << 20);
    FILE *f = fopen(tmp, "w");
    if (!f) return 1;
    fprintf(f, "%zu\n", have);
    fclose(f);
    rename(tmp, argv[2]);
    usleep(20000);
    clock_gettime(CLOCK_MONOTONIC, &now);
  } while ((double)(now.tv_sec - start.tv_sec) + (double)(now.tv_nsec - start.tv_nsec) / 1e9 < seconds);
  return 0;
}
