#!/usr/bin/env bash
# lifetimes.sh — `subject lifetimes` with the library's own keys (no launcher):
# every allocation sampled (TIERPOOL_SAMPLE_RATE=1), the trace named through
# TIERPOOL_TRACE_INDEX; blocks freed after 0, 20, 200 ms (and one by another
# thread after 50 ms) show those lifetimes.
source "$(dirname "$0")/lib.sh"

rc=0
(cd "$WORK" && exec env LD_PRELOAD="$TIERPOOL_LIB" TIERPOOL_PROFILE=1 TIERPOOL_SAMPLE_RATE=1 \
  TIERPOOL_TRACE="$WORK/lifetimes-%p.tpt" TIERPOOL_TRACE_INDEX="$WORK/index" "$SUBJECT" lifetimes) \
  >"$WORK/out" 2>&1 || rc=$?
expect_status "subject lifetimes" 0 "$rc"
mapfile -t traces <"$WORK/index"
if [ ${#traces[@]} -eq 1 ] && [[ ${traces[0]} = "$WORK"/lifetimes-[0-9]*.tpt ]]; then
  pass_check "the index names one trace: ${traces[0]}"
  trace_check "lifetimes" lifetimes "${traces[0]}"
else
  fail_check "the index names ${#traces[@]} trace(s): ${traces[*]}"
fi
finish
