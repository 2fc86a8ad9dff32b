# shellcheck shell=bash
# lib.sh — sourced by the integration tests: run a real program twice, without
# and with libtierpool.so preloaded, and compare what it did.
#
#   source "$(dirname "$0")/lib.sh"      # needs TIERPOOL_LIB (meson passes it)
#   ... prepare inputs under "$INPUT" ...
#   run_both CMD [ARGS...]              # runs CMD in a fresh "$WORK/run" twice
#   expect_same_stdout [FILTER...]      # stdout equal (each piped through FILTER)
#   expect_same_file PATH               # a file CMD wrote (relative to its cwd) equal
#   finish                              # exit 1 if any check failed
#
# run_both runs CMD first with LD_PRELOAD removed (glibc malloc), then with
# LD_PRELOAD=$TIERPOOL_LIB and TIERPOOL_STATS=1, each time in a new directory at
# the same path (so paths in the output are the same), moved afterwards to
# "$WORK/plain" and "$WORK/pool".  It checks that both runs exit 0 and that the
# pool really served the program: the allocations of its statistics (stderr
# lines "tierpool: total N ...", summed over the processes) are at least
# MIN_POOL_ALLOCS (default 1000).  Stdout goes to $WORK/{plain,pool}.out, stderr to .err.
set -euo pipefail

: "${TIERPOOL_LIB:?TIERPOOL_LIB must name libtierpool.so (meson test sets it)}"
if [ ! -r "$TIERPOOL_LIB" ]; then
  echo "FAIL: TIERPOOL_LIB=$TIERPOOL_LIB is not readable" >&2
  exit 1
fi
TIERPOOL_LIB=$(realpath "$TIERPOOL_LIB")  # commands run in other directories
export TIERPOOL_LIB

WORK=$(mktemp -d "${TMPDIR:-/tmp}/tierpool-it.XXXXXX")
INPUT=$WORK/input
mkdir "$INPUT"
trap 'rm -rf "$WORK"' EXIT
FAILURES=()
TEST_NAME=$(basename "$0" .sh)
HERE=$(cd "$(dirname "$0")" && pwd)  # this folder, absolute: commands run elsewhere

fail_check() {
  FAILURES+=("$1")
  echo "FAIL: $1" >&2
}

pass_check() {
  echo "ok: $1"
}

# show FILE [LINES]: the tail of a log, indented, for a failure message (the
# pool's own statistics lines left out).
show() {
  { grep -v "^tierpool:" "$1" || true; } | tail -n "${2:-20}" | sed "s/^/    | /" >&2
}

# run_one MODE CMD...: MODE is plain or pool.
run_one() {
  local mode=$1 rc=0 start
  shift
  mkdir "$WORK/run"
  start=$EPOCHREALTIME
  if [ "$mode" = plain ]; then
    (cd "$WORK/run" && exec env -u LD_PRELOAD "$@") </dev/null >"$WORK/$mode.out" 2>"$WORK/$mode.err" || rc=$?
  else
    (cd "$WORK/run" && exec env LD_PRELOAD="$TIERPOOL_LIB${LD_PRELOAD:+:$LD_PRELOAD}" TIERPOOL_STATS=1 "$@") </dev/null \
      >"$WORK/$mode.out" 2>"$WORK/$mode.err" || rc=$?
  fi
  mv "$WORK/run" "$WORK/$mode"
  local us=$((${EPOCHREALTIME//[.,]/} - ${start//[.,]/}))
  printf -v "${mode}_seconds" '%d.%02d' $((us / 1000000)) $((us % 1000000 / 10000))
  if [ "$rc" -eq 0 ]; then
    pass_check "$mode run exits 0"
  else
    fail_check "$mode run exited with status $rc: $*"
    show "$WORK/$mode.err"
  fi
}

run_both() {
  echo "$TEST_NAME: $*"
  run_one plain "$@"
  run_one pool "$@"
  echo "time: plain ${plain_seconds}s, pool ${pool_seconds}s"
  # Loaded is not enough: the pool must have served the program's heap (a
  # broken interposition would leave glibc serving it, and statistics of ~0).
  local served
  served=$(awk '/^tierpool: total /{s += $3} END{print s + 0}' "$WORK/pool.err")
  if [ "$served" -ge "${MIN_POOL_ALLOCS:-1000}" ]; then
    pass_check "the pool served the program: $served allocations in its statistics on stderr"
  else
    fail_check "the pool served $served allocations (want >= ${MIN_POOL_ALLOCS:-1000}): not loaded, or not interposed"
    show "$WORK/pool.err" 10
  fi
}

# expect_same_stdout [FILTER...]: compares both runs' stdout, through FILTER if given.
expect_same_stdout() {
  local a=$WORK/plain.out b=$WORK/pool.out
  if [ $# -gt 0 ]; then
    "$@" <"$a" >"$a.filtered"
    "$@" <"$b" >"$b.filtered"
    a=$a.filtered b=$b.filtered
  fi
  if [ ! -s "$a" ]; then
    fail_check "the plain run printed nothing to compare"
  elif diff -u --label plain --label pool "$a" "$b" >"$WORK/stdout.diff"; then
    pass_check "stdout is identical ($(wc -l <"$a") lines)"
  else
    fail_check "stdout differs between plain and pool runs"
    show "$WORK/stdout.diff" 40
  fi
}

# expect_same_file PATH: compares a file the command wrote, byte for byte.
expect_same_file() {
  local a=$WORK/plain/$1 b=$WORK/pool/$1
  if [ ! -f "$a" ] || [ ! -f "$b" ]; then
    fail_check "$1 was not written by both runs"
  elif cmp -s "$a" "$b"; then
    pass_check "$1 is identical ($(stat -c %s "$a") bytes)"
  else
    fail_check "$1 differs: $(cmp "$a" "$b" 2>&1 | head -n 1)"
  fi
}

finish() {
  if [ ${#FAILURES[@]} -gt 0 ]; then
    echo "$TEST_NAME: ${#FAILURES[@]} check(s) failed" >&2
    exit 1
  fi
  echo "$TEST_NAME: all checks passed"
}

# expect NAME STATUS PATTERN CMD...: CMD exits with STATUS and its output (stdout
# and stderr together) has a line matching the extended regex PATTERN.
expect() {
  local name=$1 want=$2 pattern=$3 rc=0
  shift 3
  "$@" >"$WORK/out" 2>&1 || rc=$?
  if [ "$rc" -ne "$want" ]; then
    fail_check "$name: exit status $rc, expected $want"
    sed 's/^/    | /' "$WORK/out" >&2
  elif ! grep -qE -- "$pattern" "$WORK/out"; then
    fail_check "$name: no line matching '$pattern'"
    sed 's/^/    | /' "$WORK/out" >&2
  else
    pass_check "$name"
  fi
}
