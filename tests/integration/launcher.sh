#!/usr/bin/env bash
# launcher.sh TIERPOOL VERSION — the `tierpool` command's launcher: `tierpool run`
# finds the library beside its build, prepends it to LD_PRELOAD, sets
# TIERPOOL_CONFIG, reports bad usage with exit status 2, and the program it
# starts really runs on the pool.
source "$(dirname "$0")/lib.sh"
tierpool=$(realpath "$1") version=$2

lib=$TIERPOOL_LIB
config=$INPUT/pool.conf
echo 'release_threshold = 0.7' >"$config"
show_env='printf "preload=%s\nconfig=%s\n" "$LD_PRELOAD" "${TIERPOOL_CONFIG-unset}"'

expect "--version" 0 "^tierpool $version\$" "$tierpool" --version
expect "--help lists run" 0 '^  run ' "$tierpool" --help
expect "run --help" 0 '^usage: tierpool run ' "$tierpool" run --help
expect "no command" 2 '^usage: tierpool ' "$tierpool"
expect "unknown command" 2 "^tierpool: unknown command 'frobnicate'" "$tierpool" frobnicate
expect "run without --" 2 "missing '--'" "$tierpool" run true
expect "run with nothing after --" 2 'no command after' "$tierpool" run --
expect "unreadable config" 2 "^tierpool: cannot read config '$INPUT/none.conf'" \
  "$tierpool" run --config "$INPUT/none.conf" -- true
expect "command not found" 127 "^tierpool: cannot run 'no-such-command-tp'" \
  "$tierpool" run -- no-such-command-tp
expect "TIERPOOL_LIB wrong" 2 '^tierpool: cannot find libtierpool.so \(looked in /nonexistent/lib.so' \
  env TIERPOOL_LIB=/nonexistent/lib.so "$tierpool" run -- true
# Found beside the build (no TIERPOOL_LIB), put first, existing entries kept.
expect "finds the library and prepends it" 0 "^preload=$lib:libc.so.6\$" \
  env -u TIERPOOL_LIB LD_PRELOAD=libc.so.6 "$tierpool" run -- sh -c "$show_env"
expect "LD_PRELOAD empty before" 0 "^preload=$lib\$" \
  env -u TIERPOOL_LIB -u LD_PRELOAD "$tierpool" run -- sh -c "$show_env"
expect "--config sets TIERPOOL_CONFIG (absolute)" 0 "^config=$config\$" \
  bash -c 'cd "$1" && shift && "$@"' - "$INPUT" "$tierpool" run --config pool.conf -- sh -c "$show_env"
expect "--config=FILE" 0 "^config=$config\$" "$tierpool" run --config="$config" -- sh -c "$show_env"
# The program really runs on the pool: its statistics appear at exit.  (bash:
# coreutils close stderr before exit, dash leaves through _exit: their statistics
# are lost.)
expect "the program runs on the pool" 0 '^tierpool:' \
  env TIERPOOL_STATS=1 "$tierpool" run -- bash -c 'echo ran'

# A program that closes every descriptor and opens a file of its own at the
# number the statistics' copy of stderr had (1000): the report goes to stderr,
# never into the program's file.
stats_file=$WORK/own-file
expect "the statistics never go into the program's own descriptor" 0 '^tierpool: statistics' \
  env TIERPOOL_STATS=1 "$tierpool" run -- python3 -c "
import os
os.closerange(3, 4096)
fd = os.open('$stats_file', os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
os.dup2(fd, 1000)
"
if [ -s "$stats_file" ]; then fail_check "the report went into the program's descriptor 1000: $(head -c 200 "$stats_file")"
else pass_check "the program's descriptor 1000 holds nothing of ours"; fi
finish
