/* measure.c — runs a program under a chosen allocator and prints one line of
 * numbers about it, for scripts/bench.
 *
 *   measure [--preload LIB] [--repeat N] [--timeout SEC] [--quiet] -- PROG [ARG...]
 *
 * The child gets LD_PRELOAD=LIB (or no LD_PRELOAD at all without --preload);
 * the rest of the environment is passed on.  With --repeat N the program is
 * run N times one after the other (for start-up cost), up to the first
 * failure; times and CPU are the totals, peak RSS the largest.  The child's
 * stdout is read through a pipe and hashed (FNV-1a), so that runs under
 * different allocators can be compared; with --quiet it is only hashed,
 * otherwise also copied to stderr.  --timeout kills the child (SIGKILL) after
 * SEC seconds in all.
 *
 * Output, one line on stdout:
 *   runs=N status=S wall_ms=W user_ms=U sys_ms=Y maxrss_kib=R minflt=F out_fnv=H out_bytes=B
 * (minflt: minor page faults, the total of the runs).
 * status is 0 when every run exited 0, otherwise the first failure as
 * "exit:C", "signal:N" or "timeout" (a program that cannot be started exits 127).
 * measure exits 0 when status is 0, 1 when it is not, 2 on bad usage or when
 * it cannot fork. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static volatile pid_t child_pid;
static volatile sig_atomic_t timed_out;

static void on_alarm(int sig) {
  (void)sig;
  timed_out = 1;
  if (child_pid > 0) kill(child_pid, SIGKILL);
}

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static double tv_ms(struct timeval tv) { return tv.tv_sec * 1e3 + tv.tv_usec / 1e3; }

/* The environment minus any LD_PRELOAD, plus ours when preload is set. */
static char **child_env(const char *preload) {
  size_t n = 0;
  while (environ[n]) n++;
  char **env = calloc(n + 2, sizeof *env);
  if (!env) return NULL;
  size_t k = 0;
  for (size_t i = 0; i < n; i++)
    if (strncmp(environ[i], "LD_PRELOAD=", 11) != 0) env[k++] = environ[i];
  if (preload && *preload) {
    if (asprintf(&env[k], "LD_PRELOAD=%s", preload) < 0) return NULL;
    k++;
  }
  env[k] = NULL;
  return env;
}

struct totals {
  double wall_ms, user_ms, sys_ms;
  long maxrss_kib;
  long minflt;
  uint64_t fnv;
  unsigned long long out_bytes;
  char status[32];
};

/* One run: fork, exec with the pipe as stdout, hash what comes, wait4. */
static int run_once(char **argv, char **env, int quiet, struct totals *t) {
  int fds[2];
  if (pipe(fds) != 0) return perror("measure: pipe"), -1;
  double t0 = now_ms();
  pid_t pid = fork();
  if (pid < 0) return perror("measure: fork"), -1;
  if (pid == 0) {
    close(fds[0]);
    if (dup2(fds[1], STDOUT_FILENO) < 0) _exit(127);
    close(fds[1]);
    execvpe(argv[0], argv, env);
    fprintf(stderr, "measure: cannot run %s: %s\n", argv[0], strerror(errno));
    _exit(127);
  }
  child_pid = pid;
  close(fds[1]);
  char buf[65536];
  for (;;) {
    ssize_t got = read(fds[0], buf, sizeof buf);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) break;
    for (ssize_t i = 0; i < got; i++) {
      t->fnv ^= (unsigned char)buf[i];
      t->fnv *= 0x100000001b3ULL;
    }
    t->out_bytes += (unsigned long long)got;
    if (!quiet && fwrite(buf, 1, (size_t)got, stderr) != (size_t)got) break;
  }
  close(fds[0]);
  int wstatus;
  struct rusage ru;
  while (wait4(pid, &wstatus, 0, &ru) < 0)
    if (errno != EINTR) return perror("measure: wait4"), -1;
  t->wall_ms += now_ms() - t0;
  child_pid = 0;
  t->user_ms += tv_ms(ru.ru_utime);
  t->sys_ms += tv_ms(ru.ru_stime);
  if (ru.ru_maxrss > t->maxrss_kib) t->maxrss_kib = ru.ru_maxrss;
  t->minflt += ru.ru_minflt;
  if (t->status[0] != '0') return 0; /* keep the first failure */
  if (timed_out)
    snprintf(t->status, sizeof t->status, "timeout");
  else if (WIFSIGNALED(wstatus))
    snprintf(t->status, sizeof t->status, "signal:%d", WTERMSIG(wstatus));
  else if (WEXITSTATUS(wstatus) != 0)
    snprintf(t->status, sizeof t->status, "exit:%d", WEXITSTATUS(wstatus));
  return 0;
}

static void usage(void) {
  fprintf(stderr,
          "usage: measure [--preload LIB] [--repeat N] [--timeout SEC] [--quiet] --"
          " PROG [ARG...]\n");
  exit(2);
}

int main(int argc, char **argv) {
  const char *preload = NULL;
  long repeat = 1, timeout_s = 0;
  int quiet = 0, i = 1;
  for (; i < argc && strcmp(argv[i], "--") != 0; i++) {
    if (!strcmp(argv[i], "--quiet"))
      quiet = 1;
    else if (i + 1 >= argc)
      usage();
    else if (!strcmp(argv[i], "--preload"))
      preload = argv[++i];
    else if (!strcmp(argv[i], "--repeat"))
      repeat = strtol(argv[++i], NULL, 10);
    else if (!strcmp(argv[i], "--timeout"))
      timeout_s = strtol(argv[++i], NULL, 10);
    else
      usage();
  }
  if (i + 1 >= argc || repeat < 1 || timeout_s < 0) usage();
  char **prog = &argv[i + 1];
  char **env = child_env(preload);
  if (!env) return perror("measure"), 2;

  struct sigaction sa = {.sa_handler = on_alarm};
  sigaction(SIGALRM, &sa, NULL);
  if (timeout_s) alarm((unsigned)timeout_s);

  struct totals t = {.fnv = 0xcbf29ce484222325ULL, .status = "0"};
  long runs = 0;
  while (runs < repeat && !timed_out && strcmp(t.status, "0") == 0) {
    if (run_once(prog, env, quiet, &t) != 0) return 2;
    runs++;
  }
  alarm(0);

  printf("runs=%ld status=%s wall_ms=%.3f user_ms=%.3f sys_ms=%.3f maxrss_kib=%ld minflt=%ld "
         "out_fnv=%016llx out_bytes=%llu\n",
         runs, t.status, t.wall_ms, t.user_ms, t.sys_ms, t.maxrss_kib, t.minflt,
         (unsigned long long)t.fnv, t.out_bytes);
  return strcmp(t.status, "0") == 0 ? 0 : 1;
}
