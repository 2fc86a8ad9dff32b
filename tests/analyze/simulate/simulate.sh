#!/bin/bash
# simulate.sh — `tierpool simulate` on make_trace traces with known streams,
# on a validation-mode recording of $SUBJECT (checked against the pool's own
# statistics of the same program run), and its error cases.
set -u
source "$(dirname "$0")/../../integration/lib.sh"
: "${TIERPOOL_CLI:?}" "${MAKE_TRACE:?}" "${SUBJECT:?}"

# trace NAME < SPEC: $WORK/NAME.tpt from a make_trace spec.
trace() {
  "$MAKE_TRACE" /dev/stdin "$WORK/$1.tpt" 2>"$WORK/$1.make.err" || {
    fail_check "$1: make_trace failed"
    show "$WORK/$1.make.err" 5
  }
}

# config NAME TEXT: $WORK/NAME.conf.
config() { printf '%s\n' "$2" >"$WORK/$1.conf"; }

# sim NAME ARGS...: tierpool simulate ARGS --json into $WORK/NAME.json; status in RC.
sim() {
  local name=$1
  shift
  RC=0
  "$TIERPOOL_CLI" simulate "$@" --json >"$WORK/$name.json" 2>"$WORK/$name.err" || RC=$?
}

# expect NAME PYEXPR...: each Python expression on d (the JSON document of
# NAME) and c0, c1... (its configs) is true.
expect_json() {
  local name=$1 expr
  shift
  if [ "$RC" -ne 0 ]; then
    fail_check "$name: tierpool simulate exited with $RC"
    show "$WORK/$name.err" 5
    return
  fi
  for expr in "$@"; do
    if python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
for i, c in enumerate(d["configs"]): globals()["c%d" % i] = c
sys.exit(0 if eval(sys.argv[2]) else 1)' "$WORK/$name.json" "$expr" 2>"$WORK/$name.py.err"; then
      pass_check "$name: $expr"
    else
      fail_check "$name: $expr"
      show "$WORK/$name.py.err" 3
      show "$WORK/$name.json" 30
    fi
  done
}

# n_samples N SIZE [EXTRA]: N sample lines of SIZE bytes at t=1..N.
n_samples() {
  local i
  for i in $(seq 1 "$1"); do echo "sample id=$i t=$i size=$2 stack=0 ${3:-}"; done
}
header() { printf 'process pid=100 %s\nstack id=0 frames=0x1000\n' "$1"; }

# ---- known streams: the waste comes from the pool's classes ----------------------
{ header 'rate=1 validate=1'; n_samples 1000 24; echo 'end t=2000'; } | trace live24
config c16_32 'size_classes = 16,32'
config c16_48 'size_classes = 16,48'
sim live24 "$WORK/live24.tpt" --config "$WORK/c16_32.conf" --config "$WORK/c16_48.conf"
expect_json live24 'd["exact"] and d["samples"] == 1000 and d["processes"] == 1' \
  'c0["allocations"] == 1000 and c1["allocations"] == 1000' \
  'c0["waste_at_peak"] == 1000 * 8' 'c1["waste_at_peak"] == 1000 * 24' \
  'c0["pool"]["waste"] == 8000 and c0["pool"]["bytes_requested"] == 24000' \
  'c0["pool"]["allocs"] == 1000 and c0["frees"] == 0' \
  'c0["peak_live"] == 24000 and c0["peak_usable"] == 32000' \
  'c1["peak_usable"] == 48000 and c1["peak_resident"] >= 24000' \
  'abs(c0["fragmentation_at_peak"] - (1 - 24000 / c0["resident_at_peak"])) < 1e-6' \
  'c0["peak_accounted"] >= c0["peak_resident"] >= c0["resident_at_peak"] > 0'

{ header 'rate=1 validate=1'; n_samples 1000 48; echo 'end t=2000'; } | trace live48
sim live48 "$WORK/live48.tpt" --config "$WORK/c16_48.conf"
expect_json live48 'c0["waste_at_peak"] == 0 and c0["pool"]["waste"] == 0'

# A config that cuts waste: the defaults put 2100 bytes in 2304; 2112 fits.
{ header 'rate=1 validate=1'; n_samples 1000 2100; echo 'end t=2000'; } | trace live2100
config tuned "size_classes = 16,32,48,64,80,96,112,128,144,160,176,192,208,224,240,256,288,320,352,384,416,448,480,512,576,640,704,768,832,896,960,1024,1152,1280,1408,1536,1664,1792,1920,2048,2112,2560,2816,3072,3328,3584,3840,4096,4608,5120,5632,6144,6656,7168,7680,8192,10240,12288,14336,16384,20480,24576,28672,32768"
sim cut "$WORK/live2100.tpt" --config /dev/null --config "$WORK/tuned.conf"
expect_json cut 'c0["waste_at_peak"] == 1000 * (2304 - 2100)' 'c1["waste_at_peak"] == 1000 * (2112 - 2100)' \
  'c1["pool"]["waste"] < c0["pool"]["waste"]' 'c1["peak_resident"] < c0["peak_resident"]'
# The table says the same, side by side.
"$TIERPOOL_CLI" simulate "$WORK/live2100.tpt" --config /dev/null --config "$WORK/tuned.conf" >"$WORK/cut.txt" 2>&1
if grep -qE '^ +defaults +tuned.conf$' "$WORK/cut.txt" &&
  grep -qE '^allocations replayed +1000 +1000$' "$WORK/cut.txt" &&
  grep -qE '^waste, all blocks +8\.9% +0\.6%$' "$WORK/cut.txt"; then
  pass_check "table: defaults and tuned.conf side by side"
else
  fail_check "table: defaults and tuned.conf side by side"
  show "$WORK/cut.txt" 20
fi

# Sampled: weight 1/rate each (100), lifetimes kept: 40 of 50 freed.
{
  header 'rate=0.01'
  n_samples 50 1000
  for i in $(seq 1 40); do echo "free id=$i t=$((100 + i))"; done
  echo 'end t=2000'
} | trace sampled
sim sampled "$WORK/sampled.tpt" --config /dev/null
expect_json sampled 'not d["exact"] and d["samples"] == 50' 'c0["allocations"] == 5000' 'c0["frees"] == 4000' \
  'c0["peak_live"] == 5000 * 1000' 'c0["pool"]["live_bytes"] == 1000 * 1024' 'c0["unmatched_frees"] == 0'

# Time order, not file order: the recorder writes a flush's samples, then its
# frees.  Each block here is freed before the next is allocated: one is live.
{
  header 'rate=1 validate=1'
  for i in $(seq 1 500); do echo "sample id=$i t=$((10 * i)) size=1000 stack=0"; done
  for i in $(seq 1 500); do echo "free id=$i t=$((10 * i + 5))"; done
  echo 'end t=6000'
} | trace interleaved
sim interleaved "$WORK/interleaved.tpt" --config /dev/null
expect_json interleaved 'c0["allocations"] == 500 and c0["frees"] == 500' 'd["peak_live"] == 1000' \
  'c0["late_events"] == 0'

# Two processes (two traces): the first one's blocks go when it ends.
{ header 'rate=1 validate=1'; n_samples 1000 24; echo 'end t=2000'; } | trace first
{ header 'rate=1 validate=1'; n_samples 500 24; echo 'end t=2000'; } | trace second
sim two "$WORK/first.tpt" "$WORK/second.tpt" --config "$WORK/c16_32.conf"
expect_json two 'd["processes"] == 2 and d["samples"] == 1500' 'c0["allocations"] == 1500' \
  'c0["frees"] == 1000 and c0["peak_live"] == 24000'

# A truncated trace is replayed up to its last complete frame, with a warning.
{
  header 'rate=1 validate=1'
  n_samples 300 24
  echo frame
  for i in $(seq 301 600); do echo "sample id=$i t=$i size=24 stack=0"; done
  echo 'end t=2000'
} | trace whole
size=$(stat -c %s "$WORK/whole.tpt")
head -c $((size - 20)) "$WORK/whole.tpt" >"$WORK/cut.tpt"
sim truncated "$WORK/cut.tpt" --config /dev/null
expect_json truncated 'c0["allocations"] == 300'
if [ "$(wc -l <"$WORK/truncated.err")" -eq 1 ] && grep -q 'replayed up to its last complete frame' "$WORK/truncated.err"; then
  pass_check "truncated: one warning"
else
  fail_check "truncated: one warning"
  show "$WORK/truncated.err" 5
fi

# ---- a validation-mode recording: the exact stream, as the pool saw it ------------
mkdir -p "$WORK/rec"
(cd "$WORK/rec" && "$TIERPOOL_CLI" record --validate -o "$WORK/rec/%e-%p.tpt" -- "$SUBJECT" histogram) \
  >"$WORK/rec.out" 2>"$WORK/rec.err" || fail_check "record --validate subject histogram failed"
recorded=$(ls "$WORK"/rec/subject-*.tpt 2>/dev/null | head -1)
summary=$("$TIERPOOL_CLI" dump --summary "$recorded" 2>/dev/null | head -1)
samples=$(sed -nE 's/.* samples=([0-9]+) .*/\1/p' <<<"$summary")
frees=$(sed -nE 's/.* frees=([0-9]+) .*/\1/p' <<<"$summary")
sim recorded "$recorded" --config /dev/null
expect_json recorded "d['exact'] and d['samples'] == ${samples:-0} > 6000" \
  "c0['allocations'] == ${samples:-0} and c0['pool']['allocs'] == c0['allocations']" \
  "c0['frees'] == ${frees:-0} and c0['unmatched_frees'] == 0" 'c0["pool"]["live_bytes"] == 0'
# The same program under the pool, with its statistics: same allocations, same waste.
env LD_PRELOAD="$TIERPOOL_LIB" TIERPOOL_STATS=1 "$SUBJECT" histogram >/dev/null 2>"$WORK/stats.err" || true
read -r real_allocs real_waste < <(awk '$2 == "slab" { print $3, $8 }' "$WORK/stats.err")
sim_waste=$(python3 -c '
import json, sys
c = json.load(open(sys.argv[1]))["configs"][0]["pool"]
print("%.1f%%" % (100.0 * c["waste"] / c["bytes_allocated"]))' "$WORK/recorded.json" 2>/dev/null)
if [ "${real_allocs:-}" = "${samples:-x}" ] && [ "${real_waste:-}" = "$sim_waste" ]; then
  pass_check "recorded: the real run's slab statistics ($real_allocs allocations, $real_waste waste) replayed"
else
  fail_check "recorded: real run ${real_allocs:-?} allocations, ${real_waste:-?} waste; simulated $samples, $sim_waste"
  show "$WORK/stats.err" 8
fi

# ---- the command defines no allocator symbol: nothing of the pool is interposed ----
# nm's listing is read from a file: under pipefail, `nm | grep -q` reads false
# when grep's early exit kills nm with SIGPIPE, and the check would pass.
if ! nm "$TIERPOOL_CLI" >"$WORK/cli.nm"; then
  fail_check "nm cannot read $TIERPOOL_CLI"
elif grep -qE ' [TWtw] (malloc|free|calloc|realloc|reallocarray|posix_memalign|aligned_alloc|memalign|valloc|pvalloc|malloc_usable_size|malloc_trim|mallopt|malloc_stats|mallinfo2?|__libc_[a-z]+|cfree)$' "$WORK/cli.nm"; then
  fail_check "tierpool defines a malloc-family symbol"
else
  pass_check "tierpool defines no malloc-family symbol"
fi

# ---- errors: one line, exit 2, nothing on stdout ----------------------------------
# fails NAME WANT ARGS...: exit 2 and a first stderr line matching WANT.
fails() {
  local name=$1 want=$2 rc=0
  shift 2
  "$TIERPOOL_CLI" simulate "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" || rc=$?
  if [ "$rc" -eq 2 ] && [ ! -s "$WORK/$name.out" ] && head -1 "$WORK/$name.err" | grep -qE -- "$want"; then
    pass_check "$name: exit 2, $(head -1 "$WORK/$name.err")"
  else
    fail_check "$name: want exit 2 and '$want', got $rc"
    show "$WORK/$name.err" 5
  fi
}
# one_line NAME: the error of NAME was one line.
one_line() {
  if [ "$(wc -l <"$WORK/$1.err")" -eq 1 ]; then pass_check "$1: one line"; else fail_check "$1: $(wc -l <"$WORK/$1.err") lines"; fi
}
printf 'not a trace\n' >"$WORK/foreign.tpt"
: >"$WORK/zero.tpt"
{ header 'rate=1'; echo 'end t=10'; } | trace nosamples
config badvalue $'# tuned\nsize_classes = 16,24'
config badkey 'size_clases = 16,32'

fails missing_trace "^tierpool simulate: $WORK/none.tpt: No such file or directory$" "$WORK/none.tpt" --config /dev/null
one_line missing_trace
fails foreign "^tierpool simulate: $WORK/foreign.tpt: " "$WORK/foreign.tpt" --config /dev/null
one_line foreign
fails zero "^tierpool simulate: $WORK/zero.tpt: " "$WORK/zero.tpt" --config /dev/null
one_line zero
fails nosamples "^tierpool simulate: $WORK/nosamples.tpt: no allocation samples to replay$" \
  "$WORK/nosamples.tpt" --config /dev/null
one_line nosamples
fails missing_config "^tierpool simulate: $WORK/none.conf: No such file or directory$" \
  "$WORK/live24.tpt" --config /dev/null --config "$WORK/none.conf"
one_line missing_config
fails bad_value "^tierpool simulate: $WORK/badvalue.conf:2: bad value '16,24' for size_classes \(classes must be multiples of 16\)$" \
  "$WORK/live24.tpt" --config /dev/null --config "$WORK/badvalue.conf"
one_line bad_value
fails bad_key "^tierpool simulate: $WORK/badkey.conf:1: unknown key 'size_clases'$" "$WORK/live24.tpt" --config "$WORK/badkey.conf"
one_line bad_key
fails no_config '^tierpool simulate: no --config given' "$WORK/live24.tpt"
fails no_trace '^tierpool simulate: no trace given' --config /dev/null
fails bad_flag "^tierpool simulate: unknown option '--frobnicate'" "$WORK/live24.tpt" --config /dev/null --frobnicate
fails config_arg '^tierpool simulate: --config needs a file' "$WORK/live24.tpt" --config

rc=0
"$TIERPOOL_CLI" simulate --help >"$WORK/help.out" 2>&1 || rc=$?
if [ "$rc" -eq 0 ] && grep -q '^usage: tierpool simulate' "$WORK/help.out"; then
  pass_check "--help: usage, exit 0"
else
  fail_check "--help: exit $rc"
fi

finish
