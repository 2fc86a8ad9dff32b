#!/bin/bash
# replay.sh — the replay engine of `tierpool simulate` (replay_events, built
# with the sanitizers) on hand-made event lists and on make_trace traces.  The
# numbers checked are the pool's own statistics and measures, against values
# known from the events and configs.
set -u
source "$(dirname "$0")/../../integration/lib.sh"
: "${REPLAY_EVENTS:?}"

# replay NAME CONFIG_TEXT < EVENTS: runs replay_events with CONFIG_TEXT as its
# config file; its key=value numbers in N, its exit status in N[status].
declare -A N
replay() {
  local name=$1 kv
  printf '%s\n' "$2" >"$WORK/$name.conf"
  N=([status]=0)
  "$REPLAY_EVENTS" "$WORK/$name.conf" >"$WORK/$name.out" 2>"$WORK/$name.err" || N[status]=$?
  for kv in $(cat "$WORK/$name.out"); do N[${kv%%=*}]=${kv#*=}; done
}

# check NAME EXPR...: each bash arithmetic EXPR on N's keys holds.
check() {
  local name=$1 expr
  shift
  if [ "${N[status]}" -ne 0 ]; then
    fail_check "$name: replay_events exited with ${N[status]}"
    show "$WORK/$name.err" 5
    return
  fi
  for expr in "$@"; do
    if (for k in "${!N[@]}"; do printf -v "$k" %s "${N[$k]}"; done; (($expr))); then
      pass_check "$name: $expr"
    else
      fail_check "$name: $expr ($(tr '\n' ' ' <"$WORK/$name.out"))"
    fi
  done
}

# ---- internal waste: what the classes make of known sizes ------------------------
replay w24_16_32 'size_classes = 16,32' <<<'repeat 1000 24'
check w24_16_32 'allocations == 1000' 'pool_allocs == 1000' 'pool_requested == 24000' \
  'pool_allocated - pool_requested == 8000' 'peak_live == 24000' 'peak_usable - peak_live == 8000' \
  'live_usable == pool_live' 'measured_live == 24000' 'measured_usable == 32000' \
  'resident_at_peak >= 32000' 'resident_at_peak <= peak_accounted' 'peak_resident >= resident_at_peak'
# One 4000-byte block a page: what is resident is what the replay wrote.
replay pages '' <<<'repeat 1000 4000'
check pages 'resident_at_peak >= 1000 * 4000' 'resident_at_peak < 1010 * 4096' 'peak_accounted >= peak_resident'
replay w24_16_48 'size_classes = 16,48' <<<'repeat 1000 24'
check w24_16_48 'pool_allocated - pool_requested == 24000' 'peak_usable - peak_live == 24000'
replay w48_16_48 'size_classes = 16,48' <<<'repeat 1000 48'
check w48_16_48 'pool_allocated == pool_requested' 'peak_usable == peak_live' 'peak_live == 48000'
replay w24_default '' <<<'repeat 1000 24'
check w24_default 'peak_usable - peak_live == 8000'  # the default classes have 32
# Above the largest class: the buddy tier, in pages.
replay w5000_16_32 'size_classes = 16,32' <<<'repeat 10 5000'
check w5000_16_32 'pool_allocated == 10 * 8192' 'peak_usable == 10 * 8192'
# Alignment: 100 bytes at 4096 take the first class that is a multiple of 4096.
replay aligned '' <<<'sample 1 0 100 12'
check aligned 'peak_usable == 4096' 'allocations == 1'

# ---- weights: round(w) blocks each, the fraction carried over ---------------------
replay weights '' <<<'repeat 10 24 2.5'
check weights 'samples == 10' 'allocations == 25' 'pool_allocs == 25' 'peak_live == 25 * 24'
replay small_weights '' <<<'repeat 10 24 0.1'
check small_weights 'samples == 10' 'allocations == 1'
replay odd_weights '' <<<'repeat 7 24 1.5'
check odd_weights 'allocations == 10 || allocations == 11'
replay big_weight 'size_classes = 16,32' <<<'sample 1 0 24 4 5000'
check big_weight 'allocations == 5000' 'pool_allocated - pool_requested == 5000 * 8'

# ---- lifetimes: frees in order, before their sample, never --------------------------
{
  for i in $(seq 1 100); do echo "sample $i $i 4000"; done
  for i in $(seq 1 50); do echo "free $i $((1000 + i))"; done
} >"$WORK/half.events"
replay half '' <"$WORK/half.events"
check half 'allocations == 100' 'frees == 50' 'pool_frees == 50' 'peak_live == 400000' \
  'live_usable == pool_live' 'pool_live == 50 * 4096' 'duration_ms == 1'
replay early_free '' <<'EOF'
free 5 10
sample 5 5 64 4 3
free 6 20
EOF
check early_free 'allocations == 3' 'frees == 3' 'pool_frees == 3' 'pool_live == 0' 'unmatched_frees == 1'

# ---- process sections: a process's blocks go when it ends --------------------------
replay sections 'size_classes = 16,32' <<'EOF'
repeat 1000 24
section
repeat 1000 24
EOF
check sections 'allocations == 2000' 'frees == 1000' 'peak_live == 24000' 'pool_live == 32000' 'sections == 1'

# ---- the clock: the pool's time-based rules follow the events' times --------------
# 32 MiB in 1 MiB blocks, freed at 1 ms, then a buddy allocation every 10 ms
# for 2 s.  With release_threshold = 0 only the purge of idle free blocks
# (release_delay_ms, 10 ms) gives memory back: with the real times it does so
# early, with the times squeezed to 0 (but the last) only at the end.
time_events() {
  local squeeze=$1 i t
  for i in $(seq 1 32); do echo "sample $i 0 1048576"; done
  for i in $(seq 1 32); do echo "free $i $((1000 * squeeze))"; done
  for i in $(seq 100 300); do
    t=$(( (i - 98) * 10000 ))
    [ "$i" -lt 300 ] && t=$((t * squeeze))
    echo "sample $i $t 65536"
    echo "free $i $t"
  done
}
time_events 1 >"$WORK/timed.events"
time_events 0 >"$WORK/squeezed.events"
replay timed 'release_threshold = 0' <"$WORK/timed.events"
timed_mean=${N[mean_resident]:-0}
check timed 'peak_resident >= 32 << 20' 'duration_ms == 2020' 'mean_resident < 4 << 20'
replay squeezed 'release_threshold = 0' <"$WORK/squeezed.events"
check squeezed 'peak_resident >= 32 << 20' 'duration_ms == 2020' 'mean_resident >= 32 << 20' \
  "mean_resident > 8 * $timed_mean"
# The same events with the purge delayed past the end: nothing goes back.
replay timed_late $'release_threshold = 0\nrelease_delay_ms = 3600000' <"$WORK/timed.events"
check timed_late 'mean_resident >= 32 << 20'

# An event earlier than the clock is replayed late, and counted.
replay late '' <<'EOF'
sample 1 100 64
sample 2 50 64
EOF
check late 'late_events == 1' 'allocations == 2' 'duration_ms == 0'

# ---- trace files: events back in time order, process sections ------------------------
# The recorder writes a flush's samples, then its frees: here each block is
# freed before the next one comes, so one is live at a time.  A second
# process keeps 100 blocks to the end.
: "${MAKE_TRACE:?}"
{
  echo 'process pid=1 rate=1 validate=1'
  echo 'stack id=0 frames=0x1000'
  for i in $(seq 1 300); do echo "sample id=$i t=$((10 * i)) size=1000 stack=0"; done
  for i in $(seq 1 300); do echo "free id=$i t=$((10 * i + 5))"; done
  echo 'frame'
  echo 'process pid=2 rate=1'
  echo 'stack id=0 frames=0x1000'
  for i in $(seq 1 100); do echo "sample id=$i t=$i size=1000 stack=0"; done
  echo 'end t=5000'
} >"$WORK/two.spec"
"$MAKE_TRACE" "$WORK/two.spec" "$WORK/two.tpt" || fail_check "make_trace two.spec"
# replay_trace NAME CONFIG_TEXT TRACE: replay_events --trace.
replay_trace() {
  local name=$1 kv
  printf '%s\n' "$2" >"$WORK/$name.conf"
  N=([status]=0)
  "$REPLAY_EVENTS" "$WORK/$name.conf" --trace "$3" >"$WORK/$name.out" 2>"$WORK/$name.err" || N[status]=$?
  for kv in $(cat "$WORK/$name.out"); do N[${kv%%=*}]=${kv#*=}; done
}
replay_trace ordered '' "$WORK/two.tpt"
check ordered 'samples == 400' 'allocations == 400' 'frees == 300' 'peak_live == 100 * 1000' \
  'sections == 2' 'exact_sections == 1' 'late_events == 0' 'unmatched_frees == 0' 'pool_live == 100 * 1024'
size=$(stat -c %s "$WORK/two.tpt")
head -c $((size - 10)) "$WORK/two.tpt" >"$WORK/cut.tpt"
replay_trace cut '' "$WORK/cut.tpt"
check cut 'truncated == 1' 'allocations == 300' 'frees == 300' 'sections == 1'
printf 'garbage' >"$WORK/garbage.tpt"
replay_trace garbage '' "$WORK/garbage.tpt"
if [ "${N[status]}" -eq 3 ]; then pass_check "garbage: not replayed"; else fail_check "garbage: status ${N[status]}"; fi

# ---- bad configs: the pool's parser's own diagnostics --------------------------------
replay bad_classes 'size_classes = 16,24' <<<'repeat 1 24'
expect_bad() {
  local name=$1 want=$2
  if [ "${N[status]}" -eq 2 ] && grep -q -- "$want" "$WORK/$name.err" && [ "$(wc -l <"$WORK/$name.err")" -eq 1 ]; then
    pass_check "$name: exit 2, '$want'"
  else
    fail_check "$name: want exit 2 and '$want' on one line, got ${N[status]}"
    show "$WORK/$name.err" 5
  fi
}
expect_bad bad_classes "bad_classes.conf:1: bad value '16,24' for size_classes (classes must be multiples of 16)$"
replay bad_key $'# a comment\nsize_clases = 16,32' <<<'repeat 1 24'
expect_bad bad_key "bad_key.conf:2: unknown key 'size_clases'$"
replay bad_range 'buddy_max = 16K' <<<'repeat 1 24'
expect_bad bad_range "bad_range.conf:1: bad value '16K' for buddy_max (out of range)$"

finish
