#!/usr/bin/env bash
# golden.sh — `tierpool report` on make_trace traces whose contents are known:
# the exact totals and rate, the histogram rows and their bars, the lifetime
# shares and percentiles, the top sites' order and estimates (past the pool's
# own frames), tiers, tenants, mmap calls and reservations (from snapshots, and
# from the mmap calls that make, trim, open and unmap them); as text and as
# JSON; and two traces merged.
source "$(dirname "$0")/lib.sh"
set -u

# a: 10,000 allocations (120,000 + 300,000 + 10,000,000 bytes) in 10 s, and 60
# samples of weight 100 at three sites:
#   A stack 1: 30 x 24 B (slab), freed after 100 us; its innermost frame is the pool's
#   C stack 3: 20 x 100 B (slab), 10 freed after 50 ms, 10 never
#   B stack 2: 10 x 5000 B (buddy, tenant guest), freed after 5 s
{
  echo "process pid=100 ppid=1 exe=/usr/bin/demo argv=demo,--fast host=node1 start_ns=1700000000000000000 rate=0.01"
  echo "module path=/nonexistent/libdemo.so build_id=0102030405060708 bias=0x400000 seg=0:0x10000:0:1"
  echo "module path=/nonexistent/libtierpool.so build_id=0a0b0c0d bias=0x500000 seg=0:0x10000:0:1"
  echo "tenant id=1 name=guest"
  echo "stack id=1 frames=0x500100,0x401000,0x402000"
  echo "stack id=2 frames=0x403000,0x402000"
  echo "stack id=3 frames=0x404000,0x405000,0x406000,0x407000,0x408000"
  echo "mmap kind=mmap t=500 addr=0x7f2000000000 length=8192"
  echo "mmap kind=mmap t=600 addr=0x7f2000010000 length=65536"
  echo "mmap kind=munmap t=700 addr=0x7f2000000000 length=8192"
  echo "alloc size=24 count=5000 frees=5000"
  echo "alloc size=100 count=3000 frees=2000"
  echo "alloc size=5000 count=2000 frees=2000"
  echo "flush t=1000000"
  for i in $(seq 1 30); do echo "sample id=$i t=$((1000 * i)) size=24 stack=1"; done
  for i in $(seq 31 50); do echo "sample id=$i t=$((100000 + 1000 * i)) size=100 stack=3"; done
  for i in $(seq 51 60); do echo "sample id=$i t=$((2000000 + 1000 * i)) size=5000 stack=2 tier=1 tenant=1"; done
  for i in $(seq 1 30); do echo "free id=$i t=$((1000 * i + 100))"; done
  for i in $(seq 31 40); do echo "free id=$i t=$((100000 + 1000 * i + 50000))"; done
  for i in $(seq 51 60); do echo "free id=$i t=$((2000000 + 1000 * i + 5000000))"; done
  echo "snapshot t=1000000 rss=50000000 tier=0:1000000:2000000:1000000 tier=1:500000:600000:500000 tier=2:0:0:0 reservation=0x7f0000000000:4294967296:65536"
  echo "snapshot t=2000000 rss=40000000 tier=0:800000:1900000:1000000 tier=1:100000:600000:500000 tier=2:0:0:0 reservation=0x7f0000000000:4294967296:1048576"
  echo "snapshot t=3000000 rss=30000000 tier=0:10:20:1000000 tier=1:0:0:500000 tier=2:0:0:0 reservation=0x7f0000000000:4294967296:262144 reservation=0x7f1000000000:1073741824:131072"
  echo "end t=10000000 samples=60 dropped=0 allocations=10000"
} >"$WORK/a.spec"
trace a

report a-text "$WORK/a.tpt"
report a-json --json "$WORK/a.tpt"
T=$WORK/a-text.out J=$WORK/a-json.out
# The tierpool command itself prints the same as the sanitized copy the tests run.
if "$TIERPOOL_CLI" report "$WORK/a.tpt" 2>&1 | cmp -s - "$T"; then
  pass_check "tierpool report prints the same"
else
  fail_check "tierpool report prints something else than $REPORT_CLI report"
fi

expect_text "process" "$T" \
  '^process 100 \(parent 1\)  demo --fast$' \
  'on node1, started 2023-11-14 22:13:20 UTC, ran 10 s, ended$' \
  'sampling 1 in 100 allocations: 60 samples, 0 dropped;  peak live 1.43 MiB, resident 2.48 MiB, RSS 47.7 MiB$'
expect_text "totals" "$T" \
  '^allocations   10,000 \(9\.94 MiB requested\), 9,000 frees$' \
  '^rate          1000 allocations/s, 1018 KiB/s$' \
  '^peak          live 1\.43 MiB, resident 2\.48 MiB, process RSS 47\.7 MiB$'
# Bars: 40 characters for the largest row (5000), the others in proportion.
expect_text "histogram" "$T" \
  '^  \(16, 32\] +5000 +50\.0% +117 KiB  #{40}$' \
  '^  \(96, 112\] +3000 +30\.0% +293 KiB  #{24}$' \
  '^  \(4096, 8K\] +2000 +20\.0% +9\.54 MiB  #{16}$'
rows=$(awk '/^requested sizes/ {on = 1; next} on && /^$/ {on = 0} on && /\]/ {n++} END {print n + 0}' "$T")
if [ "$rows" -eq 3 ]; then pass_check "histogram: 3 rows"; else fail_check "histogram: $rows rows, expected 3"; fi
expect_text "lifetimes" "$T" \
  '^  all +6000 .* +50\.0% +16\.7% +16\.7% +16\.7%$' \
  '^  slab +5000 .* +60\.0% +20\.0% +0\.0% +20\.0%$' \
  '^  buddy +1000 .* +0\.0% +0\.0% +100\.0% +0\.0%$'

# The sites, in order: the first line of each (a size, a percentage...) after each header.
sites() { # FILE HEADER-REGEX: the site column of the first lines under that header
  awk -v h="$2" '$0 ~ h {on = 1; getline; next} on && /^$/ {exit} on && $0 !~ /<-/ {print $NF}' "$1"
}
got=$(sites "$T" '^top .* by bytes' | tr '\n' ' ')
if [ "$got" = "libdemo.so+0x2fff libdemo.so+0x3fff libdemo.so+0xfff " ]; then
  pass_check "top by bytes: B, C, A"
else
  fail_check "top by bytes: '$got', expected B (0x2fff), C (0x3fff), A (0xfff)"
fi
got=$(sites "$T" '^top .* by count' | tr '\n' ' ')
if [ "$got" = "libdemo.so+0xfff libdemo.so+0x3fff libdemo.so+0x2fff " ]; then
  pass_check "top by count: A, C, B"
else
  fail_check "top by count: '$got', expected A (0xfff), C (0x3fff), B (0x2fff)"
fi
expect_text "site estimates" "$T" \
  '^ +4\.77 MiB +94\.8% +1000 +10\.0% +0 B buddy  libdemo\.so\+0x2fff$' \
  '^ +195 KiB +3\.8% +2000 +20\.0% +97\.7 KiB slab   libdemo\.so\+0x3fff$' \
  '^ +70\.3 KiB +1\.4% +3000 +30\.0% +0 B slab   libdemo\.so\+0xfff$' \
  '<- libdemo\.so\+0x6fff$'
if grep -q 'libtierpool' "$T"; then fail_check "a frame of the pool is shown"; else pass_check "the pool's frames are skipped"; fi
if grep -q '0x7fff$' "$T"; then fail_check "more than 3 callers shown"; else pass_check "3 callers at most"; fi
expect_text "tiers, tenants, mmap, reservations" "$T" \
  '^  slab +5000 +266 KiB +97\.7 KiB +50$' \
  '^  buddy +1000 +4\.77 MiB +0 B +10$' \
  '^  guest +1000 +4\.77 MiB +0 B$' \
  '^  mmap +2 calls +72\.0 KiB$' \
  '^  munmap +1 calls +8\.00 KiB$' \
  '^ +100 +0x7f0000000000 +4\.00 GiB +64\.0 KiB -> 256 KiB -> 1\.00 MiB +1 s \.\. 3 s$' \
  '^ +100 +0x7f1000000000 +1\.00 GiB +128 KiB -> 128 KiB -> 128 KiB'

expect_json "json" "$J" \
  'r["schema"] == "tierpool-report/1"' \
  'r["traces"] == ["'"$WORK"'/a.tpt"]' \
  '[p["pid"] for p in r["processes"]] == [100]' \
  'r["processes"][0]["argv"] == "demo --fast" and r["processes"][0]["hostname"] == "node1"' \
  'r["processes"][0]["ended"] is True and r["processes"][0]["truncated"] is False' \
  'r["processes"][0]["sample_rate"] == 0.01 and r["processes"][0]["duration_us"] == 10000000' \
  'r["totals"]["allocations"] == 10000 and r["totals"]["bytes"] == 10420000 and r["totals"]["frees"] == 9000' \
  'approx(r["totals"]["allocations_per_second"], 1000) and approx(r["totals"]["bytes_per_second"], 1042000)' \
  'r["totals"]["peak_live"] == 1500000 and r["totals"]["peak_resident"] == 2600000 and r["totals"]["peak_rss"] == 50000000' \
  'r["processes"][0]["snapshots"] == 3' \
  'r["totals"]["samples"] == 60' \
  '[(h["lo"], h["hi"], h["allocations"], h["bytes"]) for h in r["histogram"]] == [(16, 32, 5000, 120000), (96, 112, 3000, 300000), (4096, 8192, 2000, 10000000)]' \
  '[(b["lo"], b["hi"], b["allocations"]) for b in r["size_buckets"]] == [(16, 32, 5000), (96, 112, 3000), (4608, 5120, 2000)]' \
  'approx(r["lifetimes"]["all"]["blocks"], 6000) and approx(r["lifetimes"]["all"]["never_freed"], 1000)' \
  'approx(r["lifetimes"]["all"]["share_under_1ms"], 0.5) and approx(r["lifetimes"]["all"]["share_1ms_to_1s"], 1/6)' \
  'approx(r["lifetimes"]["all"]["share_over_1s"], 1/6) and approx(r["lifetimes"]["all"]["share_never_freed"], 1/6)' \
  'approx(r["lifetimes"]["slab"]["share_under_1ms"], 0.6) and approx(r["lifetimes"]["buddy"]["share_over_1s"], 1)' \
  'approx(r["lifetimes"]["all"]["p50_us"], 100, 0.07) and approx(r["lifetimes"]["all"]["p90_us"], 5e6, 0.07)' \
  'approx(r["lifetimes"]["all"]["p99_us"], 5e6, 0.07) and approx(r["lifetimes"]["slab"]["p90_us"], 50000, 0.07)' \
  'r["lifetimes"]["large"]["p50_us"] is None and r["lifetimes"]["large"]["blocks"] == 0' \
  '[s["frames"][0]["display"] for s in r["top_by_bytes"]] == ["libdemo.so+0x2fff", "libdemo.so+0x3fff", "libdemo.so+0xfff"]' \
  '[s["frames"][0]["display"] for s in r["top_by_count"]] == ["libdemo.so+0xfff", "libdemo.so+0x3fff", "libdemo.so+0x2fff"]' \
  '[(s["bytes"], s["allocations"], s["samples"]) for s in r["top_by_bytes"]] == [(5000000, 1000, 10), (200000, 2000, 20), (72000, 3000, 30)]' \
  '[(s["live_bytes"], s["live_allocations"]) for s in r["top_by_bytes"]] == [(0, 0), (100000, 1000), (0, 0)]' \
  '[s["tiers"] for s in r["top_by_bytes"]] == [["buddy"], ["slab"], ["slab"]]' \
  '[f["offset"] for f in r["top_by_bytes"][1]["frames"]] == [0x3fff, 0x4fff, 0x5fff, 0x6fff]' \
  'r["top_by_bytes"][2]["frames"][0]["module"] == "/nonexistent/libdemo.so" and r["top_by_bytes"][2]["frames"][0]["function"] is None' \
  'r["tiers"]["slab"]["allocations"] == 5000 and r["tiers"]["buddy"]["bytes"] == 5000000 and r["tiers"]["large"]["samples"] == 0' \
  '[(t["name"], t["allocations"]) for t in r["tenants"]] == [("default", 5000), ("guest", 1000)]' \
  'r["mmap"]["mmap"] == {"calls": 2, "bytes": 73728} and r["mmap"]["munmap"] == {"calls": 1, "bytes": 8192}' \
  'r["mmap"]["mremap"]["calls"] == 0 and r["reservations_total"] == 2' \
  '[(x["size"], x["first_accessible"], x["last_accessible"], x["max_accessible"]) for x in r["reservations"]] == [(4294967296, 65536, 262144, 1048576), (1073741824, 131072, 131072, 131072)]' \
  'r["reservations"][0]["first_us"] == 1000000 and r["reservations"][0]["last_us"] == 3000000 and r["reservations"][0]["pid"] == 100'

# --top 1: one site per list, one reservation.
report a-top1 --json --top 1 "$WORK/a.tpt"
expect_json "json --top 1" "$WORK/a-top1.out" \
  'len(r["top_by_bytes"]) == 1 and len(r["top_by_count"]) == 1 and len(r["reservations"]) == 1 and r["top"] == 1'

# b: 40 sizes, 16 to 640 bytes, k allocations of 16k: too many for a row per 16 bytes,
# so 8 rows per power of two (never narrower than 16 bytes): 26 rows.
{
  echo "process pid=200 exe=/usr/bin/sizes rate=0.01"
  for k in $(seq 1 40); do echo "alloc size=$((16 * k)) count=$k"; done
  echo "flush t=1000"
  echo "end t=5000000"
} >"$WORK/b.spec"
trace b
report b-json --json "$WORK/b.tpt"
report b-text "$WORK/b.tpt"
expect_json "json histogram rows" "$WORK/b-json.out" \
  'len(r["histogram"]) == 26 and len(r["size_buckets"]) == 40' \
  '[(h["lo"], h["hi"]) for h in r["histogram"][:4]] == [(0, 16), (16, 32), (32, 48), (48, 64)]' \
  '[h["allocations"] for h in r["histogram"] if h["lo"] == 256] == [17 + 18]' \
  '[h["allocations"] for h in r["histogram"] if h["lo"] == 512] == [33 + 34 + 35 + 36]' \
  '[h["allocations"] for h in r["histogram"] if h["lo"] == 576] == [37 + 38 + 39 + 40]' \
  'sum(h["allocations"] for h in r["histogram"]) == 820 and r["top_by_bytes"] == []'
expect_text "histogram rows" "$WORK/b-text.out" \
  '^  \(256, 288\] +35 +4\.3% .*  #{9}$' \
  '^  \(512, 576\] +138 +16\.8% .*  #{36}$' \
  '^  \(576, 640\] +154 +18\.8% .*  #{40}$' \
  '^  \(0, 16\] +1 +0\.1% +16 B  #$'
# b has no snapshot: its peaks are unknown, not 0 B.
expect_text "no snapshot" "$WORK/b-text.out" \
  'sampling 1 in 100 allocations: 0 samples, 0 dropped;  no snapshot: peaks unknown$' \
  '^peak          unknown: no snapshot in the trace$'
expect_json "no snapshot, json" "$WORK/b-json.out" 'r["processes"][0]["snapshots"] == 0'

# c: a Wasm memory as node's V8 makes it, through libc: one 10 GiB + 60 KiB
# PROT_NONE mmap, its head (12 KiB) and tail (48 KiB) trimmed to an
# alignment, opened from its start by mprotect calls that each cover all of
# it so far, one 64 KiB hole closed again; a snapshot sees it too (one row,
# the snapshot's accessible bytes); a 1 MiB mapping is too small to follow;
# a 128 MiB one, accessible at once, is unmapped whole.
{
  echo "process pid=300 exe=/usr/bin/node rate=0.01"
  echo "mmap kind=mmap t=100 addr=0x7f0000000000 length=10737479680 prot=0 flags=0x4022"
  echo "mmap kind=munmap t=110 addr=0x7f0000000000 length=12288"
  echo "mmap kind=munmap t=120 addr=0x7f0280003000 length=49152"
  echo "mmap kind=mprotect t=200 addr=0x7f0000003000 length=131072 prot=3"
  echo "mmap kind=mprotect t=300 addr=0x7f0000003000 length=1048576 prot=3"
  echo "mmap kind=mprotect t=400 addr=0x7f0000043000 length=65536 prot=0"
  echo "mmap kind=mmap t=450 addr=0x7f1000000000 length=1048576 prot=0 flags=0x22"
  echo "flush t=500"
  echo "snapshot t=500 tier=0:0:0:0 reservation=0x7f0000003000:10737418240:983040"
  echo "mmap kind=mmap t=600 addr=0x7f2000000000 length=134217728 prot=3 flags=0x22"
  echo "mmap kind=munmap t=700 addr=0x7f2000000000 length=134217728"
  echo "end t=1000"
} >"$WORK/c.spec"
trace c
report c-json --json "$WORK/c.tpt"
report c-text "$WORK/c.tpt"
expect_json "reservations from mmap calls" "$WORK/c-json.out" \
  'len(r["reservations"]) == 2' \
  '[(x["start"], x["size"], x["first_accessible"], x["last_accessible"], x["max_accessible"], x["first_us"], x["last_us"]) for x in r["reservations"] if x["start"] == 0x7f0000003000] == [(0x7f0000003000, 10 << 30, 0, 983040, 1048576, 100, 500)]' \
  '[(x["size"], x["first_accessible"], x["last_accessible"], x["max_accessible"], x["first_us"], x["last_us"]) for x in r["reservations"] if x["start"] == 0x7f2000000000] == [(128 << 20, 128 << 20, 128 << 20, 128 << 20, 600, 700)]'
expect_text "reservations from mmap calls, text" "$WORK/c-text.out" \
  '^ +300 +0x7f0000003000 +10\.0 GiB +0 B -> 960 KiB -> 1\.00 MiB +100 us \.\. 500 us$'

# An image replaced by an exec: its last record is the Exec record, whatever
# the times of the samples before it (another thread's, sampled after the
# exec's flush read the clock).  Records after it, or an Exec record with an
# errno: the exec failed.
exec_spec() {
  echo "process pid=300 exe=/bin/sh rate=0.5"
  echo "stack id=1 frames=0x1000"
  echo "alloc size=10 count=10"
  echo "flush t=10"
  echo "sample id=1 t=40 size=10 stack=1"
  echo "sample id=2 t=60 size=10 stack=1"
  echo "exec t=50 path=/bin/true"
}
exec_spec >"$WORK/exec-last.spec"
{ exec_spec; echo "frame"; echo "sample id=3 t=55 size=10 stack=1"; } >"$WORK/exec-failed.spec"
{ exec_spec; echo "exec t=70 error=2"; } >"$WORK/exec-failed-killed.spec"
trace exec-last
trace exec-failed
trace exec-failed-killed
report exec-last-json --json "$WORK/exec-last.tpt"
report exec-failed-json --json "$WORK/exec-failed.tpt"
report exec-failed-killed-json --json "$WORK/exec-failed-killed.tpt"
expect_json "an exec'd image" "$WORK/exec-last-json.out" 'r["processes"][0]["exec"] == "/bin/true"'
expect_json "an exec that failed" "$WORK/exec-failed-json.out" 'r["processes"][0]["exec"] is None'
expect_json "an exec that failed, said by its record" "$WORK/exec-failed-killed-json.out" \
  'r["processes"][0]["exec"] is None and not r["processes"][0]["ended"]'

# a and b merged: totals add up, durations too (the rate is per process-second).
report ab --json "$WORK/a.tpt" "$WORK/b.tpt"
expect_json "two traces" "$WORK/ab.out" \
  'len(r["processes"]) == 2 and len(r["traces"]) == 2' \
  'r["totals"]["allocations"] == 10820 and r["totals"]["duration_us"] == 15000000' \
  'approx(r["totals"]["allocations_per_second"], 10820 / 15)'
report ab-text "$WORK/a.tpt" "$WORK/b.tpt"
expect_text "two traces, text" "$WORK/ab-text.out" '^tierpool report: 2 traces, 2 processes$' '\(per process-second\)$' \
  '^ +100 +1 +10 s +10\.0k +60 +1\.43 MiB ended +demo --fast$' \
  '^ +200 +0 +5 s +820 +0 +- +ended +/usr/bin/sizes$'
finish
