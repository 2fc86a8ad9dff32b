#!/usr/bin/env bash
# The example embedder with and without libtierpool.so.
set -u
: "${TIERPOOL_LIB:?}"
embedder=$1
failures=0
check() { if eval "$2"; then echo "ok: $1"; else echo "FAIL: $1" >&2; failures=$((failures + 1)); fi; }
plain=$(env -u LD_PRELOAD "$embedder" 2>&1); plain_rc=$?
pool=$(LD_PRELOAD=$TIERPOOL_LIB "$embedder" 2>&1); pool_rc=$?
echo "--- plain"; echo "$plain"; echo "--- preloaded"; echo "$pool"
check "runs without the library" '[ $plain_rc -eq 0 ] && grep -q "^tenants: none" <<<"$plain" && grep -q "^noisy: 256 MiB$" <<<"$plain"'
check "runs with it" '[ $pool_rc -eq 0 ] && grep -q "^tenants: tierpool" <<<"$pool"'
check "noisy stops at its 64 MiB limit with ENOMEM" 'grep -Eq "^noisy: 6[0-4] MiB, then ENOMEM$" <<<"$pool"'
check "quiet is served in full" 'grep -q "^quiet: 1000 requests served$" <<<"$pool"'
check "noisy's statistics show the limit and the hit" 'grep -Eq "^noisy: resident [0-9]+ KiB, limit 65536 KiB, limit hits [1-9]" <<<"$pool"'
exit $((failures > 0))
