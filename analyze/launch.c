/* launch.c — the command, environment and exec shared by `tierpool run` and
 * `tierpool record` (launch.h). */
#include "launch.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"
#include "preload.h"

bool launch_has_command(const char *name, int argc, char **argv, int i, const char *usage) {
  if (i >= argc || strcmp(argv[i], "--") != 0) {
    fprintf(stderr, "tierpool %s: missing '--' before the command\n%s", name, usage);
    return false;
  }
  if (i + 1 >= argc) {
    fprintf(stderr, "tierpool %s: no command after '--'\n%s", name, usage);
    return false;
  }
  return true;
}

int launch_setenv(const char *key, const char *value) {
  if (setenv(key, value, 1) == 0) return 0;
  fprintf(stderr, "tierpool: cannot set %s: %s\n", key, strerror(errno));
  return EXIT_USAGE;
}

/* Exports TIERPOOL_CONFIG as an absolute path: CMD may change directory. */
static int set_config(const char *file) {
  char path[PATH_MAX];
  if (!realpath(file, path) || access(path, R_OK) != 0) {
    fprintf(stderr, "tierpool: cannot read config '%s': %s\n", file, strerror(errno));
    return EXIT_USAGE;
  }
  return launch_setenv("TIERPOOL_CONFIG", path);
}

int launch_setup(const char *config) {
  char lib[PATH_MAX];
  if (preload_find(lib) != 0) return EXIT_USAGE;
  if (config && set_config(config) != 0) return EXIT_USAGE;
  if (preload_add(lib) != 0) {
    fprintf(stderr, "tierpool: cannot set LD_PRELOAD: %s\n", strerror(errno));
    return EXIT_USAGE;
  }
  return 0;
}

int launch_exec(char **cmd) {
  execvp(cmd[0], cmd);
  int err = errno;
  fprintf(stderr, "tierpool: cannot run '%s': %s\n", cmd[0], strerror(err));
  return err == ENOENT ? 127 : 126;
}
