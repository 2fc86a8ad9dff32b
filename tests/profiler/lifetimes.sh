#!/usr/bin/env bash
# lifetimes.sh — `subject lifetimes` with the library's own keys (no launcher):
# every allocation sampled (TIERPOOL_SAMPLE_RATE=1), the trace named through
# TIERPOOL_TRACE_INDEX; blocks freed after 0, 20, 200 ms (and one by another
# thread after 50 ms) show those lifetimes.  Then `subject handoff`: 40,000
# blocks of every tier, each freed by another thread than the one that made
# it, the makers exiting first: every free finds its sample (the threads'
# rings merged in time order), none before it, none dropped.  Last,
# `subject slow-samplers 32`: 32 live threads sampling a thousand times a
# second each keep small rings (16 KiB each; fixed 256 KiB rings, cycled
# through, held 10 MB more than an unrecorded run).
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
rc=0
(cd "$WORK" && exec "$TIERPOOL_CLI" record --rate 1 -o "$WORK/handoff-%p.tpt" -- "$SUBJECT" handoff) \
  >"$WORK/handoff.out" 2>"$WORK/handoff.err" || rc=$?
expect_status "subject handoff" 0 "$rc"
traces_in "$WORK" "$WORK/handoff.err"
if [ ${#TRACES[@]} -eq 1 ]; then
  # The program's 40,000 and what libc allocates besides (thread start-up,
  # stdio): a few hundred at most, some never freed.
  trace_check "handoff: every free of another thread's block found its sample" facts "${TRACES[0]}" \
    end=1 dropped=0 unmatched-frees=0 freed-early=0 least-frees=40000 most-samples=40500
else
  fail_check "handoff: expected one trace, found ${#TRACES[@]}"
fi
rss_growth() { # KiB more resident after 32 threads sampled slowly, still alive
  (cd "$WORK" && exec env LD_PRELOAD="$TIERPOOL_LIB" "$@" "$SUBJECT" slow-samplers 32) 2>>"$WORK/slow.err"
}
plain=$(rss_growth) || plain=
recorded=$(rss_growth TIERPOOL_PROFILE=1 TIERPOOL_SAMPLE_RATE=1 TIERPOOL_TRACE="$WORK/slow-%p.tpt") || recorded=
if [[ $plain =~ ^-?[0-9]+$ && $recorded =~ ^-?[0-9]+$ ]] && ((recorded - plain <= 4096)); then
  pass_check "slow samplers: recorded $recorded KiB, unrecorded $plain KiB (at most 4096 more)"
else
  fail_check "slow samplers: recorded '$recorded' KiB, unrecorded '$plain' KiB (at most 4096 more); $(tail -3 "$WORK/slow.err")"
fi
finish
