#!/usr/bin/env bash
# exec_flush.sh — a signal handler execs: the library writes the program's
# data so far before the new image, without a call into the pool (the signal
# may have stopped the thread inside it, holding a lock or halfway through a
# list) and without taking any of the pool's locks.  exec_shim, preloaded
# ahead of the library, tells every malloc-family call between the program's
# execv and the new image, and can raise the signal while a lock is held.
#   subject exec-from-handler: 100 x 7013 B, then its SIGUSR2 handler execs
#   the program again as `after-exec` (100 x 8009 B): two traces of one pid.
#   ... fork: the same in a forked child, whose trace opens in the handler.
#   ... in-lock: the signal comes with the pool's lock held (a 300 KiB malloc):
#   the flush read the pool's statistics under that lock and hung.
source "$(dirname "$0")/lib.sh"
: "${EXEC_SHIM:?}"

# exec_case NAME HOW TRACES: runs the subject; checks its status, the shim's
# lines and the number of traces; the first and last traces' histograms.
exec_case() {
  local name=$1 how=$2 want=$3 rc=0
  mkdir -p "$WORK/$name" "$WORK/run-$name"
  (cd "$WORK/run-$name" && exec timeout 30 env LD_PRELOAD="$EXEC_SHIM:$TIERPOOL_LIB" TIERPOOL_PROFILE=1 \
    TIERPOOL_TRACE="$WORK/$name/%e-%p.tpt" "$SUBJECT" exec-from-handler $how) \
    </dev/null >"$WORK/$name.out" 2>"$WORK/$name.err" || rc=$?
  if [ "$rc" -eq 124 ]; then
    fail_check "$name: still running after 30 s (killed)"
  else
    expect_status "$name" 0 "$rc"
  fi
  if ! grep -q '^exec_shim: loaded' "$WORK/$name.err"; then
    fail_check "$name: exec_shim was not preloaded"
  elif grep -q '^exec_shim: .* between execv' "$WORK/$name.err"; then
    fail_check "$name: the library called the pool between execv and the new image ($(grep -c 'between execv' "$WORK/$name.err") calls)"
  else
    pass_check "$name: no pool call between execv and the new image"
  fi
  [ "$rc" -eq 0 ] || show "$WORK/$name.err" 5
  mapfile -t TRACES < <(ls "$WORK/$name"/*.tpt* 2>/dev/null | sort)
  if [ ${#TRACES[@]} -ne "$want" ]; then
    fail_check "$name: expected $want traces, found ${#TRACES[@]}: ${TRACES[*]}"
    return
  fi
  local last=
  for t in "${TRACES[@]}"; do
    [[ $t = *.1 ]] && last=$t
  done
  trace_check "$name: the data before the exec, written in the handler" facts "${last%.1}" \
    argv1=exec-from-handler bucket:7013=100
  trace_check "$name: the exec'd image's trace" facts "$last" argv1=after-exec end=1 bucket:8009=100
}

exec_case exec-flush "" 2
exec_case exec-flush-fork fork 3
exec_case exec-flush-in-lock in-lock 2
finish
