#!/usr/bin/env bash
# events.sh — tp_trace_scan turns the columnar batches back into one event
# each, with absolute ids and times: a make_trace spec whose events are known
# (batch-relative deltas, ids that go down within a Frees batch, the weight,
# tenant, usable and free-stack columns present or not, count and byte mode)
# gives exactly those events; a truncated copy gives the events of its
# complete frames and says so; a foreign or empty file is an error naming it;
# on a recorded trace, the events agree with tests/profiler/trace_load.c.
source "$(dirname "$0")/../../integration/lib.sh"
: "${MAKE_TRACE:?}" "${EVENTS:?}" "${TIERPOOL_CLI:?}" "${SUBJECT:?}"

cat >"$WORK/a.spec" <<'SPEC'
process pid=7 rate=0.25
stack id=1 frames=0x1000
sample id=5 t=100 size=10 stack=1
sample id=9 t=150 size=20 stack=1 tier=1 thread=2 align=6
free id=9 t=200
free id=5 t=210
frame
sample id=12 t=300 size=30 stack=1 tenant=3 usable=48 weight=7.5
sample id=13 t=300 size=40 stack=1
free id=13 t=400 stack=1
free id=12 t=401
mmap kind=mremap t=500 addr=0x3000 length=8192 old_addr=0x2000 prot=3 flags=34 stack=1 thread=1
mmap kind=munmap t=600 addr=0x3000 length=8192
end t=700 samples=4
frame
process pid=8 sample_bytes=1000
sample id=1 t=1 size=4096 stack=1 weight=4.5
frame
sample id=2 t=2 size=1 stack=1
SPEC
cat >"$WORK/a.want" <<'WANT'
process pid=7 rate=0.25 sample_bytes=0
sample id=5 t=100 size=10 usable=0 weight=4 stack=1 thread=0 tenant=0 tier=0 align=4
sample id=9 t=150 size=20 usable=0 weight=4 stack=1 thread=2 tenant=0 tier=1 align=6
free id=9 t=200 stack=-1
free id=5 t=210 stack=-1
sample id=12 t=300 size=30 usable=48 weight=7.5 stack=1 thread=0 tenant=3 tier=0 align=4
sample id=13 t=300 size=40 usable=0 weight=4 stack=1 thread=0 tenant=0 tier=0 align=4
free id=13 t=400 stack=1
free id=12 t=401 stack=0
mmap kind=2 t=500 addr=0x3000 length=8192 old=0x2000 prot=3 flags=34 stack=1 thread=1
mmap kind=1 t=600 addr=0x3000 length=8192 old=0x0 prot=0 flags=0 stack=0 thread=0
end t=700 samples=4
process pid=8 rate=0 sample_bytes=1000
sample id=1 t=1 size=4096 usable=0 weight=4.5 stack=1 thread=0 tenant=0 tier=0 align=4
sample id=2 t=2 size=1 usable=0 weight=1 stack=1 thread=0 tenant=0 tier=0 align=4
result rc=0 records=12 frames=4 truncated=0
stop rc=42
WANT

# golden NAME SPEC WANT: make_trace SPEC, then `events print` equals WANT.
golden() {
  local rc=0
  "$MAKE_TRACE" "$2" "$WORK/$1.tpt" 2>"$WORK/make.err" || rc=$?
  if [ "$rc" -ne 0 ]; then
    fail_check "$1: make_trace exited with $rc"
    show "$WORK/make.err"
    return
  fi
  rc=0
  "$EVENTS" print "$WORK/$1.tpt" >"$WORK/$1.got" 2>"$WORK/$1.err" || rc=$?
  if [ "$rc" -eq 0 ] && diff -u "$3" "$WORK/$1.got" >"$WORK/$1.diff"; then
    pass_check "$1: the events are exactly what the spec put in ($(grep -c . "$3") lines)"
  else
    fail_check "$1: events print exited $rc or differs"
    show "$WORK/$1.diff" 40
    show "$WORK/$1.err"
  fi
}
golden columns "$WORK/a.spec" "$WORK/a.want"

# Truncated inside its last frame: the first three frames' events, then the error.
size=$(stat -c %s "$WORK/columns.tpt")
head -c $((size - 7)) "$WORK/columns.tpt" >"$WORK/cut.tpt"
"$EVENTS" print "$WORK/cut.tpt" >"$WORK/cut.got" 2>&1 || true
if grep -q '^sample id=1 t=1 size=4096' "$WORK/cut.got" && ! grep -q '^sample id=2 ' "$WORK/cut.got" &&
  grep -q '^result rc=-1 records=11 frames=3 truncated=1$' "$WORK/cut.got" &&
  grep -q "^error $WORK/cut.tpt: truncated" "$WORK/cut.got"; then
  pass_check "truncated: the events of the complete frames, then rc=-1 truncated=1 naming the file"
else
  fail_check "truncated trace"
  show "$WORK/cut.got"
fi

# Not a trace, empty, missing: -1 with the path in the message.
printf 'hello, world\n' >"$WORK/foreign.tpt"
: >"$WORK/empty.tpt"
for f in foreign empty missing; do
  "$EVENTS" print "$WORK/$f.tpt" >"$WORK/$f.got" 2>&1 || true
  if grep -q '^result rc=-1 .* truncated=0$' "$WORK/$f.got" && grep -q "^error $WORK/$f.tpt: " "$WORK/$f.got"; then
    pass_check "$f file: rc=-1, $(sed -n 's/^error //p' "$WORK/$f.got")"
  else
    fail_check "$f file"
    show "$WORK/$f.got"
  fi
done

# make_trace itself: a bad line is an error naming the spec line, and no file is left.
printf 'process pid=1\nsample id=1 t=5 size=1 stack=1 colour=red\n' >"$WORK/bad.spec"
rc=0
"$MAKE_TRACE" "$WORK/bad.spec" "$WORK/bad.tpt" 2>"$WORK/bad.err" || rc=$?
if [ "$rc" -eq 1 ] && grep -q "bad.spec:2: .*colour" "$WORK/bad.err" && [ ! -e "$WORK/bad.tpt" ]; then
  pass_check "make_trace: a bad field names its line ($(cat "$WORK/bad.err"))"
else
  fail_check "make_trace on a bad spec: status $rc"
  show "$WORK/bad.err"
fi

# A recorded trace (validation mode: every allocation a sample, usable and
# free stacks written; and count mode at 5%): the events agree with trace_load.
for mode in "--validate" "--rate 0.05 --seed 3"; do
  dir=$WORK/rec-${mode%% *}
  mkdir -p "$dir"
  rc=0
  # shellcheck disable=SC2086 # the mode is several words
  (cd "$dir" && exec "$TIERPOOL_CLI" record -o "$dir/%e-%p.tpt" $mode -- "$SUBJECT" histogram) \
    </dev/null >"$dir/out" 2>"$dir/err" || rc=$?
  traces=("$dir"/*.tpt)
  if [ "$rc" -ne 0 ] || [ ! -f "${traces[0]}" ]; then
    fail_check "record $mode: status $rc"
    show "$dir/err"
    continue
  fi
  rc=0
  "$EVENTS" agree "${traces[0]}" >"$dir/agree" 2>&1 || rc=$?
  if [ "$rc" -eq 0 ]; then
    pass_check "record $mode: events agree with trace_load ($(grep -c '^ok' "$dir/agree") checks)"
  else
    fail_check "record $mode: events disagree with trace_load"
    show "$dir/agree" 30
  fi
done
finish
