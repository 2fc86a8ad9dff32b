#!/usr/bin/env bash
# release.sh — the `release` option on a real program: python3 builds 60 MB of
# 60 KB strings (buddy blocks), drops them, and goes on allocating for 0.1 s.
# With release = eager (at once) and idle (after the 10 ms delay) the pool
# gives those pages back to the OS; with off it keeps every one.  Measured by
# the buddy tier's "released" column of TIERPOOL_STATS.
source "$(dirname "$0")/lib.sh"

PYTHON=/usr/bin/python3
SCRIPT='
import time
rows = ["x" * 60000 for i in range(1000)]
del rows
for i in range(50):
    row = "y" * 60000
    del row
    time.sleep(0.002)
print("done")
'

# released POLICY: bytes the buddy tier gave back, from its statistics line
# ("tierpool: buddy ... RELEASES RELEASED", RELEASED as 67.0M or 0B).
released() {
  local out
  out=$(env LD_PRELOAD="$TIERPOOL_LIB" TIERPOOL_STATS=1 TIERPOOL_RELEASE="$1" "$PYTHON" -c "$SCRIPT" 2>"$WORK/$1.err")
  if [ "$out" != done ]; then
    fail_check "release = $1: python3 printed '$out', not 'done'"
    show "$WORK/$1.err"
  fi
  awk '/^tierpool: buddy /{print $NF}' "$WORK/$1.err" | sed 's/B$//' | numfmt --from=iec
}

echo "$TEST_NAME: $PYTHON -c (60 MB built and dropped) under release = eager, idle, off"
want=$((50 << 20))
for policy in eager idle; do
  got=$(released "$policy")
  if [ "${got:-0}" -ge "$want" ]; then
    pass_check "release = $policy: the pool gave $got bytes back"
  else
    fail_check "release = $policy: the pool gave ${got:-no} bytes back (want >= $want)"
    show "$WORK/$policy.err" 10
  fi
done
got=$(released off)
if [ "${got:-x}" = 0 ]; then
  pass_check "release = off: the pool kept every page"
else
  fail_check "release = off: the pool gave ${got:-no} bytes back (want 0)"
  show "$WORK/off.err" 10
fi
finish
