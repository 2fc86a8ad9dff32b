#!/usr/bin/env bash
# python.sh — CPython's own regression tests (the `test` package of Debian's
# /usr/bin/python3, from libpython3.11-testsuite) for a set of modules that lean
# on the allocator: containers, strings, codecs, pickling, compression.
# regrtest exits non-zero if any test fails, so both runs must pass; every test
# case's verdict (the -v lines) must be the same with and without the pool;
# timing lines are dropped before comparing.
source "$(dirname "$0")/lib.sh"

PYTHON=/usr/bin/python3
MODULES=(test_json test_re test_collections test_heapq test_bisect test_struct test_dict
  test_list test_set test_string test_textwrap test_difflib test_statistics test_fractions
  test_decimal test_pickle test_itertools test_array test_bytes test_unicode test_ordered_dict
  test_deque test_sort test_zlib)

if ! "$PYTHON" -c 'import test.test_json' 2>/dev/null; then
  echo "SKIP: $PYTHON has no test package: run scripts/setup (libpython3.11-testsuite)" >&2
  exit 77
fi

# regrtest's output without what changes from run to run: its work directory,
# elapsed times, load averages.
regrtest_results() {
  sed -E -e '/^== cwd: /d' -e '/^Total duration: /d' \
    -e 's/^[0-9]+:[0-9]{2}:[0-9]{2} (load avg: [0-9.]+ )?//' \
    -e 's/^(Ran [0-9]+ tests?) in [0-9.]+s$/\1/' \
    -e 's/ \(([0-9.]+ (min|sec|ms) ?)+\)//g' -e 's/ in [0-9.]+ (min|sec|ms)$//'
}

# test_json's TestTool runs `python -m json.tool` in a child and asserts that its
# stderr is empty: the child inherits TIERPOOL_STATS=1 and prints statistics.
IGNORE=(-i 'test.test_json.test_tool.TestTool.*')

# PYTHONMALLOC=malloc: CPython's own small-object allocator takes its arenas
# with mmap, so without it objects up to 512 bytes would never reach the pool.
run_both env PYTHONHASHSEED=0 PYTHONMALLOC=malloc "$PYTHON" -m test -v "${IGNORE[@]}" "${MODULES[@]}"
expect_same_stdout regrtest_results
finish
