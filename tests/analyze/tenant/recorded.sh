#!/usr/bin/env bash
# recorded.sh MODE — the tenants of a recorded run, through the recorder
# (Tenant records, the samples' tenant column, a histogram per tenant, the
# snapshots' per-tenant states) and `tierpool report --by-tenant --json`.
# tenant_subject allocates 1000 x 777 B and 2000 x 3333 B, every allocation
# sampled (rate 1: the sites' estimates are exact counts):
#   set   the first pattern as tenant "a", the second as "b" (tierpool_tenant_set),
#         and 300 x 1555 B as "b" in a thread that exits before the main thread frees them
#   env   both as the process's tenant, TIERPOOL_TENANT=web
source "$(dirname "$0")/lib.sh"
set -u
: "${TENANT_SUBJECT:?}"
MODE=${1:?usage: recorded.sh set|env}

mkdir -p "$WORK/run"
rc=0
if [ "$MODE" = env ]; then
  (cd "$WORK/run" && TIERPOOL_TENANT=web exec "$TIERPOOL_CLI" record -o "$WORK/run/%e-%p.tpt" --rate 1 \
    -- "$TENANT_SUBJECT" env) </dev/null >"$WORK/run.out" 2>"$WORK/run.err" || rc=$?
else
  (cd "$WORK/run" && exec "$TIERPOOL_CLI" record -o "$WORK/run/%e-%p.tpt" --rate 1 -- "$TENANT_SUBJECT" set) \
    </dev/null >"$WORK/run.out" 2>"$WORK/run.err" || rc=$?
fi
TRACES=("$WORK/run"/*.tpt)
if [ "$rc" -eq 0 ] && [ -s "${TRACES[0]}" ] && [ ${#TRACES[@]} -eq 1 ]; then
  pass_check "record tenant_subject $MODE: $(stat -c %s "${TRACES[0]}") bytes"
else
  fail_check "record tenant_subject $MODE: exit status $rc, traces: ${TRACES[*]}"
  show "$WORK/run.err"
  finish
fi

report r --by-tenant --json "${TRACES[0]}"
# t(name): the tenant; row(t, size): the allocations of its histogram row
# holding size; site(t, f): its sites whose innermost frame is function f.
common='[t for t in r["tenants"] if t["name"] == NAME][0]'
T() { echo "${common/NAME/\"$1\"}"; }
row() { echo "sum(h[\"allocations\"] for h in $(T "$1")[\"histogram\"] if h[\"lo\"] < $2 <= h[\"hi\"])"; }
site() { echo "[(s[\"bytes\"], s[\"allocations\"]) for s in $(T "$1")[\"top_by_bytes\"] if s[\"frames\"] and s[\"frames\"][0][\"function\"] == \"$2\"]"; }
peak() { echo "$(T "$1")[\"live_over_time\"][\"peak\"]"; }

if [ "$MODE" = set ]; then
  expect_json "two tenants" "$WORK/r.out" \
    '[t["name"] for t in r["tenants"]] == ["default", "a", "b"]' \
    "$(row a 777) == 1000 and $(row a 3333) == 0" \
    "$(row b 3333) == 2000 and $(row b 1555) == 300 and $(row b 777) == 0" \
    "$(row default 777) == 0 and $(row default 3333) == 0 and $(row default 1555) == 0" \
    "$(T a)[\"exact\"] == {\"allocations\": 1000, \"bytes\": 777000, \"frees\": 1000}" \
    "$(T b)[\"exact\"] == {\"allocations\": 2300, \"bytes\": 6666000 + 466500, \"frees\": 2300}" \
    "$(site b thread_c) == [(466500, 300)] and $(site default thread_c) == []" \
    "$(site a allocate_a) == [(777000, 1000)] and $(site b allocate_a) == [] and $(site default allocate_a) == []" \
    "$(site b allocate_b) == [(6666000, 2000)] and $(site a allocate_b) == [] and $(site default allocate_b) == []" \
    "$(peak a) >= 777000 and $(peak b) >= 6666000 and $(peak default) < 777000"
else
  expect_json "the process's tenant" "$WORK/r.out" \
    '[t["name"] for t in r["tenants"]] == ["default", "web"]' \
    "$(row web 777) == 1000 and $(row web 3333) == 2000" \
    "$(row default 777) == 0 and $(row default 3333) == 0" \
    "$(T web)[\"exact\"][\"allocations\"] >= 3000 and $(T default)[\"exact\"][\"allocations\"] < 1000" \
    "$(site web allocate_a) == [(777000, 1000)] and $(site web allocate_b) == [(6666000, 2000)]" \
    "$(site default allocate_a) == [] and $(site default allocate_b) == []" \
    "$(peak web) >= 777000 + 6666000 and $(peak default) < 777000"
fi
finish
