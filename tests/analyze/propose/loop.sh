#!/usr/bin/env bash
# loop.sh — the loop closes: a Wasm workload under wasmtime (wizer) is recorded
# with `tierpool record`, `tierpool propose` fits classes to the trace (both
# modes), and the workload runs again under `tierpool run --config PROPOSED`:
# the internal waste the pool itself counts (bytes handed out minus bytes
# asked for, all tiers: a new class set moves sizes between tiers) must be
# lower than with the default classes.  funcs.wasm makes wasmtime's compiler allocate
# about 3 million blocks of many sizes: the host's own heap, which the pool
# serves.
set -u
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/../../wasm/runtimes.sh"

wasm=$(realpath "$1")
wasm_command wasmtime "$wasm" /dev/null

mkdir -p "$WORK/rec"
RC=0
(cd "$WORK/rec" && exec "$TIERPOOL_CLI" record -o "$WORK/rec/wasmtime.tpt" --seed 1 -- "${WASM_CMD[@]}") \
  >"$WORK/record.out" 2>"$WORK/record.err" </dev/null || RC=$?
LAST=record
expect_status "record wasmtime" 0
if [ ! -s "$WORK/rec/wasmtime.tpt" ]; then
  fail_check "no trace recorded"
  finish
fi

# Runs the workload under `tierpool run` with config $2 (or the defaults), the
# probe preloaded too: sets WASTE (percent of bytes handed out, all tiers, from
# the pool's own counters) and TIERS (the same per tier, for the log).
measure() {
  local name=$1 config=${2:-} rc=0
  local args=(run)
  [ -n "$config" ] && args+=(--config "$config")
  (cd "$WORK/rec" && exec env LD_PRELOAD="$WASTE_PROBE" TIERPOOL_STATS=1 "$TIERPOOL_CLI" "${args[@]}" -- \
    "${WASM_CMD[@]}") >"$WORK/$name.out" 2>"$WORK/$name.err" </dev/null || rc=$?
  local line
  line=$(grep '^waste_probe: slab ' "$WORK/$name.err")
  if [ "$rc" -ne 0 ] || [ -z "$line" ]; then
    fail_check "$name run: status $rc, no waste_probe line"
    show "$WORK/$name.err"
    finish
  fi
  if grep -qE "bad value|unknown key|expected 'key" "$WORK/$name.err"; then
    fail_check "$name run: the pool complained about the config"
    show "$WORK/$name.err"
  fi
  read -r WASTE TIERS < <(awk '{
      for (i = 2; i < NF; i += 3) { req += $(i + 1); got += $(i + 2);
        tiers = tiers sprintf(" %s %.2f%%", $i, $(i + 2) ? 100 * ($(i + 2) - $(i + 1)) / $(i + 2) : 0) }
      printf "%.3f%s\n", 100 * (got - req) / got, tiers }' <<<"$line")
  echo "$name: measured waste $WASTE% (per tier:$TIERS)"
}

: "${WASTE_PROBE:?}"
measure default
default_waste=$WASTE
for mode in "--extra 8" "--classes 48"; do
  name=${mode#--}
  name=${name// /-}
  run_cli "propose-$name" propose "$WORK/rec/wasmtime.tpt" $mode -o "$WORK/$name.conf"
  expect_status "propose $mode" 0
  sed -n '/^class set/,/^tcmalloc/p' "$WORK/propose-$name.out"
  measure "$name" "$WORK/$name.conf"
  if awk -v a="$WASTE" -v b="$default_waste" 'BEGIN { exit !(a < b - 0.2) }'; then
    pass_check "$mode: measured waste $default_waste% -> $WASTE%"
  else
    fail_check "$mode: measured waste $default_waste% -> $WASTE% (want 0.2 points less)"
  fi
done
finish
