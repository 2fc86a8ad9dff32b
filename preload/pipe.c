/* pipe.c — pipe and pipe2, passed on unchanged, except that a pipe made
 * inside the recorder is moved high (tp_os_fd_out_of_the_way): libunwind's,
 * which it keeps to test addresses (reading a byte from it, closing it and
 * making it again when that fails) — at a low number the program may have
 * closed and taken for its own file or socket. */
#include <sys/syscall.h>
#include <unistd.h>

#include "internal.h"
#include "recorder.h"

TP_API int pipe2(int fds[2], int flags) {
  int r = (int)syscall(SYS_pipe2, fds, flags);
  if (r == 0 && tp_rec_in_recorder()) { /* O_NONBLOCK stays; a moved end is close-on-exec, as libunwind's are */
    fds[0] = tp_os_fd_out_of_the_way(fds[0]);
    fds[1] = tp_os_fd_out_of_the_way(fds[1]);
  }
  return r;
}

TP_API int pipe(int fds[2]) { return pipe2(fds, 0); }
