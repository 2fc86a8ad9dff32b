#!/usr/bin/env bash
# roundtrip_small.sh — the exact histogram at small sizes, where start-up code
# allocates too: `subject small` recorded with N = 1000 and N = 2000 (same
# seed), and every 16-byte bucket up to 4 KiB of the second trace holds
# exactly N more of subject's allocations and frees than the first: malloc,
# calloc, malloc(0), posix_memalign, realloc in place and moved, frees by
# another thread (trace_check small).
source "$(dirname "$0")/lib.sh"

declare -A T USABLE
for n in 1000 2000; do
  record_run "small-$n" --seed 7 -- "$SUBJECT" small "$n"
  expect_status "tierpool record (N = $n)" 0 "$RC"
  if [ ${#TRACES[@]} -ne 1 ]; then
    fail_check "N = $n: expected one trace, record named ${#TRACES[@]}"
    show "$WORK/small-$n.err"
    finish
  fi
  T[$n]=${TRACES[0]}
  USABLE[$n]=$(sed -nE 's/^usable 24=([0-9]+) 0=([0-9]+) 200=([0-9]+) 40=([0-9]+) 20=([0-9]+) 300=([0-9]+)$/\1 \2 \3 \4 \5 \6/p' \
    "$WORK/small-$n.out")
done
if [ -n "${USABLE[1000]}" ] && [ "${USABLE[1000]}" = "${USABLE[2000]}" ]; then
  pass_check "the usable sizes are the same in both runs (${USABLE[1000]})"
else
  fail_check "usable sizes: '${USABLE[1000]}' and '${USABLE[2000]}'"
fi
# shellcheck disable=SC2086 # six numbers
trace_check "small sizes counted exactly" small "${T[1000]}" "${T[2000]}" 1000 ${USABLE[1000]}
finish
