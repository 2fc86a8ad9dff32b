"""benchlib.common — what scripts/bench's three benchmarks share: where the
build is, the workloads' type, one measured run (tests/bench/measure), output
checks, medians and paired ratios."""

import math
import os
import statistics
import subprocess
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
BUILD = (ROOT / os.environ.get("BUILD_DIR", "build")).resolve()
BENCH = BUILD / "tests" / "bench"
WASM_DIR = BUILD / "tests" / "wasm"
WIZER = Path(os.environ.get("WIZER",
                           ROOT / "node_modules/@bytecodealliance/wizer-linux-x64/wizer")).absolute()
LIBDIR = Path("/usr/lib/x86_64-linux-gnu")
TIMEOUT_S = 600

def fnv1a(data):
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return "%016x" % h


class Workload:
    """One row: a command line (full and quick) and, if known, its output's hash."""

    def __init__(self, name, what, full, quick, expected=None, repeat=(1, 1)):
        self.name, self.what, self.full, self.quick = name, what, full, quick
        self.expected, self.repeats = expected, repeat

    def argv(self, quick):
        return [str(a) for a in (self.quick if quick else self.full)]

    def repeat(self, quick):
        return self.repeats[1 if quick else 0]

def measure(workload, lib, quick, argv=None, env=None, cwd=None):
    """Runs the workload once under lib (its command line, or argv instead, in
    env and cwd if given); returns a dict of measure's fields."""
    cmd = [BENCH / "measure", "--quiet", "--repeat", workload.repeat(quick), "--timeout", TIMEOUT_S]
    if lib:
        cmd += ["--preload", lib]
    cmd = [str(c) for c in cmd] + ["--"] + [str(a) for a in (argv or workload.argv(quick))]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd)
    fields = dict(kv.split("=", 1) for kv in proc.stdout.split() if "=" in kv)
    fields["stderr"] = proc.stderr
    if proc.returncode not in (0, 1) or "wall_ms" not in fields:
        fields["status"] = f"measure failed ({proc.returncode})"
    return fields


def check(results, workload, base="glibc"):
    """Marks runs whose output differs from the expected one (or base's) as failed."""
    reference = workload.expected
    if reference is None:
        hashes = [r["out_fnv"] for r in results.get(base, []) if r["status"] == "0"]
        if not hashes:
            hashes = [r["out_fnv"] for rs in results.values() for r in rs if r["status"] == "0"]
        reference = Counter(hashes).most_common(1)[0][0] if hashes else None
    for name, runs in results.items():
        for r in runs:
            if r["status"] == "0" and reference and r["out_fnv"] != reference:
                r["status"] = "wrong output"
                report_failure(workload, name, r)


def report_failure(workload, alloc, r):
    print(f"\n*** FAIL: {workload.name} under {alloc}: {r['status']}", file=sys.stderr)
    tail = r["stderr"].strip().splitlines()[-20:]
    for line in tail:
        print(f"    {line}", file=sys.stderr)


def summary(runs):
    """Medians of a list of runs, or the first failure."""
    for r in runs:
        if r["status"] != "0":
            return {"fail": r["status"]}
    n = [int(r["runs"]) for r in runs]
    return {
        "wall": statistics.median(float(r["wall_ms"]) for r in runs),
        "rss": statistics.median(int(r["maxrss_kib"]) / 1024 for r in runs),
        "cpu": statistics.median((float(r["user_ms"]) + float(r["sys_ms"])) / k
                                 for r, k in zip(runs, n)),
        "faults": statistics.median(int(r["minflt"]) / k / 1000 for r, k in zip(runs, n)),
    }


# A run's measures, by the keys of summary().
MEASURES = {
    "wall": lambda r: float(r["wall_ms"]),
    "rss": lambda r: int(r["maxrss_kib"]) / 1024,
    "cpu": lambda r: (float(r["user_ms"]) + float(r["sys_ms"])) / int(r["runs"]),
    "faults": lambda r: int(r["minflt"]) / int(r["runs"]) / 1000,
}


def paired_ratios(runs, base_runs):
    """{key: the median over the rounds of each round's ratio runs/base_runs}.
    A round's runs are adjacent in time, so its ratio cancels the machine's
    slow swings in load, which move the medians of both by several percent
    here; rounds with a failed run are left out."""
    pairs = [(r, b) for r, b in zip(runs, base_runs) if r["status"] == "0" and b["status"] == "0"]
    return {key: statistics.median(get(r) / get(b) for r, b in pairs)
            for key, get in MEASURES.items()} if pairs else {}


def median_interval(values, level=0.90):
    """A distribution-free interval for the median of what values were drawn
    from: (the k-th smallest, the k-th largest, its coverage), k the largest
    whose coverage, 1 - 2·P(Binomial(n, 1/2) < k), is at least level; None
    when there are too few values for level (fewer than 5 at 0.90)."""
    xs, n = sorted(values), len(values)

    def coverage(k):
        return 1 - 2 * sum(math.comb(n, i) for i in range(k)) / 2 ** n
    k = 0
    while k + 1 <= n // 2 and coverage(k + 1) >= level:
        k += 1
    return (xs[k - 1], xs[n - k], coverage(k)) if k else None


def paired_intervals(runs, base_runs):
    """{key: median_interval of the rounds' ratios runs/base_runs}, for the
    ratios paired_ratios gives; keys without one (too few rounds) are left out."""
    pairs = [(r, b) for r, b in zip(runs, base_runs) if r["status"] == "0" and b["status"] == "0"]
    out = {key: median_interval([get(r) / get(b) for r, b in pairs]) for key, get in MEASURES.items()}
    return {key: i for key, i in out.items() if i}


def paired_difference(runs, base_runs, key):
    """(median, median_interval) over the rounds of each round's runs - base_runs
    in MEASURES[key]; None without a pair."""
    get = MEASURES[key]
    diffs = [get(r) - get(b) for r, b in zip(runs, base_runs) if r["status"] == "0" and b["status"] == "0"]
    return (statistics.median(diffs), median_interval(diffs)) if diffs else None


def interval_text(interval):
    """"0.97–1.03 (94%)", or — without one."""
    return f"{interval[0]:.3f}–{interval[1]:.3f} ({interval[2]:.0%})" if interval else "—"


def verdict(interval, limit):
    """An acceptance line "ratio <= limit" against the interval of a median
    ratio: held (all of it within), missed (all beyond), or open."""
    if not interval:
        return "open (too few rounds)"
    lo, hi, _ = interval
    return "held" if hi <= limit else "**missed**" if lo > limit else "open"


def with_ratios(results, base):
    """{name: summary, with "ratio": paired ratios to base's runs and
    "interval": their median_intervals (not for base)}."""
    stats = {}
    for name, runs in results.items():
        stats[name] = summary(runs)
        if name != base and "fail" not in stats[name]:
            stats[name]["ratio"] = paired_ratios(runs, results[base])
            stats[name]["interval"] = paired_intervals(runs, results[base])
    return stats


def cell(value, ratio, fmt):
    """value, and its ratio unless ratio is None."""
    return fmt % value + (" (%.2f×)" % ratio if ratio else "")


def clean_env():
    """The environment without the profilers' own settings: each mode sets its own."""
    return {k: v for k, v in os.environ.items()
            if not k.startswith(("TIERPOOL_PROFILE", "TIERPOOL_TRACE", "TIERPOOL_SAMPLE_",
                                 "TIERPOOL_VALIDATE"))
            and k not in ("MALLOC_CONF", "LD_PRELOAD", "DUMP_HEAPTRACK_OUTPUT")}


def command_text(workload, quick):
    """The workload's command line as the reports show it: files of the
    repository by their names."""
    return " ".join(Path(a).name if a.startswith(str(ROOT)) else a for a in workload.argv(quick))
