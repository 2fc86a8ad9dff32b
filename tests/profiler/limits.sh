#!/usr/bin/env bash
# limits.sh — the recorder where a program's limits bite, never taking it down.
#   address space: under RLIMIT_AS (ulimit -v) the recorder's stack tables
#   (96 + 256 MiB reserved) may not fit; with room for the first only, the
#   next sample wrote through the second's NULL (SIGSEGV).  Now: a warning,
#   samples without stacks, the program's own output and status.
#   a small signal stack: a handler on an 8 KiB one (SIGSTKSZ) calls mprotect,
#   which the recorder records with its stack; libunwind's capture ran off
#   the end of that stack (SIGSEGV).  Now: such captures stay empty.
#   exit from a signal handler: exit(0) in a handler that stopped the thread
#   inside the pool, a lock held (exec_shim raises it there): the final flush
#   read the pool's statistics under that lock and the process hung.
#   exit from a handler on an 8 KiB signal stack: the final flush ran off
#   its end (SIGSEGV), and so did the statistics table (TIERPOOL_STATS=1).
#   Now: both left out, each said in a line, status 0.
source "$(dirname "$0")/lib.sh"
: "${EXEC_SHIM:?}"

# recorded NAME WHAT WANT_STATUS CMD...: runs CMD (env assignments first, as
# env takes them) recorded at the default rate in $WORK/NAME, killed after
# 30 s; checks its status; the traces it left in TRACES.
recorded() {
  local name=$1 what=$2 want=$3 rc=0
  shift 3
  mkdir -p "$WORK/$name"
  (cd "$WORK/$name" && exec timeout 30 env TIERPOOL_PROFILE=1 TIERPOOL_TRACE="$WORK/$name/%e-%p.tpt" "$@") \
    </dev/null >"$WORK/$name.out" 2>"$WORK/$name.err" || rc=$?
  if [ "$rc" -eq 124 ]; then
    fail_check "$what: still running after 30 s (killed)"
  else
    expect_status "$what" "$want" "$rc"
  fi
  [ "$rc" -eq "$want" ] || show "$WORK/$name.err" 5
  mapfile -t TRACES < <(ls "$WORK/$name"/*.tpt 2>/dev/null)
  [ ${#TRACES[@]} -eq 1 ] || fail_check "$what: ${#TRACES[@]} traces, want 1"
}

# The address space the subject takes recording without samples, plus
# 200 MiB: the first table fits, the second does not.
base=$(TIERPOOL_PROFILE=1 TIERPOOL_SAMPLE_RATE=0 TIERPOOL_TRACE=/dev/null LD_PRELOAD="$TIERPOOL_LIB" "$SUBJECT" vm-size)
if ! [[ $base =~ ^[0-9]+$ ]]; then
  fail_check "subject vm-size printed '$base'"
  finish
fi
recorded as "address space of $((base / 1024)) + 200 MiB, every allocation sampled" 0 \
  bash -c 'ulimit -v "$1" && shift && exec "$@"' - $((base + 200 * 1024)) \
  env TIERPOOL_SAMPLE_RATE=1 LD_PRELOAD="$TIERPOOL_LIB" "$SUBJECT" vm-size
if grep -q '^tierpool: profiler: cannot map the stack tables' "$WORK/as.err"; then
  pass_check "the recorder says its stacks are off"
else
  fail_check "no 'cannot map the stack tables' line: the limit did not bite where this test wants it"
fi
[ ${#TRACES[@]} -eq 1 ] && expect_summary "${TRACES[0]}" 'samples >= 100' 'ends == 1' 'truncated == 0'

recorded alt "mprotect in a handler on an 8 KiB signal stack" 0 LD_PRELOAD="$TIERPOOL_LIB" "$SUBJECT" small-altstack
[ "$(cat "$WORK/alt.out")" = ok ] || fail_check "small-altstack printed '$(cat "$WORK/alt.out")', not ok"
[ ${#TRACES[@]} -eq 1 ] && expect_summary "${TRACES[0]}" 'mmap_calls >= 200' 'ends == 1' 'truncated == 0'

# exit(0) from a handler inside the pool: the process ends (status 0), its
# trace readable with its End.
recorded exit "exit from a handler inside the pool" 0 LD_PRELOAD="$EXEC_SHIM:$TIERPOOL_LIB" "$SUBJECT" exit-from-handler
grep -q '^exec_shim: loaded' "$WORK/exit.err" || fail_check "exit from a handler: exec_shim was not preloaded"
[ ${#TRACES[@]} -eq 1 ] && trace_check "exit from a handler: the trace up to the exit" facts "${TRACES[0]}" \
  argv1=exit-from-handler end=1 bucket:7019=100

recorded exit-small "exit from a handler on an 8 KiB signal stack" 0 LD_PRELOAD="$TIERPOOL_LIB" "$SUBJECT" \
  exit-on-small-stack
if grep -q '^tierpool: profiler: exec or exit on a small signal stack' "$WORK/exit-small.err"; then
  pass_check "exit on a small signal stack: the final flush left out, said in a line"
else
  fail_check "exit on a small signal stack: no line saying the flush was left out"
fi
[ ${#TRACES[@]} -eq 1 ] && expect_summary "${TRACES[0]}" 'processes == 1' 'truncated == 0'

# The same with the statistics table asked for: formatting it there ran off
# the stack (SIGSEGV) — under glibc the program just exits.
recorded exit-small-stats "exit from a handler on an 8 KiB signal stack, statistics on" 0 TIERPOOL_STATS=1 \
  LD_PRELOAD="$TIERPOOL_LIB" "$SUBJECT" exit-on-small-stack
if grep -q '^tierpool: exit on a small signal stack: no final statistics$' "$WORK/exit-small-stats.err"; then
  pass_check "exit on a small signal stack, statistics on: the table left out, said in a line"
else
  fail_check "exit on a small signal stack, statistics on: no line saying the table was left out"
fi
finish
