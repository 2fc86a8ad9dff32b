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
#   ... fork-in-lock-forking: in a fork child, in-lock, while another thread
#   forks: the exec waited for the recorder's lock, which that fork held.
#   ... small-stack, fork-small-stack: the handler runs on an 8 KiB signal
#   stack (SIGSTKSZ): the flush ran off its end (SIGSEGV, the exec never
#   made); now it is left out, said in a line, and the exec goes on.
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

# unflushed_case NAME HOW PRELOAD LINE SAYS: the handler's exec is made without
# the flush (the trace ends at its last frame), stderr has LINE (a pattern
# for grep, whole line) saying SAYS, and the exec'd image records on its own.
unflushed_case() {
  local name=$1 how=$2 preload=$3 line=$4 says=$5 rc=0 t execd=
  mkdir -p "$WORK/$name"
  (cd "$WORK/$name" && exec timeout 30 env LD_PRELOAD="$preload" TIERPOOL_PROFILE=1 \
    TIERPOOL_TRACE="$WORK/$name/%e-%p.tpt" "$SUBJECT" exec-from-handler "$how") \
    </dev/null >"$WORK/$name.out" 2>"$WORK/$name.err" || rc=$?
  if [ "$rc" -eq 124 ]; then
    fail_check "$name: still running after 30 s (killed)"
  else
    expect_status "$name" 0 "$rc"
  fi
  [ "$rc" -eq 0 ] || show "$WORK/$name.err" 5
  if grep -q "^$line\$" "$WORK/$name.err"; then
    pass_check "$name: $says, said in a line"
  else
    fail_check "$name: no line saying $says"
  fi
  for t in "$WORK/$name"/*.tpt*; do # the dump to a file: under pipefail, grep -q's early exit fails the pipe
    "$TIERPOOL_CLI" dump "$t" >"$WORK/$name.dump" 2>/dev/null || true
    grep -q '^process .* "after-exec"\]' "$WORK/$name.dump" && execd=$t
  done
  if [ -n "$execd" ]; then
    trace_check "$name: the exec'd image's trace" facts "$execd" argv1=after-exec end=1 bucket:8009=100
  else
    fail_check "$name: no trace of the exec'd image"
  fi
}

# On an 8 KiB signal stack the flush is left out.
SMALL_STACK_LINE='tierpool: profiler: exec or exit on a small signal stack; the trace ends at its last frame'
# In a fork child whose trace is not open yet, the handler's exec comes with
# the pool's lock held while another thread's fork holds the recorder's lock
# and waits for that pool lock: the exec waited for the recorder for ever
# (whether the child had events to open its trace for); now a second at most.
FORKING_LINE="tierpool: profiler: a fork in another thread kept the recorder for a second; pid [0-9]*'s exec goes unrecorded"

exec_case exec-flush "" 2
exec_case exec-flush-fork fork 3
exec_case exec-flush-in-lock in-lock 2
unflushed_case exec-flush-small-stack small-stack "$TIERPOOL_LIB" "$SMALL_STACK_LINE" "the flush left out"
unflushed_case exec-flush-fork-small-stack fork-small-stack "$TIERPOOL_LIB" "$SMALL_STACK_LINE" "the flush left out"
unflushed_case exec-flush-fork-in-lock-forking fork-in-lock-forking "$EXEC_SHIM:$TIERPOOL_LIB" "$FORKING_LINE" \
  "the wait given up after a second"
finish
