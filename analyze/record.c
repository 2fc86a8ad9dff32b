/* record.c — `tierpool record [OPTIONS] -- CMD [ARGS...]`: runs CMD with
 * libtierpool.so preloaded and its profiler on, waits for it, and names every
 * trace the run wrote (CMD's, its children's, exec'd programs'), which the
 * library lists in a private index file (TIERPOOL_TRACE_INDEX). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "commands.h"
#include "launch.h"

#define DEFAULT_TRACE "./tierpool-%e-%p.tpt"
#define TRACE_PATH_MAX 256 /* the library's limit for option values, with the NUL */

static const char record_usage[] =
    "usage: tierpool record [-o PATH] [--rate R | --bytes N] [--seed S] [--validate]\n"
    "                       [--config FILE] -- CMD [ARGS...]\n";

static void record_help(void) {
  printf("%s\n"
         "Runs CMD with libtierpool.so preloaded and its allocation profiler on, waits for\n"
         "it, then names each trace file the run wrote on stderr:\n"
         "  tierpool: trace PATH (SIZE bytes)\n"
         "Processes CMD forks, and programs they exec, write traces of their own; a trace\n"
         "name already taken gets .1, .2, ...  Read a trace with 'tierpool dump'.\n"
         "\n"
         "  -o, --output PATH  the trace file (default %s):\n"
         "                     %%p is the pid, %%e the executable's name, %%%% a percent sign\n"
         "  --rate R           probability that an allocation is sampled with its stack\n"
         "                     (default 0.01)\n"
         "  --bytes N          sample by bytes instead: one sample per N bytes on average\n"
         "                     (K, M, G suffixes)\n"
         "  --seed S           seed of the sampling, for repeatable traces (default random)\n"
         "  --validate         track every allocation: a leak report at exit, and double or\n"
         "                     invalid frees reported with their stacks\n"
         "  --config FILE      the pool's configuration (sets TIERPOOL_CONFIG)\n"
         "\n"
         "The exit status is CMD's (128+N when signal N ended it). Processes CMD leaves\n"
         "running are not waited for.\n",
         record_usage, DEFAULT_TRACE);
}

struct record_options {
  const char *output, *rate, *bytes, *seed, *config;
  int validate;
};

/* ---- options --------------------------------------------------------------- */

static int bad_value(const char *option, const char *value, const char *want) {
  fprintf(stderr, "tierpool record: bad %s '%s' (want %s)\n%s", option, value, want, record_usage);
  return EXIT_USAGE;
}

/* Exports the sampling options, checked here so that a typo stops the run
 * instead of leaving the library's default in place. */
static int export_sampling(const struct record_options *o) {
  char text[32];
  if (o->rate && o->bytes) {
    fprintf(stderr, "tierpool record: --rate and --bytes exclude each other\n%s", record_usage);
    return EXIT_USAGE;
  }
  if (o->rate) {
    char *end;
    double rate = strtod(o->rate, &end);
    if (end == o->rate || *end || !(rate > 0.0 && rate <= 1.0))
      return bad_value("--rate", o->rate, "a probability above 0, at most 1");
    /* As typed when the library's parser takes it (31 characters), else the same number. */
    if (strlen(o->rate) >= sizeof text) snprintf(text, sizeof text, "%.17g", rate);
    if (launch_setenv("TIERPOOL_SAMPLE_RATE", strlen(o->rate) < sizeof text ? o->rate : text)) return EXIT_USAGE;
  }
  if (o->bytes) {
    uint64_t bytes;
    if (cli_parse_size(o->bytes, &bytes) != 0 || bytes == 0 || bytes > (uint64_t)1 << 40)
      return bad_value("--bytes", o->bytes, "a size from 1 to 1T, like 512K");
    snprintf(text, sizeof text, "%" PRIu64, bytes);
    if (launch_setenv("TIERPOOL_SAMPLE_BYTES", text)) return EXIT_USAGE;
  }
  if (o->seed) {
    char *end;
    errno = 0;
    unsigned long long seed = strtoull(o->seed, &end, 10);
    if (*o->seed < '0' || *o->seed > '9' || *end || errno) return bad_value("--seed", o->seed, "a number");
    snprintf(text, sizeof text, "%llu", seed);
    if (launch_setenv("TIERPOOL_SAMPLE_SEED", text)) return EXIT_USAGE;
  }
  if (o->validate && launch_setenv("TIERPOOL_VALIDATE", "1")) return EXIT_USAGE;
  return launch_setenv("TIERPOOL_PROFILE", "1");
}

/* TIERPOOL_TRACE as an absolute template: a process that changes directory
 * still writes where the user asked.  Its directory must be writable. */
static int export_trace(const char *output, const char *cwd) {
  char path[PATH_MAX + TRACE_PATH_MAX];
  int n = snprintf(path, sizeof path, "%s%s%s", output[0] == '/' ? "" : cwd, output[0] == '/' ? "" : "/", output);
  if (n < 0 || n >= TRACE_PATH_MAX) {
    fprintf(stderr, "tierpool record: trace path '%s' too long (at most %d bytes, made absolute)\n", path,
            TRACE_PATH_MAX - 1);
    return EXIT_USAGE;
  }
  char dir[sizeof path];
  memcpy(dir, path, (size_t)n + 1);
  *strrchr(dir, '/') = '\0';
  if (!strchr(dir, '%') && access(dir[0] ? dir : "/", W_OK | X_OK) != 0) {
    fprintf(stderr, "tierpool record: cannot write traces into '%s': %s\n", dir[0] ? dir : "/", strerror(errno));
    return EXIT_USAGE;
  }
  return launch_setenv("TIERPOOL_TRACE", path);
}

/* ---- the index of traces --------------------------------------------------- */

/* A new empty file for the library to list trace paths in. */
static int make_index(char index[PATH_MAX], const char *cwd) {
  const char *tmp = getenv("TMPDIR");
  if (!tmp || !*tmp) tmp = "/tmp";
  int n = snprintf(index, PATH_MAX, "%s%s%s/tierpool-index-XXXXXX", tmp[0] == '/' ? "" : cwd,
                   tmp[0] == '/' ? "" : "/", tmp);
  int fd = n > 0 && n < PATH_MAX ? mkstemp(index) : -1;
  if (fd < 0) {
    fprintf(stderr, "tierpool record: cannot create an index file in %s: %s\n", tmp, strerror(errno));
    return EXIT_USAGE;
  }
  close(fd);
  int rc = launch_setenv("TIERPOOL_TRACE_INDEX", index);
  if (rc) unlink(index);
  return rc;
}

/* "12.3K": the size at a glance, as the pool's statistics print it. */
static void human_size(uint64_t bytes, char out[16]) {
  static const char units[] = "KMGT";
  double v = (double)bytes;
  int u = -1;
  while (v >= 1024 && u < 3) v /= 1024, u++;
  snprintf(out, 16, "%.1f%c", v, units[u]);
}

/* Prints a line per trace listed in index, and passes the list on to an
 * enclosing record's index (outer). Returns how many it listed. */
static int report_traces(const char *index, const char *cwd, const char *outer) {
  FILE *in = fopen(index, "r");
  FILE *up = outer && *outer ? fopen(outer, "a") : NULL;
  if (!in) {
    fprintf(stderr, "tierpool record: cannot read %s: %s\n", index, strerror(errno));
    if (up) fclose(up);
    return 0;
  }
  char line[PATH_MAX + 2];
  size_t cwd_len = strlen(cwd);
  int count = 0;
  while (fgets(line, sizeof line, in)) {
    line[strcspn(line, "\n")] = '\0';
    if (!line[0]) continue;
    count++;
    if (up) fprintf(up, "%s\n", line);
    /* Paths under the current directory are shown relative to it. */
    const char *shown = line;
    if (strncmp(line, cwd, cwd_len) == 0 && line[cwd_len] == '/' && cwd_len > 1) shown = line + cwd_len + 1;
    struct stat st;
    if (stat(line, &st) != 0) {
      fprintf(stderr, "tierpool: trace %s (gone: %s)\n", shown, strerror(errno));
    } else if (st.st_size < 1024) {
      fprintf(stderr, "tierpool: trace %s (%lld bytes)\n", shown, (long long)st.st_size);
    } else {
      char human[16];
      human_size((uint64_t)st.st_size, human);
      fprintf(stderr, "tierpool: trace %s (%lld bytes, %s)\n", shown, (long long)st.st_size, human);
    }
  }
  fclose(in);
  if (up) fclose(up);
  return count;
}

/* ---- the child ------------------------------------------------------------- */

static volatile sig_atomic_t child_pid;

/* A polite signal to the launcher goes to CMD, which decides how to end. */
static void forward(int sig) {
  if (child_pid > 0) kill((pid_t)child_pid, sig);
}

/* Forks and execs cmd; waits for it.  Returns its status as a shell would,
 * or 126/127 if it could not be run (the exec's errno comes back through a
 * close-on-exec pipe: the child's own exit status could be anything). */
static int run_child(char **cmd, int *ran) {
  int pipefd[2];
  if (pipe2(pipefd, O_CLOEXEC) != 0) {
    fprintf(stderr, "tierpool record: pipe: %s\n", strerror(errno));
    return EXIT_USAGE;
  }
  struct sigaction ignore = {.sa_handler = SIG_IGN}, pass = {.sa_handler = forward}, old_int, old_quit, old_term,
                   old_hup;
  sigemptyset(&ignore.sa_mask);
  sigemptyset(&pass.sa_mask);
  /* The terminal's ^C and ^\ reach CMD directly; the launcher outlives it to report. */
  sigaction(SIGINT, &ignore, &old_int);
  sigaction(SIGQUIT, &ignore, &old_quit);
  sigaction(SIGTERM, &pass, &old_term);
  sigaction(SIGHUP, &pass, &old_hup);
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) {
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGQUIT, &old_quit, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    sigaction(SIGHUP, &old_hup, NULL);
    close(pipefd[0]);
    unsigned char status = (unsigned char)launch_exec(cmd);
    if (write(pipefd[1], &status, 1) != 1) { /* the parent then sees an exit status of 127/126 */
    }
    _exit(status);
  }
  int status = 0, rc;
  close(pipefd[1]);
  if (pid < 0) {
    fprintf(stderr, "tierpool record: fork: %s\n", strerror(errno));
    rc = EXIT_USAGE;
  } else {
    child_pid = pid;
    unsigned char exec_status;
    ssize_t n;
    while ((n = read(pipefd[0], &exec_status, 1)) < 0 && errno == EINTR) {
    }
    *ran = n == 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    child_pid = 0;
    if (n == 1) rc = exec_status;
    else if (WIFSIGNALED(status)) rc = 128 + WTERMSIG(status);
    else rc = WEXITSTATUS(status);
  }
  close(pipefd[0]);
  sigaction(SIGINT, &old_int, NULL);
  sigaction(SIGQUIT, &old_quit, NULL);
  sigaction(SIGTERM, &old_term, NULL);
  sigaction(SIGHUP, &old_hup, NULL);
  return rc;
}

int cmd_record(int argc, char **argv) {
  struct record_options o = {0};
  int i = 1;
  for (; i < argc && strcmp(argv[i], "--") != 0; i++) {
    if (cli_is_help(argv[i])) {
      record_help();
      return 0;
    } else if (strcmp(argv[i], "--validate") == 0) {
      o.validate = 1;
    } else {
      static const char *const with_value[] = {"-o", "--output", "--rate", "--bytes", "--seed", "--config"};
      const char **slot[] = {&o.output, &o.output, &o.rate, &o.bytes, &o.seed, &o.config};
      int got = 0;
      for (size_t k = 0; k < sizeof with_value / sizeof with_value[0] && !got; k++)
        got = cli_option(argc, argv, &i, with_value[k], slot[k]);
      if (got < 0) {
        fprintf(stderr, "tierpool record: %s needs a value\n%s", argv[i], record_usage);
        return EXIT_USAGE;
      }
      if (!got) {
        fprintf(stderr, "tierpool record: unexpected '%s' (missing '--' before the command?)\n%s", argv[i],
                record_usage);
        return EXIT_USAGE;
      }
    }
  }
  if (!launch_has_command("record", argc, argv, i, record_usage)) return EXIT_USAGE;
  if (o.output && (!*o.output || o.output[strlen(o.output) - 1] == '/'))
    return bad_value("-o", o.output, "a file name");
  char cwd[PATH_MAX];
  if (!getcwd(cwd, sizeof cwd)) {
    fprintf(stderr, "tierpool record: cannot tell the current directory: %s\n", strerror(errno));
    return EXIT_USAGE;
  }
  int rc = launch_setup(o.config);
  if (!rc) rc = export_sampling(&o);
  if (!rc) rc = export_trace(o.output ? o.output : DEFAULT_TRACE, cwd);
  if (rc) return rc;
  /* An enclosing record (CMD may itself be a `tierpool record`) hears of our traces too. */
  char *outer = getenv("TIERPOOL_TRACE_INDEX") ? strdup(getenv("TIERPOOL_TRACE_INDEX")) : NULL;
  char index[PATH_MAX];
  if ((rc = make_index(index, cwd)) != 0) {
    free(outer);
    return rc;
  }
  int ran = 0;
  rc = run_child(argv + i + 1, &ran);
  if (ran && report_traces(index, cwd, outer) == 0)
    fprintf(stderr, "tierpool: '%s' wrote no trace (a static or setuid program does not load libtierpool.so)\n",
            argv[i + 1]);
  unlink(index);
  free(outer);
  return rc;
}
