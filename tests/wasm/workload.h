/* workload.h — what every Wasm workload shares: a deterministic PRNG, an FNV-1a
 * checksum and the exported entry point.
 *
 * Workloads are built as WASI reactors (-mexec-model=reactor) and export
 * `void run(void)`: wizer (a wasmtime embedding) and node's `wasi` module both
 * call it after `_initialize`.  Output must be deterministic: no clocks, no
 * random_get, no addresses printed. */
#ifndef TIERPOOL_WASM_WORKLOAD_H
#define TIERPOOL_WASM_WORKLOAD_H

#include <stddef.h>
#include <stdint.h>

#define WORKLOAD_EXPORT(name) __attribute__((export_name(name)))

/* xorshift64*: small, fast, the same everywhere. */
static inline uint64_t rng_next(uint64_t *s) {
  uint64_t x = *s;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  *s = x;
  return x * 0x2545F4914F6CDD1DULL;
}

/* Uniform in [lo, hi]. */
static inline uint32_t rng_range(uint64_t *s, uint32_t lo, uint32_t hi) {
  return lo + (uint32_t)(rng_next(s) % (uint64_t)(hi - lo + 1));
}

#define FNV_INIT 0xcbf29ce484222325ULL

static inline uint64_t fnv_bytes(uint64_t h, const void *p, size_t n) {
  const unsigned char *b = p;
  for (size_t i = 0; i < n; i++) {
    h ^= b[i];
    h *= 0x100000001b3ULL;
  }
  return h;
}

static inline uint64_t fnv_u64(uint64_t h, uint64_t v) { return fnv_bytes(h, &v, sizeof v); }

#endif
