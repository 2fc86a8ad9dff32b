# shellcheck shell=bash
# lib.sh — sourced by the propose/diff tests, on top of ../../integration/lib.sh
# (WORK, pass_check/fail_check, expect, finish).
#
#   mk NAME < SPEC        a trace $WORK/NAME.tpt from a make_trace spec on stdin
#   run_cli NAME CMD...   runs `tierpool CMD...`: stdout in $WORK/NAME.out, stderr in
#                         $WORK/NAME.err, exit status in RC
#   expect_status NAME WANT   RC (of the last run_cli) is WANT
#   expect_line NAME REGEX FILE   FILE has a line matching the extended REGEX
#   expect_no_line NAME REGEX FILE
#   expect_error NAME CMD...      `tierpool CMD...` exits 2 with exactly one line on
#                         stderr, starting "tierpool SUBCOMMAND: ", and nothing on stdout
source "$(dirname "$0")/../../integration/lib.sh"

: "${TIERPOOL_CLI:?}" "${MAKE_TRACE:?}"

mk() {
  cat >"$WORK/$1.spec"
  if ! "$MAKE_TRACE" "$WORK/$1.spec" "$WORK/$1.tpt" 2>"$WORK/mk.err"; then
    fail_check "make_trace $1: $(cat "$WORK/mk.err")"
    finish
  fi
}

run_cli() {
  local name=$1
  shift
  RC=0
  LAST=$name
  "$TIERPOOL_CLI" "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" || RC=$?
}

expect_status() {
  if [ "$RC" -eq "$2" ]; then
    pass_check "$1: exit status $RC"
  else
    fail_check "$1: exit status $RC, expected $2"
    sed 's/^/    | /' "$WORK/$LAST.err" >&2
  fi
}

expect_line() {
  if grep -qE -- "$2" "$3"; then
    pass_check "$1"
  else
    fail_check "$1: no line matching '$2' in $(basename "$3")"
    sed 's/^/    | /' "$3" >&2
  fi
}

expect_no_line() {
  if grep -qE -- "$2" "$3"; then
    fail_check "$1: a line matches '$2' in $(basename "$3")"
    grep -E -- "$2" "$3" | sed 's/^/    | /' >&2
  else
    pass_check "$1"
  fi
}

expect_error() {
  local name=$1 lines
  shift
  run_cli error "$@"
  lines=$(wc -l <"$WORK/error.err")
  if [ "$RC" -ne 2 ]; then
    fail_check "$name: exit status $RC, expected 2"
    sed 's/^/    | /' "$WORK/error.err" >&2
  elif [ "$lines" -ne 1 ] || ! grep -q "^tierpool $1: " "$WORK/error.err"; then
    fail_check "$name: stderr is not one 'tierpool $1: ...' line"
    sed 's/^/    | /' "$WORK/error.err" >&2
  elif [ -s "$WORK/error.out" ]; then
    fail_check "$name: printed on stdout"
  else
    pass_check "$name: exit 2, $(cat "$WORK/error.err")"
  fi
}
