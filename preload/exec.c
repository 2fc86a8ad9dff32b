/* exec.c — the exec family, passed on unchanged.  When the recorder is on,
 * the program's data so far is written first: an exec replaces the image
 * without running destructors, and the new image starts a trace of its own.
 * The l-variants build their argv here, as glibc's do, and go through the
 * v-variants so that each call flushes once. */
#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <unistd.h>

#include "internal.h"
#include "recorder.h"

#define TP_EXEC_MAX_ARGS 4096

typedef int (*tp_execve_fn)(const char *, char *const[], char *const[]);
typedef int (*tp_execvp_fn)(const char *, char *const[]);
typedef int (*tp_fexecve_fn)(int, char *const[], char *const[]);

static void *tp_next(const char *name) { return dlsym(RTLD_NEXT, name); }

TP_API int execve(const char *path, char *const argv[], char *const envp[]) {
  static tp_execve_fn next;
  if (!next) next = (tp_execve_fn)tp_next("execve");
  if (tp_rec_active) tp_rec_before_exec();
  return next(path, argv, envp);
}

TP_API int execvpe(const char *file, char *const argv[], char *const envp[]) {
  static tp_execve_fn next;
  if (!next) next = (tp_execve_fn)tp_next("execvpe");
  if (tp_rec_active) tp_rec_before_exec();
  return next(file, argv, envp);
}

TP_API int execv(const char *path, char *const argv[]) {
  static tp_execvp_fn next;
  if (!next) next = (tp_execvp_fn)tp_next("execv");
  if (tp_rec_active) tp_rec_before_exec();
  return next(path, argv);
}

TP_API int execvp(const char *file, char *const argv[]) {
  static tp_execvp_fn next;
  if (!next) next = (tp_execvp_fn)tp_next("execvp");
  if (tp_rec_active) tp_rec_before_exec();
  return next(file, argv);
}

TP_API int fexecve(int fd, char *const argv[], char *const envp[]) {
  static tp_fexecve_fn next;
  if (!next) next = (tp_fexecve_fn)tp_next("fexecve");
  if (tp_rec_active) tp_rec_before_exec();
  return next(fd, argv, envp);
}

/* Collects the NULL-terminated argument list that follows `first`; for
 * execle, *envp receives the pointer after the NULL. */
static int tp_collect_args(char **argv, const char *first, va_list ap, char ***envp) {
  int argc = 0;
  argv[argc++] = (char *)first;
  while (argv[argc - 1] != NULL) {
    if (argc == TP_EXEC_MAX_ARGS) {
      errno = E2BIG;
      return -1;
    }
    argv[argc++] = va_arg(ap, char *);
  }
  if (envp) *envp = va_arg(ap, char **);
  return 0;
}

TP_API int execl(const char *path, const char *arg, ...) {
  char *argv[TP_EXEC_MAX_ARGS];
  va_list ap;
  va_start(ap, arg);
  int ok = tp_collect_args(argv, arg, ap, NULL);
  va_end(ap);
  return ok < 0 ? -1 : execv(path, argv);
}

TP_API int execlp(const char *file, const char *arg, ...) {
  char *argv[TP_EXEC_MAX_ARGS];
  va_list ap;
  va_start(ap, arg);
  int ok = tp_collect_args(argv, arg, ap, NULL);
  va_end(ap);
  return ok < 0 ? -1 : execvp(file, argv);
}

TP_API int execle(const char *path, const char *arg, ...) {
  char *argv[TP_EXEC_MAX_ARGS], **envp;
  va_list ap;
  va_start(ap, arg);
  int ok = tp_collect_args(argv, arg, ap, &envp);
  va_end(ap);
  return ok < 0 ? -1 : execve(path, argv, envp);
}
