/* trace_check.c — `trace_check MODE ARGS...`: reads traces the profiler tests
 * recorded and checks them against what the recorded program did (subject.c).
 * Exit status: 0 all checks passed, 1 some failed, 2 bad usage or unreadable. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "checker.h"

int checker_failures;

bool expect(bool cond, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs(cond ? "ok: " : "FAIL: ", cond ? stdout : stderr);
  vfprintf(cond ? stdout : stderr, fmt, ap);
  fputc('\n', cond ? stdout : stderr);
  va_end(ap);
  if (!cond) checker_failures++;
  return cond;
}

static const struct {
  const char *name, *args;
  int (*fn)(int argc, char **argv);
} modes[] = {
    {"histogram", "TRACE RATE", check_histogram},
    {"small", "TRACE_N TRACE_2N N U24 U0 U200 U40 U20 U300", check_small},
    {"lifetimes", "TRACE", check_lifetimes},
    {"stacks", "TRACE SIZE COUNT INNER OUTER", check_stacks},
    {"damage", "TRACE SCRATCH_FILE", check_damage},
    {"facts", "TRACE KEY=VALUE...", check_facts},
};

int main(int argc, char **argv) {
  for (size_t i = 0; argc > 1 && i < sizeof modes / sizeof modes[0]; i++) {
    if (strcmp(argv[1], modes[i].name) != 0) continue;
    int failed = modes[i].fn(argc - 1, argv + 1);
    if (failed < 0) return 2;
    if (failed) fprintf(stderr, "trace_check %s: %d check(s) failed\n", argv[1], failed);
    return failed ? 1 : 0;
  }
  fprintf(stderr, "usage:\n");
  for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++)
    fprintf(stderr, "  trace_check %s %s\n", modes[i].name, modes[i].args);
  return 2;
}
