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

static tp_execve_fn tp_next_execve, tp_next_execvpe;
static tp_execvp_fn tp_next_execv, tp_next_execvp;
static tp_fexecve_fn tp_next_fexecve;

/* libc's, found when the library is loaded, not at the first exec: a child
 * made without fork's handlers (_Fork, a raw clone) may exec while another
 * thread held the loader's lock, and dlsym would wait for it forever. */
__attribute__((constructor)) static void tp_exec_resolve(void) {
  tp_next_execvpe = (tp_execve_fn)dlsym(RTLD_NEXT, "execvpe");
  tp_next_execv = (tp_execvp_fn)dlsym(RTLD_NEXT, "execv");
  tp_next_execvp = (tp_execvp_fn)dlsym(RTLD_NEXT, "execvp");
  tp_next_fexecve = (tp_fexecve_fn)dlsym(RTLD_NEXT, "fexecve");
  /* Last: the sign that all five are there (tp_exec_prepare). */
  __atomic_store_n(&tp_next_execve, (tp_execve_fn)dlsym(RTLD_NEXT, "execve"), __ATOMIC_RELEASE);
}

static void tp_exec_prepare(void) {
  if (!__atomic_load_n(&tp_next_execve, __ATOMIC_ACQUIRE)) tp_exec_resolve();
  if (tp_rec_active) tp_rec_before_exec();
}

TP_API int execve(const char *path, char *const argv[], char *const envp[]) {
  tp_exec_prepare();
  return tp_next_execve(path, argv, envp);
}

TP_API int execvpe(const char *file, char *const argv[], char *const envp[]) {
  tp_exec_prepare();
  return tp_next_execvpe(file, argv, envp);
}

TP_API int execv(const char *path, char *const argv[]) {
  tp_exec_prepare();
  return tp_next_execv(path, argv);
}

TP_API int execvp(const char *file, char *const argv[]) {
  tp_exec_prepare();
  return tp_next_execvp(file, argv);
}

TP_API int fexecve(int fd, char *const argv[], char *const envp[]) {
  tp_exec_prepare();
  return tp_next_fexecve(fd, argv, envp);
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
