#!/usr/bin/env bash
# mutations.sh — traces of real programs (the subject's lifetimes and stacks,
# wasmtime running churn.wasm) changed where the reader cannot tell, each copy
# by one change: in the first record of each kind, every field set to edge
# values (0, the largest, the sign bit; a column at one random element) or cut
# short; then records dropped, doubled or swapped at random.  Each copy goes
# through report, and one in four through report --json, export in four
# formats, dump, propose, merge and diff, built with ASan and UBSan
# (mutate_main.c): reported, or rejected with exit status 2, never a crash, a
# hang or a sanitizer report.  Seeded: the same copies each run.  (It found two: a total past 2^63 rounded by
# llround, and memcmp given a module's missing build-id.)
source "$(dirname "$0")/lib.sh"
set -u

mutations() {
  local name=$1 seed=$2 count=$3 scratch=$WORK/$1-scratch
  mkdir -p "$scratch"
  local rc=0
  "${MUTATE:?}" "$TRACE" "$scratch" "$seed" "$count" >"$scratch/verdicts" 2>&1 || rc=$?
  verdicts "mutations of $name" <"$scratch/verdicts"
  # A checker that died (a sanitizer's report) gave no verdict: its last messages say where.
  if [ "$rc" -ne 0 ]; then
    fail_check "mutations of $name: the checker exited with status $rc"
    show "$scratch/messages"
  fi
}

record lifetimes --rate 1 -- "$REPORT_SUBJECT" lifetimes
mutations lifetimes 1 100
record stacks --rate 1 -- "$REPORT_SUBJECT" stacks
mutations stacks 3 200
if [ -x "${WIZER:-}" ] && [ -n "${CHURN_WASM:-}" ]; then
  record wizer --rate 0.05 -- "$WIZER" --allow-wasi -f run -o /dev/null "$CHURN_WASM"
  mutations wizer 2 40
else
  fail_check "no wizer (scripts/setup installs it) or no churn.wasm"
fi
finish
