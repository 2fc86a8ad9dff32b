# shellcheck shell=bash
# lib.sh — sourced by the analyzer's shell tests (tests/analyze/*/, through
# their folder's lib.sh when it has one), on top of ../integration/lib.sh
# (WORK, HERE, pass_check/fail_check, show, finish).
#
#   trace NAME               make_trace $WORK/NAME.spec -> $WORK/NAME.tpt (the test stops if it fails)
#   mk NAME < SPEC           the same, the spec read from stdin
#   record NAME ARGS...      `tierpool record -o $WORK/NAME/%e-%p.tpt ARGS...` (options, then
#                            -- CMD...) in $WORK/NAME: its traces in TRACES, the first in TRACE
#                            (the test stops if it fails or writes none)
#   run_cli NAME CMD...      `$TP_CLI CMD...` (TP_CLI: $TIERPOOL_CLI unless the folder sets it):
#                            stdout in $WORK/NAME.out, stderr in $WORK/NAME.err, exit status in RC
#   expect_status WHAT WANT  RC (of the last run_cli) is WANT; else its stderr is shown
#   expect_error NAME REGEX CMD...   `$TP_CLI CMD...` exits 2 with nothing on stdout and one
#                            line on stderr, "tierpool CMD: ..." matching the extended REGEX ('': any)
#   expect_eq WHAT GOT WANT  GOT = WANT (as strings)
#   expect_text NAME FILE REGEX...   each extended REGEX matches a line of FILE
#   expect_line NAME REGEX FILE      FILE has a line matching REGEX
#   expect_no_line NAME REGEX FILE   FILE has none
#   verdicts NAME < LINES    each line "ok: WHAT" or "FAIL: WHAT" (a python checker's) as a check
source "$(dirname "${BASH_SOURCE[0]}")/../integration/lib.sh"
: "${TIERPOOL_CLI:?}" "${MAKE_TRACE:?}"
TP_CLI=${TP_CLI:-$TIERPOOL_CLI}

trace() {
  if "$MAKE_TRACE" "$WORK/$1.spec" "$WORK/$1.tpt" 2>"$WORK/make_trace.err"; then
    return 0
  fi
  fail_check "make_trace $1.spec failed"
  show "$WORK/make_trace.err"
  finish
}

mk() {
  cat >"$WORK/$1.spec"
  trace "$1"
}

record() {
  local name=$1 rc=0
  shift
  mkdir -p "$WORK/$name"
  (cd "$WORK/$name" && exec "$TIERPOOL_CLI" record -o "$WORK/$name/%e-%p.tpt" "$@") </dev/null \
    >"$WORK/$name.out" 2>"$WORK/$name.rec" || rc=$?
  TRACES=("$WORK/$name"/*.tpt)
  TRACE=${TRACES[0]}
  if [ "$rc" -eq 0 ] && [ -s "$TRACE" ]; then
    pass_check "record $name: ${#TRACES[@]} trace(s), the first of $(stat -c %s "$TRACE") bytes"
    return 0
  fi
  fail_check "record $name: exit status $rc, traces: ${TRACES[*]}"
  show "$WORK/$name.rec"
  finish
}

run_cli() {
  local name=$1
  shift
  RC=0
  LAST=$name
  "$TP_CLI" "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" || RC=$?
}

expect_status() {
  if [ "$RC" -eq "$2" ]; then
    pass_check "$1: exit status $RC"
  else
    fail_check "$1: exit status $RC, expected $2"
    show "$WORK/$LAST.err"
  fi
}

expect_error() {
  local name=$1 want=$2
  shift 2
  run_cli error "$@" </dev/null
  if [ "$RC" -ne 2 ]; then
    fail_check "$name: exit status $RC, expected 2"
  elif [ -s "$WORK/error.out" ]; then
    fail_check "$name: printed on stdout"
  elif [ "$(wc -l <"$WORK/error.err")" -ne 1 ] || ! grep -q "^tierpool $1: " "$WORK/error.err"; then
    fail_check "$name: stderr is not one 'tierpool $1: ...' line"
  elif ! grep -qE -- "$want" "$WORK/error.err"; then
    fail_check "$name: stderr does not match /$want/"
  else
    pass_check "$name: exit 2, $(cat "$WORK/error.err")"
    return 0
  fi
  sed 's/^/    | /' "$WORK/error.err" >&2
}

expect_eq() {
  if [ "$2" = "$3" ]; then
    pass_check "$1: $2"
  else
    fail_check "$1: got '$2', want '$3'"
  fi
}

expect_text() {
  local name=$1 file=$2 re
  shift 2
  for re in "$@"; do
    if grep -qE -- "$re" "$file"; then
      pass_check "$name: /$re/"
    else
      fail_check "$name: no line of $(basename "$file") matches /$re/"
      sed 's/^/    | /' "$file" >&2
    fi
  done
}

expect_line() { expect_text "$1" "$3" "$2"; }

expect_no_line() {
  if grep -qE -- "$2" "$3"; then
    fail_check "$1: a line matches '$2' in $(basename "$3")"
    grep -E -- "$2" "$3" | sed 's/^/    | /' >&2
  else
    pass_check "$1"
  fi
}

verdicts() {
  local line count=0
  while IFS= read -r line; do
    count=$((count + 1))
    case $line in
      ok:*) pass_check "$1: ${line#ok: }" ;;
      *) fail_check "$1: ${line#FAIL: }" ;;
    esac
  done
  [ "$count" -gt 0 ] || fail_check "$1: the checker gave no verdict"
}
