#!/usr/bin/env bash
# roundtrip.sh — `subject histogram` (6500 allocations of sizes start-up code
# does not use) recorded at rate 0.05 with a fixed seed: the trace counts them
# exactly and samples them as often as the rate says (trace_check histogram);
# and at rates too small to sample anything, samples nothing.  Then `subject
# map-calls`: one call of each of the mmap family, each in the trace with its
# arguments, mremap's old address, and a stack.
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
record_run map-calls -- "$SUBJECT" map-calls
expect_status "tierpool record subject map-calls" 0 "$RC"
read -r first moved <"$WORK/map-calls.out" || true
if [ ${#TRACES[@]} -eq 1 ] && [[ $first =~ ^0x[0-9a-f]+$ && $moved =~ ^0x[0-9a-f]+$ ]]; then
  "$TIERPOOL_CLI" dump "${TRACES[0]}" >"$WORK/map-calls.dump" 2>&1
  for want in "mmap addr=$first length=65536 prot=3 flags=0x22 " "mprotect addr=$first length=65536 prot=1 flags=0x0 " \
    "madvise addr=$first length=65536 prot=4 flags=0x0 " "mremap addr=$moved length=131072 prot=0 flags=0x1 " \
    "munmap addr=$moved length=131072 prot=0 flags=0x0 "; do
    line=$(sed -n 's/^ *\([a-z]*\) time_us=[0-9]* \(.*\)$/\1 \2/p' "$WORK/map-calls.dump" | grep -F -- "$want" | head -1)
    if [[ $line =~ stack=([0-9]+)\ .*old_addr=(0x[0-9a-f]+) ]] && ((BASH_REMATCH[1] > 0)) &&
       { [[ $want != mremap* ]] || [ "${BASH_REMATCH[2]}" = "$first" ]; }; then
      pass_check "in the trace: $line"
    else
      fail_check "no '$want' call with a stack (and mremap's old address $first) in the dump: '$line'"
    fi
  done
else
  fail_check "map-calls: ${#TRACES[@]} trace(s), addresses '$first' '$moved'"
  show "$WORK/map-calls.err"
fi
finish
