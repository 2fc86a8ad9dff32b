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
#    libc's own alias (__environ) is looked up by libc already.
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

[ "$failed" = 0 ] && echo "ok: $lib needs only libc and binds no copy-relocated data symbol"
exit "$failed"
