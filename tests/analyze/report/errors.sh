#!/usr/bin/env bash
# errors.sh — every way `tierpool report` can be called wrong, or given a file
# that is not a usable trace: exit status 2, one line on stderr naming the
# problem, nothing on stdout.  A trace cut short after complete frames is still
# reported, with a one-line warning; among several traces, one with no complete
# frame (empty, or cut in its first: a process killed as it started) is skipped
# with a warning.
source "$(dirname "$0")/lib.sh"
set -u

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

expect_error "missing file" "$WORK/nope.tpt" report "$WORK/nope.tpt"
expect_error "foreign file" "$WORK/foreign.tpt" report "$WORK/foreign.tpt"
expect_error "empty file" "$WORK/empty.tpt" report "$WORK/empty.tpt"
expect_error "trace with no process" "header-only\.tpt: .*(no process|empty)" report "$WORK/header-only.tpt"
expect_error "truncated in its first frame" "$WORK/cut-early.tpt" report "$WORK/cut-early.tpt"
expect_error "a good trace, then a missing one" "$WORK/nope.tpt" report "$WORK/ok.tpt" "$WORK/nope.tpt"
expect_error "a good trace, then a foreign one" "$WORK/foreign.tpt" report "$WORK/ok.tpt" "$WORK/foreign.tpt"
expect_error "only traces with no complete frame" "no trace has a complete frame" \
  report "$WORK/empty.tpt" "$WORK/cut-early.tpt"
expect_error "unknown flag" "unknown option '--bogus'" report --bogus "$WORK/ok.tpt"
expect_error "--top 0" "--top wants a number" report --top 0 "$WORK/ok.tpt"
expect_error "--top x" "--top wants a number" report --top=x "$WORK/ok.tpt"
expect_error "--top without a value" "--top needs a number" report --top
expect_error "no trace" "no trace given" report

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

# Merged, it stays a trace cut short (the merged file itself is whole), and so
# does a merge of that merge.
"$TIERPOOL_CLI" merge -o "$WORK/late-merged.tpt" "$WORK/cut-late.tpt" 2>/dev/null
"$TIERPOOL_CLI" merge -o "$WORK/late-merged2.tpt" "$WORK/late-merged.tpt" "$WORK/ok.tpt" 2>/dev/null
"$REPORT_CLI" report --json "$WORK/late-merged2.tpt" >"$WORK/late-merged.json" 2>/dev/null
expect_json "truncated late, merged twice" "$WORK/late-merged.json" \
  'r["processes"][0]["truncated"] is True and r["processes"][0]["ended"] is False and r["processes"][1]["ended"] is True'

# An executable path that is not UTF-8 (an overlong form, a surrogate, a code
# point past U+10FFFF): the JSON stays valid UTF-8 for strict decoders, with a
# replacement character for each bad byte.
{ printf 'process pid=1 rate=0.5 exe=/bin/x\xc1\xa9y\xed\xa0\x80z\xf4\x90\x80\x80\n'; sed 1d "$WORK/ok.spec"; } >"$WORK/latin.spec"
trace latin
"$REPORT_CLI" report --json "$WORK/latin.tpt" >"$WORK/latin.json" 2>"$WORK/latin.err" || true
expect_json "not UTF-8 in a path" "$WORK/latin.json" \
  '"\ufffd" in r["processes"][0]["executable"] and r["processes"][0]["executable"].startswith("/bin/x")'

# Among several, those with no complete frame are skipped, a warning each.
rc=0
"$REPORT_CLI" report --json "$WORK/empty.tpt" "$WORK/ok.tpt" "$WORK/cut-early.tpt" >"$WORK/skip.json" 2>"$WORK/skip.err" || rc=$?
if [ "$rc" -eq 0 ] && [ "$(wc -l <"$WORK/skip.err")" -eq 2 ] &&
  grep -q "^tierpool report: warning: .*empty.tpt: no complete frame" "$WORK/skip.err" &&
  grep -q "^tierpool report: warning: .*cut-early.tpt: no complete frame" "$WORK/skip.err"; then
  pass_check "unstarted traces among others: skipped, a warning each"
else
  fail_check "unstarted traces among others: exit status $rc, stderr:"
  sed 's/^/    | /' "$WORK/skip.err" >&2
fi
expect_json "unstarted traces among others" "$WORK/skip.json" \
  'len(r["processes"]) == 1 and r["totals"]["allocations"] == 100 and r["traces"] == [r["traces"][0]] and r["traces"][0].endswith("ok.tpt")'

expect "--help" 0 '^usage: tierpool report \[--json\] \[--top N\] TRACE\.\.\.$' "$TIERPOOL_CLI" report --help
finish
