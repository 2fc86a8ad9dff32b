#!/usr/bin/env bash
# helper_threads.sh — what the library adds to a process (its own threads:
# the recorder's writer, the pool's background thread; its descriptors) changes
# nothing the program can see.
# 1. A process ends when its last thread does: glibc ends a process whose last thread calls pthread_exit with exit(0), but
#   only when no other thread is left: the library's helper threads (the
#   recorder's writer, the pool's background thread) must not keep it alive.
#   main-thread-exit: main allocates 100 x 9011 B and calls pthread_exit.
#   fork-thread-exit: a thread forks; the child's only thread allocates
#                     100 x 9013 B and returns (the child's writer is new).
#   Each must end with status 0, recorded traces complete (an End record).
# 2. The trace's descriptor is not the program's to lose: close-fds closes it and
#    opens a file of its own, likely under the same number, and changes
#    directory; that file holds only what the program wrote, and the trace goes
#    on (opened again by name), also when TIERPOOL_TRACE named it relatively.
# 3. Entering a user namespace wants a single-threaded caller: unshare(1), and
#    the subject's unshare-user (allocations before and after), recorded or
#    with the background thread, work as without the library; the writer
#    comes back and the trace is complete.  Skipped where the system allows
#    no user namespaces.
# 4. The library's own descriptors (the trace, libunwind's pipe) sit high:
#    the first open() of a recorded program gives the number it gives without
#    the library; none of the helpers' takes a low number even for a moment.
# 5. A child made without fork's handlers (_Fork, as a raw clone) must not
#    write the parent's events into the parent's trace a second time, at its
#    exit or its exec, nor into a trace of its own when the parent (a forked
#    child) has not opened its trace yet.
# 6. A trace written into a pipe whose reader went away stops with a message;
#    SIGPIPE, which would kill the program in the thread writing at exit, is
#    not raised on the program's behalf.
# 7. Threads that allocate only big blocks (no thread cache of their own) have
#    their recorder counts retired at their exit: big-threads runs 2 x 500 of
#    them, each a 1 MiB malloc and free, and the second 500 must leave less than
#    1 MiB of RSS behind (they left 4 MiB); the histogram counts all 1000.
# 8. Without /proc (a chroot, a sandbox; here an empty tmpfs over it in a user
#    and mount namespace) the helpers still learn that they are the last
#    threads: main-thread-exit, recorded and with the background thread, ends
#    (it hung for ever, its defunct main beside a helper blocking every
#    signal).  Skipped with 3. where there are no user namespaces.
# 9. Thread ids do not run out: many-threads starts 66,000 threads one after
#    another, each allocating once, recorded at rate 1; every sample names a
#    thread with its Thread record (past 65,535 they said 0, unrecorded).
source "$(dirname "$0")/lib.sh"

# ends NAME CMD...: CMD ends within 30 s with status 0 (then SIGKILL: a
# process left with only a helper, which blocks every signal, ignores SIGTERM).
ends() {
  local name=$1 rc=0
  shift
  (cd "$WORK" && timeout -k 2 30 "$@") </dev/null >"$WORK/$name.out" 2>"$WORK/$name.err" || rc=$?
  if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
    fail_check "$name: still running after 30 s (killed)"
    show "$WORK/$name.err"
  else
    expect_status "$name" 0 "$rc"
  fi
}

# one_trace NAME WHAT FACTS...: the record run NAME named one trace, with FACTS.
one_trace() {
  local name=$1 what=$2
  shift 2
  traces_in "$WORK" "$WORK/$name.err"
  if [ ${#TRACES[@]} -eq 1 ]; then
    trace_check "$what" facts "${TRACES[0]}" "$@"
  else
    fail_check "$name: expected one trace, record named ${#TRACES[@]}"
    show "$WORK/$name.err"
  fi
}

ends main-thread-exit-recorded "$TIERPOOL_CLI" record -o "$WORK/main-%p.tpt" -- "$SUBJECT" main-thread-exit
one_trace main-thread-exit-recorded "main-thread-exit: the trace is complete" end=1 bucket:9011=100

ends fork-thread-exit-recorded "$TIERPOOL_CLI" record -o "$WORK/fork-%p.tpt" -- "$SUBJECT" fork-thread-exit
traces_in "$WORK" "$WORK/fork-thread-exit-recorded.err"
if [ ${#TRACES[@]} -eq 2 ]; then
  pass_check "fork-thread-exit: two traces"
  found=0
  for trace in "${TRACES[@]}"; do
    "$TRACE_CHECK" facts "$trace" end=1 bucket:9013=100 >/dev/null 2>&1 && found=$((found + 1))
  done
  if [ "$found" -eq 1 ]; then
    pass_check "fork-thread-exit: the child's trace is complete, with its 100 x 9013 B"
  else
    fail_check "fork-thread-exit: $found traces have End and 100 x 9013 B (want the child's alone)"
  fi
else
  fail_check "fork-thread-exit: expected two traces, record named ${#TRACES[@]}"
  show "$WORK/fork-thread-exit-recorded.err"
fi

ends main-thread-exit-background env TIERPOOL_BACKGROUND_THREAD=on "$TIERPOOL_CLI" run -- "$SUBJECT" main-thread-exit

ends close-fds "$TIERPOOL_CLI" record -o "$WORK/close-fds-%p.tpt" -- "$SUBJECT" close-fds "$WORK/mine.txt"
if [ "$(cat "$WORK/mine.txt" 2>/dev/null)" = mine ]; then
  pass_check "close-fds: the program's file holds what it wrote, nothing else"
else
  fail_check "close-fds: the program's file holds $(wc -c <"$WORK/mine.txt" 2>/dev/null || echo no) bytes, not 'mine'"
fi
one_trace close-fds "close-fds: the trace goes on" end=1 bucket:9049=100 bucket:10500=100
if grep -q '^tierpool: profiler' "$WORK/close-fds.err"; then
  fail_check "close-fds: the profiler complained: $(grep '^tierpool: profiler' "$WORK/close-fds.err" | head -n 1)"
fi
ends close-fds-relative env LD_PRELOAD="$TIERPOOL_LIB" TIERPOOL_PROFILE=1 TIERPOOL_TRACE=close-rel.tpt \
  "$SUBJECT" close-fds "$WORK/mine-rel.txt"
[ "$(cat "$WORK/mine-rel.txt" 2>/dev/null)" = mine ] || fail_check "close-fds-relative: the program's file holds more than 'mine'"
trace_check "close-fds-relative: the trace named relatively goes on" facts "$WORK/close-rel.tpt" end=1 \
  bucket:9049=100 bucket:10500=100

expected_fd=$("$SUBJECT" first-fd)
ends first-fd env LD_PRELOAD="$TIERPOOL_LIB" TIERPOOL_PROFILE=1 TIERPOOL_TRACE="$WORK/first-fd.tpt" "$SUBJECT" first-fd
got_fd=$(cat "$WORK/first-fd.out")
if [ -n "$expected_fd" ] && [ "$got_fd" = "$expected_fd" ]; then
  pass_check "first-fd: open() gives $got_fd recorded, as without the library"
else
  fail_check "first-fd: open() gives '$got_fd' recorded, '$expected_fd' without the library"
fi
trace_check "first-fd: the trace is complete" facts "$WORK/first-fd.tpt" end=1

# Nor do they take a low number for a moment: the helpers' beat (10 a second
# with the background thread) read /proc/self/stat by opening it, and a
# daemon's close(0) + open("/dev/null") then got another number.
ends reopen-stdin env LD_PRELOAD="$TIERPOOL_LIB" TIERPOOL_PROFILE=1 TIERPOOL_BACKGROUND_THREAD=on \
  TIERPOOL_TRACE="$WORK/reopen-stdin.tpt" "$SUBJECT" reopen-stdin
grep -q '^0 of' "$WORK/reopen-stdin.out" || show "$WORK/reopen-stdin.out"

for how in exit exec; do
  ends "unforked-child-$how" env LD_PRELOAD="$TIERPOOL_LIB" TIERPOOL_PROFILE=1 \
    TIERPOOL_TRACE="$WORK/unforked-$how.tpt" "$SUBJECT" unforked-child "$how"
  trace_check "unforked-child $how: the parent's 100 x 9059 B counted once, one End" facts \
    "$WORK/unforked-$how.tpt" end=1 bucket:9059=100
done
# The same in a forked child before it opened its trace: the _Fork child must
# not open one of its own (the forked child's events twice, a second End).
mkdir "$WORK/unforked-in-fork"
ends unforked-child-in-fork-child env LD_PRELOAD="$TIERPOOL_LIB" TIERPOOL_PROFILE=1 \
  TIERPOOL_TRACE="$WORK/unforked-in-fork/t-%p.tpt" "$SUBJECT" unforked-child in-fork-child
traces=("$WORK"/unforked-in-fork/t-*.tpt)
found=0
for trace in "${traces[@]}"; do
  "$TRACE_CHECK" facts "$trace" end=1 bucket:9059=100 >/dev/null 2>&1 && found=$((found + 1))
done
if [ ${#traces[@]} -eq 2 ] && [ "$found" -eq 1 ]; then
  pass_check "unforked-child in-fork-child: two traces (parent, forked child), the child's 100 x 9059 B once"
else
  fail_check "unforked-child in-fork-child: ${#traces[@]} traces (want 2), $found with End and 100 x 9059 B (want 1)"
fi

mkfifo "$WORK/trace.fifo"
timeout 30 bash -c 'exec 3<"$1"; head -c 1 <&3 >/dev/null' reader "$WORK/trace.fifo" & # never left waiting
ends fifo-reader-gone env LD_PRELOAD="$TIERPOOL_LIB" TIERPOOL_PROFILE=1 TIERPOOL_TRACE="$WORK/trace.fifo" \
  "$SUBJECT" histogram
wait
if grep -q 'trace stops here' "$WORK/fifo-reader-gone.err"; then
  pass_check "fifo-reader-gone: the profiler says the trace stopped"
else
  fail_check "fifo-reader-gone: no message that the trace stopped"
  show "$WORK/fifo-reader-gone.err"
fi

if ! unshare -U true 2>/dev/null; then
  echo "skip: no user namespaces here (unshare -U true fails without the library)"
else
  ends unshare-recorded "$TIERPOOL_CLI" record -o "$WORK/unshare-%p.tpt" -- unshare -U true
  ends unshare-background env TIERPOOL_BACKGROUND_THREAD=on "$TIERPOOL_CLI" run -- unshare -U true
  ends unshare-user-recorded "$TIERPOOL_CLI" record -o "$WORK/unshare-user-%p.tpt" -- "$SUBJECT" unshare-user
  one_trace unshare-user-recorded "unshare-user: the trace goes on in the namespace" end=1 \
    bucket:9029=100 bucket:10250=100
  without_proc='mount -t tmpfs none /proc && exec "$@"'
  ends no-proc-recorded unshare -rm sh -c "$without_proc" sh env LD_PRELOAD="$TIERPOOL_LIB" TIERPOOL_PROFILE=1 \
    TIERPOOL_TRACE="$WORK/no-proc.tpt" "$SUBJECT" main-thread-exit
  trace_check "no-proc: main-thread-exit's trace is complete" facts "$WORK/no-proc.tpt" end=1 bucket:9011=100
  ends no-proc-background unshare -rm sh -c "$without_proc" sh env LD_PRELOAD="$TIERPOOL_LIB" \
    TIERPOOL_BACKGROUND_THREAD=on "$SUBJECT" main-thread-exit
fi
ends big-threads "$TIERPOOL_CLI" record -o "$WORK/big-%p.tpt" -- "$SUBJECT" big-threads
one_trace big-threads "big-threads: threads of big blocks retired, all counted" end=1 bucket:1048576=1000

ends many-threads "$TIERPOOL_CLI" record --rate 1 -o "$WORK/many-%p.tpt" -- "$SUBJECT" many-threads 66000
one_trace many-threads "many-threads: 66,001 threads recorded, every sample names its own" end=1 threads=66001 \
  unnamed-samples=0 bucket:48=66000

finish
