#!/usr/bin/env bash
# roundtrip.sh — `subject histogram` (6500 allocations of sizes start-up code
# does not use) recorded at rate 0.05 with a fixed seed: the trace counts them
# exactly and samples them as often as the rate says (trace_check histogram);
# and at rates too small to sample anything, samples nothing.
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

# Rates so small that 1 - rate rounds to 1, or 1/rate is not finite: no
# sample (1e-17 sampled every allocation, each standing for 1e17; 1e-310
# wrote a rate the reader rejects).  The histogram is still exact.
for rate in 1e-17 1e-310; do
  record_run "tiny-$rate" --rate "$rate" --seed 42 -- "$SUBJECT" histogram
  expect_status "tierpool record --rate $rate" 0 "$RC"
  if [ ${#TRACES[@]} -eq 1 ]; then
    expect_summary "${TRACES[0]}" 'truncated == 0' 'ends == 1' 'samples == 0' 'histogram_allocs >= 6500'
  else
    fail_check "--rate $rate: expected one trace, record named ${#TRACES[@]}"
  fi
done
finish
