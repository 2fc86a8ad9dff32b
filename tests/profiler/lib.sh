# shellcheck shell=bash
# lib.sh — sourced by the profiler tests, on top of ../integration/lib.sh (WORK,
# INPUT, run_both, expect_same_stdout, pass_check/fail_check, finish).
#
#   record_run NAME [RECORD_OPTIONS...] -- CMD [ARGS...]
#       runs `tierpool record -o $WORK/NAME/%e-%p.tpt RECORD_OPTIONS -- CMD` in
#       $WORK/run (moved to $WORK/run-NAME afterwards); stdout, stderr in $WORK/NAME.out, .err; its exit status
#       in RC; the traces it named on stderr in the array TRACES.  With the
#       array RECORD_UNDER set (a tracer and its options), `tierpool record` runs under it
#   summary TRACE           `tierpool dump --summary TRACE` into the array S (S[samples]...),
#                           its exit status in S[status]
#   expect_summary TRACE EXPR...   each EXPR (bash arithmetic on S's keys, e.g.
#                           'samples > 0') holds for TRACE
#   expect_status NAME WANT GOT    an exit status
#   trace_check NAME MODE ARGS...  runs the checker; its verdict is one check
#   compare_recorded CMD...  CMD plain, then under `tierpool record`: same stdout,
#                           both exit 0, traces in TRACES
source "$(dirname "$0")/../integration/lib.sh"

: "${TIERPOOL_CLI:?}" "${SUBJECT:?}" "${TRACE_CHECK:?}"

# The `tierpool: trace PATH (N bytes...)` lines of a record run's stderr.
# Relative paths are relative to the directory record ran in ($1).
traces_in() {
  local dir=$1 err=$2 path
  TRACES=()
  while IFS= read -r path; do
    [[ $path = /* ]] || path=$dir/$path
    TRACES+=("$path")
  done < <(sed -nE 's/^tierpool: trace (.*) \([0-9]+ bytes.*\)$/\1/p' "$err")
}

RECORD_UNDER=()
record_run() {
  local name=$1 opts=()
  shift
  while [ $# -gt 0 ] && [ "$1" != -- ]; do
    opts+=("$1")
    shift
  done
  shift
  mkdir -p "$WORK/$name" "$WORK/run"
  RC=0
  (cd "$WORK/run" && exec "${RECORD_UNDER[@]}" "$TIERPOOL_CLI" record -o "$WORK/$name/%e-%p.tpt" "${opts[@]}" -- "$@") \
    </dev/null >"$WORK/$name.out" 2>"$WORK/$name.err" || RC=$?
  mv "$WORK/run" "$WORK/run-$name"  # the same path as run_one's, for output that names it
  traces_in "$WORK/run-$name" "$WORK/$name.err"
}

declare -A S
summary() {
  S=([status]=0)
  local line kv
  line=$("$TIERPOOL_CLI" dump --summary "$1" 2>"$WORK/dump.err") || S[status]=$?
  for kv in $line; do
    [[ $kv = *=* ]] && S[${kv%%=*}]=${kv#*=}
  done
  return 0
}

expect_summary() {
  local trace=$1 expr name
  shift
  summary "$trace"
  name=$(basename "$trace")
  if [ "${S[status]}" -ne 0 ] && [ "${S[truncated]:-0}" -ne 1 ]; then
    fail_check "$name: tierpool dump --summary exited with ${S[status]}"
    show "$WORK/dump.err" 5
    return
  fi
  for expr in "$@"; do
    # In a subshell, S's keys become variables that the arithmetic reads.
    if (for k in "${!S[@]}"; do printf -v "$k" %s "${S[$k]}"; done; (($expr))); then
      pass_check "$name: $expr"
    else
      fail_check "$name: $expr (summary: $(for k in "${!S[@]}"; do printf '%s=%s ' "$k" "${S[$k]}"; done))"
    fi
  done
}

expect_status() {
  if [ "$3" -eq "$2" ]; then
    pass_check "$1: exit status $3"
  else
    fail_check "$1: exit status $3, expected $2"
  fi
}

trace_check() {
  local name=$1 rc=0
  shift
  "$TRACE_CHECK" "$@" >"$WORK/check.out" 2>&1 || rc=$?
  if [ "$rc" -eq 0 ]; then
    pass_check "$name ($(grep -c '^ok:' "$WORK/check.out") checks)"
  else
    fail_check "$name: trace_check $1 exited with $rc"
    sed 's/^/    | /' "$WORK/check.out" >&2
  fi
}

compare_recorded() {
  run_one plain "$@"
  record_run recorded --seed 1 -- "$@"
  expect_status "recorded run" 0 "$RC"
  [ "$RC" -eq 0 ] || show "$WORK/recorded.err"
  cp "$WORK/recorded.out" "$WORK/pool.out"  # what expect_same_stdout compares
  expect_same_stdout
  if [ ${#TRACES[@]} -gt 0 ]; then
    pass_check "tierpool record named ${#TRACES[@]} trace(s)"
  else
    fail_check "tierpool record named no trace"
    show "$WORK/recorded.err"
  fi
}
