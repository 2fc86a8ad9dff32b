/* cli.h — the command-line conventions the subcommands share: options and
 * their values, sizes as the pool reads them, and errors as one line
 * "tierpool CMD: ..." on stderr with exit status 2 (EXIT_USAGE) — including
 * loading traces into a profile, where a truncated trace is a warning. */
#ifndef TP_CLI_H
#define TP_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct tp_profile;

/* Prints "tierpool CMD: ..." (one line) on stderr; returns EXIT_USAGE. */
int cli_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* "--help" or "-h". */
bool cli_is_help(const char *arg);

/* For commands whose options and operands mix: is "--help" or "-h" among
 * the arguments (before a "--", after which all are operands)? */
bool cli_asks_help(int argc, char **argv);

/* For commands whose options come before their operands: is argv[*i] an
 * option?  The first operand ends them ("-" is one: stdin), and so does "--",
 * which *i then moves past. */
bool cli_is_option(int argc, char **argv, int *i);

/* Matches argv[*i] against the option name, as "NAME VALUE" or "NAME=VALUE":
 * 1 with *value set and *i moved past what it used; 0 if it is not NAME; -1
 * if it is NAME with nothing after it, or with an option after it ("-o --",
 * "-o -x"): a value is missing (such a value is written NAME=VALUE). */
int cli_option(int argc, char **argv, int *i, const char *name, const char **value);

/* rc, or EXIT_USAGE with "tierpool CMD: writing the output failed: ..." on
 * stderr when stdout could not take what was printed (a full disk, a
 * closed pipe): a command's last word before it returns. */
int cli_stdout_written(const char *cmd, int rc);

/* "4096", "64K", "1M", "2GiB", "1T": binary suffixes, as the pool reads
 * sizes.  0, or -1 if s is not such a size or it overflows. */
int cli_parse_size(const char *s, uint64_t *out);

/* Folds the traces into p: 0, or EXIT_USAGE after one line on stderr
 * ("tierpool CMD: PATH: what") for a trace that cannot be read.  A truncated
 * trace is used up to its last complete frame, with a one-line warning.
 * Commands drop the traces with no complete frame first (cli_skip_unstarted),
 * so that what they print counts the traces read. */
int cli_load_profile(const char *cmd, char *const *paths, size_t n, struct tp_profile *p);

/* As cli_load_profile, for the commands that work on the exact size
 * histogram: traces with no allocation in it are an error too. */
int cli_load_histogram(const char *cmd, char *const *paths, size_t n, struct tp_profile *p);

/* The warning for a truncated trace (err: "PATH: truncated ..."), one line. */
void cli_warn_truncated(const char *cmd, const char *err);

/* Among several traces, one with no complete frame (empty, or cut inside its
 * first: a process killed as it started, one of many a run recorded) is
 * dropped from paths with a one-line warning: the others are the run (*n
 * becomes their count, their order kept).  0, or EXIT_USAGE after the error
 * when every one is such.  A trace alone is kept: reading it says what is
 * wrong with it. */
int cli_skip_unstarted(const char *cmd, char **paths, size_t *n);

#endif /* TP_CLI_H */
