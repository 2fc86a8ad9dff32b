#!/usr/bin/env bash
# unwind_agree.sh FUNCS.wasm — the recorder's own stack walk (frame pointers
# and CFI, profiler/unwind.c) against libunwind, on every capture: the library
# built with TP_REC_UNWIND_COMPARE walks each stack both ways and prints the
# counts at exit.  Every walk that finishes must give libunwind's stack, frame
# for frame, and the walk must finish for (nearly) every capture: node's frames
# by frame pointers, C, Python and Rust code by CFI, JIT code of both runtimes.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/../wasm/runtimes.sh"
: "${UNWIND_CHECK_LIB:?}"
funcs=$(realpath "$1")

# agree NAME MIN_WALKED_PERCENT RATE CMD... — runs CMD recorded with the
# comparing library; checks the counts of every process it started.
agree() {
  local name=$1 min_walked=$2 rate=$3
  shift 3
  mkdir -p "$WORK/$name"
  RC=0
  (cd "$WORK/$name" && LD_PRELOAD=$UNWIND_CHECK_LIB TIERPOOL_PROFILE=1 TIERPOOL_SAMPLE_RATE=$rate \
    TIERPOOL_TRACE="$WORK/$name/%e-%p.tpt" exec "$@") </dev/null >"$WORK/$name.out" 2>"$WORK/$name.err" || RC=$?
  expect_status "$name" 0 "$RC"
  # Walking every stack twice must not change what the program does.
  (cd "$WORK/$name" && exec env -u LD_PRELOAD "$@") </dev/null >"$WORK/$name.plain.out" 2>/dev/null || true
  if cmp -s "$WORK/$name.plain.out" "$WORK/$name.out"; then
    pass_check "$name: stdout as without the library ($(wc -c <"$WORK/$name.out") bytes)"
  else
    fail_check "$name: stdout differs from a run without the library"
    diff "$WORK/$name.plain.out" "$WORK/$name.out" | head -5 | sed 's/^/    | /' >&2
  fi
  local lines
  lines=$(grep -E '^tierpool unwind \[[0-9]+\]:' "$WORK/$name.err")
  if [ -z "$lines" ]; then
    fail_check "$name: no unwind counts on stderr (see $WORK/$name.err)"
    return
  fi
  local captures=0 failed=0 same=0 bad=0 line n
  while IFS= read -r line; do
    n() { sed -nE "s/.* $1 ([0-9]+);.*/\1/p" <<<"$line"; }
    captures=$((captures + $(n captures)))
    failed=$((failed + $(n 'walk failed \(libunwind used\)')))
    same=$((same + $(n 'same stack')))
    bad=$((bad + $(n "walk longer, libunwind's a prefix") + $(n "walk shorter, a prefix of libunwind's") \
      + $(n different) + $(n 'same frames, truncated differs')))
  done <<<"$lines"
  if [ "$bad" -eq 0 ] && [ "$captures" -gt 0 ] && [ $((same + failed)) -eq "$captures" ]; then
    pass_check "$name: $same of $captures stacks walked, all equal to libunwind's ($failed left to libunwind)"
  else
    fail_check "$name: $bad of $captures walked stacks differ from libunwind's ($same equal, $failed failed); see $WORK/$name.err"
  fi
  if [ "$captures" -gt 0 ] && [ $((same * 100)) -ge $((captures * min_walked)) ]; then
    pass_check "$name: the walk finished $same of $captures (at least $min_walked%)"
  else
    fail_check "$name: the walk finished only $same of $captures (wanted $min_walked%)"
  fi
}

agree subject 95 1 "$SUBJECT" stacks
agree python 95 0.2 python3 -c 'import json, re; print(len(json.dumps([re.sub("a", "b", str(i) * 9) for i in range(30000)])))'
wasm_command node "$funcs"
agree node 95 0.2 "${WASM_CMD[@]}"
wasm_command wasmtime "$funcs"
# wasmtime may run WASI calls on a fiber stack: such captures are left to libunwind.
agree wasmtime 90 0.05 "${WASM_CMD[@]}"
finish
