#!/usr/bin/env bash
# wasm_runtime.sh RUNTIME WORKLOAD.wasm — a Wasm runtime running one workload,
# without and with the pool.
#   wasmtime: wizer compiles the module with Cranelift, runs `run` and writes a
#             snapshot of the instance: stdout and the snapshot must be identical.
#   node:     V8 through node's `wasi` module: stdout must be identical (node
#             prints an ExperimentalWarning on stderr, which is not compared).
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/../wasm/runtimes.sh"
runtime=$1 wasm=$(realpath "$2")  # the command runs in another directory

wasm_command "$runtime" "$wasm" snapshot.wasm
run_both "${WASM_CMD[@]}"
expect_same_stdout
[ "$runtime" = wasmtime ] && expect_same_file snapshot.wasm
finish
