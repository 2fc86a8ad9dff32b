#!/usr/bin/env bash
# exec_flush.sh — a signal handler execs: the library writes the program's
# data so far before the new image, without a call into the pool (the signal
# may have stopped the thread inside it, holding a lock or halfway through a
# list).  exec_shim, preloaded ahead of the library, tells every malloc,
# calloc, realloc and free between the program's execv and the new image.
#   subject exec-from-handler: 100 x 7013 B, then its SIGUSR2 handler execs
#   the program again as `after-exec` (100 x 8009 B): two traces of one pid.
source "$(dirname "$0")/lib.sh"
: "${EXEC_SHIM:?}"

mkdir -p "$WORK/exec-flush" "$WORK/run"
RC=0
(cd "$WORK/run" && exec env LD_PRELOAD="$EXEC_SHIM:$TIERPOOL_LIB" TIERPOOL_PROFILE=1 \
  TIERPOOL_TRACE="$WORK/exec-flush/%e-%p.tpt" "$SUBJECT" exec-from-handler) \
  </dev/null >"$WORK/exec-flush.out" 2>"$WORK/exec-flush.err" || RC=$?
expect_status "subject exec-from-handler" 0 "$RC"
if grep -q '^exec_shim:' "$WORK/exec-flush.err"; then
  fail_check "the library called the pool between execv and the new image ($(grep -c '^exec_shim:' "$WORK/exec-flush.err") calls)"
  show "$WORK/exec-flush.err" 5
else
  pass_check "no pool call between execv and the new image"
fi
mapfile -t TRACES < <(ls "$WORK"/exec-flush/*.tpt* 2>/dev/null | sort)
if [ ${#TRACES[@]} -eq 2 ]; then
  trace_check "the first image's data, written at the exec" facts "${TRACES[0]}" exe=subject \
    argv1=exec-from-handler bucket:7013=100
  trace_check "the exec'd image's trace" facts "${TRACES[1]}" exe=subject argv1=after-exec end=1 bucket:8009=100
else
  fail_check "expected two traces, found ${#TRACES[@]}: ${TRACES[*]}"
  show "$WORK/exec-flush.err"
fi
finish
