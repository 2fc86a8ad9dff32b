#!/usr/bin/env bash
# crash.sh — a recorded program killed with SIGKILL after 1.5 s of allocating
# leaves a trace readable up to its last complete frame; damaged copies of it
# (cut short, one bit flipped) are rejected with a message, never misread
# (trace_check damage, with a sanitized reader; then `tierpool dump` itself).
source "$(dirname "$0")/lib.sh"

mkdir "$WORK/crash"
pidfile=$WORK/busy.pid
"$TIERPOOL_CLI" record -o "$WORK/crash/busy.tpt" -- "$SUBJECT" busy "$pidfile" \
  </dev/null >"$WORK/crash.out" 2>"$WORK/crash.err" &
launcher=$!
for _ in $(seq 100); do
  [ -s "$pidfile" ] && break
  sleep 0.1
done
if [ ! -s "$pidfile" ]; then
  fail_check "subject busy did not start"
  kill "$launcher"
  finish
fi
sleep 1.5
kill -KILL "$(cat "$pidfile")"
rc=0
wait "$launcher" || rc=$?
expect_status "tierpool record of a program killed by SIGKILL" 137 "$rc"
traces_in "$WORK" "$WORK/crash.err"
if [ "${TRACES[*]}" != "$WORK/crash/busy.tpt" ]; then
  fail_check "record named '${TRACES[*]}', expected $WORK/crash/busy.tpt"
  show "$WORK/crash.err"
  finish
fi
trace=${TRACES[0]}
expect_summary "$trace" 'status == 0 || truncated == 1' 'samples > 0' 'frames >= 2' 'histogram_allocs > 0' 'ends == 0'

trace_check "damaged copies: cut short, bits flipped" damage "$trace" "$WORK/scratch.tpt"

# The command line on damaged copies: status 2 and a message naming the file.
size=$(stat -c %s "$trace")
dump_rejects() { # NAME FILE PATTERN
  local rc=0
  "$TIERPOOL_CLI" dump "$2" >/dev/null 2>"$WORK/dump.err" || rc=$?
  if [ "$rc" -eq 2 ] && grep -qE "^tierpool: $2: .*$3" "$WORK/dump.err"; then
    pass_check "tierpool dump rejects $1: $(head -n 1 "$WORK/dump.err")"
  else
    fail_check "tierpool dump on $1: exit status $rc, expected 2 and a line matching '$3'"
    show "$WORK/dump.err" 5
  fi
}
head -c $((size - 1)) "$trace" >"$WORK/cut-end.tpt"
dump_rejects "a copy missing its last byte" "$WORK/cut-end.tpt" 'truncated'
head -c 1 "$trace" >"$WORK/cut-1.tpt"
dump_rejects "a copy of 1 byte" "$WORK/cut-1.tpt" 'truncated'
cp "$trace" "$WORK/flipped.tpt"
# Bit 2 of the second-to-last byte: inside the last frame's checksum.
byte=$(od -An -tu1 -j $((size - 2)) -N1 "$trace" | tr -d ' ')
printf '%b' "\\$(printf '%03o' $((byte ^ 4)))" |
  dd of="$WORK/flipped.tpt" bs=1 seek=$((size - 2)) conv=notrunc status=none
dump_rejects "a copy with a flipped bit" "$WORK/flipped.tpt" 'corrupt'
finish
