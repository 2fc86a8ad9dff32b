#!/usr/bin/env bash
# recorded.sh — export and merge on traces the profiler recorded from
# tests/profiler/subject.c:
#   `subject stacks` at rate 1: 200 blocks of 5555 bytes from alloc_here(),
#   called by call_alloc_here(), all freed — pprof finds them under those
#   names with their exact counts, the subject's mapping carries its build-id,
#   folded and CSV agree;
#   `subject leak` at rate 1: 10 blocks of 4321 bytes never freed are in use;
#   `subject histogram` at the default rate: the pprof totals (from the merged
#   profile) equal the sums over the CSV rows (streamed from the trace by
#   another path), and the CSV has one row per sample of dump --summary;
#   merge of the two: counts add up, and the export equals the two read together.
source "$(dirname "$0")/lib.sh"
: "${SUBJECT:?}"

subject=$(readlink -f "$SUBJECT")
build_id=$(readelf -n "$subject" | awk '/Build ID/ { print $3 }')

record stacks --rate 1 -- "$SUBJECT" stacks
STACKS=$TRACE
tp pprof-stacks export --format pprof -o "$WORK/stacks.pb.gz" "$STACKS"
decode stacks "$WORK/stacks.pb.gz"
check_pprof stacks "$WORK/stacks.txt" --totals "$WORK/stacks.totals" \
  leaf.alloc_here.alloc_objects=200 leaf.alloc_here.alloc_space=1111000 leaf.alloc_here.inuse_objects=0 \
  function=call_alloc_here function=run_stacks "build_id.$subject=$build_id" "first_mapping=$subject" \
  period=1 period_type=allocations/count
tp folded-stacks export --format folded "$STACKS"
expect_eq "folded: call_alloc_here;alloc_here with 200 x 5555 bytes" \
  "$(grep -cE ';run_stacks;call_alloc_here;alloc_here 1111000$' "$WORK/folded-stacks.out")" 1
tp csv-stacks export --format csv -o "$WORK/stacks.csv" "$STACKS"
summary "$STACKS"
expect_eq "csv: rows = samples of dump --summary" "$(($(wc -l <"$WORK/stacks.csv") - 1))" "${S[samples]}"
expect_eq "csv: the 200 blocks of 5555 bytes, freed, from alloc_here <- call_alloc_here" \
  "$(grep -cE '^[0-9]+,[0-9]+,[0-9]+,5555,[0-9]+,16,[a-z]+,default,[0-9]+,1,1,[0-9]+,alloc_here;call_alloc_here;run_stacks;' \
    "$WORK/stacks.csv")" 200

# `subject leak` at rate 1: 10 blocks of 4321 bytes from leak_here(), never freed.
record leak --rate 1 -- "$SUBJECT" leak
tp pprof-leak export --format pprof -o "$WORK/leak.pb.gz" "$TRACE"
decode leak "$WORK/leak.pb.gz"
check_pprof leak "$WORK/leak.txt" leaf.leak_here.inuse_objects=10 leaf.leak_here.inuse_space=43210 \
  leaf.leak_here.alloc_objects=10
tp csv-leak export --format csv -o "$WORK/leak.csv" "$TRACE"
expect_eq "csv: the 10 leaked blocks are live rows without a lifetime" \
  "$(grep -cE '^[0-9]+,[0-9]+,[0-9]+,4321,[0-9]+,16,[a-z]+,default,[0-9]+,1,0,,leak_here;' "$WORK/leak.csv")" 10

record histogram -- "$SUBJECT" histogram
HIST=$TRACE
tp pprof-hist export --format pprof -o "$WORK/hist.pb.gz" "$HIST"
decode hist "$WORK/hist.pb.gz"
check_pprof hist "$WORK/hist.txt" --totals "$WORK/hist.totals" "build_id.$subject=$build_id" period=100
tp csv-hist export --format csv -o "$WORK/hist.csv" "$HIST"
summary "$HIST"
csv=$(csv_totals "$WORK/hist.csv")
pprof=$(cat "$WORK/hist.totals")
expect_eq "csv: rows = samples of dump --summary" "$(field rows "$csv")" "${S[samples]}"
if [ "${S[samples]}" -gt 20 ]; then
  pass_check "the histogram run was sampled (${S[samples]} samples)"
else
  fail_check "the histogram run has only ${S[samples]} samples"
fi
for t in alloc_objects alloc_space inuse_objects inuse_space; do
  expect_near "pprof $t = the CSV rows' sum" "$(field $t "$pprof")" "$(field $t "$csv")" 1
done
tp folded-hist export --format folded --value count "$HIST"
expect_eq "folded count total = pprof alloc_objects" "$(folded_total "$WORK/folded-hist.out")" \
  "$(field alloc_objects "$pprof")"

# Merge the two recordings: sums, and the same export as both read together.
tp merge merge "$STACKS" "$HIST" -o "$WORK/merged.tpt"
declare -A S1 S2
summary "$STACKS"; for k in "${!S[@]}"; do S1[$k]=${S[$k]}; done
summary "$HIST"; for k in "${!S[@]}"; do S2[$k]=${S[$k]}; done
summary "$WORK/merged.tpt"
for k in processes modules threads stacks samples frees mmap_calls histogram_allocs histogram_bytes snapshots ends; do
  expect_eq "merged recordings: $k = the sum" "${S[$k]}" "$((S1[$k] + S2[$k]))"
done
tp pprof-merged export --format pprof -o "$WORK/merged.pb.gz" "$WORK/merged.tpt"
tp pprof-both export --format pprof -o "$WORK/both.pb.gz" "$STACKS" "$HIST"
decode merged "$WORK/merged.pb.gz"
decode both "$WORK/both.pb.gz"
check_pprof merged "$WORK/merged.txt" --totals "$WORK/merged.totals"
check_pprof both "$WORK/both.txt" --totals "$WORK/both.totals"
expect_eq "pprof totals of merge(stacks, histogram) = of both together" "$(cat "$WORK/merged.totals")" \
  "$(cat "$WORK/both.totals")"
# The decoded profiles differ only in the comment naming the first trace.
if diff <(grep -v '^string_table: "tierpool export' "$WORK/merged.txt") \
  <(grep -v '^string_table: "tierpool export' "$WORK/both.txt") >/dev/null; then
  pass_check "pprof of merge(stacks, histogram) = of both together (but for the comment)"
else
  fail_check "pprof of merge(stacks, histogram) differs from both together"
fi
finish
