#!/usr/bin/env bash
# errors.sh — every error of `tierpool export` and `tierpool merge`: a missing,
# foreign, empty or corrupt trace, a bad or missing flag, an output that cannot
# be written: exit status 2, one line on stderr naming the problem, and no
# output file (nor temporary file) left behind.  Every command whose stdout
# cannot be written exits 2 too.  A truncated trace is only a
# warning.  --help prints the usage on stdout and exits 0.
source "$(dirname "$0")/lib.sh"

cat >"$WORK/ok.spec" <<'SPEC'
process pid=5 rate=0.5
stack id=1 frames=0x1000
sample id=1 t=1 size=16 stack=1
end t=2 samples=1
frame
process pid=6 rate=0.5
stack id=1 frames=0x2000
sample id=1 t=1 size=32 stack=1
end t=2 samples=1
SPEC
trace ok
OK=$WORK/ok.tpt
echo "not a trace at all" >"$WORK/foreign.tpt"
: >"$WORK/empty.tpt"
: >"$WORK/empty2.tpt"
size=$(stat -c %s "$OK")
head -c $((size - 5)) "$OK" >"$WORK/cut.tpt"
# A damaged byte inside the first frame: its checksum no longer matches.
cp "$OK" "$WORK/corrupt.tpt"
printf '\xff\xff\xff\xff' | dd of="$WORK/corrupt.tpt" bs=1 seek=20 conv=notrunc status=none

# fails NAME WANT_REGEX ARGS...: expect_error, and neither $WORK/out nor a
# temporary file next to it.
fails() {
  rm -f "$WORK/out"
  expect_error "$@"
  local name=$1
  if [ -e "$WORK/out" ] || ls "$WORK" | grep -q '\.tmp\.'; then
    fail_check "$name: an output file was left behind"
  else
    pass_check "$name: no output file"
  fi
}

for cmd in export merge; do
  fmt=()
  [ $cmd = export ] && fmt=(--format pprof)
  fails "$cmd: missing trace" "^tierpool $cmd: .*/nonexistent.tpt: cannot open: No such file" \
    $cmd "${fmt[@]}" "$OK" "$WORK/nonexistent.tpt" -o "$WORK/out"
  fails "$cmd: foreign file" "^tierpool $cmd: .*/foreign.tpt: not a tierpool trace" \
    $cmd "${fmt[@]}" "$WORK/foreign.tpt" -o "$WORK/out"
  fails "$cmd: empty file" "^tierpool $cmd: .*/empty.tpt: empty file" $cmd "${fmt[@]}" "$WORK/empty.tpt" -o "$WORK/out"
  fails "$cmd: no trace with a complete frame" "^tierpool $cmd: no trace has a complete frame" \
    $cmd "${fmt[@]}" "$WORK/empty.tpt" "$WORK/empty2.tpt" -o "$WORK/out"
  fails "$cmd: corrupt frame" "^tierpool $cmd: .*/corrupt.tpt: corrupt frame at offset 0" \
    $cmd "${fmt[@]}" "$OK" "$WORK/corrupt.tpt" -o "$WORK/out"
  fails "$cmd: unknown option" "^tierpool $cmd: unknown option '--frobnicate'" \
    $cmd "${fmt[@]}" --frobnicate "$OK" -o "$WORK/out"
  fails "$cmd: no trace" "^tierpool $cmd: no trace given" $cmd "${fmt[@]}" -o "$WORK/out"
  fails "$cmd: -o without a value" "^tierpool $cmd: -o needs a" $cmd "${fmt[@]}" "$OK" -o
  # An option is not a value: "-o --" must not write a file named "--".
  fails "$cmd: -o followed by --" "^tierpool $cmd: -o needs a" $cmd "${fmt[@]}" -o -- "$OK"
  if [ -e ./-- ] || [ -e "$WORK/--" ]; then fail_check "$cmd: a file named -- was written"; fi
  fails "$cmd: output directory missing" "^tierpool $cmd: .*/no/such/dir/out: cannot create" \
    $cmd "${fmt[@]}" "$OK" -o "$WORK/no/such/dir/out"
  rc=0
  "$TIERPOOL_CLI" $cmd --help >"$WORK/help" 2>&1 || rc=$?
  expect_eq "$cmd --help: exit 0, usage on stdout" "$rc/$(grep -c "^usage: tierpool $cmd" "$WORK/help")" 0/1
done

fails "export: no --format" "^tierpool export: no --format given" export "$OK" -o "$WORK/out"
fails "export: bad --format" "^tierpool export: bad --format 'svg'" export --format svg "$OK" -o "$WORK/out"
fails "export: bad --value" "^tierpool export: bad --value 'weight'" \
  export --format folded --value weight "$OK" -o "$WORK/out"
# stdout that cannot take the output (a full disk, here /dev/full): exit 2
# and say so; dump, diff and propose used to exit 0 with nothing written.
cat >"$WORK/hist.spec" <<'SPEC'
process pid=7 rate=0.5
alloc size=100 count=1000
alloc size=3000 count=10
flush t=1
end t=2 samples=0 allocations=1010
SPEC
trace hist
H=$WORK/hist.tpt
for args in "dump $OK" "dump --summary $OK" "diff $H $H" "propose $H -o $WORK/p.conf" "report $OK"; do
  rc=0
  "$TIERPOOL_CLI" $args >/dev/full 2>"$WORK/full.err" || rc=$?
  if [ "$rc" -eq 2 ] && grep -q "^tierpool ${args%% *}: writing .* failed" "$WORK/full.err"; then
    pass_check "${args%% *} to a full stdout: exit 2, said so"
  else
    fail_check "${args%% *} to a full stdout: exit $rc, want 2 and a message"
    sed 's/^/    | /' "$WORK/full.err" >&2
  fi
done

fails "merge: no output" "^tierpool merge: no output given" merge "$OK"
fails "merge: output to stdout" "^tierpool merge: -o -: a trace is binary" merge "$OK" -o -

# A truncated trace: a warning, and what it holds.
for fmt in pprof folded json csv; do
  rc=0
  "$TIERPOOL_CLI" export --format $fmt "$WORK/cut.tpt" -o "$WORK/cut.$fmt" 2>"$WORK/cut.err" || rc=$?
  expect_eq "export --format $fmt of a truncated trace: exit 0, one warning" \
    "$rc/$(wc -l <"$WORK/cut.err")/$(grep -c '^tierpool export: warning: .*cut.tpt: truncated' "$WORK/cut.err")" 0/1/1
done
expect_eq "csv of the truncated trace: the first section's row" "$(tail -n +2 "$WORK/cut.csv" | cut -d, -f1,2,4)" 5,1,16

# Among several traces, one with no complete frame (a process killed as it
# started): skipped with one warning, in every format.
for fmt in pprof folded json csv; do
  rc=0
  "$TIERPOOL_CLI" export --format $fmt "$OK" "$WORK/empty.tpt" -o "$WORK/skip.$fmt" 2>"$WORK/skip.err" || rc=$?
  expect_eq "export --format $fmt of a trace and an empty one: exit 0, one warning" \
    "$rc/$(wc -l <"$WORK/skip.err")/$(grep -c '^tierpool export: warning: .*empty.tpt: no complete frame; skipped' "$WORK/skip.err")" 0/1/1
done
expect_eq "json: the skipped trace is not listed" "$(grep -c 'empty.tpt' "$WORK/skip.json")" 0
expect_eq "csv: the other trace's rows" "$(tail -n +2 "$WORK/skip.csv" | cut -d, -f1 | sort -u | tr '\n' ' ')" "5 6 "
finish
