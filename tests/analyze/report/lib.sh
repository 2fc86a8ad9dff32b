# shellcheck shell=bash
# lib.sh — sourced by the report tests, on top of ../lib.sh (trace, record,
# run_cli, expect_text, expect_error, verdicts...).  Their commands run
# REPORT_CLI, the sanitized copy of `tierpool report` (report_main.c), when
# meson runs them.
#
#   report NAME ARGS...        `report ARGS...` -> $WORK/NAME.out (stdout), .err; a check
#                              that it exits 0
#   expect_json NAME FILE EXPR...      each python EXPR holds, with r = the JSON
#                              document in FILE (approx(a, b, rel) is there too)
# shellcheck disable=SC2034 # read by ../lib.sh's run_cli
TP_CLI=${REPORT_CLI:-${TIERPOOL_CLI:?}}
source "$(dirname "$0")/../lib.sh"

report() {
  local name=$1
  shift
  run_cli "$name" report "$@"
  expect_status "report $name" 0
}

expect_json() {
  local name=$1 file=$2
  shift 2
  verdicts "$name" < <(python3 - "$file" "$@" 2>&1 <<'PY'
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
