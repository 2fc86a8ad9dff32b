/* report_main.c — `tierpool report` alone, built with ASan and UBSan from the
 * same sources (report*.c, symbols.c, profile*.c): the tests run it as
 * `REPORT_CLI report ARGS...`, so that a bad trace that makes the report
 * misbehave fails them. */
#include <stdio.h>
#include <string.h>

#include "commands.h"

int main(int argc, char **argv) {
  if (argc < 2 || strcmp(argv[1], "report") != 0) {
    fprintf(stderr, "usage: report_asan report ARGS...\n");
    return EXIT_USAGE;
  }
  return cmd_report(argc - 1, argv + 1);
}
