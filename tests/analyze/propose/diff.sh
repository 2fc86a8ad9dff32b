#!/usr/bin/env bash
# diff.sh — `tierpool diff` on synthetic traces: total variation distances worked
# out by hand, exit status by threshold, groups of traces, lifetime percentiles,
# and sites matched across two load addresses of the same module.
set -u
source "$(dirname "$0")/../lib.sh"

# a: 1000 x 48.  b: 600 x 48, 400 x 1040.  TVD = (|1 - .6| + |0 - .4|) / 2 = 0.4.
# The same module at two load addresses: stack 1 is the same code in both
# (module offset 0x1234); in b half the sampled bytes come from a new stack 2.
# Blocks live 1 ms in a and 100 ms in b.
{
  echo "process pid=1 exe=/bin/app rate=0.01"
  echo "module path=/nonexistent/libapp.so build_id=c0ffee01 bias=0x400000 seg=0:0x10000:0:1"
  echo "stack id=1 frames=0x401234,0x402000"
  for i in $(seq 1 40); do echo "sample id=$i t=$((i * 1000)) size=48 stack=1"; done
  for i in $(seq 1 40); do echo "free id=$i t=$((i * 1000 + 1000))"; done
  echo "alloc size=48 count=1000"
  echo "flush t=100000"
  echo "end t=200000"
} | mk a
{
  echo "process pid=2 exe=/bin/app rate=0.01"
  echo "module path=/nonexistent/libapp.so build_id=c0ffee01 bias=0x7f0000000000 seg=0:0x10000:0:1"
  echo "stack id=1 frames=0x7f0000001234,0x7f0000002000"
  echo "stack id=2 frames=0x7f0000005678,0x7f0000002000"
  for i in $(seq 1 40); do echo "sample id=$i t=$((i * 1000)) size=48 stack=$((i % 2 + 1))"; done
  for i in $(seq 1 40); do echo "free id=$i t=$((i * 1000 + 100000))"; done
  echo "alloc size=48 count=600"
  echo "alloc size=1040 count=400"
  echo "flush t=200000"
  echo "end t=300000"
} | mk b
# c: 400 x 48, 600 x 1040; b + c: 1000 each, against a: TVD 0.5.
mk c <<'EOF'
process pid=3 exe=/bin/app
alloc size=48 count=400
alloc size=1040 count=600
flush t=1000
end t=2000
EOF

run_cli moved diff "$WORK/a.tpt" "$WORK/b.tpt"
expect_status "a -> b, default threshold" 1
expect_line "a -> b: TVD 0.4" '^size histogram: total variation distance 0\.4000 \(threshold 0\.10\)$' "$WORK/moved.out"
expect_line "a -> b: verdict" '^moved: total variation distance 0\.4000 > 0\.10$' "$WORK/moved.out"
expect_line "a -> b: bucket 1025..1040 gained 40%" '^ +1025\.\.1040 +0\.00% +40\.00% +\+40\.00$' "$WORK/moved.out"
expect_line "a -> b: stack 2 is new, half the bytes" '^ +0\.00% +50\.00% +\+50\.00 +.*libapp\.so.*\[new\]$' "$WORK/moved.out"
expect_line "a -> b: stack 1 matched across load addresses" '^ +100\.00% +50\.00% +-50\.00 +[^[]*libapp\.so[^[]*$' \
  "$WORK/moved.out"
# Lifetimes: 1 ms against 100 ms, within the histogram's resolution (1/8 of a doubling).
p50=$(sed -nE 's/^  p50 .* x([0-9.e+]+) *$/\1/p' "$WORK/moved.out")
if [ -n "$p50" ] && awk -v r="$p50" 'BEGIN { exit !(r > 80 && r < 125) }'; then
  pass_check "a -> b: p50 lifetime x$p50 (100 expected)"
else
  fail_check "a -> b: p50 lifetime ratio '$p50', 100 expected"
  sed 's/^/    | /' "$WORK/moved.out" >&2
fi

run_cli loose diff "$WORK/a.tpt" "$WORK/b.tpt" --threshold 0.5
expect_status "a -> b, threshold 0.5" 0
expect_line "a -> b, threshold 0.5: steady" '^steady: total variation distance 0\.4000 <= 0\.50$' "$WORK/loose.out"

run_cli same diff "$WORK/a.tpt" "$WORK/a.tpt"
expect_status "a -> a" 0
expect_line "a -> a: TVD 0" 'total variation distance 0\.0000 ' "$WORK/same.out"

run_cli group diff "$WORK/a.tpt" -- "$WORK/b.tpt" "$WORK/c.tpt" --threshold=0.45
expect_status "a -> b + c" 1
expect_line "a -> b + c: TVD 0.5" '^moved: total variation distance 0\.5000 > 0\.45$' "$WORK/group.out"
expect_line "a -> b + c: group sizes" '^old: 1 trace, 1000 allocations; new: 2 traces, 2000 allocations$' "$WORK/group.out"
# A trace with no complete frame in a group is skipped, and not counted.
: >"$WORK/empty.tpt"
run_cli group-skip diff "$WORK/a.tpt" "$WORK/empty.tpt" -- "$WORK/b.tpt" "$WORK/c.tpt" --threshold=0.45
expect_status "a + empty -> b + c" 1
expect_line "a + empty -> b + c: the empty trace skipped, not counted" \
  '^old: 1 trace, 1000 allocations; new: 2 traces, 2000 allocations$' "$WORK/group-skip.out"
finish
