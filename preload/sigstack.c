/* sigstack.c — sigaltstack, passed on unchanged; the thread's signal stack is
 * noted for the recorder's frame walk, which keeps a walk that starts on it
 * to it (profiler/unwind.c). */
#include <signal.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "internal.h"
#include "recorder.h"

TP_API int sigaltstack(const stack_t *ss, stack_t *old) {
  int r = (int)syscall(SYS_sigaltstack, ss, old);
  if (r == 0 && ss) tp_rec_note_signal_stack((uintptr_t)ss->ss_sp, ss->ss_size, ss->ss_flags & SS_DISABLE);
  return r;
}
