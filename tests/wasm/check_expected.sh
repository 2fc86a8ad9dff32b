#!/usr/bin/env bash
# check_expected.sh EXPECTED RUNTIME WORKLOAD.wasm
# Runs the workload in RUNTIME (without the pool) and compares its stdout with EXPECTED.
set -euo pipefail
expected=$1 runtime=$2 wasm=$3
source "$(dirname "$0")/runtimes.sh"
wasm_command "$runtime" "$wasm"
out=$(mktemp)
trap 'rm -f "$out"' EXIT
"${WASM_CMD[@]}" >"$out"
diff -u "$expected" "$out"
echo "ok: $runtime $(basename "$wasm") prints the expected output"
