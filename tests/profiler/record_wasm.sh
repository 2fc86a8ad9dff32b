#!/usr/bin/env bash
# record_wasm.sh RUNTIME WORKLOAD.wasm — a Wasm runtime (node, or wasmtime through
# wizer) running a workload under `tierpool record`: the same output (and for
# wizer the same snapshot module) as without the library, and a full trace.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/../wasm/runtimes.sh"
runtime=$1 wasm=$(realpath "$2")

wasm_command "$runtime" "$wasm" snapshot.wasm
compare_recorded "${WASM_CMD[@]}"
if [ "$runtime" = wasmtime ]; then
  if cmp -s "$WORK/plain/snapshot.wasm" "$WORK/run-recorded/snapshot.wasm"; then
    pass_check "snapshot.wasm is identical"
  else
    fail_check "snapshot.wasm differs (or is missing)"
  fi
fi
for trace in "${TRACES[@]}"; do
  expect_summary "$trace" 'truncated == 0' 'ends == 1' 'samples > 0' 'stacks > 0' 'histogram_allocs > 0' \
    'threads > 0' 'snapshots > 0'
done
finish
