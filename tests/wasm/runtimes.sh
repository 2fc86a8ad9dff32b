# shellcheck shell=bash
# runtimes.sh — sourced by tests: how to run a Wasm workload in each runtime.
#   wasm_command RUNTIME WORKLOAD.wasm [SNAPSHOT.wasm]
# sets the array WASM_CMD to the command line:
#   wasmtime  wizer (a wasmtime embedding): instantiates, runs the export `run`,
#             writes the snapshot module to SNAPSHOT (default /dev/null)
#   node      node's `wasi` module through run.mjs
# WIZER and WASM_NODE_RUNNER come from the meson test environment.  A runtime
# that is not installed makes the test skip (exit 77): scripts/setup installs both.

wasm_command() {
  local runtime=$1 wasm=$2 snapshot=${3:-/dev/null}
  case $runtime in
    wasmtime)
      if [ ! -x "${WIZER:-}" ]; then
        echo "SKIP: wizer not found at '${WIZER:-}': run scripts/setup (npm ci)" >&2
        exit 77
      fi
      WASM_CMD=("$WIZER" --allow-wasi -f run -o "$snapshot" "$wasm") ;;
    node)
      if ! command -v node >/dev/null; then
        echo "SKIP: node not found: run scripts/setup" >&2
        exit 77
      fi
      WASM_CMD=(node --no-turbo-fast-api-calls "${WASM_NODE_RUNNER:?}" "$wasm") ;;
    *)
      echo "wasm_command: unknown runtime '$runtime'" >&2
      exit 2 ;;
  esac
}
