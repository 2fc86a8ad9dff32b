#!/usr/bin/env bash
# formats.sh — every export format on a make_trace trace whose estimates are
# known: two process sections (count mode at rate 0.01, so each sample stands
# for 100 allocations, and byte mode with an explicit weight of 2.25) that
# load the same executable at two addresses (one frame, one site), a second
# module, a tenant, the three tiers, a truncated stack, frees and live blocks.
#
#   alloc_objects = 5 x 100 + 2.25                       = 502.25  -> 502
#   alloc_space   = 100 x (100+200+5000+2000000+64) + 2.25 x 10000 = 200558900
#   inuse_objects = 100 x 2 (ids 2, 3) + 2.25            = 202.25  -> 202
#   inuse_space   = 100 x (200+5000) + 22500             = 542500
#   tenant blue: alloc_space 100 x (200+64) = 26400; tier large: 100 objects;
#   the stack of ids 1, 2 and the byte-mode sample: 100 x 100 + 100 x 200 + 22500 = 52500 bytes
source "$(dirname "$0")/lib.sh"

cat >"$WORK/a.spec" <<'SPEC'
process pid=100 exe=/usr/bin/alpha argv=alpha,-x host=h1 start_ns=1000000000 rate=0.01
module path=/usr/bin/alpha build_id=aabbccdd bias=0x555500000000 seg=0:0x10000:0:1
module path=/lib/libfoo.so build_id=11223344 bias=0x7f0000000000 seg=0:0x20000:0:1
thread id=0 tid=100 name=main
thread id=1 tid=101 name=worker
tenant id=1 name=blue
stack id=1 frames=0x555500001234,0x555500002000
stack id=2 frames=0x7f0000000100,0x555500002000
stack id=3 frames=0x7f0000000200,0x7f0000000300 truncated=1
sample id=1 t=10 size=100 stack=1 tier=0 thread=0
sample id=2 t=20 size=200 stack=1 tier=0 thread=1 tenant=1
sample id=3 t=30 size=5000 stack=2 tier=1 thread=0
sample id=4 t=40 size=2000000 stack=3 tier=2 thread=1
sample id=5 t=50 size=64 stack=2 tier=0 tenant=1
free id=1 t=110
free id=4 t=1040
free id=5 t=2000
alloc size=100 count=100
flush t=1000
end t=3000 samples=5 allocations=100
frame
process pid=200 exe=/usr/bin/alpha start_ns=1500000000 sample_bytes=4096
module path=/usr/bin/alpha build_id=aabbccdd bias=0x560000000000 seg=0:0x10000:0:1
stack id=1 frames=0x560000001234,0x560000002000
sample id=1 t=5 size=10000 stack=1 weight=2.25
end t=100 samples=1
SPEC
trace a

# ---- pprof -------------------------------------------------------------------
# The two processes sample by count (every 100th) and by bytes (every 4096):
# no period describes both, so the profile gives none.
tp pprof export --format pprof -o "$WORK/a.pb.gz" "$WORK/a.tpt"
decode a "$WORK/a.pb.gz"
check_pprof pprof "$WORK/a.txt" --totals "$WORK/a.totals" \
  total.alloc_objects=502 total.alloc_space=200558900 total.inuse_objects=202 total.inuse_space=542500 \
  label.tenant.blue.alloc_space=26400 label.tier.large.alloc_objects=100 label.tenant.default.inuse_space=522500 \
  samples=5 mappings=2 first_mapping=/usr/bin/alpha \
  build_id./usr/bin/alpha=aabbccdd build_id./lib/libfoo.so=11223344 period=0 period_type=/ \
  leaf.alpha+0x1233.alloc_objects=202 leaf.libfoo.so+0x1ff.alloc_space=200000000
expect_eq "pprof: stdout is empty with -o" "$(wc -c <"$WORK/pprof.out")" 0

# A module whose code is not at vaddr == file offset (a non-PIE executable:
# text at 0x401000 from file offset 0x1000; lld lays out PIEs alike): pprof
# takes address - memory_start + file_offset for an offset in the file.
cat >"$WORK/np.spec" <<'SPEC'
process pid=300 exe=/usr/bin/gamma start_ns=1000000000 rate=1
module path=/usr/bin/gamma build_id=ccddeeff bias=0 seg=0x400000:0x1000:0:0 seg=0x401000:0x2000:0x1000:1
stack id=1 frames=0x401234,0x402000
sample id=1 t=10 size=100 stack=1 tier=0
end t=100 samples=1
SPEC
trace np
tp np-pprof export --format pprof --no-symbolize -o "$WORK/np.pb.gz" "$WORK/np.tpt"
decode np "$WORK/np.pb.gz"
check_pprof np-pprof "$WORK/np.txt" mappings=1 first_mapping=/usr/bin/gamma period=1 period_type=allocations/count \
  file_offset.gamma+0x401233=0x1233 file_offset.gamma+0x401fff=0x1fff

# ---- folded ------------------------------------------------------------------
tp folded export --format folded "$WORK/a.tpt"
expect_eq "folded bytes: total" "$(folded_total "$WORK/folded.out")" 200558900
expect_eq "folded: one line per stack" "$(wc -l <"$WORK/folded.out")" 3
expect_eq "folded: alloc_here-like stack, outermost first" \
  "$(grep -c '^alpha+0x1fff;alpha+0x1233 52500$' "$WORK/folded.out")" 1
expect_eq "folded: a truncated stack starts with [truncated]" \
  "$(grep -c '^\[truncated\];libfoo.so+0x2ff;libfoo.so+0x1ff 200000000$' "$WORK/folded.out")" 1
for v in count:502 inuse-bytes:542500 inuse-count:202 bytes:200558900; do
  tp "folded-${v%%:*}" export --format folded --value "${v%%:*}" "$WORK/a.tpt"
  expect_eq "folded --value ${v%%:*}: total" "$(folded_total "$WORK/folded-${v%%:*}.out")" "${v#*:}"
done
tp folded-raw export --format folded --no-symbolize -o "$WORK/raw.folded" "$WORK/a.tpt"
expect_eq "folded --no-symbolize: module+offset names" "$(grep -c '^alpha+0x1fff;alpha+0x1233 ' "$WORK/raw.folded")" 1

# ---- json --------------------------------------------------------------------
tp json export --format json -o "$WORK/a.json" "$WORK/a.tpt"
while IFS= read -r line; do
  case $line in ok:*) pass_check "json: ${line#ok: }" ;; *) fail_check "json: ${line#FAIL: }" ;; esac
done < <(python3 - "$WORK/a.json" <<'PY' 2>&1
import json, sys
r = json.load(open(sys.argv[1]))
def check(ok, what): print(("ok: " if ok else "FAIL: ") + what)
t = r["totals"]
check(r["format"] == "tierpool-export" and r["version"] == 1, "format and version")
check(abs(t["allocs"] - 502.25) < 1e-9 and abs(t["bytes"] - 200558900) < 1e-6, "totals allocs %s bytes %s" % (t["allocs"], t["bytes"]))
check(abs(t["live_allocs"] - 202.25) < 1e-9 and abs(t["live_bytes"] - 542500) < 1e-6, "live totals")
check(t["samples"] == 6 and t["exact_allocs"] == 100, "samples %s, exact allocs %s" % (t["samples"], t["exact_allocs"]))
s = r["sites"]
check(len(s) == 5, "5 sites")
check(abs(sum(x["allocs"] for x in s) - t["allocs"]) < 1e-9, "sites add up to the totals")
check(all(s[i]["bytes"] >= s[i + 1]["bytes"] for i in range(len(s) - 1)), "sites by bytes, largest first")
check(all(0 <= f < len(r["frames"]) for x in s for f in x["stack"]), "stacks index the frames")
check([x["tier"] for x in s][0] == "large" and s[0]["truncated"], "the largest site is the truncated large one")
check(sorted({x["tenant"] for x in s}) == ["blue", "default"], "tenants")
check([m["build_id"] for m in r["modules"]] == ["aabbccdd", "11223344"], "modules with build-ids")
check(len(r["processes"]) == 2 and r["processes"][0]["pid"] == 100 and r["processes"][1]["sample_bytes"] == 4096, "processes")
check(all(f["module"] is not None and f["name"] for f in r["frames"]), "frames named, in modules")
PY
)

# ---- csv ---------------------------------------------------------------------
tp csv export --format csv -o "$WORK/a.csv" "$WORK/a.tpt"
summary "$WORK/a.tpt"
totals=$(csv_totals "$WORK/a.csv")
expect_eq "csv: rows = samples of dump --summary" "$(field rows "$totals")" "${S[samples]}"
expect_eq "csv: freed rows = frees" "$(field freed "$totals")" "${S[frees]}"
expect_near "csv: sum of weights = alloc_objects" "$(field alloc_objects "$totals")" 502.25 1e-9
expect_near "csv: sum of weight x size = alloc_space" "$(field alloc_space "$totals")" 200558900 1e-6
expect_near "csv: live rows = inuse_space" "$(field inuse_space "$totals")" 542500 1e-6
expect_eq "csv: header" "$(head -n 1 "$WORK/a.csv")" \
  "pid,sample_id,time_us,size,usable,align,tier,tenant,thread,weight,freed,lifetime_us,stack"
expect_eq "csv: a freed row, lifetime from its free, thread as tid, innermost frame first" \
  "$(grep -c '^100,1,10,100,0,16,slab,default,100,100,1,100,alpha+0x1233;alpha+0x1fff$' "$WORK/a.csv")" 1
expect_eq "csv: a live row of tenant blue, no lifetime" \
  "$(grep -c '^100,2,20,200,0,16,slab,blue,101,100,0,,alpha+0x1233;alpha+0x1fff$' "$WORK/a.csv")" 1
expect_eq "csv: a truncated stack ends with [truncated]" \
  "$(grep -c '^100,4,40,2000000,.*,large,.*,1,1000,libfoo.so+0x1ff;libfoo.so+0x2ff;\[truncated\]$' "$WORK/a.csv")" 1
expect_eq "csv: stack ids are scoped to their section; a thread with no Thread record has no tid" \
  "$(grep -c '^200,1,5,10000,0,16,slab,default,,2.25,0,,alpha+0x1233;alpha+0x1fff$' "$WORK/a.csv")" 1

# ---- frames named alike by the loader (folded) and the CSV's own pass -------
# Records before the first Process (an implicit section of pid 0), JIT code
# inside a module (JIT wins), overlapping JIT ranges, a perf-map line repeated
# (the later one wins) and one outside any JIT range, an unknown address, a
# sample of a stack id never defined.
cat >"$WORK/o.spec" <<'SPEC'
stack id=1 frames=0x9000
sample id=1 t=1 size=8 stack=1
process pid=31 exe=/usr/bin/gamma rate=0.5
module path=/usr/bin/gamma build_id=cc03 bias=0x40000000 seg=0:0x10000:0:1
jit start=0x40008000 size=0x1000 t=0
jit start=0x7f0000000000 size=0x2000 t=0
jit start=0x7f0000001000 size=0x2000 t=0
perfmap 7f0000000000 100 old-name
perfmap 7f0000000000 100 new-name
perfmap 7f0000005000 40 outside-jit
perfmap 40008000 10 in-module-jit
stack id=1 frames=0x7f0000000010,0x7f0000002800,0x40008004,0x7f0000005010,0x40001000,0x12345
sample id=1 t=5 size=50 stack=1
sample id=2 t=6 size=60 stack=9
end t=20 samples=2
SPEC
trace o
tp o-csv export --format csv -o "$WORK/o.csv" "$WORK/o.tpt" "$WORK/a.tpt"
tp o-folded export --format folded -o "$WORK/o.folded" "$WORK/o.tpt" "$WORK/a.tpt"
expect_eq "csv: JIT, perf-map and unknown frames named" \
  "$(grep -c '^31,1,5,50,.*,\[jit\] new-name;\[jit\];\[jit\] in-module-jit;\[jit\] outside-jit;gamma+0xfff;0x12345$' "$WORK/o.csv")" 1
expect_eq "csv: records before the first Process are a section of pid 0" "$(grep -c '^0,1,1,8,.*,0x9000$' "$WORK/o.csv")" 1
expect_eq "csv: a stack id never defined gives an empty stack" "$(grep -c '^31,2,6,60,.*,$' "$WORK/o.csv")" 1
while IFS= read -r line; do
  case $line in ok:*) pass_check "${line#ok: }" ;; *) fail_check "${line#FAIL: }" ;; esac
done < <(python3 - "$WORK/o.csv" "$WORK/o.folded" <<'PY' 2>&1
import csv, sys
folded = {l.rsplit(" ", 1)[0] for l in open(sys.argv[2])}
rows = [r for r in csv.DictReader(open(sys.argv[1], newline="")) if r["stack"]]
missing = [r["stack"] for r in rows if ";".join(reversed(r["stack"].split(";"))) not in folded]
print(("ok: " if rows and not missing else "FAIL: ") +
      "every CSV stack (%d rows) is a folded stack, reversed%s" % (len(rows), ": not %s" % missing[:3] if missing else ""))
PY
)

# ---- every format agrees -----------------------------------------------------
expect_eq "pprof totals = folded totals (alloc_space)" "$(field alloc_space "$(cat "$WORK/a.totals")")" \
  "$(folded_total "$WORK/folded.out")"
finish
