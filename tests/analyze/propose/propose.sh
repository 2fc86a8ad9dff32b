#!/usr/bin/env bash
# propose.sh — `tierpool propose` on synthetic traces with known histograms:
# the classes it must find, the waste figures worked out by hand, the other
# keys from known lifetimes, snapshots and limits, and a config file the pool
# itself accepts.
set -u
source "$(dirname "$0")/../lib.sh"

# 1000 x 48 bytes and 500 x 1040 bytes.  Waste by hand (bytes handed out
# minus asked for, over handed out):
#   pool default: 1040 -> 1152: 500*112 / (1000*48 + 500*1152) = 56000/624000 = 9.0%
#   jemalloc:     1040 -> 1280: 500*240 / (48000 + 640000)     = 17.4%
#   tcmalloc:     1040 -> 1152: 9.0%;   the fit {48, 1040}: 0.0%
mk two <<'EOF'
process pid=100 exe=/bin/two rate=0.01
alloc size=48 count=1000
alloc size=1040 count=500
flush t=1000
end t=2000 samples=0 allocations=1500
EOF

run_cli pure propose "$WORK/two.tpt" --classes 2 -o "$WORK/two.conf"
expect_status "pure fit" 0
expect_line "pure fit: the two sizes are the classes" '^size_classes = 48, 1040$' "$WORK/two.conf"
expect_line "pure fit: proposal wastes 0.0%" '^proposed \(pure fit\) +2 +100\.0% +0\.0%$' "$WORK/pure.out"
expect_line "pure fit: pool default wastes 9.0%" '^current \(pool default\) +64 +100\.0% +9\.0%$' "$WORK/pure.out"
expect_line "pure fit: jemalloc wastes 17.4%" '^jemalloc.* 45 +100\.0% +17\.4%$' "$WORK/pure.out"
expect_line "pure fit: tcmalloc wastes 9.0%" '^tcmalloc.* 85 +100\.0% +9\.0%$' "$WORK/pure.out"
expect_line "config header names the trace" "^# trace $WORK/two.tpt: pid 100 \(/bin/two\), 1500 allocations" "$WORK/two.conf"
expect_line "config header has the date" '^# tierpool configuration proposed by `tierpool propose` on 20[0-9-]+ ' "$WORK/two.conf"

# The pool reads the file without a complaint.
RC=0
env TIERPOOL_CONFIG="$WORK/two.conf" LD_PRELOAD="$TIERPOOL_LIB" TIERPOOL_STATS=1 true 2>"$WORK/pool.err" || RC=$?
if [ "$RC" -eq 0 ] && grep -q '^tierpool: statistics' "$WORK/pool.err" &&
  ! grep -qvE '^tierpool: +(statistics|tier|slab|buddy|large|total|segment|pool syscalls|host calls)' "$WORK/pool.err"; then
  pass_check "the pool takes the proposed config without a diagnostic"
else
  fail_check "the pool complained about the proposed config (status $RC)"
  sed 's/^/    | /' "$WORK/pool.err" >&2
fi

# --extra (the default mode) on the pool's default backbone: 48 is there, 1040 is
# added; 64 classes already, so one backbone class makes room.
run_cli extra propose "$WORK/two.tpt" --extra 2 -o "$WORK/extra.conf"
classes=$(sed -n 's/^size_classes = //p' "$WORK/extra.conf")
if [ "$RC" -eq 0 ] && [[ ", $classes," = *", 48,"* ]] && [[ ", $classes," = *", 1040,"* ]] &&
  [ "$(tr ',' '\n' <<<"$classes" | wc -l)" -eq 64 ]; then
  pass_check "extra: 48 and 1040 among 64 classes"
else
  fail_check "extra: status $RC, classes '$classes'"
fi
expect_line "extra: 1040 added" '^added: +1040$' "$WORK/extra.out"
expect_line "extra: one class dropped" '^dropped: +[0-9]+$' "$WORK/extra.out"
expect_line "extra: proposal wastes 0.0%" '^proposed \(current \+ extra\) +64 +100\.0% +0\.0%$' "$WORK/extra.out"

# The backbone is the classes the trace ran with.  Sizes 48 (x1000), 100 (x300),
# 1040 (x500) on 16,32,64,...,4096: the two extras that save most are 1040
# (500*1008 bytes) and 48 (1000*16; 112 would save 300*16).
mk backbone <<'EOF'
process pid=7 exe=/bin/bb classes=16,32,64,128,256,512,1024,2048,4096
alloc size=48 count=1000
alloc size=100 count=300
alloc size=1040 count=500
flush t=1000
end t=2000
EOF
run_cli backbone propose "$WORK/backbone.tpt" --extra 2 -o "$WORK/backbone.conf"
expect_line "backbone + 2: exact set" '^size_classes = 16, 32, 48, 64, 128, 256, 512, 1024, 1040, 2048, 4096$' \
  "$WORK/backbone.conf"
expect_line "backbone: the traces' classes are current" '^current \(traces\) +9 ' "$WORK/backbone.out"

# --align 64: 48 -> 64, 1040 -> 1088.
run_cli align propose "$WORK/two.tpt" --classes 2 --align 64 -o "$WORK/align.conf"
expect_line "align 64" '^size_classes = 64, 1088$' "$WORK/align.conf"

# The coverage rule: 85 x 16 bytes and 15 x 4096.  One class of 16 wastes
# nothing (4096 is a whole page) but serves 85%; the rule wants 90%: 4096.
mk cover <<'EOF'
process pid=8 exe=/bin/cover
alloc size=16 count=85
alloc size=4096 count=15
flush t=1000
end t=2000
EOF
run_cli cover propose "$WORK/cover.tpt" --classes 1 -o "$WORK/cover.conf"
expect_line "coverage >= 90% decides" '^size_classes = 4096$' "$WORK/cover.conf"

# --holdout: {48, 1040} on 1000 x 64 bytes hands out 1040 each: 976/1040 = 93.8% waste.
mk other <<'EOF'
process pid=9 exe=/bin/other
alloc size=64 count=1000
flush t=1000
end t=2000
EOF
run_cli holdout propose "$WORK/two.tpt" --classes 2 --holdout "$WORK/other.tpt" -o "$WORK/holdout.conf"
expect_line "holdout: the held-out waste" '^proposed \(pure fit\) +2 +100\.0% +0\.0% +100\.0% +93\.8%$' "$WORK/holdout.out"
expect_line "holdout: pool default on held-out" '^current \(pool default\) +64 +100\.0% +9\.0% +100\.0% +0\.0%$' \
  "$WORK/holdout.out"

# The other keys.  Buddy-tier blocks (tier 1) that live 3 ms: coalesce_delay_ms
# 5 (the 1-2-5 step above the 90th percentile).  Live bytes that swing between
# 100M and 20M: bursty, release_threshold 0.50.  100 allocations of 6 MB
# against 10 smaller page-tier ones: buddy_max 8M holds them.
{
  echo "process pid=10 exe=/bin/keys rate=0.5"
  echo "module path=/nonexistent/libkeys.so build_id=0a0b0c0d bias=0x400000 seg=0:0x10000:0:1"
  echo "stack id=1 frames=0x401234,0x405678"
  for i in $(seq 1 30); do echo "sample id=$i t=$((i * 10000)) size=100000 stack=1 tier=1"; done
  for i in $(seq 1 30); do echo "free id=$i t=$((i * 10000 + 3000))"; done
  echo "alloc size=100000 count=60"
  echo "alloc size=6000000 count=100"
  echo "alloc size=200000 count=10"
  echo "alloc size=64 count=10000"
  echo "flush t=400000"
  for i in $(seq 1 12); do
    live=$((i % 2 ? 100 << 20 : 20 << 20))
    echo "snapshot t=$((i * 1000000)) tier=0:$live:$((120 << 20)):$((100 << 20))"
  done
  echo "end t=13000000"
} | mk keys
run_cli keys propose "$WORK/keys.tpt" -o "$WORK/keys.conf"
expect_line "coalesce_delay_ms from buddy lifetimes" '^coalesce_delay_ms = 5$' "$WORK/keys.conf"
expect_line "release_threshold: bursty" '^release_threshold = 0\.50$' "$WORK/keys.conf"
expect_line "buddy_max: 6 MB blocks are common" '^buddy_max = 8M$' "$WORK/keys.conf"
run_cli limit propose "$WORK/keys.tpt" --limit 8M -o "$WORK/limit.conf"
expect_line "buddy_max: 25% of --limit" '^buddy_max = 2M$' "$WORK/limit.conf"

# Steady live bytes: 0.70; no buddy samples: coalesce_delay_ms stays 50.
{
  echo "process pid=11 exe=/bin/steady"
  echo "alloc size=64 count=1000"
  echo "flush t=1000"
  for i in $(seq 1 12); do echo "snapshot t=$((i * 1000000)) tier=0:$(((100 << 20) + i * 4096)):$((120 << 20)):$((100 << 20))"; done
  echo "end t=13000000"
} | mk steady
run_cli steady propose "$WORK/steady.tpt" -o "$WORK/steady.conf"
expect_line "release_threshold: steady" '^release_threshold = 0\.70$' "$WORK/steady.conf"
expect_line "coalesce_delay_ms: too few samples" '^coalesce_delay_ms = 50$' "$WORK/steady.conf"
expect_line "buddy_max: the default" '^buddy_max = 4M$' "$WORK/steady.conf"

# Steady live bytes with snapshots 1.25 s apart, as the writer takes them (at
# its first flush 1 s after the last): the 1 s points some snapshots skip are
# gaps, not idle seconds — still steady, 0.70.  Its 30 sampled buddy blocks
# were never freed: the longest coalesce_delay_ms, not 1 ms ("lived under 0 ms").
{
  echo "process pid=12 exe=/bin/gaps rate=0.5"
  echo "module path=/nonexistent/libgaps.so build_id=0a0b0c0e bias=0x400000 seg=0:0x10000:0:1"
  echo "stack id=1 frames=0x401234,0x405678"
  for i in $(seq 1 30); do echo "sample id=$i t=$((i * 10000)) size=100000 stack=1 tier=1"; done
  echo "alloc size=64 count=1000"
  echo "flush t=400000"
  for i in $(seq 1 16); do echo "snapshot t=$((i * 1250000)) tier=0:$(((100 << 20) + i * 4096)):$((120 << 20)):$((100 << 20))"; done
  echo "end t=21000000"
} | mk gaps
run_cli gaps propose "$WORK/gaps.tpt" -o "$WORK/gaps.conf"
expect_line "release_threshold: steady, with snapshot gaps" '^release_threshold = 0\.70$' "$WORK/gaps.conf"
expect_line "coalesce_delay_ms: buddy blocks never freed" '^coalesce_delay_ms = 1000$' "$WORK/gaps.conf"

# Several traces merge: two.tpt + other.tpt, pure 3: 48, 64, 1040 waste nothing.
run_cli merged propose "$WORK/two.tpt" "$WORK/other.tpt" --classes 3 -o "$WORK/merged.conf"
expect_line "two traces merged" '^size_classes = 48, 64, 1040$' "$WORK/merged.conf"

# The file is replaced whole; no temporary file stays behind.
leftovers=$(find "$WORK" -name '*.tmp.*' | wc -l)
if [ "$leftovers" -eq 0 ]; then pass_check "no temporary files left"; else fail_check "$leftovers temporary files left"; fi
finish
