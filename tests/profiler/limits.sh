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
source "$(dirname "$0")/lib.sh"
: "${EXEC_SHIM:?}"

# The address space the subject takes recording without samples, plus
# 200 MiB: the first table fits, the second does not.
base=$(TIERPOOL_PROFILE=1 TIERPOOL_SAMPLE_RATE=0 TIERPOOL_TRACE=/dev/null LD_PRELOAD="$TIERPOOL_LIB" "$SUBJECT" vm-size)
if ! [[ $base =~ ^[0-9]+$ ]]; then
  fail_check "subject vm-size printed '$base'"
  finish
fi
mkdir -p "$WORK/as"
rc=0
(ulimit -v $((base + 200 * 1024)) && cd "$WORK/as" && TIERPOOL_PROFILE=1 TIERPOOL_SAMPLE_RATE=1 \
  TIERPOOL_TRACE="$WORK/as/%e-%p.tpt" LD_PRELOAD="$TIERPOOL_LIB" exec "$SUBJECT" vm-size) \
  </dev/null >"$WORK/as.out" 2>"$WORK/as.err" || rc=$?
expect_status "address space of $((base / 1024)) + 200 MiB, every allocation sampled" 0 "$rc"
[ "$rc" -eq 0 ] || show "$WORK/as.err" 5
if grep -q '^tierpool: profiler: cannot map the stack tables' "$WORK/as.err"; then
  pass_check "the recorder says its stacks are off"
else
  fail_check "no 'cannot map the stack tables' line: the limit did not bite where this test wants it"
  show "$WORK/as.err" 5
fi
mapfile -t TRACES < <(ls "$WORK/as"/*.tpt 2>/dev/null)
if [ ${#TRACES[@]} -eq 1 ]; then
  expect_summary "${TRACES[0]}" 'samples >= 100' 'ends == 1' 'truncated == 0'
else
  fail_check "address space: ${#TRACES[@]} traces, want 1"
fi

mkdir -p "$WORK/alt"
rc=0
(cd "$WORK/alt" && TIERPOOL_PROFILE=1 TIERPOOL_TRACE="$WORK/alt/%e-%p.tpt" LD_PRELOAD="$TIERPOOL_LIB" \
  exec "$SUBJECT" small-altstack) </dev/null >"$WORK/alt.out" 2>"$WORK/alt.err" || rc=$?
expect_status "mprotect in a handler on an 8 KiB signal stack, recorded" 0 "$rc"
[ "$(cat "$WORK/alt.out")" = ok ] || fail_check "small-altstack printed '$(cat "$WORK/alt.out")', not ok"
mapfile -t TRACES < <(ls "$WORK/alt"/*.tpt 2>/dev/null)
if [ ${#TRACES[@]} -eq 1 ]; then
  expect_summary "${TRACES[0]}" 'mmap_calls >= 200' 'ends == 1' 'truncated == 0'
else
  fail_check "small signal stack: ${#TRACES[@]} traces, want 1"
fi

# exit(0) from a handler inside the pool: the process ends (status 0), its
# trace readable with its End.
mkdir -p "$WORK/exit"
rc=0
(cd "$WORK/exit" && exec timeout 30 env LD_PRELOAD="$EXEC_SHIM:$TIERPOOL_LIB" TIERPOOL_PROFILE=1 \
  TIERPOOL_TRACE="$WORK/exit/%e-%p.tpt" "$SUBJECT" exit-from-handler) </dev/null >"$WORK/exit.out" 2>"$WORK/exit.err" || rc=$?
if [ "$rc" -eq 124 ]; then
  fail_check "exit from a handler inside the pool: still running after 30 s (killed)"
else
  expect_status "exit from a handler inside the pool" 0 "$rc"
fi
if ! grep -q '^exec_shim: loaded' "$WORK/exit.err"; then
  fail_check "exit from a handler: exec_shim was not preloaded"
fi
mapfile -t TRACES < <(ls "$WORK/exit"/*.tpt 2>/dev/null)
if [ ${#TRACES[@]} -eq 1 ]; then
  trace_check "exit from a handler: the trace up to the exit" facts "${TRACES[0]}" \
    argv1=exit-from-handler end=1 bucket:7019=100
else
  fail_check "exit from a handler: ${#TRACES[@]} traces, want 1"
fi
finish
