# shellcheck shell=bash
# lib.sh — sourced by the export and merge tests, on top of ../lib.sh (trace,
# record, run_cli, expect_eq, expect_error, verdicts...).
#
#   tp NAME ARGS...             `tierpool ARGS...`: stdout to $WORK/NAME.out, stderr
#                               to $WORK/NAME.err; a check that it exits 0
#   decode NAME FILE.pb.gz      gunzip | protoc --decode (pprof's schema) -> $WORK/NAME.txt
#   check_pprof NAME TXT ARGS...   check_pprof.py's verdicts as checks
#   expect_near WHAT GOT WANT TOL  one check: |GOT - WANT| <= TOL (numbers)
#   summary TRACE               `tierpool dump --summary TRACE` into the array S
#   folded_total FILE           the sum of the values of a folded file
#   csv_totals FILE             "rows=N alloc_objects=X alloc_space=X inuse_objects=X
#                               inuse_space=X freed=N" from a CSV export (python's csv)
#   field KEY LINE              the value of KEY=VALUE in a line of such pairs
source "$(dirname "$0")/../lib.sh"
: "${PPROF_PROTO_DIR:?}"

tp() {
  run_cli "$@"
  expect_status "$1: tierpool $2" 0
}

decode() {
  if [ -z "${PROTOC:-}" ]; then
    fail_check "protoc is not installed (scripts/setup installs protobuf-compiler)"
    finish
  fi
  if gunzip -c "$2" | "$PROTOC" --decode=perftools.profiles.Profile --proto_path="$PPROF_PROTO_DIR" pprof.proto \
    >"$WORK/$1.txt" 2>"$WORK/$1.protoc.err"; then
    pass_check "$1: gunzip | protoc --decode reads it ($(wc -l <"$WORK/$1.txt") lines)"
  else
    fail_check "$1: gunzip | protoc --decode failed"
    show "$WORK/$1.protoc.err"
  fi
}

check_pprof() {
  local name=$1 txt=$2
  shift 2
  verdicts "$name" < <(python3 "$HERE/check_pprof.py" "$txt" "$@" 2>&1)
}

expect_near() {
  if python3 -c 'import sys; sys.exit(0 if abs(float(sys.argv[1]) - float(sys.argv[2])) <= float(sys.argv[3]) else 1)' \
    "$2" "$3" "$4"; then
    pass_check "$1: $2 (want $3 ± $4)"
  else
    fail_check "$1: got $2, want $3 ± $4"
  fi
}

declare -A S
summary() {
  S=([status]=0)
  local line kv
  line=$("$TIERPOOL_CLI" dump --summary "$1" 2>"$WORK/dump.err" | tr '\n' ' ') || S[status]=$?
  for kv in $line; do
    [[ $kv = *=* ]] && S[${kv%%=*}]=${kv#*=}
  done
  return 0
}

folded_total() {
  awk '{ n = $NF; if (n !~ /^[0-9]+$/) bad = 1; t += n } END { if (bad) print "bad"; else printf "%d\n", t }' "$1"
}

csv_totals() {
  python3 - "$1" <<'PY'
import csv, sys
rows = freed = 0
t = [0.0] * 4
with open(sys.argv[1], newline="") as f:
    r = csv.DictReader(f)
    for row in r:
        rows += 1
        w, size = float(row["weight"]), int(row["size"])
        t[0] += w
        t[1] += w * size
        if row["freed"] == "1":
            freed += 1
        else:
            t[2] += w
            t[3] += w * size
print("rows=%d alloc_objects=%.6f alloc_space=%.6f inuse_objects=%.6f inuse_space=%.6f freed=%d" % (rows, *t, freed))
PY
}

field() {
  local kv
  for kv in $2; do
    [ "${kv%%=*}" = "$1" ] && echo "${kv#*=}" && return 0
  done
  echo "?"
}
