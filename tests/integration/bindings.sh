#!/usr/bin/env bash
# bindings.sh — what loading libtierpool.so asks of the host, checked on the
# built library (readelf), since a preload is loaded into every process:
#  - it needs libc and nothing else: libunwind and libgcc_s are dlopen'ed
#    RTLD_LOCAL when recording starts (linked, their _Unwind_* would take over
#    the host's exception unwinding), zstd and protobuf-c are linked in;
#  - none of its relocations binds a data symbol that executables copy into
#    their own .bss (environ, stdin, ...): the loader finds those in the
#    executable's symbol table, and in node that read faulted 64 KiB of its
#    .dynsym in (fault-around) — 64 KiB of peak RSS for every node process.
#    libc's own alias (__environ) is looked up by libc already;
#  - the code every process runs (preload/resident.ld) lies in the first 64 KiB
#    of its text segment: the kernel maps 16 pages around a fault in a file
#    (fault-around), from the 64 KiB boundary below it or, past the mapping's
#    start, from the start: the first fault, the constructor's, maps the
#    segment's first 64 KiB wherever the loader put it (4 KiB-aligned), and
#    code past them costs every process another window.  Each function named
#    there must be in the library, and end within them.  Its read-only data
#    (.rodata.resident) sits in the first segment, with the headers.
set -euo pipefail
lib=${TIERPOOL_LIB:?TIERPOOL_LIB must name libtierpool.so (meson test sets it)}
failed=0

needed=$(readelf -dW "$lib" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | sort | tr '\n' ' ')
if [ "$needed" != "libc.so.6 " ]; then
  echo "FAIL: $lib needs [$needed], expected only libc.so.6" >&2
  failed=1
fi

copied='environ|_environ|stdin|stdout|stderr|optarg|optind|opterr|optopt|program_invocation_name|program_invocation_short_name'
relocs=$(readelf -rW "$lib")
bound=$(echo "$relocs" | awk -v re="^($copied)(@|$)" '$5 ~ re {print $3, $5}')
if [ -n "$bound" ]; then
  echo "FAIL: $lib binds symbols executables copy-relocate:" >&2
  echo "$bound" >&2
  failed=1
fi
# The check itself must see relocations at all (a stripped or empty readelf
# output would pass it vacuously).
if ! grep -q 'R_X86_64_GLOB_DAT' <<<"$relocs"; then
  echo "FAIL: readelf shows no GLOB_DAT relocation in $lib: the check saw nothing" >&2
  failed=1
fi

script=$(dirname "$0")/../../preload/resident.ld
text_start=$(readelf -lW "$lib" | awk '$1 == "LOAD" && $8 == "E" {print $3; exit}')
window_end=$(( text_start + 0x10000 ))
# The input sections of the script's *( ... ) lists, comments dropped.
mapfile -t resident < <(perl -0ne 's{/\*.*?\*/}{}gs; print "$1\n" while /\*\(([^)]*)\)/g' "$script" |
  grep -o '\.text\.[A-Za-z0-9_.]*' | sed -E 's/^\.text\.((startup|exit)\.)?//')
symbols=$(nm -S --defined-only "$lib" | awk 'NF == 4 && $3 ~ /^[tT]$/ {print $4, $1, $2}')
if [ "${#resident[@]}" -lt 50 ] || [ -z "$text_start" ]; then
  echo "FAIL: $script names ${#resident[@]} functions, the text starts at '$text_start': the check saw nothing" >&2
  failed=1
fi
outside=0
for name in "${resident[@]}"; do
  read -r address size < <(awk -v n="$name" '$1 == n {print $2, $3; exit}' <<<"$symbols") || true
  if [ -z "${address:-}" ]; then
    echo "FAIL: $name (preload/resident.ld) is not a function of $lib: renamed? update the list" >&2
    outside=$((outside + 1))
  elif (( 0x$address + 0x$size > window_end )); then
    printf 'FAIL: %s ends at 0x%x, past the first 64 KiB of the text (0x%x)\n' "$name" $((0x$address + 0x$size)) \
      "$window_end" >&2
    outside=$((outside + 1))
  fi
  address=
done
[ "$outside" = 0 ] || failed=1
rodata=$(readelf -SW "$lib" | awk '$2 == ".rodata.resident" {print $4; exit}')
if [ -z "$rodata" ] || (( 0x$rodata >= text_start )); then
  echo "FAIL: .rodata.resident is at '${rodata:-nowhere}', not in the first segment (before the text at $text_start)" >&2
  failed=1
fi

[ "$failed" = 0 ] && echo "ok: $lib needs only libc, binds no copy-relocated data symbol, and its" \
  "${#resident[@]} resident functions end before 0x$(printf %x "$window_end")"
exit "$failed"
