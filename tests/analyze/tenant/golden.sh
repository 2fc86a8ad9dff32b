#!/usr/bin/env bash
# golden.sh — `tierpool report --by-tenant` on make_trace traces whose
# contents are known: each tenant's exact histogram (summed over flushes),
# its sites (and only its own), its live-bytes strip from the snapshots'
# per-tenant states; tenants in id order whatever order the trace names
# them in; as text and as JSON; three traces merged (tenants by name, strips
# summed by time since each process's start, an old trace without tenants
# counting wholly as the default tenant's); the report without --by-tenant
# unchanged.
source "$(dirname "$0")/lib.sh"
set -u

# a: process 200, tenants default (0), a (1), b (2), at rate 0.01 (weight 100):
#   default  1000 x 32 B, all freed;            10 samples at stack 1 (freed)
#   a         400 x 100 B (100 freed), 100 x 2000 B;  4 samples of 100 B at stack 2,
#             1 of 2000 B at stack 3 (buddy), none freed
#   b        3000 x 64 B, 20 x 5000 B, all freed;     30 samples of 64 B at stack 4 (freed)
# Snapshots (live bytes per tenant, tiers summed):
#   t (s)     1      2       3       4
#   default   1000   1000    1000    1000
#   a         -      50000   100000  200000 (100000 slab + 100000 buddy)
#   b         8000   4000    2000    -
{
  echo "process pid=200 ppid=1 exe=/usr/bin/edge argv=edge host=node1 start_ns=1700000000000000000 rate=0.01"
  echo "module path=/nonexistent/libedge.so build_id=0102030405060708 bias=0x400000 seg=0:0x10000:0:1"
  echo "tenant id=2 name=b"
  echo "tenant id=1 name=a"
  echo "stack id=1 frames=0x401000,0x402000"
  echo "stack id=2 frames=0x403000,0x402000"
  echo "stack id=3 frames=0x404000,0x402000"
  echo "stack id=4 frames=0x405000,0x402000"
  echo "alloc size=32 count=600 frees=600"
  echo "alloc size=64 count=1000 frees=1000 tenant=2"
  echo "alloc size=100 count=400 frees=100 tenant=1"
  echo "flush t=1000000"
  echo "alloc size=32 count=400 frees=400"
  echo "alloc size=64 count=2000 frees=2000 tenant=2"
  echo "alloc size=5000 count=20 frees=20 tenant=2"
  echo "alloc size=2000 count=100 tenant=1"
  echo "flush t=2000000"
  # b's samples first: the report still lists the tenants by id
  for i in $(seq 1 30); do echo "sample id=$i t=$((1000 * i)) size=64 stack=4 tenant=2"; done
  for i in $(seq 31 40); do echo "sample id=$i t=$((1000 * i)) size=32 stack=1"; done
  for i in $(seq 41 44); do echo "sample id=$i t=$((1000 * i)) size=100 stack=2 tenant=1"; done
  echo "sample id=45 t=45000 size=2000 stack=3 tenant=1 tier=1"
  for i in $(seq 1 40); do echo "free id=$i t=$((100000 + 1000 * i))"; done
  echo "snapshot t=1000000 rss=50000000 tier=0:1000:4096:1000:0 tier=0:8000:16384:8000:2"
  echo "snapshot t=2000000 rss=50000000 tier=0:1000:4096:1000:0 tier=0:50000:65536:50000:1 tier=0:4000:16384:8000:2"
  echo "snapshot t=3000000 rss=50000000 tier=0:1000:4096:1000:0 tier=0:100000:131072:100000:1 tier=0:2000:16384:8000:2"
  echo "snapshot t=4000000 rss=50000000 tier=0:1000:4096:1000:0 tier=0:100000:131072:100000:1 tier=1:100000:131072:100000:1"
  echo "end t=5000000 samples=45 dropped=0"
} >"$WORK/a.spec"
trace a

# c: process 300, where tenant id 1 is b: 100 x 64 B, one sample at a's stack 4
# (the same code: one site with a's), live 6000 at 1 s (the default 500).
mk c <<'EOF'
process pid=300 ppid=1 exe=/usr/bin/edge argv=edge host=node1 start_ns=1700000000000000000 rate=0.01
module path=/nonexistent/libedge.so build_id=0102030405060708 bias=0x400000 seg=0:0x10000:0:1
tenant id=1 name=b
stack id=1 frames=0x405000,0x402000
alloc size=64 count=100 tenant=1
flush t=1000000
sample id=1 t=500 size=64 stack=1 tenant=1
snapshot t=1000000 tier=0:500:4096:500:0 tier=0:6000:8192:6000:1
end t=2000000
EOF
# d: process 400 from before tenants: no Tenant records, snapshots of the
# process as a whole (3000 live at 1 s): all of it is the default tenant's.
mk d <<'EOF'
process pid=400 ppid=1 exe=/usr/bin/old rate=0.01
alloc size=32 count=10
flush t=1000000
snapshot t=1000000 tier=0:3000:4096:3000
end t=1500000
EOF

report a-text --by-tenant "$WORK/a.tpt"
report a-json --by-tenant --json "$WORK/a.tpt"
T=$WORK/a-text.out J=$WORK/a-json.out
if "$TIERPOOL_CLI" report --by-tenant "$WORK/a.tpt" 2>&1 | cmp -s - "$T"; then
  pass_check "tierpool report --by-tenant prints the same"
else
  fail_check "tierpool report --by-tenant prints something else than $REPORT_CLI report --by-tenant"
fi

got=$(grep '^=== tenant' "$T" | tr '\n' ';')
expect_eq "sections in id order" "$got" \
  "=== tenant default (1 of 3) ===;=== tenant a (2 of 3) ===;=== tenant b (3 of 3) ===;"
expect_text "header as in the report" "$T" \
  '^process 200 \(parent 1\)  edge$' \
  '^allocations   4,520 \(551 KiB requested\), 4,120 frees$' \
  '^  a +500 +234 KiB +234 KiB$'

section default "$T" >"$WORK/default.txt"
section a "$T" >"$WORK/a.txt"
section b "$T" >"$WORK/b.txt"
# Strips: a column per second (t / 1 s), '@' at the peak, 9 levels (ceil(9 v / peak)).
expect_text "default" "$WORK/default.txt" \
  '^allocations   1,000 \(31\.2 KiB requested\), 1,000 frees$' \
  '^samples       10 \(an estimated 31\.2 KiB at its sites\)$' \
  '^live bytes    \| @@@@\|  peak 1000 B; 1 s per column, 5 s in all$' \
  '^  \(16, 32\] +1000 +100\.0% +31\.2 KiB  #{40}$' \
  '^ +31\.2 KiB 100\.0% +1000 100\.0% +0 B slab   libedge\.so\+0xfff$'
expect_text "a" "$WORK/a.txt" \
  '^allocations   500 \(234 KiB requested\), 100 frees$' \
  '^live bytes    \|  -\+@\|  peak 195 KiB; 1 s per column, 5 s in all$' \
  '^  \(96, 112\] +400 +80\.0% +39\.1 KiB  #{40}$' \
  '^  \(1984, 2000\] +100 +20\.0% +195 KiB  #{10}$' \
  '^top 2 allocation sites by bytes'
expect_text "b" "$WORK/b.txt" \
  '^allocations   3,020 \(285 KiB requested\), 3,020 frees$' \
  '^live bytes    \| @\+-\|  peak 7\.81 KiB; 1 s per column, 4 s in all$' \
  '^  \(48, 64\] +3000 +99\.3% +188 KiB  #{40}$' \
  '^  \(4096, 8K\] +20 +0\.7% +97\.7 KiB  #{1}$' \
  '^ +188 KiB 100\.0% +3000 +99\.3% +0 B slab   libedge\.so\+0x4fff$'
sites() { grep -oE 'libedge\.so\+0x[0-9a-f]+$' "$1" | grep -v 0x1fff | tr '\n' ' '; }
expect_eq "default's sites" "$(sites "$WORK/default.txt")" "libedge.so+0xfff "
expect_eq "a's sites, by bytes" "$(sites "$WORK/a.txt")" "libedge.so+0x3fff libedge.so+0x2fff "
expect_eq "b's sites" "$(sites "$WORK/b.txt")" "libedge.so+0x4fff "

expect_json "json" "$J" \
  'r["schema"] == "tierpool-report/1"' \
  '[t["name"] for t in r["tenants"]] == ["default", "a", "b"]' \
  '[t["exact"] for t in r["tenants"]] == [{"allocations": 1000, "bytes": 32000, "frees": 1000}, {"allocations": 500, "bytes": 240000, "frees": 100}, {"allocations": 3020, "bytes": 292000, "frees": 3020}]' \
  '[[(h["lo"], h["hi"], h["allocations"], h["bytes"], h["frees"]) for h in t["histogram"]] for t in r["tenants"]] == [[(16, 32, 1000, 32000, 1000)], [(96, 112, 400, 40000, 100), (1984, 2000, 100, 200000, 0)], [(48, 64, 3000, 192000, 3000), (4096, 8192, 20, 100000, 20)]]' \
  '[t["live_over_time"] for t in r["tenants"]] == [{"step_us": 1000000, "peak": 1000, "points": [0, 1000, 1000, 1000, 1000]}, {"step_us": 1000000, "peak": 200000, "points": [0, 0, 50000, 100000, 200000]}, {"step_us": 1000000, "peak": 8000, "points": [0, 8000, 4000, 2000]}]' \
  '[[(s["bytes"], s["allocations"], s["live_bytes"], s["samples"], s["tiers"]) for s in t["top_by_bytes"]] for t in r["tenants"]] == [[(32000, 1000, 0, 10, ["slab"])], [(200000, 100, 200000, 1, ["buddy"]), (40000, 400, 40000, 4, ["slab"])], [(192000, 3000, 0, 30, ["slab"])]]' \
  '[s["frames"][0]["offset"] for s in r["tenants"][1]["top_by_count"]] == [0x2fff, 0x3fff]' \
  '[t["sampled_bytes"] for t in r["tenants"]] == [32000, 240000, 192000]' \
  'r["totals"]["allocations"] == 4520 and sum(t["exact"]["allocations"] for t in r["tenants"]) == 4520'

# Every object's keys once (the per-tenant details sit beside the estimates).
verdicts "json keys" < <(python3 - "$J" 2>&1 <<'PY'
import json, sys
dups = []
def pairs(items):
    keys = [k for k, _ in items]
    dups.extend(k for k in set(keys) if keys.count(k) > 1)
    return dict(items)
with open(sys.argv[1]) as f:
    r = json.load(f, object_pairs_hook=pairs)
print("ok: no key twice in an object" if not dups else "FAIL: keys twice: %s" % sorted(set(dups)))
est = [(t["allocations"], t["live_bytes"]) for t in r["tenants"]]
print(("ok: " if est == [(1000, 0), (500, 240000), (3000, 0)] else "FAIL: ") + "estimates kept: %s" % est)
PY
)

# Without --by-tenant: no sections, no per-tenant details (the report as before).
report a-plain "$WORK/a.tpt"
report a-plain-json --json "$WORK/a.tpt"
expect_no_line "no sections without --by-tenant" '^=== tenant' "$WORK/a-plain.out"
expect_json "json without --by-tenant" "$WORK/a-plain-json.out" \
  'all(set(t) == {"name", "allocations", "bytes", "live_bytes", "samples"} for t in r["tenants"])'

# a, c and d merged: b's counts and strip add c's (by time since each process
# started); the default adds c's default and all of d, which has no tenants.
report acd --by-tenant --json "$WORK/a.tpt" "$WORK/c.tpt" "$WORK/d.tpt"
expect_json "merged" "$WORK/acd.out" \
  '[t["name"] for t in r["tenants"]] == ["default", "a", "b"]' \
  '[t["exact"]["allocations"] for t in r["tenants"]] == [1010, 500, 3120]' \
  'r["tenants"][2]["exact"]["bytes"] == 298400' \
  '[t["live_over_time"]["points"] for t in r["tenants"]] == [[0, 4500, 1000, 1000, 1000], [0, 0, 50000, 100000, 200000], [0, 14000, 4000, 2000]]' \
  '[(s["bytes"], s["samples"]) for s in r["tenants"][2]["top_by_bytes"]] == [(198400, 31)]'
# The same traces in another order: the same numbers per tenant.
report dca --by-tenant --json "$WORK/d.tpt" "$WORK/c.tpt" "$WORK/a.tpt"
expect_json "merged in another order" "$WORK/dca.out" \
  '{t["name"]: (t["exact"], t["live_over_time"]["points"], t["sampled_bytes"]) for t in r["tenants"]} == {"default": ({"allocations": 1010, "bytes": 32320, "frees": 1000}, [0, 4500, 1000, 1000, 1000], 32000), "a": ({"allocations": 500, "bytes": 240000, "frees": 100}, [0, 0, 50000, 100000, 200000], 240000), "b": ({"allocations": 3120, "bytes": 298400, "frees": 3020}, [0, 14000, 4000, 2000], 198400)}'

# d alone: one tenant, the default, with the process's series.
report d-text --by-tenant "$WORK/d.tpt"
expect_text "a trace without tenants" "$WORK/d-text.out" \
  '^=== tenant default \(1 of 1\) ===$' \
  '^allocations   10 \(320 B requested\), 0 frees$' \
  '^live bytes    \| @\|  peak 2\.93 KiB; 1 s per column, 2 s in all$'

expect_error "--by-tenant without a trace" "no trace given" report --by-tenant
finish
