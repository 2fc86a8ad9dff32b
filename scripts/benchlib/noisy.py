"""benchlib.noisy — the noisy-neighbour benchmark of scripts/bench: a quiet
thread's malloc latency alone and beside a noisy one, with and without tenants;
see scripts/bench for what it reports."""

import statistics
import sys
import tempfile
from pathlib import Path

from benchlib.common import check, clean_env, command_text, measure, report_failure, summary

# hog is a control: a thread with memory traffic like the noisy tenant's, no
# allocations; what sharing the machine alone costs the quiet thread.
NOISY_MODES = ["solo", "neighbour", "hog"]
NOISY_LIMIT = 1.2  # the acceptance limit of p99 neighbour/solo, tierpool with tenants
NOISY_TENANTS = "tierpool, tenants"
# The tenants' budgets: the noisy tenant churns up to its limit (its bursts
# aim at 64 MiB); the quiet one has its own reserve and never takes memory
# another tenant used.
NOISY_CONFIG = """\
# written by scripts/bench: the noisy-neighbour benchmark's tenants
tenant.noisy.limit = 64M
tenant.quiet.reserve = 16M
tenant.quiet.isolated = true
"""
NOISY_KEYS = ["quiet_p50_ns", "quiet_p99_ns", "quiet_p999_ns", "timer_ns", "quiet_preempted",
              "noisy_bursts", "noisy_nulls"]


def noisy_configs(allocs):
    """The rows: (name, library, tenants on) — tierpool first, with and
    without tenants, then the others."""
    rows = []
    for name, lib in allocs:
        if name == "tierpool":
            rows[:0] = [(NOISY_TENANTS, lib, True), ("tierpool, one heap", lib, False)]
        else:
            rows.append((name, lib, False))
    return rows


def noisy_once(workload, lib, tenants, mode, quick, config):
    """One run of noisy in mode; its results line parsed into the measure fields."""
    env = {k: v for k, v in clean_env().items()
           if not k.startswith(("TIERPOOL_TENANT", "NOISY_")) and k != "TIERPOOL_CONFIG"}
    if tenants:
        env.update(NOISY_TENANTS="1", TIERPOOL_CONFIG=str(config))
    argv = [mode if a == "MODE" else a for a in workload.argv(quick)]
    res = measure(workload, lib, quick, argv=argv, env=env)
    lines = [ln for ln in res["stderr"].splitlines() if ln.startswith("noisy: mode=")]
    if res["status"] == "0":
        if not lines:
            res["status"] = "no results line"
        else:
            res.update(kv.split("=", 1) for kv in lines[-1].split()[1:] if "=" in kv)
    return res


def noisy_summary(runs):
    s = summary(runs)
    if "fail" in s:
        return s
    s["tenants"] = next((r.get("tenants", "?") for r in runs if r.get("tenants") != "on"), "on")
    for key in NOISY_KEYS:
        s[key] = statistics.median(float(r[key]) for r in runs)
    resident = [r.get("quiet_resident_kib", "n/a") for r in runs]
    if "n/a" not in resident:
        s["quiet_resident"] = statistics.median(int(v) / 1024 for v in resident)
    return s


def run_noisy(workload, configs, args):
    """The rounds, the modes of every row interleaved; returns {(row, mode): summary}."""
    results = {(c[0], m): [] for c in configs for m in NOISY_MODES}
    with tempfile.TemporaryDirectory(prefix="tierpool-bench-") as tmp:
        config = Path(tmp) / "noisy.conf"
        config.write_text(NOISY_CONFIG)
        for r in range(args.rounds):
            line = []
            k = r % len(NOISY_MODES)  # rows rotated per round, and the modes within a row
            for name, lib, tenants in configs[r % len(configs):] + configs[:r % len(configs)]:
                for m in NOISY_MODES[k:] + NOISY_MODES[:k]:
                    res = noisy_once(workload, lib, tenants, m, args.quick, config)
                    results[(name, m)].append(res)
                    if res["status"] != "0":
                        report_failure(workload, f"{name} {m}", res)
                        line.append(f"{name} {m} FAIL")
                    else:
                        line.append(f"{name} {m} p99 {float(res['quiet_p99_ns']):.0f} ns")
            print(f"noisy round {r + 1}/{args.rounds}: " + ", ".join(line), file=sys.stderr)
    check({f"{n} {m}": rs for (n, m), rs in results.items()}, workload, base="glibc solo")
    stats = {k: noisy_summary(rs) for k, rs in results.items()}
    # Ratios pair the runs of a round (one right after the other): a load that
    # changes between rounds moves both alike.
    for name, _, _ in configs:
        solo = stats[(name, "solo")]
        for m in NOISY_MODES[1:]:
            s = stats[(name, m)]
            if "fail" not in solo and "fail" not in s:
                s["p99_ratio"] = statistics.median(
                    float(x["quiet_p99_ns"]) / float(base["quiet_p99_ns"])
                    for base, x in zip(results[(name, "solo")], results[(name, m)]))
    return stats


def noisy_markdown(workload, configs, stats, quick):
    """The noisy-neighbour section."""
    out = ["## Noisy neighbour", ""]
    head = ["allocator", "solo p50 / p99 / p99.9 ns", "neighbour p50 / p99 / p99.9 ns",
            "p99 neighbour/solo", "p99 hog/solo (control)", "quiet resident MiB",
            "peak RSS MiB solo / neighbour", "quiet preempted solo / neighbour",
            "noisy bursts (NULLs)"]
    out += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    verdict = None if any(t for _, _, t in configs) else "not measured: no libtierpool.so"

    def percentiles(s):
        return " / ".join("%.0f" % s[k] for k in ("quiet_p50_ns", "quiet_p99_ns", "quiet_p999_ns"))

    for name, _, tenants in configs:
        solo, nb, hog = (stats[(name, m)] for m in NOISY_MODES)
        failed = [s["fail"] for s in (solo, nb, hog) if "fail" in s]
        if failed:
            out.append(f"| {name} | **FAIL: {failed[0]}** |" + " — |" * (len(head) - 2))
            verdict = f"**FAIL: {failed[0]}**" if tenants else verdict
            continue
        if tenants and any(s["tenants"] != "on" for s in (solo, nb, hog)):
            out.append(f"| {name} | **tenants unavailable** (tierpool_tenant_set failed) |"
                       + " — |" * (len(head) - 2))
            verdict = "not measured: tenants unavailable in this libtierpool.so"
            continue
        ratio = round(nb["p99_ratio"], 2)  # as shown
        if tenants:
            verdict = (f"met ({ratio:.2f})" if ratio <= NOISY_LIMIT
                       else f"**NOT MET ({ratio:.2f})**") + \
                f"; the control, hog/solo: {hog['p99_ratio']:.2f}"
        resident = (f"{solo['quiet_resident']:.1f} / {nb['quiet_resident']:.1f}"
                    if "quiet_resident" in solo and "quiet_resident" in nb else "n/a (no tenants)")
        out.append("| " + " | ".join([
            name, percentiles(solo), percentiles(nb),
            f"**{ratio:.2f}**" if ratio > NOISY_LIMIT else f"{ratio:.2f}",
            f"{hog['p99_ratio']:.2f}",
            resident,
            f"{solo['rss']:.1f} / {nb['rss']:.1f}",
            f"{solo['quiet_preempted']:.0f} / {nb['quiet_preempted']:.0f}",
            f"{nb['noisy_bursts']:.0f} ({nb['noisy_nulls']:.0f})",
        ]) + " |")
    out.append("")
    timer = [s["timer_ns"] for s in stats.values() if "timer_ns" in s]
    out.append(
        "The quiet thread's malloc latency (the cycle counter, lfence-ordered, calibrated "
        "against CLOCK_MONOTONIC), medians over the rounds of each run's percentiles.  Ratios: "
        "the median over the rounds of each round's p99 / solo p99 (runs one after the other), "
        f"in bold above {NOISY_LIMIT}.  hog: instead of the noisy tenant, a thread that only "
        "writes a byte a page over 64 MiB allocated once: the part of the slowdown that comes "
        "from sharing CPUs, caches and memory, not from the allocator.  Quiet resident: the "
        "quiet tenant's resident bytes (tierpool_tenant_stats_get) at the end of its work, "
        "solo / neighbour.  Peak RSS: the whole process.  Quiet preempted: the quiet thread's "
        "involuntary context switches while timed (many: the CPUs were short, and latencies "
        "grow for that).  Noisy bursts: fill-to-budget cycles of the noisy thread while the "
        "quiet one worked, and its mallocs that returned NULL (its tenant's limit)."
        + (f"  An empty timed region reads {statistics.median(timer):.0f} ns, the floor under "
           "every number; the clock moves in steps about that size, so ratios of small numbers "
           "are coarse." if timer else ""))
    if verdict:
        out.append("")
        out.append(f"Acceptance (quiet p99 with the neighbour ≤ {NOISY_LIMIT}× solo under "
                   f"tierpool with tenants): {verdict}.")
    out.append("")
    command = command_text(workload, quick)
    out.append(f"- {workload.name}: {workload.what}: `{command}` (MODE: "
               f"{', '.join(NOISY_MODES)}); with tenants, NOISY_TENANTS=1 and TIERPOOL_CONFIG: "
               + "; ".join(ln for ln in NOISY_CONFIG.splitlines() if not ln.startswith("#")))
    out.append("")
    return out

