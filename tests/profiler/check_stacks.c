/* check_stacks.c — `stacks TRACE SIZE COUNT INNER OUTER`: every sample of SIZE
 * bytes (COUNT of them: record at rate 1) has one and the same interned stack,
 * whose innermost frame symbolizes, through the trace's module records and the
 * executable's symbol table, to INNER and the next one to OUTER: the stack
 * starts at malloc's caller, with the library's own frames left out. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checker.h"
#include "symbolize.h"

int check_stacks(int argc, char **argv) {
  if (argc != 6) return -1;
  uint64_t size = strtoull(argv[2], NULL, 10), want = strtoull(argv[3], NULL, 10);
  const char *inner = argv[4], *outer = argv[5];
  struct tl_trace t;
  if (tl_load(argv[1], &t) != 0) return -1;
  uint64_t count = 0, stacks_seen = 0;
  uint32_t stack = 0;
  for (size_t i = 0; i < t.n_samples; i++) {
    if (t.samples[i].size != size) continue;
    if (!count++ || t.samples[i].stack != stack) stacks_seen++;
    stack = t.samples[i].stack;
  }
  expect(count == want, "%" PRIu64 " samples of %" PRIu64 " bytes (want %" PRIu64 ")", count, size, want);
  expect(stacks_seen == 1, "they share one interned stack (%" PRIu64 " changes of stack id)", stacks_seen);
  const Tierpool__Trace__Stack *s = stack < t.n_stacks ? t.stacks[stack] : NULL;
  if (expect(s && s->n_frames >= 2, "stack %u is in the trace with at least 2 frames", stack)) {
    for (size_t f = 0; f < 2; f++) {
      /* Frames are return addresses: the call instruction is just before. */
      struct symbol sym = symbolize(&t, s->frames[f] - 1);
      expect(sym.module && sym.build_id_ok && strcmp(sym.name, f == 0 ? inner : outer) == 0,
             "frame #%zu 0x%" PRIx64 " is in %s (%s in %s, build-id %s)", f, s->frames[f], f == 0 ? inner : outer,
             sym.name[0] ? sym.name : "no function", sym.module ? sym.module : "no module",
             sym.build_id_ok ? "matches" : "differs");
    }
  }
  tl_free(&t);
  return checker_failures;
}
