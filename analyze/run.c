/* run.c — `tierpool run [--config FILE] -- CMD [ARGS...]`: runs CMD with
 * libtierpool.so preloaded (and TIERPOOL_CONFIG=FILE when given). */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "commands.h"
#include "launch.h"

static const char run_usage[] = "usage: tierpool run [--config FILE] -- CMD [ARGS...]\n";

static void run_help(void) {
  printf("%s\n"
         "Runs CMD with libtierpool.so prepended to LD_PRELOAD (entries already there are\n"
         "kept), so that its heap is served by the tiered pool.\n"
         "\n"
         "  --config FILE  the pool's configuration (sets TIERPOOL_CONFIG)\n"
         "\n"
         "The library is $TIERPOOL_LIB if set, else the one beside this build or install.\n",
         run_usage);
}

int cmd_run(int argc, char **argv) {
  const char *config = NULL;
  int i = 1;
  for (; i < argc && strcmp(argv[i], "--") != 0; i++) {
    if (cli_is_help(argv[i])) {
      run_help();
      return 0;
    } else {
      int got = cli_option(argc, argv, &i, "--config", &config);
      if (got <= 0) {
        fprintf(stderr, got < 0 ? "tierpool run: %s needs a value\n%s"
                                : "tierpool run: unexpected '%s' (missing '--' before the command?)\n%s",
                argv[i], run_usage);
        return EXIT_USAGE;
      }
    }
  }
  if (!launch_has_command("run", argc, argv, i, run_usage)) return EXIT_USAGE;
  int rc = launch_setup(config);
  if (rc != 0) return rc;
  return launch_exec(argv + i + 1); /* the shell's statuses, as if CMD were run directly */
}
