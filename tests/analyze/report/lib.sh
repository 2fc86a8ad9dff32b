# shellcheck shell=bash
# lib.sh — sourced by the report tests, on top of ../../integration/lib.sh
# (WORK, pass_check/fail_check, expect, finish).
#
#   trace NAME                 make_trace $WORK/NAME.spec -> $WORK/NAME.tpt
#   report NAME ARGS...        `$REPORT_CLI report ARGS...` -> $WORK/NAME.txt (stdout), .err;
#                              fails the test if it does not exit 0.  REPORT_CLI is the
#                              sanitized copy (report_main.c) when meson runs the test
#   expect_text NAME FILE REGEX...     each extended REGEX matches a line of FILE
#   expect_json NAME FILE EXPR...      each python EXPR holds, with r = the JSON
#                              document in FILE (approx(a, b, rel) is there too)
source "$(dirname "$0")/../../integration/lib.sh"
: "${TIERPOOL_CLI:?}" "${MAKE_TRACE:?}"
REPORT_CLI=${REPORT_CLI:-$TIERPOOL_CLI}

trace() {
  if "$MAKE_TRACE" "$WORK/$1.spec" "$WORK/$1.tpt" 2>"$WORK/make_trace.err"; then
    return 0
  fi
  fail_check "make_trace $1.spec failed"
  show "$WORK/make_trace.err"
  finish
}

report() {
  local name=$1 rc=0
  shift
  "$REPORT_CLI" report "$@" >"$WORK/$name.txt" 2>"$WORK/$name.err" || rc=$?
  if [ "$rc" -eq 0 ]; then
    pass_check "report $name: exit status 0"
  else
    fail_check "report $name: exit status $rc"
    show "$WORK/$name.err"
  fi
}

expect_text() {
  local name=$1 file=$2 re
  shift 2
  for re in "$@"; do
    if grep -qE -- "$re" "$file"; then
      pass_check "$name: /$re/"
    else
      fail_check "$name: no line matches /$re/"
      sed 's/^/    | /' "$file" >&2
    fi
  done
}

expect_json() {
  local name=$1 file=$2 line
  shift 2
  while IFS= read -r line; do
    case $line in
      ok:*) pass_check "$name: ${line#ok: }" ;;
      *) fail_check "$name: ${line#FAIL: }" ;;
    esac
  done < <(python3 - "$file" "$@" 2>&1 <<'PY'
import json, sys
def approx(a, b, rel=1e-9):
    return a is not None and abs(a - b) <= rel * max(abs(a), abs(b), 1e-300)
try:
    with open(sys.argv[1]) as f:
        r = json.load(f)
except Exception as e:
    print("FAIL: %s is not JSON: %s" % (sys.argv[1], e))
    sys.exit(0)
for expr in sys.argv[2:]:
    try:
        ok = eval(expr)
    except Exception as e:
        ok, e_text = False, "%s: %s" % (type(e).__name__, e)
    else:
        e_text = ""
        if not ok and " == " in expr:  # show what the left side was
            try:
                e_text = "got " + repr(eval(expr.split(" == ")[0]))
            except Exception:
                pass
    print(("ok: " if ok else "FAIL: ") + expr + (" (" + e_text + ")" if e_text else ""))
PY
)
}
