"""benchlib.profiling — the profiling benchmark of scripts/bench: the
workloads under tierpool with the profiler off (run) and on (record), under
heaptrack and under jemalloc's profiler; see scripts/bench for what it reports."""

import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from benchlib.common import (BENCH, BUILD, LIBDIR, check, clean_env, command_text, cell, fnv1a,
                             interval_text, measure, paired_intervals, paired_ratios,
                             report_failure, summary, verdict)

PROFILED = ("wasmtime-", "node-", "churn-st", "churn-mt")  # names, or prefixes ending in -
MODES = ["run", "record", "heaptrack", "jemalloc-prof"]
TIERPOOL_CLI = BUILD / "analyze" / "tierpool"
JEMALLOC = LIBDIR / "libjemalloc.so.2"
# Limits of record/run: the acceptance number on the Wasm workloads, the target on churn.
RECORD_LIMIT = {"churn-": 1.10}
RECORD_LIMIT_DEFAULT = 1.02
TRACE_LIMIT = 100_000  # trace bytes per million allocations (in bold above)
# What heaptrack prints on stdout around the program's output.
HEAPTRACK_HEAD = (b"heaptrack output will be written to ", None,
                  b"starting application, this might take some time...")
HEAPTRACK_TAIL = b"Heaptrack finished! Now run the following to investigate the data:\n"


def profiled(w):
    return any(w.name == n or (n.endswith("-") and w.name.startswith(n)) for n in PROFILED)


def record_limit(w):
    return next((v for k, v in RECORD_LIMIT.items() if w.name.startswith(k)), RECORD_LIMIT_DEFAULT)

def jemalloc_conf(tmp):
    return f"prof:true,prof_final:true,prof_prefix:{tmp}/jeprof"


def unavailable_modes(lib):
    """{mode: why it cannot run} for the modes this machine cannot run."""
    why = {}
    if not lib or not lib.exists():
        why["run"] = why["record"] = "no libtierpool.so"
    if not shutil.which("heaptrack"):
        why["heaptrack"] = "heaptrack not installed: run scripts/setup"
    if not JEMALLOC.exists():
        why["jemalloc-prof"] = f"no {JEMALLOC}: run scripts/setup"
        return why
    # Does this jemalloc have a profiler?  Without one it warns "Invalid conf
    # pair: prof:true" and writes no profile at exit.
    with tempfile.TemporaryDirectory(prefix="tierpool-bench-") as tmp:
        env = clean_env()
        env.update(LD_PRELOAD=str(JEMALLOC), MALLOC_CONF=jemalloc_conf(tmp))
        proc = subprocess.run([str(BENCH / "churn_st"), "1000", "100"], env=env, cwd=tmp,
                              capture_output=True, text=True)
        wrote = any(Path(tmp).glob("jeprof*.heap"))
    if "Invalid conf" in proc.stderr or not wrote:
        why["jemalloc-prof"] = "Debian's jemalloc is built without profiling"
        print(f"bench: jemalloc's profiler does not work (exit {proc.returncode}, "
              f"profile written: {wrote}): {proc.stderr.strip()[:300]}", file=sys.stderr)
    return why


def check_record(tmp, res, cli):
    """Sizes and allocation counts of the traces a record run wrote, into res;
    returns a failure, or None."""
    traces = sorted(tmp.glob("t-*.tpt*"))
    if not traces:
        return "no trace written"
    res["trace_bytes"] = sum(t.stat().st_size for t in traces)
    res["traces"] = len(traces)
    if not cli:
        return None
    proc = subprocess.run([str(cli), "dump", "--summary", *map(str, traces)],
                          capture_output=True, text=True)
    fields = [kv.split("=", 1) for kv in proc.stdout.split() if "=" in kv]
    allocs = [int(v) for k, v in fields if k == "histogram_allocs"]
    if proc.returncode != 0 or len(allocs) != len(traces):
        res["stderr"] += proc.stdout + proc.stderr
        return f"tierpool dump failed ({proc.returncode})"
    if ("truncated", "1") in [tuple(f) for f in fields]:
        res["stderr"] += proc.stdout
        return "truncated trace"
    res["trace_allocs"] = sum(allocs)
    return None


def check_heaptrack(tmp, res):
    """heaptrack prints its own lines on stdout around the program's: the
    program's output is what lies between them (its hash goes into res)."""
    if not any(tmp.glob("ht.*")):
        return "no heaptrack data written"
    try:
        out = (tmp / "stdout").read_bytes()
    except OSError as e:
        return f"no output ({e.strerror})"
    lines = out.split(b"\n", len(HEAPTRACK_HEAD))
    end = lines[-1].rfind(HEAPTRACK_TAIL) if len(lines) > len(HEAPTRACK_HEAD) else -1
    if end < 0 or not all(h is None or line.startswith(h)
                          for h, line in zip(HEAPTRACK_HEAD, lines)):
        res["stderr"] += "stdout:\n" + out[-2000:].decode(errors="replace")
        return "unexpected heaptrack output"
    res["out_fnv"] = fnv1a(lines[-1][:end])
    return None


def profile_once(workload, mode, quick, lib, cli):
    """Runs the workload once in mode, in a temporary directory deleted after."""
    tmp = Path(tempfile.mkdtemp(prefix="tierpool-bench-"))
    try:
        env, argv, preload = clean_env(), workload.argv(quick), None
        if mode in ("run", "record"):
            preload = lib
        if mode == "record":
            env.update(TIERPOOL_PROFILE="1", TIERPOOL_TRACE=str(tmp / "t-%p.tpt"))
        elif mode == "heaptrack":
            # heaptrack's messages go to stdout too: the output goes to a file, sorted out after.
            argv = ["sh", "-c", 'out=$1; shift; exec "$@" >"$out"', "sh", tmp / "stdout",
                    "heaptrack", "-o", tmp / "ht", *argv]
        elif mode == "jemalloc-prof":
            preload = JEMALLOC
            env["MALLOC_CONF"] = jemalloc_conf(tmp)
        res = measure(workload, preload, quick, argv=argv, env=env, cwd=tmp)
        if res["status"] == "0":
            failure = None
            if mode == "record":
                failure = check_record(tmp, res, cli)
            elif mode == "heaptrack":
                failure = check_heaptrack(tmp, res)
            elif mode == "jemalloc-prof" and not any(tmp.glob("jeprof*.heap")):
                failure = "no jemalloc profile written"
            if failure:
                res["status"] = failure
        return res
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def profile_summary(runs, base_runs):
    """summary(), with paired ratios to base_runs (None: run itself) and the traces' sizes."""
    s = summary(runs)
    if base_runs is not None and "fail" not in s:
        s["ratio"] = paired_ratios(runs, base_runs)
        s["interval"] = paired_intervals(runs, base_runs)
    if "fail" not in s and runs and all("trace_bytes" in r for r in runs):
        s["trace_bytes"] = statistics.median(r["trace_bytes"] for r in runs)
        if all(r.get("trace_allocs") for r in runs):
            s["trace_allocs"] = statistics.median(r["trace_allocs"] for r in runs)
            s["per_m"] = statistics.median(r["trace_bytes"] * 1e6 / r["trace_allocs"]
                                           for r in runs)
    return s


def run_profiling(rows, modes, args, lib, cli):
    """The rounds; returns {workload: {mode: summary}}."""
    results = {w.name: {m: [] for m in modes} for w in rows}
    for r in range(args.rounds):
        order = modes[r % len(modes):] + modes[:r % len(modes)]
        for w in rows:
            line = []
            for m in order:
                res = profile_once(w, m, args.quick, lib, cli)
                results[w.name][m].append(res)
                if res["status"] != "0":
                    report_failure(w, m, res)
                    line.append(f"{m} FAIL")
                else:
                    line.append(f"{m} {float(res['wall_ms']):.0f} ms")
            print(f"profiling round {r + 1}/{args.rounds} {w.name}: " + ", ".join(line),
                  file=sys.stderr)
    for w in rows:
        check(results[w.name], w, base="run")
    return {w.name: {m: profile_summary(results[w.name][m], None if m == "run" else results[w.name]["run"])
                     for m in modes} for w in rows}


def profiling_markdown(rows, modes, stats, why, cli, quick, commands):
    """The profiling benchmark's section: modes are the modes asked for, why
    says why some of them could not run; with commands, the workloads' command
    lines too (when the allocator comparison has not shown them)."""
    others = [m for m in modes if m != "run"]

    def value(w, m, key, fmt):
        s = stats[w.name].get(m)
        if m in why:
            return f"n/a ({why[m]})"
        if "fail" in s:
            return f"**FAIL: {s['fail']}**"
        return fmt % s[key]

    def ratio(w, m, key):
        s = stats[w.name].get(m)
        if m in why or "fail" in s or key not in s.get("ratio", {}):
            return "n/a" if m in why else "—"
        x = s["ratio"][key]
        if m == "record" and key == "wall":
            limit = record_limit(w)
            return f"**{x:.3f}**" if x > limit else f"{x:.3f}"
        return f"{x:.2f}"

    def trace(w):
        s = stats[w.name].get("record", {})
        if "record" in why or "fail" in s:
            return "—"
        if not cli:
            return "n/a (no tierpool dump)"
        if "per_m" not in s:
            return "—"
        size = f"{s['per_m']:,.0f}"
        return f"{'**' + size + '**' if s['per_m'] > TRACE_LIMIT else size} ({s['trace_allocs'] / 1e6:.2f} M)"

    out = ["## Profiling overhead", ""]
    def record_line(w):
        s = stats[w.name].get("record", {})
        if "record" in why or "fail" in s or "wall" not in s.get("ratio", {}):
            return ["—", "—"]
        interval = s.get("interval", {}).get("wall")
        return [interval_text(interval), f"{verdict(interval, record_limit(w))} (≤ {record_limit(w):.2f})"]

    recorded = "record" in modes
    head = (["workload"] + [f"{m} ms" for m in modes] + [f"{m}/run" for m in others]
            + (["record/run interval", "record/run line", "trace B per M allocs (allocs)"]
               if recorded else []))
    out += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for w in rows:
        line = ([w.name] + [value(w, m, "wall", "%.0f") for m in modes]
                + [ratio(w, m, "wall") for m in others]
                + (record_line(w) + [trace(w)] if recorded else []))
        out.append("| " + " | ".join(line) + " |")
    out.append("")
    out.append("ms: wall-clock time of the whole process (for heaptrack, of the whole "
               "`heaptrack` command); MODE/run: the ratio to run (tierpool, profiler off), the "
               "median over the rounds of each round's ratio; record/run in bold: above the acceptance limit (%.2f on the "
               "Wasm workloads, %.2f on churn); its interval holds the median of such ratios with "
               "the probability shown (the k-th smallest and largest of the rounds' ratios), and "
               "the line is held when all of it is within the limit, missed when all is beyond, "
               "open when it spans the limit.  Trace bytes per million allocations: all the "
               "traces of a record run, allocations as counted in them; in bold above "
               "the acceptance limit (%s).  The same runs' CPU "
               "time (user+sys) and minor page faults (thousands):" % (RECORD_LIMIT_DEFAULT, RECORD_LIMIT["churn-"], f"{TRACE_LIMIT:,}"))
    out.append("")
    head = ["workload"] + [f"{m} CPU ms" for m in modes] + [f"{m} faults K" for m in modes]
    out += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for w in rows:
        line = [w.name]
        for key, fmt in (("cpu", "%.0f"), ("faults", "%.1f")):
            for m in modes:
                s = stats[w.name].get(m)
                if m in why or "fail" in s:
                    line.append(value(w, m, key, fmt))
                else:
                    line.append(cell(s[key], s.get("ratio", {}).get(key), fmt))
        out.append("| " + " | ".join(line) + " |")
    out.append("")
    if commands:
        for w in rows:
            command = command_text(w, quick)
            out.append(f"- {w.name}: {w.what}: `{command}`")
        out.append("")
    return out

