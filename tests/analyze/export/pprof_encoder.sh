#!/usr/bin/env bash
# pprof_encoder.sh — the pprof encoder alone, on a profile built by hand
# (pprof_fixture: fractional byte-mode estimates, three modules — one without
# a build-id — JIT frames with and without a perf-map name, an unknown frame,
# an empty and truncated stacks, three tiers, tenants with odd names): protoc
# decodes it with pprof's schema, and check_pprof.py finds the format's rules
# kept and the fixture's own totals, labels, mappings and names.
source "$(dirname "$0")/lib.sh"
: "${PPROF_FIXTURE:?}"

if "$PPROF_FIXTURE" "$WORK/fixture.pb.gz" >"$WORK/fixture.want" 2>"$WORK/fixture.err"; then
  pass_check "pprof_fixture writes a profile"
else
  fail_check "pprof_fixture failed"
  show "$WORK/fixture.err"
  finish
fi
if [ "$(head -c 2 "$WORK/fixture.pb.gz" | od -An -tx1 | tr -d ' ')" = 1f8b ]; then
  pass_check "the profile is gzip'd"
else
  fail_check "the profile does not start with gzip's magic"
fi
decode fixture "$WORK/fixture.pb.gz"
mapfile -t want <"$WORK/fixture.want"
check_pprof fixture "$WORK/fixture.txt" "${want[@]}"
finish
