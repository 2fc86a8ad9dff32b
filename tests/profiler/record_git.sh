#!/usr/bin/env bash
# record_git.sh — a small git session (init, two commits of 60 files, log, diff,
# gc) under `tierpool record`: the same output as without the library, and a
# readable trace for every process of it.  git runs its helpers by fork and
# exec, so a process exec'd from a fork leaves two traces: the forked image's
# (no End: exec ends it without exit) and the new program's.
source "$(dirname "$0")/lib.sh"

cat >"$INPUT/session.sh" <<'SH'
set -euo pipefail
export HOME=$PWD/home GIT_CONFIG_NOSYSTEM=1 TZ=UTC LC_ALL=C
export GIT_AUTHOR_NAME='Ada Tester' GIT_AUTHOR_EMAIL=ada@example.invalid
export GIT_COMMITTER_NAME='Ada Tester' GIT_COMMITTER_EMAIL=ada@example.invalid
export GIT_AUTHOR_DATE='@1700000000 +0000' GIT_COMMITTER_DATE='@1700000000 +0000'
mkdir -p "$HOME"
git init -q -b main repo
cd repo
for i in $(seq 60); do seq "$i" $((i * 40)) >"file$i.txt"; done
git add -A
git commit -q -m first
for i in $(seq 1 3 60); do echo "changed $i" >>"file$i.txt"; done
git commit -q -a -m second
git log --stat=80 --format='%H %s'
git diff --stat HEAD~1 HEAD | tail -n 1
git -c pack.threads=1 gc -q
git count-objects -v | grep -v '^size'
SH

compare_recorded bash "$INPUT/session.sh"
gits=0 unreadable=0
for trace in "${TRACES[@]}"; do
  summary "$trace"
  if [ "${S[status]}" -ne 0 ] || [ "${S[truncated]}" -ne 0 ] || [ "${S[processes]}" -ne 1 ]; then
    unreadable=$((unreadable + 1))
    fail_check "$(basename "$trace") is not readable: $(head -n 1 "$WORK/dump.err")"
  fi
  # The git processes that ran to their exit (not the forked images that exec'd).
  if [[ $(basename "$trace") = git-* ]] && [ "${S[ends]}" -eq 1 ]; then
    gits=$((gits + 1))
    expect_summary "$trace" 'histogram_allocs > 0' 'samples > 0' 'stacks > 0'
  fi
done
[ "$unreadable" -eq 0 ] && pass_check "all ${#TRACES[@]} traces are readable"
if [ "$gits" -ge 8 ]; then
  pass_check "$gits git processes left complete traces"
else
  fail_check "only $gits git processes left complete traces (want 8 or more)"
fi
finish
