#!/usr/bin/env bash
# validate.sh — `tierpool record --validate` (every allocation tracked):
#   a leak of 10 x 4321 B from leak_here() is in the exit report, with its stack,
#   and nothing else, also with the library's background thread;
#   a double free from free_twice() aborts the program (SIGABRT) after a
#   "double free" line and the stack of the second free.
source "$(dirname "$0")/lib.sh"

record_run leak --validate -- "$SUBJECT" leak
expect_status "record --validate subject leak" 0 "$RC"
if grep -qE '^tierpool: [0-9]+ bytes in [0-9]+ blocks still allocated at exit' "$WORK/leak.err"; then
  pass_check "leak report at exit"
else
  fail_check "no leak report on stderr"
  show "$WORK/leak.err"
fi
# The group of our leak, then its stack's first line.
if grep -A1 -E '^#[0-9]+: 43210 bytes in 10 blocks allocated at:$' "$WORK/leak.err" |
  grep -qE '^ +#0 0x[0-9a-f]+ leak_here\+'; then
  pass_check "the report names 43210 bytes in 10 blocks, allocated at leak_here"
else
  fail_check "no '43210 bytes in 10 blocks' group with leak_here as its first frame"
  show "$WORK/leak.err" 40
fi
if [ ${#TRACES[@]} -eq 1 ]; then
  expect_summary "${TRACES[0]}" 'ends == 1' 'samples > 0'
else
  fail_check "${#TRACES[@]} traces named, want 1"
fi

# The library's own threads are not the program's: with the background thread,
# the same report, and glibc's TLS for that thread is not a leak.
export TIERPOOL_BACKGROUND_THREAD=on
record_run leak-background --validate -- "$SUBJECT" leak
unset TIERPOOL_BACKGROUND_THREAD
expect_status "record --validate subject leak, background thread on" 0 "$RC"
if grep -qE '^tierpool: 43210 bytes in 10 blocks still allocated at exit' "$WORK/leak-background.err"; then
  pass_check "background thread on: the leak report holds the program's 43210 bytes in 10 blocks, nothing else"
else
  fail_check "background thread on: the leak report is not the program's alone"
  show "$WORK/leak-background.err" 40
fi

record_run double-free --validate -- "$SUBJECT" double_free
expect_status "record --validate subject double_free (SIGABRT)" 134 "$RC"
if grep -A1 -E '^tierpool: free\(\): double free 0x[0-9a-f]+, called from:$' "$WORK/double-free.err" |
  grep -qE '^ +#0 0x[0-9a-f]+ free_twice\+'; then
  pass_check "'double free' line, then the stack from free_twice"
else
  fail_check "no 'double free ... called from:' line followed by free_twice"
  show "$WORK/double-free.err"
fi
if grep -q 'the second free returned' "$WORK/double-free.err"; then
  fail_check "the program went on after the double free"
fi
if [ ${#TRACES[@]} -eq 1 ]; then
  expect_summary "${TRACES[0]}" 'processes == 1' 'truncated == 0'
else
  fail_check "${#TRACES[@]} traces named, want 1"
fi
finish
