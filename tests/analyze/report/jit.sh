#!/usr/bin/env bash
# jit.sh — frames in JIT code: one that the trace's perf map names is shown by
# that name ("[jit] NAME"), one in a registered JIT range that no perf map line
# covers is "[jit]", and one in no module and no JIT range is its address.
source "$(dirname "$0")/lib.sh"
set -u

cat >"$WORK/jit.spec" <<'SPEC'
process pid=300 exe=/usr/bin/wasm-host rate=1
module path=/nonexistent/libhost.so build_id=01020304 bias=0x400000 seg=0:0x10000:0:1
jit start=0x7f0000100000 size=0x10000 t=0
perfmap 7f0000100000 100 wasm-function[3]
stack id=1 frames=0x7f0000100010,0x401000
stack id=2 frames=0x7f0000108000,0x401000
stack id=3 frames=0x7e0000000010
alloc size=100 count=3
alloc size=300 count=1
flush t=100
sample id=1 t=10 size=100 stack=1
sample id=2 t=20 size=100 stack=1
sample id=3 t=30 size=100 stack=2
sample id=4 t=40 size=300 stack=3
end t=1000 samples=4 allocations=4
SPEC
trace jit
report jit-text "$WORK/jit.tpt"
report jit-json --json "$WORK/jit.tpt"

expect_text "jit, text" "$WORK/jit-text.out" \
  ' +200 B +[0-9.]+% +2 +50\.0% +200 B slab   \[jit\] wasm-function\[3\]$' \
  ' +100 B +[0-9.]+% +1 +25\.0% +100 B slab   \[jit\]$' \
  ' +300 B +[0-9.]+% +1 +25\.0% +300 B slab   0x7e0000000010$' \
  '<- libhost\.so\+0xfff$'
expect_json "jit, json" "$WORK/jit-json.out" \
  '[s["frames"][0]["display"] for s in r["top_by_count"]] == ["[jit] wasm-function[3]", "0x7e0000000010", "[jit]"]' \
  'r["top_by_count"][0]["frames"][0]["jit"] is True and r["top_by_count"][0]["frames"][0]["function"] == "wasm-function[3]"' \
  'r["top_by_count"][2]["frames"][0]["jit"] is True and r["top_by_count"][2]["frames"][0]["function"] is None' \
  'r["top_by_count"][1]["frames"][0]["jit"] is False and r["top_by_count"][1]["frames"][0]["module"] is None' \
  'r["top_by_count"][0]["frames"][1]["display"] == "libhost.so+0xfff"'
finish
