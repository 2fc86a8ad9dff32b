/* run.c — `tierpool run [--config FILE] -- CMD [ARGS...]`: runs CMD with
 * libtierpool.so preloaded (and TIERPOOL_CONFIG=FILE when given). */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"
#include "preload.h"

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

/* Exports TIERPOOL_CONFIG as an absolute path: CMD may change directory. */
static int set_config(const char *file) {
  char path[PATH_MAX];
  if (!realpath(file, path) || access(path, R_OK) != 0) {
    fprintf(stderr, "tierpool: cannot read config '%s': %s\n", file, strerror(errno));
    return -1;
  }
  return setenv("TIERPOOL_CONFIG", path, 1);
}

int cmd_run(int argc, char **argv) {
  const char *config = NULL;
  int i = 1;
  for (; i < argc && strcmp(argv[i], "--") != 0; i++) {
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      run_help();
      return 0;
    } else if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
      config = argv[++i];
    } else if (strncmp(argv[i], "--config=", 9) == 0) {
      config = argv[i] + 9;
    } else {
      fprintf(stderr, "tierpool run: unexpected '%s' (missing '--' before the command?)\n%s", argv[i],
              run_usage);
      return EXIT_USAGE;
    }
  }
  if (i >= argc) {
    fprintf(stderr, "tierpool run: missing '--' before the command\n%s", run_usage);
    return EXIT_USAGE;
  }
  if (i + 1 >= argc) {
    fprintf(stderr, "tierpool run: no command after '--'\n%s", run_usage);
    return EXIT_USAGE;
  }
  char lib[PATH_MAX];
  if (preload_find(lib) != 0) return EXIT_USAGE;
  if (config && set_config(config) != 0) return EXIT_USAGE;
  if (preload_add(lib) != 0) {
    fprintf(stderr, "tierpool: cannot set LD_PRELOAD: %s\n", strerror(errno));
    return EXIT_USAGE;
  }
  char **cmd = argv + i + 1;
  execvp(cmd[0], cmd);
  int err = errno;
  fprintf(stderr, "tierpool: cannot run '%s': %s\n", cmd[0], strerror(err));
  return err == ENOENT ? 127 : 126;
}
