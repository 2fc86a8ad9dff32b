#!/usr/bin/env bash
# stacks.sh — `subject stacks` at rate 1: each of its 200 blocks of 5555 bytes
# comes from alloc_here(), called by call_alloc_here(); resolving the sampled
# stacks through the trace's module records and the executable's symbols
# finds those two functions as the two innermost frames.
source "$(dirname "$0")/lib.sh"

record_run stacks --rate 1 -- "$SUBJECT" stacks
expect_status "tierpool record" 0 "$RC"
if [ ${#TRACES[@]} -eq 1 ]; then
  trace_check "stacks symbolize to alloc_here <- call_alloc_here" \
    stacks "${TRACES[0]}" 5555 200 alloc_here call_alloc_here
else
  fail_check "expected one trace, record named ${#TRACES[@]}"
  show "$WORK/stacks.err"
fi
finish
