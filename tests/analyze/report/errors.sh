#!/usr/bin/env bash
# errors.sh — every way `tierpool report` can be called wrong, or given a file
# that is not a usable trace: exit status 2, one line on stderr naming the
# problem, nothing on stdout.  A trace cut short after complete frames is still
# reported, with a one-line warning.
source "$(dirname "$0")/lib.sh"
set -u

# expect_error NAME PATTERN ARGS...: report ARGS exits 2, prints nothing, and says one line matching PATTERN.
expect_error() {
  local name=$1 pattern=$2 rc=0
  shift 2
  "$REPORT_CLI" report "$@" >"$WORK/err.out" 2>"$WORK/err.err" || rc=$?
  local lines
  lines=$(wc -l <"$WORK/err.err")
  if [ "$rc" -ne 2 ]; then
    fail_check "$name: exit status $rc, expected 2"
  elif [ -s "$WORK/err.out" ]; then
    fail_check "$name: something on stdout"
  elif [ "$lines" -ne 1 ]; then
    fail_check "$name: $lines lines on stderr, expected one"
  elif ! head -n 1 "$WORK/err.err" | grep -qE -- "^tierpool report: .*$pattern"; then
    fail_check "$name: first line does not match '$pattern'"
  else
    pass_check "$name: $(head -n 1 "$WORK/err.err")"
    return
  fi
  sed 's/^/    | /' "$WORK/err.err" >&2
}

cat >"$WORK/ok.spec" <<'SPEC'
process pid=1 rate=0.5
stack id=1 frames=0x1000
alloc size=10 count=100
flush t=10
sample id=1 t=1 size=10 stack=1
frame
sample id=2 t=2 size=10 stack=1
frame
snapshot t=5 tier=0:10:4096:10
end t=20 samples=2
SPEC
trace ok
echo "this is not a trace" >"$WORK/foreign.tpt"
: >"$WORK/empty.tpt"
printf '' >"$WORK/header-only.spec"
trace header-only
size=$(stat -c %s "$WORK/ok.tpt")
head -c 20 "$WORK/ok.tpt" >"$WORK/cut-early.tpt"       # inside the first frame
head -c $((size - 5)) "$WORK/ok.tpt" >"$WORK/cut-late.tpt"   # inside the last frame

expect_error "missing file" "$WORK/nope.tpt" "$WORK/nope.tpt"
expect_error "foreign file" "$WORK/foreign.tpt" "$WORK/foreign.tpt"
expect_error "empty file" "$WORK/empty.tpt" "$WORK/empty.tpt"
expect_error "trace with no process" "header-only\.tpt: .*(no process|empty)" "$WORK/header-only.tpt"
expect_error "truncated in its first frame" "$WORK/cut-early.tpt" "$WORK/cut-early.tpt"
expect_error "a good trace, then a missing one" "$WORK/nope.tpt" "$WORK/ok.tpt" "$WORK/nope.tpt"
expect_error "unknown flag" "unknown option '--bogus'" --bogus "$WORK/ok.tpt"
expect_error "--top 0" "--top wants a number" --top 0 "$WORK/ok.tpt"
expect_error "--top x" "--top wants a number" --top=x "$WORK/ok.tpt"
expect_error "--top without a value" "--top needs a number" --top
expect_error "no trace" "no trace given"

# Cut inside its last frame: what precedes is reported, with one warning.
rc=0
"$REPORT_CLI" report --json "$WORK/cut-late.tpt" >"$WORK/late.json" 2>"$WORK/late.err" || rc=$?
if [ "$rc" -eq 0 ] && [ "$(wc -l <"$WORK/late.err")" -eq 1 ] && grep -q "^tierpool report: warning: .*cut-late.tpt" "$WORK/late.err"; then
  pass_check "truncated late: reported, one warning: $(cat "$WORK/late.err")"
else
  fail_check "truncated late: exit status $rc, stderr:"
  sed 's/^/    | /' "$WORK/late.err" >&2
fi
expect_json "truncated late" "$WORK/late.json" \
  'r["processes"][0]["truncated"] is True and r["totals"]["allocations"] == 100 and r["totals"]["samples"] >= 1'

expect "--help" 0 '^usage: tierpool report \[--json\] \[--top N\] TRACE\.\.\.$' "$TIERPOOL_CLI" report --help
finish
