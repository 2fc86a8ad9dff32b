#!/usr/bin/env bash
# merge.sh — `tierpool merge`: the counts of dump --summary of merge(A,B) are
# the sums of A's and B's (one Header less); exports of merge(A,B) equal those
# of A and B read together; merge(merge(A,B),C) and merge(A,merge(B,C)) are the
# same file; the output is in the compact encodings, whatever the input's; a
# truncated input is merged up to its last complete frame with a warning; the
# output may be one of the inputs.
source "$(dirname "$0")/lib.sh"

cat >"$WORK/a.spec" <<'SPEC'
process pid=11 exe=/usr/bin/alpha rate=0.01 start_ns=1000
module path=/usr/bin/alpha build_id=aa01 bias=0x10000000 seg=0:0x10000:0:1
thread id=0 tid=11 name=main
stack id=1 frames=0x10001000,0x10002000
stack id=2 frames=0x10001100,0x10002000
sample id=1 t=10 size=100 stack=1
sample id=2 t=20 size=3000 stack=2 tier=1
free id=1 t=30
alloc size=100 count=50
alloc size=3000 count=70 frees=20
flush t=100
snapshot t=100 rss=4096 tier=0:100:4096:200
end t=200 samples=2 allocations=120
SPEC
cat >"$WORK/b.spec" <<'SPEC'
process pid=22 exe=/usr/bin/beta sample_bytes=8192 start_ns=2000
module path=/usr/bin/beta build_id=bb02 bias=0x20000000 seg=0:0x10000:0:1
module path=/usr/bin/alpha build_id=aa01 bias=0x30000000 seg=0:0x10000:0:1
tenant id=1 name=blue
stack id=1 frames=0x30001000,0x20002000
stack id=7 frames=0x20003000
sample id=1 t=5 size=50000 stack=1 weight=1.5 tenant=1
sample id=2 t=6 size=70 stack=7 weight=117.5
mmap kind=mmap t=7 addr=0x7f0000000000 length=1048576 prot=3 flags=34 stack=7
jit start=0x7f0000000000 size=4096 t=8
perfmap 7f0000000000 100 wasm-function[3]
alloc size=50000 count=2 tenant=1
alloc size=70 count=120
flush t=10
end t=20 samples=2
SPEC
cat >"$WORK/c.spec" <<'SPEC'
process pid=33 rate=0.5
stack id=1 frames=0x1000
sample id=1 t=1 size=16 stack=1
end t=2 samples=1
frame
process pid=34 rate=0.25
stack id=1 frames=0x2000,0x3000 truncated=1
sample id=3 t=1 size=32 stack=1 tier=0
sample id=4 t=1 size=48 stack=1 tier=0
free id=3 t=9
alloc size=32 count=8
flush t=10
SPEC
for t in a b c; do trace $t; done
A=$WORK/a.tpt B=$WORK/b.tpt C=$WORK/c.tpt

tp merge-ab merge "$A" "$B" -o "$WORK/ab.tpt"
expect_eq "merge names what it wrote" "$(grep -c "ab.tpt: 2 process(es) from 2 trace(s)" "$WORK/merge-ab.err")" 1
declare -A SA SB SAB
summary "$A"; for k in "${!S[@]}"; do SA[$k]=${S[$k]}; done
summary "$B"; for k in "${!S[@]}"; do SB[$k]=${S[$k]}; done
summary "$WORK/ab.tpt"; for k in "${!S[@]}"; do SAB[$k]=${S[$k]}; done
expect_eq "dump --summary of merge(A,B) reads whole" "${SAB[status]}/${SAB[truncated]}" 0/0
for k in processes modules threads tenants stacks samples frees mmap_calls histogram_allocs histogram_frees \
  histogram_bytes histograms snapshots jit_ranges perf_map_bytes ends end_samples end_allocations sample_batches \
  free_batches mmap_batches; do
  expect_eq "merge(A,B) $k = A's + B's" "${SAB[$k]}" "$((SA[$k] + SB[$k]))"
done
expect_eq "merge(A,B) records = A's + B's - one Header" "${SAB[records]}" "$((SA[records] + SB[records] - 1))"

# The same analysis as A and B read together.
for f in folded json; do
  tp "$f-ab" export --format $f --no-symbolize -o "$WORK/ab.$f" "$WORK/ab.tpt"
  tp "$f-a-b" export --format $f --no-symbolize -o "$WORK/a-b.$f" "$A" "$B"
done
if cmp -s "$WORK/ab.folded" "$WORK/a-b.folded"; then
  pass_check "folded export of merge(A,B) = that of A B ($(wc -l <"$WORK/ab.folded") lines)"
else
  fail_check "folded export of merge(A,B) differs from that of A B"
  diff "$WORK/ab.folded" "$WORK/a-b.folded" | show /dev/stdin
fi
# The JSON names its source traces; all else must be equal.
python3 - "$WORK/ab.json" "$WORK/a-b.json" >"$WORK/json.cmp" <<'PY'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:])
for d in (a, b):
    d.pop("traces")
    for p in d["processes"]:
        p.pop("trace")
print("same" if a == b else "differ: %s" % [k for k in a if a[k] != b[k]])
PY
expect_eq "json export of merge(A,B) = that of A B (but for the trace names)" "$(cat "$WORK/json.cmp")" same
tp csv-ab export --format csv -o "$WORK/ab.csv" "$WORK/ab.tpt"
tp csv-a-b export --format csv -o "$WORK/a-b.csv" "$A" "$B"
if cmp -s "$WORK/ab.csv" "$WORK/a-b.csv"; then
  pass_check "csv export of merge(A,B) = that of A B"
else
  fail_check "csv export of merge(A,B) differs from that of A B"
fi

# Associativity: the same file either way, and the same totals.
tp merge-bc merge "$B" "$C" -o "$WORK/bc.tpt"
tp merge-ab-c merge "$WORK/ab.tpt" "$C" -o "$WORK/ab-c.tpt"
tp merge-a-bc merge "$A" "$WORK/bc.tpt" -o "$WORK/a-bc.tpt"
if cmp -s "$WORK/ab-c.tpt" "$WORK/a-bc.tpt"; then
  pass_check "merge(merge(A,B),C) = merge(A,merge(B,C)), byte for byte"
else
  fail_check "merge(merge(A,B),C) and merge(A,merge(B,C)) differ"
fi
for t in ab-c a-bc; do
  tp "pprof-$t" export --format pprof -o "$WORK/$t.pb.gz" "$WORK/$t.tpt"
  decode "$t" "$WORK/$t.pb.gz"
  check_pprof "$t" "$WORK/$t.txt" --totals "$WORK/$t.totals"
done
tp pprof-a-b-c export --format pprof -o "$WORK/a-b-c.pb.gz" "$A" "$B" "$C"
decode a-b-c "$WORK/a-b-c.pb.gz"
check_pprof a-b-c "$WORK/a-b-c.txt" --totals "$WORK/a-b-c.totals"
expect_eq "pprof totals: merge(merge(A,B),C) = merge(A,merge(B,C))" "$(cat "$WORK/ab-c.totals")" "$(cat "$WORK/a-bc.totals")"
expect_eq "pprof totals: merge(merge(A,B),C) = A B C" "$(cat "$WORK/ab-c.totals")" "$(cat "$WORK/a-b-c.totals")"
# Known from the specs: 100 + 100 + 1.5 + 117.5 + 2 + 4 + 4 objects.
expect_eq "pprof alloc_objects of the three" "$(field alloc_objects "$(cat "$WORK/ab-c.totals")")" 329

# The output may be one of the inputs: it is written aside and renamed.
cp "$A" "$WORK/self.tpt"
tp merge-self merge "$WORK/self.tpt" "$B" -o "$WORK/self.tpt"
if cmp -s "$WORK/self.tpt" "$WORK/ab.tpt"; then
  pass_check "merge A B -o A = merge(A,B)"
else
  fail_check "merge A B -o A differs from merge(A,B)"
fi

# The compact encodings come back: a trace of whole Stack records (as
# make_trace writes them: 300 stacks of 40 frames sharing their 36 outer ones)
# is merged into Stacks over the prefix tree, and sample and mmap columns as
# deltas, and reads the same; a trace the recorder wrote (node's start-up:
# thousands of samples, hundreds of deep stacks) is no larger merged than it
# was (re-packed in format 1's shapes it grew by ~18%).
python3 - >"$WORK/deep.spec" <<'PY'
print("process pid=44 rate=0.01")
outer = ",".join("0x%x" % (0x400000 + 0x40 * k) for k in range(36))
for i in range(1, 301):
    inner = ",".join("0x%x" % (0x500000 + 0x1000 * i + 0x10 * k) for k in range(4))
    print("stack id=%d frames=%s,%s" % (i, inner, outer))
for i in range(1, 301):
    print("sample id=%d t=%d size=%d stack=%d" % (i, i, 16 * (i % 50 + 1), i))
    print("mmap kind=mmap t=%d addr=0x%x length=4096 prot=3 flags=34 stack=%d" % (i, 0x7f0000000000 + 0x1000 * i, i))
print("alloc size=100 count=30000")
print("end t=400 samples=300")
PY
trace deep
tp merge-deep merge "$WORK/deep.tpt" -o "$WORK/deep-merged.tpt"
"$TIERPOOL_CLI" dump "$WORK/deep.tpt" | grep -v '^header' >"$WORK/deep.dump"
"$TIERPOOL_CLI" dump "$WORK/deep-merged.tpt" | grep -v '^header' >"$WORK/deep-merged.dump"
if cmp -s "$WORK/deep.dump" "$WORK/deep-merged.dump"; then
  pass_check "the merged trace reads record for record as its input ($(wc -l <"$WORK/deep.dump") lines)"
else
  fail_check "the merged trace reads differently from its input"
  diff "$WORK/deep.dump" "$WORK/deep-merged.dump" | show /dev/stdin
fi

TIERPOOL_PROFILE=1 TIERPOOL_TRACE="$WORK/node.tpt" LD_PRELOAD="$TIERPOOL_LIB" node -e 0
tp merge-node merge "$WORK/node.tpt" -o "$WORK/node-merged.tpt"
in_size=$(stat -c %s "$WORK/node.tpt") out_size=$(stat -c %s "$WORK/node-merged.tpt")
if [ "$out_size" -le $((in_size * 105 / 100)) ]; then
  pass_check "a recorded trace merged keeps its size ($in_size -> $out_size bytes)"
else
  fail_check "a recorded trace merged: $in_size -> $out_size bytes (want at most 5% more)"
fi

# A truncated input: merged up to its last complete frame, with a warning.
# (C has two frames: its first section is whole in the first.)
size=$(stat -c %s "$C")
head -c $((size - 7)) "$C" >"$WORK/cut.tpt"
summary "$WORK/cut.tpt"
cut_samples=${S[samples]}
tp merge-cut merge "$WORK/cut.tpt" "$B" -o "$WORK/cut-b.tpt"
expect_eq "a truncated input: one warning line" \
  "$(grep -c "^tierpool merge: warning: .*cut.tpt: truncated" "$WORK/merge-cut.err")" 1
summary "$WORK/cut-b.tpt"
expect_eq "its readable part is merged, and the output is whole" "${S[samples]}/${S[truncated]}" \
  "$((cut_samples + SB[samples]))/0"
# An input with no complete frame (a process killed as it started) among
# others: skipped with a warning, the rest merged.
: >"$WORK/unstarted.tpt"
tp merge-unstarted merge "$B" "$WORK/unstarted.tpt" -o "$WORK/b-only.tpt"
expect_eq "an input with no complete frame: one warning line" \
  "$(grep -c "^tierpool merge: warning: .*unstarted.tpt: no complete frame" "$WORK/merge-unstarted.err")" 1
summary "$WORK/b-only.tpt"
expect_eq "the others are merged" "${S[samples]}" "${SB[samples]}"
ls "$WORK" | grep -c '\.tmp\.' >"$WORK/tmp.count" || true
expect_eq "no temporary file is left behind" "$(cat "$WORK/tmp.count")" 0
finish
