#!/usr/bin/env bash
# symbols.sh — the sites of recorded runs, named offline from the modules'
# build-ids: subject.c built with debug info gives function and file:line for
# alloc_here <- call_alloc_here <- run_stacks (lines found in the source, not
# written here), past the pool's own frames; a C++ program's site is its
# demangled function, past operator new; wizer (Rust: wasmtime) gives
# demangled Rust paths without their ::h<hash>.
source "$(dirname "$0")/lib.sh"
set -u
: "${REPORT_SUBJECT:?}" "${SUBJECT_SOURCE:?}"

# line_after START PATTERN: the number of the first line matching PATTERN after START's.
line_after() {
  awk -v s="$1" -v p="$2" 'index($0, s) {on = 1} on && index($0, p) {print NR; exit}' "$SUBJECT_SOURCE"
}
l_alloc=$(line_after 'void *alloc_here(size_t size)' 'malloc(size)')
l_call=$(line_after 'void *call_alloc_here(size_t size)' 'alloc_here(size)')
l_run=$(line_after 'static int run_stacks(void)' 'call_alloc_here(5555)')

record stacks --rate 1 -- "$REPORT_SUBJECT" stacks
report stacks-text "$TRACE"
report stacks-json --json "$TRACE"
expect_text "subject, text" "$WORK/stacks-text.out" \
  "^ +1\.06 MiB +100\.0% +200 .* slab +alloc_here \(subject\.c:$l_alloc\)$" \
  "<- call_alloc_here \(subject\.c:$l_call\)$" \
  "<- run_stacks \(subject\.c:$l_run\)$"
expect_json "subject, json" "$WORK/stacks-json.out" \
  'r["top_by_bytes"][0]["allocations"] == 200 and r["top_by_bytes"][0]["bytes"] == 200 * 5555' \
  '[f["function"] for f in r["top_by_bytes"][0]["frames"][:3]] == ["alloc_here", "call_alloc_here", "run_stacks"]' \
  'r["top_by_bytes"][0]["frames"][0]["file"] in ("'"$SUBJECT_SOURCE"'", "'"$(realpath "$SUBJECT_SOURCE")"'")' \
  '[f["line"] for f in r["top_by_bytes"][0]["frames"][:3]] == ['"$l_alloc, $l_call, $l_run"']' \
  'r["top_by_bytes"][0]["frames"][0]["module"] == "'"$REPORT_SUBJECT"'"' \
  'not any("libtierpool" in (f["module"] or "") for s in r["top_by_bytes"] for f in s["frames"])'

# Build-ids decide: the recorded path is used only when its build-id is the
# recorded one; else the file under /usr/lib/debug/.build-id (when there is one).
# (whole pipes, no early exit: pipefail would see SIGPIPE)
build_id() { readelf -n "$1" | awk '/Build ID:/ && !done {print $3; done = 1}'; }
symbol() { nm -D --defined-only "$1" | awk -v n="$2" '{sub(/@.*/, "", $3)} $3 == n && !done {print $1; done = 1}'; }
symbol_static() { nm --defined-only "$1" | awk -v n="$2" '$3 == n && !done {print $1; done = 1}'; }
id=$(build_id "$REPORT_SUBJECT") at=$(symbol_static "$REPORT_SUBJECT" alloc_here)
# Another build-id: the first byte changed (a build whose id began with 00 had
# it read as its own, 1 build in 256: a clone at another path did).
other_id=00${id:2}
[ "$other_id" != "$id" ] || other_id=ff${id:2}
libc=$(ldd "$REPORT_SUBJECT" | awk '$1 ~ /^libc\.so/ {print $3}') libc_id=$(build_id "$libc")
getenv_at=$(symbol "$libc" getenv)
frame=$(printf '0x%x' $((0x555500000000 + 0x$at + 8)))
libc_frame=$(printf '0x%x' $((0x7f0000000000 + 0x$getenv_at + 8)))
cat >"$WORK/ids.spec" <<SPEC
process pid=400 rate=1
module path=$REPORT_SUBJECT build_id=$id bias=0x555500000000 seg=0:0x100000:0:1
module path=$REPORT_SUBJECT build_id=$other_id bias=0x555600000000 seg=0:0x100000:0:1
module path=/nonexistent/libc.so.6 build_id=$libc_id bias=0x7f0000000000 seg=0:0x1000000:0:1
stack id=1 frames=$frame
stack id=2 frames=$(printf '0x%x' $((0x555600000000 + 0x$at + 8)))
stack id=3 frames=$libc_frame
sample id=1 t=1 size=10 stack=1
sample id=2 t=2 size=20 stack=2
sample id=3 t=3 size=30 stack=3
end t=10
SPEC
trace ids
report ids-json --json "$WORK/ids.tpt"
expect_json "build-ids" "$WORK/ids-json.out" \
  '{s["bytes"]: s["frames"][0]["function"] for s in r["top_by_bytes"]}[10] == "alloc_here"' \
  '{s["bytes"]: s["frames"][0]["function"] for s in r["top_by_bytes"]}[20] is None' \
  '{s["bytes"]: s["frames"][0]["display"] for s in r["top_by_bytes"]}[20] == "'"$(printf 'report_subject+0x%x' $((0x$at + 7)))"'"'
debug_file=/usr/lib/debug/.build-id/${libc_id:0:2}/${libc_id:2}.debug
if [ -f "$debug_file" ]; then
  expect_json "build-id debug file" "$WORK/ids-json.out" \
    '"getenv" in ({s["bytes"]: s["frames"][0]["function"] for s in r["top_by_bytes"]}[30] or "")'
else
  echo "no $debug_file (libc6-dbg): the debug-file check is skipped"
fi

# A module path that names a FIFO (or any file that is not a regular one):
# opening it to read would wait for a writer forever.  It is unreadable, as a
# missing file is: the report ends, the frame unnamed.
mkfifo "$WORK/fifo.so"
cat >"$WORK/fifo.spec" <<SPEC
process pid=401 rate=1
module path=$WORK/fifo.so build_id=0102 bias=0x400000 seg=0:0x10000:0:1
stack id=1 frames=0x401000
sample id=1 t=1 size=10 stack=1
end t=10
SPEC
trace fifo
RC=0
timeout 20 "$TP_CLI" report --json "$WORK/fifo.tpt" >"$WORK/fifo-json.out" 2>"$WORK/fifo-json.err" || RC=$?
if [ "$RC" -eq 0 ]; then
  pass_check "report of a module that is a FIFO: ends"
else
  fail_check "report of a module that is a FIFO: exit status $RC (124: it hung 20 s)"
  show "$WORK/fifo-json.err"
fi
expect_json "a module that is a FIFO: the frame unnamed" "$WORK/fifo-json.out" \
  'r["top_by_bytes"][0]["frames"][0]["display"] == "fifo.so+0xfff"' \
  'r["top_by_bytes"][0]["frames"][0]["function"] is None'

if [ -n "${CPP_SUBJECT:-}" ]; then
  record cpp --rate 1 -- "$CPP_SUBJECT"
  report cpp-json --json "$TRACE"
  report cpp-text "$TRACE"
  l_new=$(awk '/T \*made = new T\(\);/ {print NR; exit}' "$(dirname "$0")/cpp_subject.cpp")
  expect_json "C++, json" "$WORK/cpp-json.out" \
    'r["top_by_bytes"][0]["allocations"] == 300 and r["top_by_bytes"][0]["bytes"] == 300 * 3000' \
    'r["top_by_bytes"][0]["frames"][0]["function"] == "demo::Factory<demo::Widget>::make()"' \
    'r["top_by_bytes"][0]["frames"][0]["line"] == '"$l_new" \
    'r["top_by_bytes"][0]["frames"][1]["function"].startswith("demo::fill(")'
  expect_text "C++, text" "$WORK/cpp-text.out" "demo::Factory<demo::Widget>::make\(\) \(cpp_subject\.cpp:$l_new\)$"
else
  fail_check "no C++ subject was built: meson found no C++ compiler (scripts/setup installs g++)"
fi

# wasmtime (in wizer) compiling and running a Wasm workload: Rust symbols.
if [ -x "${WIZER:-}" ] && [ -n "${CHURN_WASM:-}" ]; then
  record wizer --rate 1 -- "$WIZER" --allow-wasi -f run -o /dev/null "$CHURN_WASM"
  report wizer-json --json --top 30 "$TRACE"
  report wizer-text --top 30 "$TRACE"
  expect_json "Rust, json" "$WORK/wizer-json.out" \
    'len(r["top_by_bytes"]) >= 10' \
    'sum(1 for s in r["top_by_bytes"] if "::" in (s["frames"][0]["function"] or "")) >= 5' \
    'any((f["function"] or "").startswith(("wasmtime", "cranelift", "<wasmtime", "<cranelift")) for s in r["top_by_bytes"] for f in s["frames"])' \
    'not any("_ZN" in (f["function"] or "") for s in r["top_by_bytes"] for f in s["frames"])' \
    'not any(__import__("re").search(r"::h[0-9a-f]{16}$", f["function"] or "") for s in r["top_by_bytes"] for f in s["frames"])' \
    'not any((s["frames"][0]["function"] or "").startswith(("__rust_alloc", "alloc::alloc::", "malloc")) for s in r["top_by_bytes"])'
  # A host allocation made inside a WASI call (Wasm code calling wasmtime's
  # host function, then wasmtime_wasi) has a stack that goes through the JIT
  # frames and reaches main.
  if "${TIERPOOL_CLI:?}" export --format folded -o "$WORK/wizer.folded" "$TRACE" 2>"$WORK/wizer-folded.err"; then
    verdicts "Rust, stacks inside WASI calls" < <(python3 - "$WORK/wizer.folded" 2>&1 <<'PY'
import sys
inside = reached = 0
for line in open(sys.argv[1]):
    frames = line.rsplit(" ", 1)[0].split(";")
    jit = [i for i, f in enumerate(frames) if f.startswith("[jit]")]
    wasi = [i for i, f in enumerate(frames) if "wasi_snapshot_preview1" in f or "WasiP1Ctx" in f]
    if jit and wasi and max(wasi) > min(jit):
        inside += 1
        reached += "main" in frames
print(("ok: " if inside else "FAIL: ") + "%d stacks of allocations made inside a WASI call" % inside)
print(("ok: " if inside and reached == inside else "FAIL: ") + "%d of them reach main" % reached)
PY
    )
  else
    fail_check "export --format folded of the wizer trace"
    show "$WORK/wizer-folded.err"
  fi
else
  fail_check "no wizer at '${WIZER:-}' or no churn workload: run scripts/setup (it installs wizer)"
fi
finish
