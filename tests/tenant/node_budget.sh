#!/usr/bin/env bash
# The node-wide budget through the preload: three processes share 256M (their
# total never passes it); one killed with SIGKILL gives its share back to the
# others.  The segment is created 0600.
set -u
: "${TIERPOOL_LIB:?}"
grab=$1
work=$(mktemp -d)
name="test-$$"
trap 'kill -9 $(jobs -p) 2>/dev/null; rm -rf "$work" "/dev/shm/tierpool-$name"' EXIT
printf 'node_budget = 256M\nnode_budget_name = %s\n' "$name" >"$work/node.conf"
failures=0
check() { if eval "$2"; then echo "ok: $1"; else echo "FAIL: $1" >&2; failures=$((failures + 1)); fi; }
held() { cat "$work/$1" 2>/dev/null || echo 0; }
start() { TIERPOOL_CONFIG=$work/node.conf LD_PRELOAD=$TIERPOOL_LIB "$grab" 100 "$work/$1" "$2" & }
start a 30; a=$!
start b 30; b=$!
sleep 0.5
start c 30; c=$!
max_total=0
for _ in $(seq 40); do  # 2 s of samples
  sleep 0.05
  total=$(( $(held a) + $(held b) + $(held c) ))
  [ "$total" -gt "$max_total" ] && max_total=$total
done
echo "held: a $(held a), b $(held b), c $(held c) MiB; the most at once: $max_total MiB"
check "the three never hold more than the 256 MiB budget together" '[ "$max_total" -le 256 ]'
check "a and b got what they wanted" '[ "$(held a)" -eq 100 ] && [ "$(held b)" -eq 100 ]'
check "c got the rest, not all it wanted" '[ "$(held c)" -ge 40 ] && [ "$(held c)" -lt 100 ]'
check "the segment is 0600" '[ "$(stat -c %a "/dev/shm/tierpool-$name")" = 600 ]'
kill -9 "$a"
for _ in $(seq 100); do [ "$(held c)" -eq 100 ] && break; sleep 0.05; done
echo "after a was killed: c holds $(held c) MiB"
check "a's share went to c after SIGKILL" '[ "$(held c)" -eq 100 ]'
exit $((failures > 0))
