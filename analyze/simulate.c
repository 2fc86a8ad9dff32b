/* simulate.c — `tierpool simulate TRACE... --config A [--config B...]`: an
 * offline A/B test of pool configs.  The traces' allocation stream is replayed
 * through the pool's own code (simulate_pool.c) once per config, each in a
 * forked child — the pool's options and state are process-global — which
 * sends its numbers back through a pipe; the parent prints them side by side.
 * The parent never touches the simulated pool, so every child starts from a
 * pristine one. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "commands.h"
#include "simulate.h"

static const char simulate_usage[] =
    "usage: tierpool simulate TRACE... --config FILE [--config FILE...] [--json]\n";

static void simulate_help(void) {
  printf("%s\n"
         "Replays the allocations and frees of the TRACEs through the pool's own code\n"
         "under each config (a file in the format of TIERPOOL_CONFIG; an empty file such as\n"
         "/dev/null is the built-in defaults) and prints the results side by side.\n"
         "\n"
         "A sample of weight w stands for w allocations of its size: it is replayed as\n"
         "round(w) blocks (fractions carried over), freed together when the sample was\n"
         "freed; blocks never freed stay to the end. A validation-mode trace (record\n"
         "--validate) holds every allocation, so its replay is the exact stream. The\n"
         "pool's clock follows the trace's times. Several TRACEs (or processes in one)\n"
         "are replayed one after another; a process's blocks are freed when it ends.\n"
         "\n"
         "The header gives the live peak: the highest sum of requested bytes of live\n"
         "blocks, the same for every config.  Then a row each:\n"
         "  allocations replayed        blocks allocated (and refused, if any)\n"
         "  peak resident               highest memory the pool held from the OS, as its\n"
         "                              statistics measure it (mincore: slab and buddy\n"
         "                              pages, in use or free, and large mappings), while\n"
         "                              the replay writes every page it asked for\n"
         "  mean resident               the same averaged over the traces' time: what\n"
         "                              release and caching settings change\n"
         "  resident at live peak       the same at the live peak\n"
         "  waste at live peak          usable minus requested bytes of the live blocks\n"
         "                              at the live peak, and its share of the usable bytes\n"
         "  fragmentation at live peak  1 - requested bytes of live blocks / resident, at\n"
         "                              the live peak: memory held beyond what was asked\n"
         "                              for (free memory, and the waste that is touched)\n"
         "  waste, all blocks           (allocated - requested) / allocated over every\n"
         "                              allocation, from the pool's statistics\n"
         "\n"
         "  --config FILE  a config to simulate (repeat for more columns)\n"
         "  --json         one JSON document instead of the table, exact byte counts\n"
         "\n"
         "Resident memory is measured at the live peak (within 0.4%%), at the ends of\n"
         "runs of allocations that may hold a new peak, and every 10 ms of the traces'\n"
         "time (see analyze/simulate_replay.c).  The replay holds the simulated heap, so\n"
         "it needs about as much memory as the recorded process had, for each config\n"
         "replayed at once (one per CPU).\n"
         "\n"
         "Exit status 2 on a missing, foreign or empty trace, a missing or bad config\n"
         "(the pool's own parser says what is wrong), or a bad flag.\n",
         simulate_usage);
}

/* What a child sends back. */
struct sim_report {
  bool ok;
  char error[600];
  struct sim_numbers n;
};

struct sim_args {
  const char **traces, **configs;
  int ntraces, nconfigs;
  bool json;
};

/* ---- the child ------------------------------------------------------------- */

static void write_all(int fd, const void *buf, size_t len) {
  const char *p = buf;
  while (len > 0) {
    ssize_t w = write(fd, p, len);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return;
    p += w;
    len -= (size_t)w;
  }
}

/* Configures the pool and replays the traces (none: only checks the config). */
static void child_main(int fd, const char *config, const struct sim_args *a, int ntraces, bool warn) {
  static struct sim_report rep; /* static: a large struct, and the child is short-lived */
  struct rlimit no_core = {0, 0};
  setrlimit(RLIMIT_CORE, &no_core); /* a crash of the simulated pool is reported, not dumped */
  if (!sim_pool_configure(config, rep.error, sizeof rep.error)) goto out;
  struct sim_replay *r = sim_replay_new();
  if (!r) {
    snprintf(rep.error, sizeof rep.error, "out of memory");
    goto out;
  }
  for (int i = 0; i < ntraces; i++) {
    struct sim_numbers before, after;
    sim_replay_numbers(r, &before);
    bool truncated;
    char err[512];
    if (sim_replay_trace(r, a->traces[i], &truncated, err, sizeof err) != 0) {
      snprintf(rep.error, sizeof rep.error, "%s", err);
      goto out;
    }
    if (truncated && warn) fprintf(stderr, "tierpool simulate: %s (replayed up to its last complete frame)\n", err);
    sim_replay_numbers(r, &after);
    if (after.samples == before.samples) {
      snprintf(rep.error, sizeof rep.error, "%s: no allocation samples to replay", a->traces[i]);
      goto out;
    }
  }
  sim_replay_numbers(r, &rep.n);
  rep.ok = true;
out:
  fflush(stderr);
  write_all(fd, &rep, sizeof rep);
  _exit(0);
}

/* A child at work on one config: its pid and the read end of its pipe. */
struct sim_child {
  pid_t pid;
  int fd;
};

/* Starts child_main in a child; false (after one line on stderr) on error. */
static bool start_child(const char *config, const struct sim_args *a, int ntraces, bool warn,
                        struct sim_child *c) {
  int fds[2];
  if (pipe(fds) != 0) {
    fprintf(stderr, "tierpool simulate: pipe: %s\n", strerror(errno));
    return false;
  }
  fflush(stdout);
  fflush(stderr);
  c->pid = fork();
  if (c->pid < 0) {
    fprintf(stderr, "tierpool simulate: fork: %s\n", strerror(errno));
    close(fds[0]);
    close(fds[1]);
    return false;
  }
  if (c->pid == 0) {
    close(fds[0]);
    child_main(fds[1], config, a, ntraces, warn);
  }
  close(fds[1]);
  c->fd = fds[0];
  return true;
}

/* Reads a child's report and waits for it; false (after one line on stderr)
 * when it failed or died. */
static bool collect_child(const char *config, struct sim_child *c, struct sim_report *rep) {
  size_t got = 0;
  while (got < sizeof *rep) {
    ssize_t n = read(c->fd, (char *)rep + got, sizeof *rep - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += (size_t)n;
  }
  close(c->fd);
  int status = 0;
  while (waitpid(c->pid, &status, 0) < 0 && errno == EINTR) {}
  c->pid = 0;
  if (got != sizeof *rep) {
    if (WIFSIGNALED(status))
      fprintf(stderr, "tierpool simulate: %s: the simulated pool died (%s)\n", config, strsignal(WTERMSIG(status)));
    else
      fprintf(stderr, "tierpool simulate: %s: the simulation ended without its numbers\n", config);
    return false;
  }
  if (!rep->ok) {
    fprintf(stderr, "tierpool simulate: %s\n", rep->error);
    return false;
  }
  return true;
}

/* Runs every config in a child of its own, as many at a time as there are
 * CPUs (each holds its own simulated heap); reports come back in order, so
 * the first config's error is the one reported.  ntraces 0: configs only. */
static bool run_children(const struct sim_args *a, int ntraces, struct sim_report *reps) {
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  int limit = cpus > 1 ? (int)cpus : 1, started = 0, collected = 0;
  struct sim_child *children = calloc((size_t)a->nconfigs, sizeof *children);
  bool ok = children != NULL;
  if (!ok) fprintf(stderr, "tierpool simulate: out of memory\n");
  while (ok && collected < a->nconfigs) {
    if (started < a->nconfigs && started - collected < limit) {
      ok = start_child(a->configs[started], a, ntraces, started == 0, &children[started]);
      started++;
    } else {
      ok = collect_child(a->configs[collected], &children[collected], &reps[collected]);
      collected++;
    }
  }
  for (int i = collected; children && i < started; i++) { /* after an error: stop the others */
    if (children[i].pid <= 0) continue;
    kill(children[i].pid, SIGKILL);
    close(children[i].fd);
    while (waitpid(children[i].pid, NULL, 0) < 0 && errno == EINTR) {}
  }
  free(children);
  return ok;
}

/* ---- printing -------------------------------------------------------------------- */

static const char *human(uint64_t bytes, char *buf, size_t cap) {
  static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = (double)bytes;
  int u = 0;
  while (v >= 1024 && u < 4) v /= 1024, u++;
  if (u == 0) snprintf(buf, cap, "%" PRIu64 " B", bytes);
  else snprintf(buf, cap, "%.1f %s", v, units[u]);
  return buf;
}

static const char *duration(uint64_t ms, char *buf, size_t cap) {
  if (ms < 1000) snprintf(buf, cap, "%" PRIu64 " ms", ms);
  else if (ms < 120000) snprintf(buf, cap, "%.1f s", (double)ms / 1000);
  else snprintf(buf, cap, "%.1f min", (double)ms / 60000);
  return buf;
}

static double ratio(uint64_t part, uint64_t whole) { return whole ? (double)part / (double)whole : 0.0; }

/* Every process recorded in validation mode: each allocation is a sample. */
static bool exact(const struct sim_numbers *n) { return n->sections > 0 && n->exact_sections == n->sections; }

static uint64_t waste_at_peak(const struct sim_numbers *n) { return n->peak_usable - n->peak_live; }
static double fragmentation(const struct sim_numbers *n) {
  return n->measured_resident > n->measured_live ? 1.0 - ratio(n->measured_live, n->measured_resident) : 0.0;
}
static uint64_t waste_all(const struct sim_numbers *n) {
  return n->pool.bytes_allocated > n->pool.bytes_requested ? n->pool.bytes_allocated - n->pool.bytes_requested : 0;
}

/* The configs' names as columns: their file names, or their paths when two
 * file names are the same. */
static const char *label(const struct sim_args *a, int i) {
  if (strcmp(a->configs[i], "/dev/null") == 0) return "defaults";
  for (int j = 0; j < a->nconfigs; j++) {
    const char *x = strrchr(a->configs[i], '/'), *y = strrchr(a->configs[j], '/');
    if (j != i && strcmp(x ? x + 1 : a->configs[i], y ? y + 1 : a->configs[j]) == 0) return a->configs[i];
  }
  const char *base = strrchr(a->configs[i], '/');
  return base ? base + 1 : a->configs[i];
}

enum { ROW_WIDTH = 28, MIN_COLUMN = 18 };

static void print_row(const struct sim_args *a, const char *name, char cells[][64], const int *widths) {
  printf("%-*s", ROW_WIDTH, name);
  for (int i = 0; i < a->nconfigs; i++) printf("  %*s", widths[i], cells[i]);
  printf("\n");
}

static void print_table(const struct sim_args *a, const struct sim_report *reps) {
  const struct sim_numbers *first = &reps[0].n;
  char s1[32], s2[32];
  printf("%d trace%s, %" PRIu64 " process%s, %" PRIu64 " samples: ", a->ntraces, a->ntraces == 1 ? "" : "s",
         first->sections, first->sections == 1 ? "" : "es", first->samples);
  if (exact(first))
    printf("the exact stream (validation mode)\n");
  else
    printf("sampled, %.1f allocations a sample on average\n", ratio(first->allocations, first->samples));
  printf("live peak %s requested, over %s of the traces' time\n\n", human(first->peak_live, s1, sizeof s1),
         duration(first->duration_ms, s2, sizeof s2));
  int widths[a->nconfigs];
  char (*cells)[64] = calloc((size_t)a->nconfigs, 64);
  if (!cells) return;
  printf("%-*s", ROW_WIDTH, "");
  for (int i = 0; i < a->nconfigs; i++) {
    int len = (int)strlen(label(a, i));
    widths[i] = len > MIN_COLUMN ? len : MIN_COLUMN;
    printf("  %*s", widths[i], label(a, i));
  }
  printf("\n");
  bool refused = false;
  for (int i = 0; i < a->nconfigs; i++) refused |= reps[i].n.failed > 0;
#define ROW(name, ...)                                                          \
  do {                                                                         \
    for (int i = 0; i < a->nconfigs; i++) {                                    \
      const struct sim_numbers *n = &reps[i].n;                                \
      (void)n;                                                                 \
      snprintf(cells[i], 64, __VA_ARGS__);                                     \
    }                                                                          \
    print_row(a, name, cells, widths);                                         \
  } while (0)
  ROW("allocations replayed", "%" PRIu64, n->allocations);
  if (refused) ROW("allocations refused", "%" PRIu64, n->failed);
  ROW("peak resident", "%s", human(n->peak_resident, s1, sizeof s1));
  ROW("mean resident", "%s", human(n->mean_resident, s1, sizeof s1));
  ROW("resident at live peak", "%s", human(n->measured_resident, s1, sizeof s1));
  ROW("waste at live peak", "%s %5.1f%%", human(waste_at_peak(n), s1, sizeof s1),
      100 * ratio(waste_at_peak(n), n->peak_usable));
  ROW("fragmentation at live peak", "%.1f%%", 100 * fragmentation(n));
  ROW("waste, all blocks", "%.1f%%", 100 * ratio(waste_all(n), n->pool.bytes_allocated));
#undef ROW
  free(cells);
}

static void json_string(const char *s) {
  putchar('"');
  for (; *s; s++) {
    if (*s == '"' || *s == '\\') printf("\\%c", *s);
    else if ((unsigned char)*s < 0x20) printf("\\u%04x", *s);
    else putchar(*s);
  }
  putchar('"');
}

static void print_json(const struct sim_args *a, const struct sim_report *reps) {
  const struct sim_numbers *first = &reps[0].n;
  printf("{\n  \"traces\": [");
  for (int i = 0; i < a->ntraces; i++) {
    if (i) printf(", ");
    json_string(a->traces[i]);
  }
  printf("],\n  \"processes\": %" PRIu64 ",\n  \"samples\": %" PRIu64 ",\n  \"exact\": %s,\n", first->sections,
         first->samples, exact(first) ? "true" : "false");
  printf("  \"peak_live\": %" PRIu64 ",\n  \"duration_ms\": %" PRIu64 ",\n  \"configs\": [\n", first->peak_live,
         first->duration_ms);
  for (int i = 0; i < a->nconfigs; i++) {
    const struct sim_numbers *n = &reps[i].n;
    printf("    {\"config\": ");
    json_string(a->configs[i]);
    printf(",\n     \"allocations\": %" PRIu64 ", \"refused\": %" PRIu64 ", \"frees\": %" PRIu64
           ", \"unmatched_frees\": %" PRIu64 ", \"late_events\": %" PRIu64 ",\n",
           n->allocations, n->failed, n->frees, n->unmatched_frees, n->late_events);
    printf("     \"peak_live\": %" PRIu64 ", \"peak_usable\": %" PRIu64 ", \"waste_at_peak\": %" PRIu64 ",\n",
           n->peak_live, n->peak_usable, waste_at_peak(n));
    printf("     \"measured_live\": %" PRIu64 ", \"measured_usable\": %" PRIu64 ", \"resident_at_peak\": %" PRIu64
           ", \"fragmentation_at_peak\": %.6f,\n",
           n->measured_live, n->measured_usable, n->measured_resident, fragmentation(n));
    printf("     \"peak_resident\": %" PRIu64 ", \"mean_resident\": %" PRIu64 ", \"peak_accounted\": %" PRIu64
           ", \"measures\": %" PRIu64 ",\n",
           n->peak_resident, n->mean_resident, n->peak_accounted, n->measures);
    printf("     \"pool\": {\"allocs\": %" PRIu64 ", \"frees\": %" PRIu64 ", \"bytes_requested\": %" PRIu64
           ", \"bytes_allocated\": %" PRIu64 ", \"live_bytes\": %" PRIu64 ", \"waste\": %" PRIu64 "}}%s\n",
           n->pool.allocs, n->pool.frees, n->pool.bytes_requested, n->pool.bytes_allocated, n->pool.live_bytes,
           waste_all(n), i + 1 < a->nconfigs ? "," : "");
  }
  printf("  ]\n}\n");
}

/* ---- the command -------------------------------------------------------------- */

static int parse_args(int argc, char **argv, struct sim_args *a) {
  for (int i = 1; i < argc; i++) {
    const char *arg = argv[i];
    if (strcmp(arg, "--") == 0) {
      while (++i < argc) a->traces[a->ntraces++] = argv[i];
    } else if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
      simulate_help();
      return -1;
    } else if (strcmp(arg, "--json") == 0) {
      a->json = true;
    } else if (strcmp(arg, "--config") == 0) {
      if (++i >= argc) {
        fprintf(stderr, "tierpool simulate: --config needs a file\n%s", simulate_usage);
        return EXIT_USAGE;
      }
      a->configs[a->nconfigs++] = argv[i];
    } else if (strncmp(arg, "--config=", 9) == 0) {
      a->configs[a->nconfigs++] = arg + 9;
    } else if (arg[0] == '-' && arg[1] != '\0') {
      fprintf(stderr, "tierpool simulate: unknown option '%s'\n%s", arg, simulate_usage);
      return EXIT_USAGE;
    } else {
      a->traces[a->ntraces++] = arg;
    }
  }
  if (a->ntraces == 0) {
    fprintf(stderr, "tierpool simulate: no trace given\n%s", simulate_usage);
    return EXIT_USAGE;
  }
  if (a->nconfigs == 0) {
    fprintf(stderr, "tierpool simulate: no --config given (/dev/null stands for the defaults)\n%s", simulate_usage);
    return EXIT_USAGE;
  }
  return 0;
}

static bool readable(const char *path) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    fprintf(stderr, "tierpool simulate: %s: %s\n", path, strerror(errno));
    return false;
  }
  close(fd);
  return true;
}

int cmd_simulate(int argc, char **argv) {
  struct sim_args a = {0};
  a.traces = calloc((size_t)argc, sizeof *a.traces);
  a.configs = calloc((size_t)argc, sizeof *a.configs);
  struct sim_report *reps = calloc((size_t)argc, sizeof *reps);
  int status = EXIT_USAGE;
  if (!a.traces || !a.configs || !reps) {
    fprintf(stderr, "tierpool simulate: out of memory\n");
    goto done;
  }
  int rc = parse_args(argc, argv, &a);
  if (rc != 0) {
    status = rc < 0 ? 0 : rc;
    goto done;
  }
  for (int i = 0; i < a.ntraces; i++)
    if (!readable(a.traces[i])) goto done;
  for (int i = 0; i < a.nconfigs; i++)
    if (!readable(a.configs[i])) goto done;
  /* Every config is checked before the first long replay starts. */
  if (!run_children(&a, 0, reps) || !run_children(&a, a.ntraces, reps)) goto done;
  for (int i = 0; i < a.nconfigs; i++) {
    const struct sim_numbers *n = &reps[i].n;
    if (n->pool.allocs != n->allocations || n->pool.live_bytes != n->final_live_usable)
      fprintf(stderr,
              "tierpool simulate: %s: the pool's statistics disagree with the replay (allocations %" PRIu64
              " vs %" PRIu64 ", live bytes %" PRIu64 " vs %" PRIu64 ")\n",
              a.configs[i], n->pool.allocs, n->allocations, n->pool.live_bytes, n->final_live_usable);
  }
  if (a.json) print_json(&a, reps);
  else print_table(&a, reps);
  status = fflush(stdout) == 0 ? 0 : EXIT_USAGE;
done:
  free(a.traces);
  free(a.configs);
  free(reps);
  return status;
}
