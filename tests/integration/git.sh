#!/usr/bin/env bash
# git.sh — git building a history on a generated tree of a few hundred files
# (git_session.sh: commits, renames, a merge, log, diff, blame, grep, gc,
# fsck, archive).  Everything git prints, hashes included, must be identical
# with and without the pool.
source "$(dirname "$0")/lib.sh"

# The tree: 400 text files of varying length in nested directories.
awk -v root="$INPUT/tree" 'BEGIN {
  srand(7)
  for (f = 0; f < 400; f++) {
    dir = root "/d" (f % 9) "/s" (f % 4)
    system("mkdir -p " dir)
    path = dir "/file" f ".txt"
    lines = 5 + (f * 37) % 200
    for (l = 1; l <= lines; l++)
      printf "line %d of file %d: %08x %s\n", l, f, (f * 2654435761 + l * 40503) % 4294967296,
        substr("the quick brown fox jumps over the lazy dog", 1 + (l * f) % 30) > path
    close(path)
  }
}'

run_both bash "$HERE/git_session.sh" "$INPUT/tree"
expect_same_stdout
finish
