/* exec.c — the exec family, passed on unchanged.  When the recorder is on,
 * the program's data so far is written first: an exec replaces the image
 * without running destructors, and the new image starts a trace of its own.
 * The l-variants build their argv here, as glibc's do, and go through the
 * v-variants so that each call flushes once. */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "internal.h"
#include "recorder.h"

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

/* path: the file the call names, for the trace (NULL: fexecve's descriptor).
 * A path the kernel cannot read (the exec fails with EFAULT) goes unnamed:
 * the trace must not read it in the program's place; so does one relative
 * to a directory descriptor (execveat).  True: the recorder wrote the Exec
 * record and waits to hear whether the call comes back. */
static bool tp_exec_prepare_at(int dirfd, const char *path) {
  if (!__atomic_load_n(&tp_next_execve, __ATOMIC_ACQUIRE)) tp_exec_resolve();
  if (!tp_rec_active) return false;
  bool named = path && tp_os_name_readable(path) && (dirfd == AT_FDCWD || path[0] == '/');
  return tp_rec_before_exec(named ? path : NULL);
}

static bool tp_exec_prepare(const char *path) { return tp_exec_prepare_at(AT_FDCWD, path); }

/* The exec failed (rc is its -1): the program goes on. */
static int tp_exec_returned(bool recorded, int rc) {
  if (recorded) {
    int error = errno;
    tp_rec_after_failed_exec(error);
    errno = error;
  }
  return rc;
}

TP_API int execve(const char *path, char *const argv[], char *const envp[]) {
  bool recorded = tp_exec_prepare(path);
  return tp_exec_returned(recorded, tp_next_execve(path, argv, envp));
}

TP_API int execvpe(const char *file, char *const argv[], char *const envp[]) {
  bool recorded = tp_exec_prepare(file);
  return tp_exec_returned(recorded, tp_next_execvpe(file, argv, envp));
}

TP_API int execv(const char *path, char *const argv[]) {
  bool recorded = tp_exec_prepare(path);
  return tp_exec_returned(recorded, tp_next_execv(path, argv));
}

TP_API int execvp(const char *file, char *const argv[]) {
  bool recorded = tp_exec_prepare(file);
  return tp_exec_returned(recorded, tp_next_execvp(file, argv));
}

/* Made as a system call: glibc has the function only from 2.34. */
TP_API int execveat(int dirfd, const char *path, char *const argv[], char *const envp[], int flags) {
  bool recorded = tp_exec_prepare_at(dirfd, path);
  return tp_exec_returned(recorded, (int)syscall(SYS_execveat, dirfd, path, argv, envp, flags));
}

TP_API int fexecve(int fd, char *const argv[], char *const envp[]) {
  bool recorded = tp_exec_prepare(NULL);
  return tp_exec_returned(recorded, tp_next_fexecve(fd, argv, envp));
}

/* The l-variants count their arguments first and build argv on the stack,
 * as glibc does: as much stack as the call needs (a fixed array would be
 * too much for a signal handler's alternate stack, and too little for a
 * long argument list).  argc: the arguments before the NULL. */
static size_t tp_count_args(const char *first, va_list *ap) {
  size_t argc = 0;
  for (const char *arg = first; arg; arg = va_arg(*ap, const char *)) argc++;
  return argc;
}

static void tp_fill_args(char **argv, size_t argc, const char *first, va_list *ap) {
  argv[0] = (char *)first;
  for (size_t i = 1; i <= argc; i++) argv[i] = va_arg(*ap, char *); /* argv[argc]: the NULL */
}

#define TP_EXEC_ARGS(first, ap, argv)            \
  va_list ap, ap_count;                          \
  va_start(ap, first);                           \
  va_copy(ap_count, ap);                         \
  size_t argc = tp_count_args(first, &ap_count); \
  va_end(ap_count);                              \
  char *argv[argc + 1];                          \
  tp_fill_args(argv, argc, first, &ap)

TP_API int execl(const char *path, const char *arg, ...) {
  TP_EXEC_ARGS(arg, ap, argv);
  va_end(ap);
  return execv(path, argv);
}

TP_API int execlp(const char *file, const char *arg, ...) {
  TP_EXEC_ARGS(arg, ap, argv);
  va_end(ap);
  return execvp(file, argv);
}

TP_API int execle(const char *path, const char *arg, ...) {
  TP_EXEC_ARGS(arg, ap, argv);
  char **envp = va_arg(ap, char **);
  va_end(ap);
  return execve(path, argv, envp);
}
