#!/usr/bin/env bash
# record_cli.sh — the `tierpool record` command: its options reach the library
# as environment keys, traces land where -o says (made absolute, %p and %e
# expanded, .1 for a name already taken), each is named on stderr with its
# size, the private index file is removed, the exit status is the program's
# (128+N for a signal, passed on to it), and bad usage exits 2.
source "$(dirname "$0")/lib.sh"
cli=$TIERPOOL_CLI

cd "$WORK"
mkdir tmp
export TMPDIR=$WORK/tmp  # record's index file goes here: it must be gone afterwards

expect "--help lists record" 0 '^  record ' "$cli" --help
expect "record --help" 0 '^usage: tierpool record ' "$cli" record --help
expect "record without --" 2 "missing '--'" "$cli" record true
expect "record with nothing after --" 2 'no command after' "$cli" record --
expect "unknown option" 2 "^tierpool record: unexpected '--frobnicate'" "$cli" record --frobnicate -- true
expect "-o followed by --: no value" 2 "^tierpool record: -o needs a value" "$cli" record -o -- true
expect "--rate followed by an option" 2 "^tierpool record: --rate needs a value" "$cli" record --rate --seed 1 -- true
expect "--rate 0" 2 "^tierpool record: bad --rate '0'" "$cli" record --rate 0 -- true
expect "--rate 1.5" 2 "^tierpool record: bad --rate '1.5'" "$cli" record --rate 1.5 -- true
expect "--rate x" 2 "^tierpool record: bad --rate 'x'" "$cli" record --rate x -- true
expect "--bytes 12Q" 2 "^tierpool record: bad --bytes '12Q'" "$cli" record --bytes 12Q -- true
expect "--seed -1" 2 "^tierpool record: bad --seed '-1'" "$cli" record --seed -1 -- true
expect "--rate and --bytes" 2 'exclude each other' "$cli" record --rate 0.5 --bytes 1M -- true
expect "-o DIR/" 2 "^tierpool record: bad -o '$WORK/'" "$cli" record -o "$WORK/" -- true
expect "-o into a missing directory" 2 "^tierpool record: cannot write traces into '$WORK/none'" \
  "$cli" record -o "$WORK/none/x.tpt" -- true
expect "unreadable config" 2 "^tierpool: cannot read config" "$cli" record --config "$WORK/none.conf" -- true
expect "TIERPOOL_LIB wrong" 2 '^tierpool: cannot find libtierpool.so' \
  env TIERPOOL_LIB=/nonexistent/lib.so "$cli" record -- true
expect "command not found: 127" 127 "^tierpool: cannot run 'no-such-command-tp'" \
  "$cli" record -- no-such-command-tp
grep -q '^tierpool: trace' "$WORK/out" && fail_check "a trace was named for a command that did not run"
expect "a static program: no trace, said so" 0 "^tierpool: '/sbin/ldconfig' wrote no trace" \
  "$cli" record -- /sbin/ldconfig -V

# What the program is given.
expect "options become the library's keys" 0 '^TIERPOOL_SAMPLE_RATE=0.25$' \
  "$cli" record --rate 0.25 --seed 9 --validate -o "rel-%p.tpt" -- env
for line in 'TIERPOOL_PROFILE=1' 'TIERPOOL_SAMPLE_SEED=9' 'TIERPOOL_VALIDATE=1' "TIERPOOL_TRACE=$WORK/rel-%p.tpt" \
  "TIERPOOL_TRACE_INDEX=$WORK/tmp/tierpool-index-" "LD_PRELOAD=$TIERPOOL_LIB"; do
  if grep -q "^$line" "$WORK/out"; then pass_check "the program sees $line"; else fail_check "no $line"; fi
done
expect "--bytes 64K" 0 '^TIERPOOL_SAMPLE_BYTES=65536$' "$cli" record --bytes 64K -- env
rm -f rel-*.tpt tierpool-env-*.tpt

# The default name, the size on the line, the exit status.
expect "default trace name" 0 '^tierpool: trace \./tierpool-subject-[0-9]+\.tpt \([0-9]+ bytes' \
  "$cli" record -- "$SUBJECT" stacks
shown=$(sed -nE 's/^tierpool: trace (\S+) \(([0-9]+) bytes.*/\1 \2/p' "$WORK/out")
read -r path bytes <<<"$shown"
if [ -f "$path" ] && [ "$(stat -c %s "$path")" = "$bytes" ]; then
  pass_check "$path exists and has the size shown ($bytes bytes)"
else
  fail_check "'$shown': no such file of that size"
fi
expect "the program's exit status" 3 '^tierpool: trace ' "$cli" record -o st.tpt -- bash -c 'exit 3'
expect "killed by a signal: 128+N" 143 '^tierpool: trace ' "$cli" record -o sig.tpt -- bash -c 'kill -TERM $$'

# -o NAME for a program that forks and execs: NAME, NAME.1, ... all in the
# launch directory even though the program changes directory first.
expect "-o plain name, program forks" 0 '^tierpool: trace out\.tpt\.1 ' \
  "$cli" record -o out.tpt -- "$SUBJECT" fork
expect "-o relative, program changes directory and execs" 0 '^tierpool: trace moved\.tpt\.1 ' \
  "$cli" record -o moved.tpt -- bash -c 'cd / && exec "$0" stacks' "$SUBJECT"
if [ -f "$WORK/moved.tpt.1" ] && [ ! -e /moved.tpt.1 ]; then
  pass_check "traces stay in the launch directory"
else
  fail_check "moved.tpt.1 is not in the launch directory (or went to /)"
fi
expect "%e and %p expanded" 0 "^tierpool: trace $WORK/sub/x-subject-[0-9]+\.tpt " \
  bash -c 'mkdir sub && cd / && exec "$@"' - "$cli" record -o "$WORK/sub/x-%e-%p.tpt" -- "$SUBJECT" stacks

# A record inside a record: the outer one names the inner one's traces too.
expect "nested record" 0 "^tierpool: trace inner-subject-[0-9]+\.tpt " \
  "$cli" record -o outer-%e-%p.tpt -- "$cli" record -o inner-%e-%p.tpt -- "$SUBJECT" stacks
n=$(grep -c '^tierpool: trace inner-subject' "$WORK/out")
if [ "$n" -eq 2 ]; then pass_check "inner trace named by both records"; else fail_check "inner trace named $n times"; fi

# SIGTERM to the launcher goes to the program; the trace is still named.
"$cli" record -o term.tpt -- "$SUBJECT" busy "$WORK/busy.pid" >"$WORK/out" 2>&1 &
launcher=$!
for _ in $(seq 100); do [ -s "$WORK/busy.pid" ] && break; sleep 0.1; done
sleep 0.3
kill -TERM "$launcher"
rc=0
wait "$launcher" || rc=$?
expect_status "SIGTERM passed on to the program" 143 "$rc"
if grep -q '^tierpool: trace term\.tpt ' "$WORK/out"; then
  pass_check "its trace is named"
else
  fail_check "no term.tpt line"
fi

if [ -z "$(ls -A "$WORK/tmp")" ]; then
  pass_check "no index file left behind"
else
  fail_check "left in TMPDIR: $(ls "$WORK/tmp")"
fi
finish
