/* bench.h — what the benchmark programs share: the fixed-seed PRNG, argv
 * parsing, byte patterns to fill and check, page touching, and failing loudly.
 *
 * Every program takes its sizes from argv (so scripts/bench can run a quick
 * version), is deterministic, checks the contents of what it allocated and
 * exits non-zero when a check fails.  On success it prints one line with a
 * checksum to stdout; the line must not depend on the allocator. */
#ifndef TIERPOOL_BENCH_H
#define TIERPOOL_BENCH_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The Wasm workloads' PRNG (rng_next, rng_range) and FNV-1a (fnv_u64). */
#include "../wasm/workload.h"

#define BENCH_PAGE 4096u
#define MIB ((size_t)1 << 20)

__attribute__((noreturn, format(printf, 1, 2))) static inline void fail(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("BENCH CHECK FAILED: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  exit(3);
}

static inline void *xmalloc(size_t n) {
  void *p = malloc(n);
  if (!p) fail("malloc(%zu) returned NULL", n);
  return p;
}

/* argv[i] as a positive number, or dflt when absent. */
static inline size_t arg_size(int argc, char **argv, int i, size_t dflt) {
  if (i >= argc) return dflt;
  char *end;
  unsigned long long v = strtoull(argv[i], &end, 10);
  if (*end || v == 0) {
    fprintf(stderr, "%s: argument %d must be a positive number, not '%s'\n", argv[0], i, argv[i]);
    exit(2);
  }
  return (size_t)v;
}

/* The byte a block tagged `tag` holds at offset i. */
static inline unsigned char pattern_byte(uint64_t tag, size_t i) {
  return (unsigned char)(tag + i * 131u + (i >> 8));
}

/* Pattern walks over p[0..n): with check == 0 they write the tag's pattern,
 * otherwise they compare against it.  They return n when all is well, else
 * the offset of the first byte that does not match. */

/* The first and last `edge` bytes. */
static inline size_t walk_edges(unsigned char *p, size_t n, uint64_t tag, size_t edge, int check) {
  for (size_t i = 0; i < n; i++) {
    if (i == edge && n > 2 * edge) i = n - edge;
    if (!check)
      p[i] = pattern_byte(tag, i);
    else if (p[i] != pattern_byte(tag, i))
      return i;
  }
  return n;
}

/* One byte a page: the page starts (offsets that are multiples of BENCH_PAGE)
 * within [from, to), and byte to-1; writing faults in every page of a block. */
static inline size_t walk_pages(unsigned char *p, size_t from, size_t to, uint64_t tag, int check) {
  for (size_t off = (from + BENCH_PAGE - 1) / BENCH_PAGE * BENCH_PAGE;; off += BENCH_PAGE) {
    if (off >= to) off = to - 1;
    if (!check)
      p[off] = pattern_byte(tag, off / BENCH_PAGE);
    else if (p[off] != pattern_byte(tag, off / BENCH_PAGE))
      return off;
    if (off == to - 1) return to;
  }
}

#endif
