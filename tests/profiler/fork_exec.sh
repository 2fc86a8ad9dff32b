#!/usr/bin/env bash
# fork_exec.sh — every process of a recorded run leaves a trace of its own.
#   fork: the parent allocates 100 x 5001 B, its child 200 x 6007 B: two traces,
#         the child's naming the parent as ppid, each counting only its own
#         allocations (the child's histogram starts at the fork), its thread 1
#         the child itself (tid = pid), not the parent's thread.
#   exec: the program allocates 100 x 7003 B and execs itself, which allocates
#         100 x 8009 B: two traces of one pid, the second named NAME.1; the
#         first image's ends with its snapshot (live, resident, RSS), taken
#         as at an exit (there was none: the image lived under a second),
#         and an Exec record: the report says the image was exec'd (it said
#         "no end record", as for a process killed).
#   exec-busy: an exec held 0.5 s at its entry (by strace) while another
#         thread allocates without pause, each allocation sampled: the
#         writer's beats in between wrote after the Exec record, and the
#         first image read as killed ("no end record"); they wait now.
#   exec-fails: an exec that fails (no such file) and the program goes on,
#         allocates and exits: one trace, the Exec record in it and a second
#         for the failure, and the report says ended, not exec'd.
#   exec-fails-killed: the same exec, and the program killed at once: the
#         second Exec record (the failure, with its errno) is there before
#         any other record could be, and the report says killed, not exec'd.
#   exec-bad-path: an exec of a name at an unreadable address fails with
#         EFAULT, as without the library (the Exec record read the name and
#         crashed the program); the record names no file.
#   execveat: the exec made through execveat (glibc ≥ 2.34) is flushed and
#         recorded as execve's is (it was not seen: the image read as killed).
#   exec-cancelled: a thread with a cancel pending calls an exec that fails;
#         the flush's write acted on the cancel, the thread ended holding the
#         writer's lock, and the exit's flush waited for it for ever.
#   spawn into a FIFO: a child's exec'd image opened the parent's pipe and
#         wrote its trace in between the parent's; now it records none.
source "$(dirname "$0")/lib.sh"

# pid_of TRACE: Process.pid and ppid, from the dump's process line.
pid_of() {
  "$TIERPOOL_CLI" dump "$1" | sed -nE 's/^process pid=([0-9]+) ppid=([0-9]+) .*/\1 \2/p' | head -n 1
}

# expect_execd NAME TRACE: TRACE's report says its image was exec'd (as /proc/self/exe).
expect_execd() {
  "$TIERPOOL_CLI" report "$2" >"$WORK/$1-report.out" 2>&1
  if grep -q ", exec'd /proc/self/exe$" "$WORK/$1-report.out"; then
    pass_check "$1: the first image's report says it was exec'd"
  else
    fail_check "$1: the first image's report does not say it was exec'd"
    show "$WORK/$1-report.out" 4
  fi
}

# Every allocation sampled: the forking thread has its Thread record before the
# fork (at 1%, neither process sampled anything in about one run of twenty).
record_run fork --rate 1 -- "$SUBJECT" fork
expect_status "record subject fork" 0 "$RC"
if [ ${#TRACES[@]} -eq 2 ]; then
  pass_check "fork: two traces"
  read -r pid0 ppid0 < <(pid_of "${TRACES[0]}")
  read -r pid1 _ < <(pid_of "${TRACES[1]}")
  parent=${TRACES[0]} child=${TRACES[1]} parent_pid=$pid0
  if [ "$ppid0" = "$pid1" ]; then parent=${TRACES[1]} child=${TRACES[0]} parent_pid=$pid1; fi
  trace_check "fork: the parent's trace" facts "$parent" exe=subject argv1=fork end=1 bucket:5001=100 bucket:6007=0
  trace_check "fork: the child's trace" facts "$child" exe=subject ppid="$parent_pid" end=1 bucket:6007=200 \
    bucket:5001=0
  # The forking thread is the child's main thread: its Thread record has the child's tid.
  read -r child_pid _ < <(pid_of "$child")
  child_tid=$("$TIERPOOL_CLI" dump "$child" | sed -nE 's/^thread id=1 tid=([0-9]+) .*/\1/p' | head -n 1)
  if [ -n "$child_pid" ] && [ "$child_tid" = "$child_pid" ]; then
    pass_check "fork: the child's thread 1 is the child ($child_tid)"
  else
    fail_check "fork: the child's thread 1 has tid '$child_tid', the child is $child_pid"
  fi
else
  fail_check "fork: expected two traces, record named ${#TRACES[@]}: ${TRACES[*]}"
  show "$WORK/fork.err"
fi

record_run exec -- "$SUBJECT" exec
expect_status "record subject exec" 0 "$RC"
if [ ${#TRACES[@]} -eq 2 ] && [ "${TRACES[1]}" = "${TRACES[0]}.1" ]; then
  pass_check "exec: two traces, the exec'd image's named .1"
  read -r pid0 _ < <(pid_of "${TRACES[0]}")
  expect_summary "${TRACES[0]}" 'truncated == 0' 'processes == 1' 'modules > 0' 'snapshots >= 1' 'execs == 1' \
    'ends == 0'
  expect_summary "${TRACES[1]}" 'execs == 0' 'ends == 1'
  expect_execd exec "${TRACES[0]}"
  if "$TIERPOOL_CLI" export --format json "${TRACES[@]}" | python3 -c 'import json, sys; p = json.load(sys.stdin)["processes"]; sys.exit(not ([x["exec"] for x in p] == ["/proc/self/exe", None]))'; then
    pass_check "exec: export json says which image an exec replaced"
  else
    fail_check "exec: export json's processes[].exec is not [/proc/self/exe, null]"
  fi
  trace_check "exec: the first image's trace" facts "${TRACES[0]}" exe=subject argv1=exec pid="$pid0"
  trace_check "exec: the exec'd image's trace" facts "${TRACES[1]}" exe=subject argv1=after-exec pid="$pid0" end=1 \
    bucket:8009=100 bucket:7003=0
else
  fail_check "exec: expected NAME and NAME.1, record named ${#TRACES[@]}: ${TRACES[*]}"
  show "$WORK/exec.err"
fi
# strace is installed by scripts/setup; a system that forbids ptrace has no
# way to hold an exec at its entry.
if ! strace -f -qq -o /dev/null -e trace=execve true 2>/dev/null; then
  echo "skip: exec-busy: strace cannot trace here (strace -f true fails)"
else
  RECORD_UNDER=(strace -f -qq -o /dev/null -e trace=execve -e inject=execve:delay_enter=500000)
  record_run exec-busy --rate 1 -- "$SUBJECT" exec-busy
  RECORD_UNDER=()
  expect_status "record subject exec-busy (under strace)" 0 "$RC"
  if [ ${#TRACES[@]} -eq 2 ]; then
    expect_summary "${TRACES[0]}" 'truncated == 0' 'execs == 1' 'ends == 0'
    "$TIERPOOL_CLI" dump "${TRACES[0]}" >"$WORK/exec-busy.dump" 2>&1
    if [[ $(tail -n 1 "$WORK/exec-busy.dump") = "exec time_us="* ]]; then
      pass_check "exec-busy: the Exec record is the first image's last"
    else
      fail_check "exec-busy: records follow the Exec record: $(tail -n 1 "$WORK/exec-busy.dump" | cut -c1-80)"
    fi
    expect_execd exec-busy "${TRACES[0]}"
  else
    fail_check "exec-busy: expected two traces, record named ${#TRACES[@]}: ${TRACES[*]}"
    show "$WORK/exec-busy.err"
  fi
fi

record_run exec-fails -- "$SUBJECT" exec-fails
expect_status "record subject exec-fails" 0 "$RC"
if [ ${#TRACES[@]} -eq 1 ]; then
  expect_summary "${TRACES[0]}" 'execs == 2' 'ends == 1'
  trace_check "exec-fails: the program's trace" facts "${TRACES[0]}" end=1 bucket:4500=100 bucket:7027=100
  if "$TIERPOOL_CLI" report --json "${TRACES[0]}" | python3 -c 'import json, sys; p = json.load(sys.stdin)["processes"][0]; sys.exit(not (p["exec"] is None and p["ended"]))'; then
    pass_check "exec-fails: the report says ended, no exec"
  else
    fail_check "exec-fails: the report calls the process exec'd"
  fi
else
  fail_check "exec-fails: expected one trace, record named ${#TRACES[@]}: ${TRACES[*]}"
  show "$WORK/exec-fails.err"
fi

record_run exec-fails-killed -- "$SUBJECT" exec-fails-killed
expect_status "record subject exec-fails-killed" 137 "$RC"
if [ ${#TRACES[@]} -eq 1 ]; then
  expect_summary "${TRACES[0]}" 'execs == 2' 'ends == 0'
  "$TIERPOOL_CLI" dump "${TRACES[0]}" >"$WORK/exec-fails-killed.dump" 2>&1
  if [[ $(tail -n 1 "$WORK/exec-fails-killed.dump") =~ ^exec\ time_us=[0-9]+\ path=\"\"\ error=2$ ]]; then
    pass_check "exec-fails-killed: the trace ends with the failure's Exec record (ENOENT)"
  else
    fail_check "exec-fails-killed: the last record is not the failure's: $(tail -n 1 "$WORK/exec-fails-killed.dump" | cut -c1-80)"
  fi
  if "$TIERPOOL_CLI" report --json "${TRACES[0]}" | python3 -c 'import json, sys; p = json.load(sys.stdin)["processes"][0]; sys.exit(not (p["exec"] is None and not p["ended"]))'; then
    pass_check "exec-fails-killed: the report says killed, no exec"
  else
    fail_check "exec-fails-killed: the report calls the process exec'd, or ended"
  fi
else
  fail_check "exec-fails-killed: expected one trace, record named ${#TRACES[@]}: ${TRACES[*]}"
  show "$WORK/exec-fails-killed.err"
fi

record_run exec-bad-path -- "$SUBJECT" exec-bad-path
expect_status "record subject exec-bad-path" 0 "$RC"
if [ ${#TRACES[@]} -eq 1 ]; then
  expect_summary "${TRACES[0]}" 'execs == 2' 'ends == 1'
  "$TIERPOOL_CLI" dump "${TRACES[0]}" >"$WORK/exec-bad-path.dump" 2>&1
  if grep -q '^exec time_us=[0-9]* path=""$' "$WORK/exec-bad-path.dump" &&
    grep -q '^exec time_us=[0-9]* path="" error=14$' "$WORK/exec-bad-path.dump"; then
    pass_check "exec-bad-path: the Exec record names no file; the failure's says EFAULT"
  else
    fail_check "exec-bad-path: the Exec record names a file, or is missing"
  fi
else
  fail_check "exec-bad-path: expected one trace, record named ${#TRACES[@]}: ${TRACES[*]}"
  show "$WORK/exec-bad-path.err"
fi

record_run execveat -- "$SUBJECT" execveat
expect_status "record subject execveat" 0 "$RC"
if [ ${#TRACES[@]} -eq 2 ] && [ "${TRACES[1]}" = "${TRACES[0]}.1" ]; then
  expect_summary "${TRACES[0]}" 'truncated == 0' 'execs == 1' 'ends == 0'
  expect_execd execveat "${TRACES[0]}"
  trace_check "execveat: the first image's trace" facts "${TRACES[0]}" argv1=execveat bucket:7003=100
  trace_check "execveat: the exec'd image's trace" facts "${TRACES[1]}" argv1=after-exec end=1 bucket:8009=100
else
  fail_check "execveat: expected NAME and NAME.1, record named ${#TRACES[@]}: ${TRACES[*]}"
  show "$WORK/execveat.err"
fi

RECORD_UNDER=(timeout 30)
record_run exec-cancelled -- "$SUBJECT" exec-cancelled
RECORD_UNDER=()
if [ "$RC" -eq 124 ]; then
  fail_check "exec-cancelled: still running after 30 s (killed)"
else
  expect_status "record subject exec-cancelled" 0 "$RC"
fi
if [ ${#TRACES[@]} -eq 1 ]; then
  expect_summary "${TRACES[0]}" 'execs == 2' 'ends == 1'
  trace_check "exec-cancelled: the trace to the exit" facts "${TRACES[0]}" end=1 bucket:7057=100 bucket:9067=100
else
  fail_check "exec-cancelled: expected one trace, record named ${#TRACES[@]}: ${TRACES[*]}"
  show "$WORK/exec-cancelled.err"
fi

# record_into_fifo NAME MODE: `tierpool record -o FIFO -- subject MODE`, a
# reader copying the pipe to $WORK/NAME.tpt; its status checked.
record_into_fifo() {
  local name=$1 mode=$2 fifo=$WORK/$1.fifo reader rc=0
  mkfifo "$fifo"
  cat "$fifo" >"$WORK/$name.tpt" &
  reader=$!
  # The reader must be at its open (waiting for a writer) before the recording
  # starts: a pipe nobody reads yet is one the recorder writes nothing to.
  for _ in $(seq 500); do
    [ "$(cat "/proc/$reader/wchan" 2>/dev/null)" = wait_for_partner ] && break
    sleep 0.01
  done
  timeout 30 "$TIERPOOL_CLI" record -o "$fifo" -- "$SUBJECT" "$mode" >"$WORK/$name.out" 2>"$WORK/$name.err" || rc=$?
  wait "$reader"
  expect_status "record -o FIFO of subject $mode, within 30 s" 0 "$rc"
}

# The trace into a pipe (-o FIFO) through an exec: the reader has the first
# image's trace; nothing waits for a reader that is gone (the exec'd image's
# open did, for ever).
record_into_fifo fifo exec
expect_summary "$WORK/fifo.tpt" 'processes >= 1' 'truncated == 0'
# The exec'd image finds the reader still there (its trace follows the first
# in the stream) or gone (and says it records none): either, never a wait.
processes=$("$TIERPOOL_CLI" dump --summary "$WORK/fifo.tpt" | sed -nE 's/.* processes=([0-9]+) .*/\1/p')
if [ "$processes" = 2 ] || grep -q "is a pipe nobody reads; pid [0-9]* records none" "$WORK/fifo.err"; then
  pass_check "the exec'd image's trace follows in the pipe, or it says it records none ($processes process(es))"
else
  fail_check "the exec'd image neither wrote into the pipe nor said why ($processes process(es))"
  show "$WORK/fifo.err"
fi

# A child's exec'd image (fork, exec) while the parent writes into the pipe:
# the stream holds the parent's trace alone, the child's image says it records none.
record_into_fifo spawn-fifo spawn
expect_summary "$WORK/spawn-fifo.tpt" 'processes == 1' 'ends == 1' 'truncated == 0'
if grep -q "spawn-fifo.fifo carries another process's trace; pid [0-9]* records none" "$WORK/spawn-fifo.err"; then
  pass_check "spawn into a FIFO: the child's image says it records none"
else
  fail_check "spawn into a FIFO: the child's image did not say it records none"
  show "$WORK/spawn-fifo.err"
fi
finish
