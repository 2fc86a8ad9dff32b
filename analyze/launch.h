/* launch.h — what `tierpool run` and `tierpool record` share: their command
 * after "--", preparing the child's environment, and starting the child. */
#ifndef TIERPOOL_LAUNCH_H
#define TIERPOOL_LAUNCH_H

#include <stdbool.h>

/* Checks that argv[i] is "--" followed by a command; otherwise prints why
 * ("tierpool NAME: ..." and usage) and returns false. */
bool launch_has_command(const char *name, int argc, char **argv, int i, const char *usage);

/* The child's environment: libtierpool.so found and prepended to LD_PRELOAD,
 * and TIERPOOL_CONFIG set to config's absolute path when config is not NULL.
 * 0, or EXIT_USAGE after printing what went wrong. */
int launch_setup(const char *config);

/* Exports key=value; on failure prints "tierpool: cannot set KEY" and returns EXIT_USAGE. */
int launch_setenv(const char *key, const char *value);

/* execvp(cmd): returns only if that failed, after printing why, with the
 * status a shell gives (127: not found, 126: not runnable). */
int launch_exec(char **cmd);

#endif
