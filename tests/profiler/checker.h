/* checker.h — the assertions of the trace checkers: a failed one prints what
 * was expected and what the trace holds, and the checker goes on, exiting 1 at
 * the end (trace_check.c). */
#ifndef TP_TEST_CHECKER_H
#define TP_TEST_CHECKER_H

#include <stdbool.h>

#include "trace_load.h"

/* Reports "ok: what" or "FAIL: what"; returns cond. */
__attribute__((format(printf, 2, 3))) bool expect(bool cond, const char *fmt, ...);

/* The checks of each mode: argv[0] is the mode's name.  Each returns the
 * number of failed expectations, or -1 for bad arguments or an unreadable trace. */
int check_histogram(int argc, char **argv);
int check_small(int argc, char **argv);
int check_lifetimes(int argc, char **argv);
int check_stacks(int argc, char **argv);
int check_damage(int argc, char **argv);
int check_facts(int argc, char **argv);

/* Failed expectations so far. */
extern int checker_failures;

#endif
