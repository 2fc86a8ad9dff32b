#!/usr/bin/env bash
# Bad tenant configuration: unknown tenant keys, limits below reserves,
# malformed sizes and rules: one clear line each, defaults used, the program
# goes on (and its tenants work with what was valid).
set -u
: "${TIERPOOL_LIB:?}"
conf=$(mktemp)
trap 'rm -f "$conf"' EXIT
cat >"$conf" <<'CONF'
tenant.web.limit = 16M
tenant.web.colour = blue
tenant.x.limit = 1M
tenant.x.reserve = 2M
tenant.y.limit = 12Q
tenant.bad name.limit = 1M
tenant_threads = worker-*=w, nonsense
on_limit = explode
tenant = has space
CONF
err=$(TIERPOOL_CONFIG=$conf LD_PRELOAD=$TIERPOOL_LIB sh -c 'echo alive' 2>&1 >/dev/null)
out=$(TIERPOOL_CONFIG=$conf LD_PRELOAD=$TIERPOOL_LIB sh -c 'echo alive' 2>/dev/null)
failures=0
expect() {
  if grep -qF -- "$1" <<<"$err"; then echo "ok: $1"; else echo "FAIL: no line with: $1" >&2; failures=$((failures + 1)); fi
}
expect "$conf:2: unknown tenant key 'tenant.web.colour' (want reserve, limit or isolated; ignored)"
expect "tenant.x.limit (1048576) is below tenant.x.reserve (2097152); using no reserve"
expect "$conf:5: bad value '12Q' for tenant.y.limit (not a size); using 0 (none)"
expect "$conf:6: bad tenant key 'tenant.bad name.limit'"
expect "bad rule in tenant_threads 'worker-*=w, nonsense' (want pattern=tenant, ...); rules ignored"
expect "bad value 'explode' for on_limit (want fail or abort); using fail"
expect "bad value 'has space' for tenant"
lines=$(grep -c "^tierpool:" <<<"$err")
if [ "$lines" -ne 7 ]; then echo "FAIL: $lines diagnostic lines, want 7:" >&2; echo "$err" >&2; failures=$((failures + 1)); fi
if [ "$out" != alive ]; then echo "FAIL: the program did not go on (stdout '$out')" >&2; failures=$((failures + 1)); fi
exit $((failures > 0))
