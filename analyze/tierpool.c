/* tierpool.c — the `tierpool` command: dispatches to the subcommands.
 *
 * A subcommand is one row of the table below; its function gets the arguments
 * from its own name on and returns the exit status. */
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "config.h"

struct command {
  const char *name;
  int (*fn)(int argc, char **argv);
  const char *help; /* one line, for `tierpool --help` */
};

static const struct command commands[] = {
    {"run", cmd_run, "run a program with libtierpool.so preloaded"},
    {"record", cmd_record, "run a program with the allocation profiler on and name its traces"},
    {"dump", cmd_dump, "print the records of a trace as text, or their counts"},
    {"report", cmd_report, "what traces say: sizes, lifetimes, top allocation sites, tiers"},
    {"propose", cmd_propose, "size classes (and other keys) fitted to traces, as a config file"},
    {"diff", cmd_diff, "how far the allocation profile moved between two sets of traces"},
    {"merge", cmd_merge, "one trace from many"},
    {"export", cmd_export, "pprof, folded stacks, JSON or CSV from traces"},
    {"simulate", cmd_simulate, "replay traces through the pool under several configs"},
};

#define NCOMMANDS (sizeof commands / sizeof commands[0])

static void usage(FILE *out) {
  fprintf(out,
          "usage: tierpool COMMAND [ARGS...]\n"
          "       tierpool --help | --version\n"
          "\n"
          "commands:\n");
  for (size_t i = 0; i < NCOMMANDS; i++) fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].help);
  fprintf(out, "\n'tierpool COMMAND --help' describes one command.\n");
}

int main(int argc, char **argv) {
  if (argc < 2) {
    usage(stderr);
    return EXIT_USAGE;
  }
  const char *name = argv[1];
  if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0 || strcmp(name, "help") == 0) {
    usage(stdout);
    return 0;
  }
  if (strcmp(name, "--version") == 0) {
    printf("tierpool %s\n", TIERPOOL_CLI_VERSION);
    return 0;
  }
  for (size_t i = 0; i < NCOMMANDS; i++)
    if (strcmp(name, commands[i].name) == 0) return commands[i].fn(argc - 1, argv + 1);
  fprintf(stderr, "tierpool: unknown command '%s' (see 'tierpool --help')\n", name);
  return EXIT_USAGE;
}
