/* hash_key.c — the per-process key of the analyzer's hashes (hash_set.h). */
#include "hash_set.h"

#include <sys/random.h>
#include <time.h>
#include <unistd.h>

uint64_t tp_hash_key;

/* Before main, so that every table of the process hashes with the one key. */
__attribute__((constructor)) static void tp_hash_key_init(void) {
  uint64_t key;
  if (getrandom(&key, sizeof key, GRND_NONBLOCK) != (ssize_t)sizeof key) {
    /* No entropy yet: where this process was loaded, and when, are still not the trace author's to know. */
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    key = (uint64_t)(uintptr_t)&tp_hash_key ^ ((uint64_t)now.tv_sec << 32 ^ (uint64_t)now.tv_nsec) ^
          (uint64_t)getpid() << 40;
  }
  tp_hash_key = key;
}
