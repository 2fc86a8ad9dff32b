/* cli.c — the command-line conventions the subcommands share (cli.h). */
#include "cli.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "commands.h"
#include "profile.h"
#include "trace_reader.h"

int cli_error(const char *cmd, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "tierpool %s: ", cmd);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  return EXIT_USAGE;
}

bool cli_is_help(const char *arg) { return strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0; }

bool cli_asks_help(int argc, char **argv) {
  for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++)
    if (cli_is_help(argv[i])) return true;
  return false;
}

bool cli_is_option(int argc, char **argv, int *i) {
  if (*i >= argc || argv[*i][0] != '-' || argv[*i][1] == '\0') return false;
  if (strcmp(argv[*i], "--") != 0) return true;
  ++*i;
  return false;
}

int cli_option(int argc, char **argv, int *i, const char *name, const char **value) {
  size_t len = strlen(name);
  const char *arg = argv[*i];
  if (strncmp(arg, name, len) != 0) return 0;
  if (arg[len] == '=') {
    *value = arg + len + 1;
    return 1;
  }
  if (arg[len] != '\0') return 0;
  /* The next argument is its value unless it is an option itself ("-o --",
   * "-o --rate", "-o -x"; a negative number is a value, and a bad one): a
   * value like those is given as NAME=VALUE. */
  const char *next = *i + 1 < argc ? argv[*i + 1] : NULL;
  if (!next || (next[0] == '-' && (next[1] == '-' || isalpha((unsigned char)next[1])))) return -1;
  *value = argv[++*i];
  return 1;
}

int cli_stdout_written(const char *cmd, int rc) {
  if (fflush(stdout) == 0 && !ferror(stdout)) return rc;
  fprintf(stderr, "tierpool %s: writing the output failed: %s\n", cmd, strerror(errno));
  return EXIT_USAGE;
}

int cli_parse_size(const char *s, uint64_t *out) {
  char *end;
  if (*s < '0' || *s > '9') return -1;
  errno = 0;
  uint64_t v = strtoull(s, &end, 10);
  unsigned shift = 0;
  switch (*end | 0x20) {
  case 'k': shift = 10; break;
  case 'm': shift = 20; break;
  case 'g': shift = 30; break;
  case 't': shift = 40; break;
  }
  if (shift) {
    end++;
    if ((*end | 0x20) == 'i') end++;
    if ((*end | 0x20) == 'b') end++;
  }
  if (errno || *end || (shift && v > UINT64_MAX >> shift)) return -1;
  *out = v << shift;
  return 0;
}

void cli_warn_truncated(const char *cmd, const char *err) {
  fprintf(stderr, "tierpool %s: warning: %s (used up to there)\n", cmd, err);
}

/* Empty, or cut inside its first frame: a process killed as it started, one
 * of many a run recorded (a copy cut short looks the same). */
static bool cli_trace_unstarted(const char *path) {
  struct stat st;
  if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) return false;
  if (st.st_size == 0) return true;
  char err[512];
  tp_trace_reader *r = tp_trace_open(path, err, sizeof err);
  if (!r) return false;
  Tierpool__Trace__Record *record = NULL;
  bool unstarted = tp_trace_next(r, &record) < 0 && tp_trace_truncated(r) && tp_trace_frames(r) == 0;
  if (record) tp_trace_record_free(record);
  tp_trace_close(r);
  return unstarted;
}

int cli_skip_unstarted(const char *cmd, char **paths, size_t *n) {
  if (*n <= 1) return 0;
  bool *unstarted = calloc(*n, sizeof *unstarted);
  if (!unstarted) return cli_error(cmd, "out of memory");
  size_t n_unstarted = 0;
  for (size_t i = 0; i < *n; i++) n_unstarted += unstarted[i] = cli_trace_unstarted(paths[i]);
  int rc = 0;
  if (n_unstarted == *n) {
    rc = cli_error(cmd, "no trace has a complete frame");
  } else {
    size_t kept = 0; /* written only below the index read */
    for (size_t i = 0; i < *n; i++) {
      if (unstarted[i]) fprintf(stderr, "tierpool %s: warning: %s: no complete frame; skipped\n", cmd, paths[i]);
      else paths[kept++] = paths[i];
    }
    *n = kept;
  }
  free(unstarted);
  return rc;
}

int cli_load_profile(const char *cmd, char *const *paths, size_t n, struct tp_profile *p) {
  char err[1024];
  for (size_t i = 0; i < n; i++) {
    int rc = tp_profile_load(p, paths[i], err, sizeof err);
    if (rc < 0) return cli_error(cmd, "%s", err);
    if (rc > 0) cli_warn_truncated(cmd, err);
  }
  return 0;
}

int cli_load_histogram(const char *cmd, char *const *paths, size_t n, struct tp_profile *p) {
  int rc = cli_load_profile(cmd, paths, n, p);
  if (rc == 0 && tp_profile_total_allocs(p) == 0)
    rc = cli_error(cmd, "%s%s: no allocations in the size histogram", paths[0], n > 1 ? " ..." : "");
  return rc;
}
