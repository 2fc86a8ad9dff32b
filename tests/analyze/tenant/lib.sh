# shellcheck shell=bash
# lib.sh — sourced by the tenant tests: the report tests' helpers (report,
# expect_json, and ../lib.sh's trace, mk, record, expect_text, verdicts...).
#
#   section NAME FILE     the lines of tenant NAME's section of a --by-tenant
#                         text report (from its "=== tenant NAME " line to the next)
source "$(dirname "${BASH_SOURCE[0]}")/../report/lib.sh"

section() {
  awk -v want="=== tenant $1 " 'index($0, "=== tenant ") == 1 {on = index($0, want) == 1} on' "$2"
}
