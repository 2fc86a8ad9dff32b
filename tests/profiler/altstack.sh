#!/usr/bin/env bash
# altstack.sh — `subject altstack` at rate 1: a handler running on a signal
# stack that lies just below its thread's own stack (a guard page between)
# allocates 7777 bytes from code whose frame pointer points into the guard
# page.  The frame walk must keep to the signal stack: the program ends
# normally (the walk took [sp, TCB) for the thread's stack and died reading
# the guard page), and the trace holds the sample.  (The walk gives up at that
# frame; libunwind, its fallback, checks each address before it reads it.)
source "$(dirname "$0")/lib.sh"

record_run altstack --rate 1 -- "$SUBJECT" altstack
if [ "$RC" -eq 77 ]; then
  echo "SKIP: the test's machine code is x86-64's"
  exit 77
fi
expect_status "tierpool record" 0 "$RC"
[ "$RC" -eq 0 ] || show "$WORK/altstack.err" 5
if [ ${#TRACES[@]} -eq 1 ]; then
  expect_summary "${TRACES[0]}" 'samples > 0' 'truncated == 0'
  # Into a file first: grep -q leaves the pipe early, and pipefail would take dump's SIGPIPE for a miss.
  "$TIERPOOL_CLI" dump "${TRACES[0]}" >"$WORK/altstack.dump" || true
  if grep -q ' size=7777 ' "$WORK/altstack.dump"; then
    pass_check "the allocation on the signal stack is sampled"
  else
    fail_check "no sample of 7777 bytes in ${TRACES[0]}"
  fi
else
  fail_check "expected one trace, record named ${#TRACES[@]}"
fi
finish
