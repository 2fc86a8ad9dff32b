/* trace_file.c — the trace file: its name (%p, %e; never one that exists),
 * and frames written to it whatever the program does with descriptors (it
 * may close or reuse the number: the file is opened again by name) or
 * signals (a pipe whose reader went away must not kill it with SIGPIPE).  A
 * full disk or a lost file stops the trace, never the program. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "recorder_private.h"
#include "trace_codec.h"

static tp_trace_compressor tp_rec_compressor;
static bool tp_rec_forked; /* a fork child's trace: tp_rec.path still names the parent's until it opens its own */

/* Appends one record (length-delimited) to the frame being built. */
void tp_rec_out_record(tp_rec_out *out, Tierpool__Trace__Record *record) {
  size_t need = tp_trace_record_packed_size(record);
  if (out->len + need > out->cap) {
    size_t cap = out->cap ? out->cap : 64 << 10;
    while (cap < out->len + need) cap *= 2;
    uint8_t *data = tp_rec_scratch_grow(out->data, out->len, cap);
    if (!data) {
      out->failed = true;
      return;
    }
    out->data = data, out->cap = cap;
  }
  out->len += tp_trace_record_pack(record, out->data + out->len);
}

/* Expands %p (pid), %e (executable name) and %% in the trace template. */
static void tp_rec_expand_path(char *out, size_t cap, const char *template) {
  char exe[4096] = "", *base = exe;
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n > 0) exe[n] = '\0';
  char *slash = strrchr(exe, '/');
  if (slash) base = slash + 1;
  size_t len = 0;
  for (const char *t = template; *t && len + 1 < cap; t++) {
    if (t[0] == '%' && (t[1] == 'p' || t[1] == 'e' || t[1] == '%')) {
      char pid[16];
      snprintf(pid, sizeof pid, "%d", (int)getpid());
      const char *piece = t[1] == 'p' ? pid : t[1] == 'e' ? base : "%";
      len += (size_t)snprintf(out + len, cap - len, "%s", piece);
      if (len >= cap) len = cap - 1;
      t++;
    } else {
      out[len++] = *t;
    }
  }
  out[len] = '\0';
}

/* A named pipe carries one process's trace at a time: its writer holds a
 * lock on it (released when its image execs, so that the new image's trace
 * follows), so that the trace of a program a child execs, which opens the
 * same path, does not go in between.  False: another process has it. */
static bool tp_rec_claim_stream(int fd) {
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISFIFO(st.st_mode)) return true;
  return flock(fd, LOCK_EX | LOCK_NB) == 0 || errno != EWOULDBLOCK; /* a file system without locks: as before */
}

/* Whether fd still is the trace (tp_os_fd_is). */
static bool tp_rec_fd_is_trace(int fd) { return tp_os_fd_is(fd, tp_rec.fd_dev, tp_rec.fd_ino); }

static void tp_rec_fd_remember(void) {
  struct stat st;
  if (fstat(tp_rec.fd, &st) == 0) {
    tp_rec.fd_dev = st.st_dev, tp_rec.fd_ino = st.st_ino;
    tp_rec.fd_is_pipe = S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode);
  }
  char cwd[sizeof tp_rec.reopen_path];
  if (tp_rec.path[0] == '/' || !getcwd(cwd, sizeof cwd) ||
      snprintf(tp_rec.reopen_path, sizeof tp_rec.reopen_path, "%s/%s", cwd, tp_rec.path) >= (int)sizeof tp_rec.reopen_path)
    snprintf(tp_rec.reopen_path, sizeof tp_rec.reopen_path, "%s", tp_rec.path);
}

/* The trace, open: the descriptor as it is, or the file opened again by name
 * when the program took the number (never closed here: it is the program's
 * now).  False, with a line on stderr, when the file is gone. */
static bool tp_rec_fd_check(void) {
  if (tp_rec_fd_is_trace(tp_rec.fd)) return true;
  int fd = open(tp_rec.reopen_path, O_WRONLY | O_APPEND | O_NONBLOCK | O_CLOEXEC);
  if (tp_rec_fd_is_trace(fd) && tp_rec_claim_stream(fd)) {
    fcntl(fd, F_SETFL, O_APPEND); /* non-blocking only for the open (a FIFO without a reader) */
    tp_rec.fd = tp_os_fd_out_of_the_way(fd);
    return true;
  }
  if (fd >= 0) close(fd);
  tp_message("profiler: %s was closed by the program and cannot be opened again; trace stops here", tp_rec.path);
  tp_rec.fd = -1;
  return false;
}

/* Stops the trace (a full disk, a lost file), not the program. */
void tp_rec_fd_give_up(void) {
  if (tp_rec_fd_is_trace(tp_rec.fd)) close(tp_rec.fd);
  tp_rec.fd = -1;
}

static bool tp_rec_write_fd(const uint8_t *data, size_t len) {
  while (len) {
    ssize_t n = write(tp_rec.fd, data, len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data += n, len -= (size_t)n;
  }
  return true;
}

/* A trace that is a pipe whose reader went away raises SIGPIPE in the
 * writing thread — the program's own at exit or exec, which it would kill:
 * blocked around the write, and a SIGPIPE the write raised taken back. */
static bool tp_rec_write_pipe(const uint8_t *data, size_t len) {
  sigset_t pipe_signal, old, pending;
  sigemptyset(&pipe_signal);
  sigaddset(&pipe_signal, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_signal, &old);
  bool was_pending = sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE);
  bool written = tp_rec_write_fd(data, len);
  int error = errno;
  if (!written && error == EPIPE && !was_pending) {
    struct timespec now = {0, 0};
    while (sigtimedwait(&pipe_signal, NULL, &now) < 0 && errno == EINTR) {
    }
  }
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  errno = error;
  return written;
}

/* Writes all of it; a full disk or closed descriptor stops the trace, not the program. */
static bool tp_rec_write_all(const uint8_t *data, size_t len) {
  if (!tp_rec_fd_check()) return false;
  if (tp_rec.fd_is_pipe ? tp_rec_write_pipe(data, len) : tp_rec_write_fd(data, len)) return true;
  tp_message("profiler: writing %s failed (%s); trace stops here", tp_rec.path, tp_os_error_text(errno));
  tp_rec_fd_give_up();
  return false;
}

/* False if the frame is lost (out of memory). */
bool tp_rec_write_frame(tp_rec_out *out) {
  if (out->failed) return false;
  if (!out->len || tp_rec.fd < 0) return true;
  if (!tp_rec_compressor.cctx &&
      tp_trace_compressor_init(&tp_rec_compressor, tp_rec_zstd_alloc, tp_rec_zstd_free) != 0)
    return false;
  size_t bound = tp_trace_frame_bound(out->len);
  uint8_t *frame = tp_rec_scratch_alloc(bound);
  if (!frame) return false;
  size_t size = tp_trace_compress_frame(&tp_rec_compressor, out->data, out->len, frame, bound);
  if (size) tp_rec_write_all(frame, size);
  return size != 0;
}

/* Opens a new file (never overwriting: an exec'd program of the same name
 * and pid gets "name.1"; a device or pipe such as /dev/null is written as it
 * is) and writes the first frame: header, process, modules. */
bool tp_rec_writer_open(void) {
  char base[sizeof tp_rec.path - 8];
  tp_rec_expand_path(base, sizeof base, tp_opt.trace);
  struct stat st;
  if (stat(base, &st) == 0 && (S_ISCHR(st.st_mode) || S_ISFIFO(st.st_mode))) { /* /dev/null, a pipe */
    /* The parent's stream (no %p in the path): two writers would interleave
     * their frames, or the child's open would wait for a reader gone. */
    bool dev_null = S_ISCHR(st.st_mode) && major(st.st_rdev) == 1 && minor(st.st_rdev) == 3;
    if (tp_rec_forked && !dev_null && strcmp(base, tp_rec.path) == 0) {
      tp_message("profiler: %s is the stream the parent's trace goes to; pid %d records none (put %%p in the path)",
                 base, (int)getpid());
      return false;
    }
    snprintf(tp_rec.path, sizeof tp_rec.path, "%s", base);
    /* A reader is waited for a second at most: one started beside the
     * program may come a little late, one that has gone (it read an exec'd
     * image's trace to its end) would hold the program up for ever. */
    for (int waited_ms = 0;; waited_ms += 10) {
      tp_rec.fd = open(tp_rec.path, O_WRONLY | O_CLOEXEC | O_NONBLOCK);
      if (tp_rec.fd >= 0 || errno != ENXIO || waited_ms >= 1000) break;
      struct timespec pause = {0, 10 * 1000000L};
      nanosleep(&pause, NULL);
    }
    if (tp_rec.fd >= 0 && !tp_rec_claim_stream(tp_rec.fd)) {
      close(tp_rec.fd);
      tp_rec.fd = -1;
      tp_message("profiler: %s carries another process's trace; pid %d records none (put %%p in the path)", base,
                 (int)getpid());
      return false;
    }
    if (tp_rec.fd >= 0) fcntl(tp_rec.fd, F_SETFL, 0);
    else if (errno == ENXIO) {
      tp_message("profiler: %s is a pipe nobody reads; pid %d records none", base, (int)getpid());
      return false;
    }
  } else {
    for (int attempt = 0; attempt < 100; attempt++) {
      if (attempt)
        snprintf(tp_rec.path, sizeof tp_rec.path, "%s.%d", base, attempt);
      else
        snprintf(tp_rec.path, sizeof tp_rec.path, "%s", base);
      tp_rec.fd = open(tp_rec.path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
      if (tp_rec.fd >= 0 || errno != EEXIST) break;
    }
  }
  if (tp_rec.fd < 0) {
    tp_message("profiler: cannot create %s (%s); not recording", tp_rec.path, tp_os_error_text(errno));
    return false;
  }
  tp_rec.fd = tp_os_fd_out_of_the_way(tp_rec.fd); /* the program's opens start at 3 as without us */
  tp_rec_fd_remember();
  tp_rec.pid = getpid();
  /* The launcher learns about every trace of the run through this index.
   * Its name is read at the process's first open, at start: a fork child
   * opens its trace in its writer thread, and a getenv there would race
   * with a setenv of the child's own (one that reallocates the environment
   * frees the array getenv walks). */
  static char index[PATH_MAX];
  static bool index_read;
  if (!index_read) {
    const char *name = getenv("TIERPOOL_TRACE_INDEX");
    if (name && strlen(name) < sizeof index) strcpy(index, name);
    index_read = true;
  }
  if (*index) {
    int fd = open(index, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd >= 0) {
      char line[sizeof tp_rec.path + 1];
      int n = snprintf(line, sizeof line, "%s\n", tp_rec.path);
      if (n > 0 && write(fd, line, (size_t)n) < 0) { /* best effort */
      }
      close(fd);
    }
  }
  tp_rec_scratch_mark scratch = tp_rec_scratch_save();
  tp_rec_out out = {0};
  Tierpool__Trace__Header header = TIERPOOL__TRACE__HEADER__INIT;
  header.magic = "tierpool-trace";
  header.format_version = TP_TRACE_FORMAT_VERSION;
  header.producer = "libtierpool " TIERPOOL_VERSION;
  Tierpool__Trace__Record record = TIERPOOL__TRACE__RECORD__INIT;
  record.kind_case = TIERPOOL__TRACE__RECORD__KIND_HEADER;
  record.header = &header;
  tp_rec_out_record(&out, &record);
  tp_rec_emit_process(&out);
  tp_rec_emit_new_modules(&out);
  tp_rec_write_frame(&out);
  tp_rec_scratch_restore(scratch);
  return true;
}

/* In a forked child: the parent's file is not ours to write, and the
 * compressor's memory is freed (the pool is consistent in the child). */
void tp_rec_file_after_fork_child(void) {
  tp_rec_forked = true;
  tp_rec_fd_give_up();
  tp_trace_compressor_fini(&tp_rec_compressor);
}
