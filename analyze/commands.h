/* commands.h — the subcommands of `tierpool`.  Each takes the arguments after
 * its own name (argv[0] is the subcommand name) and returns the exit status. */
#ifndef TIERPOOL_COMMANDS_H
#define TIERPOOL_COMMANDS_H

/* Exit status for bad usage and for set-up errors (library not found…). */
#define EXIT_USAGE 2

int cmd_run(int argc, char **argv);
int cmd_record(int argc, char **argv);
int cmd_dump(int argc, char **argv);
int cmd_report(int argc, char **argv);
int cmd_propose(int argc, char **argv);
int cmd_diff(int argc, char **argv);
int cmd_merge(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_simulate(int argc, char **argv);

#endif
