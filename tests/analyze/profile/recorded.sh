#!/usr/bin/env bash
# recorded.sh — the profile of real recorded traces: `subject histogram` at 5%,
# `subject fork` (two processes, two traces) and `subject lifetimes` with every
# allocation sampled.  Loaded into one profile (check_profile totals), the
# traces give the same counts as `tierpool dump --summary` summed over them:
# processes, samples, frees, mmap calls, the exact histogram, snapshots and the
# End records; and every sample lands in a site.
source "$(dirname "$0")/../lib.sh"
: "${SUBJECT:?}" "${CHECK_PROFILE:?}"

keys=(processes samples frees mmap_calls histogram_allocs histogram_frees histogram_bytes snapshots ends
  end_samples end_dropped end_allocations)

# compare NAME TRACE...: the profile's totals against dump --summary's, summed.
compare() {
  local name=$1 kv trace
  shift
  declare -A want=() got=()
  for trace in "$@"; do
    for kv in $("$TIERPOOL_CLI" dump --summary "$trace"); do
      [[ $kv = *=* ]] && want[${kv%%=*}]=$((${want[${kv%%=*}]:-0} + ${kv#*=}))
    done
  done
  local rc=0
  "$CHECK_PROFILE" totals "$@" >"$WORK/$name.totals" 2>"$WORK/$name.err" || rc=$?
  if [ "$rc" -ne 0 ]; then
    fail_check "$name: check_profile totals exited with $rc"
    show "$WORK/$name.err"
    return
  fi
  for kv in $(cat "$WORK/$name.totals"); do got[${kv%%=*}]=${kv#*=}; done
  local key bad=()
  for key in "${keys[@]}"; do
    [ "${got[$key]:-x}" = "${want[$key]:-y}" ] || bad+=("$key: profile ${got[$key]:-?}, dump ${want[$key]:-?}")
  done
  if [ ${#bad[@]} -eq 0 ]; then
    pass_check "$name: profile totals = dump --summary (samples=${got[samples]} histogram_allocs=${got[histogram_allocs]} processes=${got[processes]})"
  else
    fail_check "$name: ${bad[*]}"
  fi
  if [ "${got[site_samples]}" = "${got[samples]}" ] && [ "${got[samples]}" -gt 0 ] &&
    [ "${got[module_frames]}" -gt 0 ] && [ "${got[module_frames]}" = "${got[frames]}" ]; then
    pass_check "$name: every sample in a site, every frame in a module (${got[sites]} sites, ${got[stacks]} stacks, ${got[frames]} frames, ${got[modules]} modules)"
  else
    fail_check "$name: $(cat "$WORK/$name.totals")"
  fi
}

record histogram --rate 0.05 --seed 42 -- "$SUBJECT" histogram
compare histogram "${TRACES[@]}"
record fork --rate 0.5 --seed 7 -- "$SUBJECT" fork
if [ ${#TRACES[@]} -eq 2 ]; then
  pass_check "fork: two traces"
  compare fork "${TRACES[@]}"
else
  fail_check "fork: ${#TRACES[@]} traces"
fi
record lifetimes --rate 1 -- "$SUBJECT" lifetimes
compare lifetimes "${TRACES[@]}"
finish
