/* namespace.c — unshare and setns, passed on unchanged, and retried once
 * without the library's own threads when the kernel wanted a single-threaded
 * caller: entering a new user namespace (unshare, setns) or another mount
 * namespace (setns) fails with EINVAL while other threads live, and a program
 * with no threads of its own (unshare(1), nsenter(1)) must not fail because
 * of the recorder's writer or the background thread. */
#include <errno.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "internal.h"

static int tp_namespace_call(long number, long a, long b) {
  long r = syscall(number, a, b);
  if (r == 0 || errno != EINVAL || !tp_helpers_pause()) return (int)r;
  r = syscall(number, a, b);
  int saved = errno;
  tp_helpers_resume(); /* in the new namespace */
  errno = saved;
  return (int)r;
}

TP_API int unshare(int flags) { return tp_namespace_call(SYS_unshare, flags, 0); }

TP_API int setns(int fd, int nstype) { return tp_namespace_call(SYS_setns, fd, nstype); }
