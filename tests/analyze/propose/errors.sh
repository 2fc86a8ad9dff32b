#!/usr/bin/env bash
# errors.sh — every error of `tierpool propose` and `tierpool diff`: exit status
# 2, one line on stderr naming the command, nothing on stdout, no output file
# (or temporary file) left behind; --help exits 0; a truncated trace is used
# up to its last complete frame with a warning.
set -u
source "$(dirname "$0")/../lib.sh"

mk good <<'EOF'
process pid=1 exe=/bin/good
alloc size=48 count=1000
flush t=1000
end t=2000
EOF
mk empty <<'EOF'
process pid=2 exe=/bin/empty
end t=2000
EOF
echo "not a trace at all" >"$WORK/foreign.txt"
out=$WORK/out/new.conf
mkdir -p "$WORK/out"

for cmd in propose diff; do
  run_cli help "$cmd" --help
  expect_status "$cmd --help" 0
  expect_line "$cmd --help: usage" "^usage: tierpool $cmd " "$WORK/help.out"
done

expect_error "propose: no trace" '' propose
expect_error "propose: unknown option" '' propose "$WORK/good.tpt" --bogus -o "$out"
expect_error "propose: --classes 0" '' propose "$WORK/good.tpt" --classes 0 -o "$out"
expect_error "propose: --classes 65" '' propose "$WORK/good.tpt" --classes 65 -o "$out"
expect_error "propose: --classes x" '' propose "$WORK/good.tpt" --classes x -o "$out"
expect_error "propose: --classes without value" '' propose "$WORK/good.tpt" -o "$out" --classes
expect_error "propose: --classes and --extra" '' propose "$WORK/good.tpt" --classes 2 --extra 2 -o "$out"
expect_error "propose: --extra 65" '' propose "$WORK/good.tpt" --extra 65 -o "$out"
expect_error "propose: --align 24" '' propose "$WORK/good.tpt" --align 24 -o "$out"
expect_error "propose: --max-slab 128K" '' propose "$WORK/good.tpt" --max-slab 128K -o "$out"
expect_error "propose: --max-slab below --align" '' propose "$WORK/good.tpt" --max-slab 32 --align 64 -o "$out"
expect_error "propose: --limit 10" '' propose "$WORK/good.tpt" --limit 10 -o "$out"
expect_error "propose: --holdout without a trace" '' propose "$WORK/good.tpt" --holdout -o "$out"
expect_error "propose: missing file" '' propose "$WORK/missing.tpt" -o "$out"
expect_error "propose: foreign file" '' propose "$WORK/foreign.txt" -o "$out"
expect_error "propose: empty trace" '' propose "$WORK/empty.tpt" -o "$out"
expect_error "propose: bad held-out trace" '' propose "$WORK/good.tpt" --holdout "$WORK/foreign.txt" -o "$out"
expect_error "propose: directory" '' propose "$WORK" -o "$out"
expect_error "propose: output in a missing directory" '' propose "$WORK/good.tpt" -o "$WORK/nowhere/x.conf"
expect_error "propose: output is a directory name" '' propose "$WORK/good.tpt" -o "$WORK/out/"
if [ -z "$(ls -A "$WORK/out")" ]; then
  pass_check "propose errors left no file behind"
else
  fail_check "propose errors left files: $(ls -A "$WORK/out")"
fi

expect_error "diff: no trace" '' diff
expect_error "diff: one trace" '' diff "$WORK/good.tpt"
expect_error "diff: three traces" '' diff "$WORK/good.tpt" "$WORK/good.tpt" "$WORK/good.tpt"
expect_error "diff: nothing before --" '' diff -- "$WORK/good.tpt"
expect_error "diff: nothing after --" '' diff "$WORK/good.tpt" --
expect_error "diff: two --" '' diff "$WORK/good.tpt" -- "$WORK/good.tpt" -- "$WORK/good.tpt"
expect_error "diff: bad threshold" '' diff "$WORK/good.tpt" "$WORK/good.tpt" --threshold 2
expect_error "diff: threshold without value" '' diff "$WORK/good.tpt" "$WORK/good.tpt" --threshold
expect_error "diff: unknown option" '' diff "$WORK/good.tpt" "$WORK/good.tpt" --bogus
expect_error "diff: missing file" '' diff "$WORK/good.tpt" "$WORK/missing.tpt"
expect_error "diff: foreign file" '' diff "$WORK/foreign.txt" "$WORK/good.tpt"
expect_error "diff: empty trace" '' diff "$WORK/good.tpt" "$WORK/empty.tpt"

# A trace cut in its last frame: the frames before it are used, with a warning.
{
  echo "process pid=3 exe=/bin/cut"
  echo "alloc size=48 count=1000"
  echo "flush t=1000"
  echo "frame"
  for i in $(seq 1 200); do echo "alloc size=48 count=1"; echo "flush t=$((1000 + i))"; done
  echo "end t=5000"
} | mk whole
size=$(stat -c %s "$WORK/whole.tpt")
head -c $((size - 20)) "$WORK/whole.tpt" >"$WORK/cut.tpt"
run_cli cut propose "$WORK/cut.tpt" --classes 1 -o "$WORK/cut.conf"
expect_status "propose on a truncated trace" 0
expect_line "truncated: one warning" '^tierpool propose: warning: ' "$WORK/cut.err"
expect_line "truncated: the first frame is used" '^size_classes = 48$' "$WORK/cut.conf"
run_cli cutdiff diff "$WORK/cut.tpt" "$WORK/good.tpt"
expect_status "diff on a truncated trace" 0
expect_line "diff truncated: one warning" '^tierpool diff: warning: ' "$WORK/cutdiff.err"
finish
