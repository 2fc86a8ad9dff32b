#!/usr/bin/env bash
# roundtrip.sh — `subject histogram` (6500 allocations of sizes start-up code
# does not use) recorded at rate 0.05 with a fixed seed: the trace counts them
# exactly and samples them as often as the rate says (trace_check histogram).
source "$(dirname "$0")/lib.sh"

record_run histogram --rate 0.05 --seed 42 -- "$SUBJECT" histogram
expect_status "tierpool record" 0 "$RC"
if [ ${#TRACES[@]} -eq 1 ]; then
  pass_check "one trace named: ${TRACES[0]}"
  expect_summary "${TRACES[0]}" 'truncated == 0' 'processes == 1' 'ends == 1' 'samples > 0' 'frees > 0'
  trace_check "histogram counts, sample count, frees" histogram "${TRACES[0]}" 0.05
else
  fail_check "expected one trace, record named ${#TRACES[@]}"
  show "$WORK/histogram.err"
fi
finish
