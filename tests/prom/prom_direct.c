/* prom_direct.c — the whole allocator linked in (no LD_PRELOAD, no ASan: this
 * program's malloc is tierpool's), calling tp_prom_write directly.
 *
 *   prom_direct numbers PATH   allocates a known pattern, reads every tenant's
 *       statistics, writes PATH at once, then prints what the file must hold:
 *       "HEX(tenant) tier field value" lines, and "pattern tier bytes count"
 *   prom_direct loop PATH SECONDS   rewrites PATH every 100 ms and as fast as
 *       it can (two threads) while a third allocates; prints "ready" once the
 *       file exists */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

static void print_hex(const char *s) {
  if (!*s) fputc('-', stdout);
  for (; *s; s++) printf("%02x", (unsigned char)*s);
}

static int mode_numbers(const char *path) {
  static const struct { const char *tier; size_t size, count; } pattern[] = {
      {"slab", 100, 1000}, {"buddy", 64 << 10, 20}, {"large", 8 << 20, 3}};
  for (size_t p = 0; p < 3; p++)
    for (size_t i = 0; i < pattern[p].count; i++) {
      char *block = malloc(pattern[p].size);
      if (!block) return perror("malloc"), 1;
      memset(block, 0x5a, pattern[p].size); /* kept: live until exit */
    }
  /* The statistics, then the file, with no allocation in between. */
  static tierpool_tenant_stats_t stats[TP_MAX_TENANTS];
  unsigned count = tierpool_tenant_count();
  for (unsigned t = 0; t < count && t < TP_MAX_TENANTS; t++)
    if (tierpool_tenant_stats_at(t, &stats[t]) != 0) return fprintf(stderr, "no tenant %u\n", t), 1;
  if (!tp_prom_write(path)) return perror(path), 1;

  static const char *const tiers[] = {"slab", "buddy", "large"};
  for (unsigned t = 0; t < count && t < TP_MAX_TENANTS; t++) {
    for (int tier = 0; tier < TIERPOOL_TIER_COUNT; tier++) {
      const tierpool_tier_stats_t *s = &stats[t].tier[tier];
      const struct { const char *field; uint64_t value; } rows[] = {
          {"live_bytes", s->live_bytes}, {"resident_bytes", s->resident_bytes},
          {"allocs", s->allocs}, {"frees", s->frees}};
      for (size_t r = 0; r < 4; r++) {
        print_hex(stats[t].name);
        printf(" %s %s %llu\n", tiers[tier], rows[r].field, (unsigned long long)rows[r].value);
      }
    }
    print_hex(stats[t].name);
    printf(" - live_bytes %llu\n", (unsigned long long)stats[t].live_bytes);
    print_hex(stats[t].name);
    printf(" - resident_bytes %llu\n", (unsigned long long)stats[t].resident_bytes);
  }
  for (size_t p = 0; p < 3; p++) printf("pattern %s %zu %zu\n", pattern[p].tier, pattern[p].size, pattern[p].count);
  return 0;
}

static const char *loop_path;
static _Atomic bool loop_stop;

static void *paced_writer(void *arg) {
  (void)arg;
  while (!loop_stop) {
    tp_prom_write(loop_path);
    struct timespec delay = {0, 100 * 1000 * 1000};
    nanosleep(&delay, NULL);
  }
  return NULL;
}

static void *eager_writer(void *arg) {
  (void)arg;
  while (!loop_stop) tp_prom_write(loop_path);
  return NULL;
}

static void *churn(void *arg) {
  (void)arg;
  static const size_t sizes[] = {24, 700, 5000, 100 << 10, 3 << 20};
  void *kept[64] = {0};
  for (unsigned i = 0; !loop_stop; i++) {
    unsigned slot = (i * 7) % 64;
    free(kept[slot]);
    kept[slot] = malloc(sizes[i % 5]);
  }
  for (int i = 0; i < 64; i++) free(kept[i]);
  return NULL;
}

static int mode_loop(const char *path, int seconds) {
  loop_path = path;
  if (!tp_prom_write(path)) return perror(path), 1;
  printf("ready\n");
  fflush(stdout);
  pthread_t threads[3];
  void *(*mains[3])(void *) = {paced_writer, eager_writer, churn};
  for (int i = 0; i < 3; i++) pthread_create(&threads[i], NULL, mains[i], NULL);
  sleep((unsigned)seconds);
  loop_stop = true;
  for (int i = 0; i < 3; i++) pthread_join(threads[i], NULL);
  return 0;
}

int main(int argc, char **argv) {
  if (argc == 3 && strcmp(argv[1], "numbers") == 0) return mode_numbers(argv[2]);
  if (argc == 4 && strcmp(argv[1], "loop") == 0) return mode_loop(argv[2], atoi(argv[3]));
  fprintf(stderr, "usage: prom_direct numbers PATH | loop PATH SECONDS\n");
  return 2;
}
