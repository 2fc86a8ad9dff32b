#!/usr/bin/env python3
"""test_prom.py — the Prometheus text file's tests (meson suite 'tenant').

    test_prom.py checker                   the checker rejects broken files
    test_prom.py format PROM_UNIT          escaping, 64 tenants, extreme values
    test_prom.py behaviour PROM_UNIT       tick schedule, failures, writers
    test_prom.py numbers PROM_DIRECT       the file equals the statistics
    test_prom.py atomic PROM_DIRECT        1000 reads during rewrites: never partial
    test_prom.py preload PROM_PRELOAD LIB  the pool keeps TIERPOOL_PROM_FILE current
    test_prom.py relative LIB              a relative path stays where the program started

Exit 0 pass, 1 fail.
"""
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import check_prom  # noqa: E402

TENANT_FAMILIES = {
    "live_bytes": "tierpool_live_bytes", "resident_bytes": "tierpool_resident_bytes",
    "peak_bytes": "tierpool_peak_bytes", "reserve_bytes": "tierpool_reserve_bytes",
    "limit_bytes": "tierpool_limit_bytes", "overflow_bytes": "tierpool_overflow_bytes",
    "limit_hits": "tierpool_limit_hits_total", "releases": "tierpool_releases_total",
    "isolated": "tierpool_isolated",
}
TIER_FAMILIES = {
    "allocs": "tierpool_tier_allocations_total", "frees": "tierpool_tier_frees_total",
    "bytes_requested": "tierpool_tier_requested_bytes_total",
    "bytes_allocated": "tierpool_tier_allocated_bytes_total",
    "live_bytes": "tierpool_tier_live_bytes", "peak_bytes": "tierpool_tier_peak_bytes",
    "resident_bytes": "tierpool_tier_resident_bytes", "releases": "tierpool_tier_releases_total",
    "released_bytes": "tierpool_tier_released_bytes_total",
}

failures = []


def check(ok, what):
    if ok:
        print("ok:", what)
    else:
        failures.append(what)
        print("FAIL:", what, file=sys.stderr)


def finish():
    return 1 if failures else 0


def series_index(families):
    """{(name, frozenset(labels)): raw value text} over every sample."""
    return {(name, frozenset(labels.items())): raw
            for fam in families.values() for name, labels, _, raw in fam.samples}


def expectations(stdout):
    """(metric, labels, value) from the programs' "HEX tier field value" lines."""
    out = []
    for line in stdout.splitlines():
        parts = line.split()
        if len(parts) != 4 or parts[0] == "pattern":
            continue
        tenant = "" if parts[0] == "-" else bytes.fromhex(parts[0]).decode("utf-8")
        tier, field, value = parts[1], parts[2], parts[3]
        labels = {"tenant": tenant}
        if tier == "-":
            name = TENANT_FAMILIES[field]
        else:
            name = TIER_FAMILIES[field]
            labels["tier"] = tier
        out.append((name, labels, value))
    return out


def compare(families, expected):
    index, wrong = series_index(families), []
    for name, labels, value in expected:
        got = index.get((name, frozenset(labels.items())))
        if got != value:
            wrong.append(f"{name}{labels}: file {got}, statistics {value}")
    for line in wrong[:10]:
        print("   ", line, file=sys.stderr)
    return not wrong


def parse_file(path):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    return check_prom.parse(text), text


# ---- checker: it must be able to fail ---------------------------------------
GOOD = '''# a comment
# HELP g A gauge with \\\\ and \\n in its help.
# TYPE g gauge
g{a="x\\"y\\\\z\\nw",b=""} 1.5
g{a="other",} -3e-2
g NaN

# HELP c_total A counter.
# TYPE c_total counter
c_total{tier="slab"} +Inf
c_total{tier="buddy"} 18446744073709551615
# HELP h A histogram.
# TYPE h histogram
h_bucket{le="1"} 0
h_bucket{le="+Inf"} 2
h_sum 3
h_count 2
'''

BAD = {
    "duplicate HELP": "# HELP g one\n# HELP g two\n# TYPE g gauge\ng 1\n",
    "duplicate TYPE": "# HELP g x\n# TYPE g gauge\n# TYPE g gauge\ng 1\n",
    "bad escape in a label value": '# HELP g x\n# TYPE g gauge\ng{a="x\\ty"} 1\n',
    "bad escape in HELP": "# HELP g x\\\"y\n# TYPE g gauge\ng 1\n",
    "no final newline": "# HELP g x\n# TYPE g gauge\ng 1",
    "duplicated series": '# HELP g x\n# TYPE g gauge\ng{a="1",b="2"} 1\ng{b="2",a="1"} 2\n',
    "TYPE after samples": "# HELP g x\ng 1\n# TYPE g gauge\n",
    "HELP after samples": "# TYPE g gauge\ng 1\n# HELP g x\n",
    "family not contiguous": ("# HELP a x\n# TYPE a gauge\n# HELP b x\n# TYPE b gauge\n"
                              "a 1\nb 1\na{x=\"1\"} 2\n"),
    "counter without _total": "# HELP c x\n# TYPE c counter\nc 1\n",
    "negative counter": "# HELP c_total x\n# TYPE c_total counter\nc_total -1\n",
    "bad metric name": "# HELP 1g x\n# TYPE 1g gauge\n1g 1\n",
    "bad value": "# HELP g x\n# TYPE g gauge\ng 12abc\n",
    "timestamp": "# HELP g x\n# TYPE g gauge\ng 1 1700000000000\n",
    "unterminated label value": '# HELP g x\n# TYPE g gauge\ng{a="x} 1\n',
    "reserved label name": '# HELP g x\n# TYPE g gauge\ng{__a="x"} 1\n',
    "label twice": '# HELP g x\n# TYPE g gauge\ng{a="x",a="y"} 1\n',
    "unknown TYPE": "# HELP g x\n# TYPE g countr\ng 1\n",
    "no TYPE": "# HELP g x\ng 1\n",
    "no value": "# HELP g x\n# TYPE g gauge\ng{a=\"1\"}\n",
    "empty file": "",
}


def test_checker():
    try:
        families = check_prom.parse(GOOD)
        g = families["g"].samples[0][1]
        check(g == {"a": 'x"y\\z\nw', "b": ""} and families["g"].help == "A gauge with \\ and \n in its help.",
              "a valid file parses, escapes undone")
    except check_prom.PromError as e:
        check(False, f"a valid file parses ({e})")
    for what, text in BAD.items():
        try:
            check_prom.parse(text)
            check(False, f"rejects: {what}")
        except check_prom.PromError as e:
            check(True, f"rejects: {what} ({e})")
    with tempfile.TemporaryDirectory() as tmp:  # the command line too
        good, bad = os.path.join(tmp, "good.prom"), os.path.join(tmp, "bad.prom")
        open(good, "w").write(GOOD)
        open(bad, "w").write(BAD["duplicated series"])
        script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "check_prom.py")
        ok = subprocess.run([sys.executable, script, good]).returncode
        run = subprocess.run([sys.executable, script, bad], capture_output=True, text=True)
        check(ok == 0 and run.returncode == 1 and "bad.prom:4: duplicate series" in run.stderr,
              f"command line: exit 0 on good, 1 with FILE:LINE on bad ({run.stderr.strip()})")
    return finish()


# ---- prom.c alone, fake tenants ----------------------------------------------
def test_format(prom_unit):
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "tierpool.prom")
        run = subprocess.run([prom_unit, "file", path], capture_output=True, text=True)
        check(run.returncode == 0, f"prom_unit file ({run.stderr.strip()})")
        if run.returncode:
            return finish()
        families, text = parse_file(path)
        check(True, f"{len(text)} bytes, {len(families)} families parse strictly")
        expected = expectations(run.stdout)
        check(len(expected) == 64 * (9 + 27), f"{len(expected)} expected numbers")
        check(compare(families, expected), "every number, every escaped tenant name, round trip")
        per_tenant = sum(len(families[n].samples) for n in list(TENANT_FAMILIES.values()) + list(TIER_FAMILIES.values()))
        check(per_tenant == len(expected), f"no other per-tenant series ({per_tenant})")
        budget = series_index(families)
        label = frozenset({("budget", 'edge"node\\1')})
        check(budget.get(("tierpool_node_budget_used_bytes", label)) == "123456789"
              and budget.get(("tierpool_node_budget_held_bytes", label)) == "4096"
              and budget.get(("tierpool_node_budget_bytes", label)) == str(256 << 20),
              "node budget: size, used, held, with its name escaped")
        info = families["tierpool_info"].samples
        check(len(info) == 1 and info[0][1]["version"] and info[0][1]["pid"].isdigit() and info[0][2] == 1,
              f"tierpool_info {info[0][1] if info else None}")
        check(families["tierpool_tenants"].samples[0][3] == "64", "tierpool_tenants 64")
        check(oct(os.stat(path).st_mode & 0o777) == "0o644", "mode 0644")
        check(os.listdir(tmp) == ["tierpool.prom"], f"no temporary file left ({os.listdir(tmp)})")
        for name, fam in families.items():
            check(fam.type == ("counter" if name.endswith("_total") else "gauge"), f"{name} is a {fam.type}")
    return finish()


def test_behaviour(prom_unit):
    with tempfile.TemporaryDirectory() as tmp:
        run = subprocess.run([prom_unit, "behaviour", tmp], capture_output=True, text=True)
        sys.stdout.write(run.stdout)
        sys.stderr.write(run.stderr)
        check(run.returncode == 0, "tick schedule, failures reported once, errno kept, concurrent writers")
    return finish()


# ---- the whole allocator linked in ------------------------------------------
def test_numbers(prom_direct):
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "tierpool.prom")
        run = subprocess.run([prom_direct, "numbers", path], capture_output=True, text=True)
        check(run.returncode == 0, f"prom_direct numbers ({run.stderr.strip()})")
        if run.returncode:
            return finish()
        families, _ = parse_file(path)
        expected = expectations(run.stdout)
        check(len(expected) >= 14, f"{len(expected)} numbers read from tierpool_tenant_stats_at")
        check(compare(families, expected), "live/resident/allocs/frees per tier equal the statistics")
        index = series_index(families)

        def value(name, tier):
            return float(index.get((name, frozenset({("tenant", "default"), ("tier", tier)})), "nan"))
        for line in run.stdout.splitlines():
            if line.startswith("pattern "):
                _, tier, size, count = line.split()
                size, count = int(size), int(count)
                live, allocs = value("tierpool_tier_live_bytes", tier), value("tierpool_tier_allocations_total", tier)
                check(live >= size * count and allocs >= count,
                      f"{tier}: live {live:.0f} >= {size} x {count} kept blocks, {allocs:.0f} allocations")
    return finish()


def test_atomic(prom_direct):
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "tierpool.prom")
        proc = subprocess.Popen([prom_direct, "loop", path, "120"], stdout=subprocess.PIPE, text=True)
        try:
            check(proc.stdout.readline().strip() == "ready", "the writers started")
            contents, partial = set(), []
            start = time.monotonic()
            for i in range(1000):
                with open(path, encoding="utf-8") as f:
                    text = f.read()
                try:
                    check_prom.parse(text)
                except check_prom.PromError as e:
                    partial.append(f"read {i}: {e}")
                contents.add(text)
                time.sleep(0.001)
            took = time.monotonic() - start
            check(not partial, f"1000 reads in {took:.1f} s, every one a whole file ({partial[:3]})")
            check(len(contents) > 10, f"{len(contents)} different contents seen: rewrites happened meanwhile")
        finally:
            proc.terminate()
            proc.wait()
    return finish()


# ---- preloaded: the pool's own ticks -----------------------------------------
def test_preload(prog, lib):
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "tierpool.prom")
        env = dict(os.environ, LD_PRELOAD=lib, TIERPOOL_PROM_FILE=path, TIERPOOL_PROM_INTERVAL_MS="100")
        run = subprocess.run([prog, path], env=env, capture_output=True, text=True)
        check(run.returncode == 0, f"prom_preload ran ({run.stderr.strip()})")
        check(os.path.exists(path), "the pool wrote TIERPOOL_PROM_FILE")
        if failures:
            return finish()
        families, _ = parse_file(path)
        check(True, f"the pool's file parses ({len(families)} families)")
        check("seen 1" in run.stdout, "written while the program ran, not only at exit")
        index = series_index(families)
        for line in run.stdout.splitlines():
            if line.startswith("pattern "):
                _, tier, size, count = line.split()
                key = ("tierpool_tier_live_bytes", frozenset({("tenant", "default"), ("tier", tier)}))
                live = float(index.get(key, "nan"))
                check(live >= int(size) * int(count), f"{tier}: live {live:.0f} >= {size} x {count}")
        check(os.listdir(tmp) == ["tierpool.prom"], f"no temporary file left ({os.listdir(tmp)})")
    return finish()


def test_relative(lib):
    """A relative prom_file is where the program started, though it changes directory."""
    with tempfile.TemporaryDirectory() as tmp:
        os.mkdir(os.path.join(tmp, "sub"))
        env = dict(os.environ, LD_PRELOAD=lib, TIERPOOL_PROM_FILE="rel-%p.prom", TIERPOOL_PROM_INTERVAL_MS="100")
        run = subprocess.run([sys.executable, "-c", "import os; print(os.getpid()); os.chdir('sub')"], cwd=tmp, env=env,
                             capture_output=True, text=True)
        check(run.returncode == 0, f"python ran ({run.stderr.strip()})")
        pid = run.stdout.strip()
        check(os.path.exists(os.path.join(tmp, f"rel-{pid}.prom")), "written in the starting directory")
        check(os.listdir(os.path.join(tmp, "sub")) == [], f"nothing in the directory it moved to "
              f"({os.listdir(os.path.join(tmp, 'sub'))})")
    return finish()


def main(argv):
    tests = {"checker": (test_checker, 0), "format": (test_format, 1), "behaviour": (test_behaviour, 1),
             "numbers": (test_numbers, 1), "atomic": (test_atomic, 1), "preload": (test_preload, 2),
             "relative": (test_relative, 1)}
    if len(argv) < 2 or argv[1] not in tests or len(argv) != 2 + tests[argv[1]][1]:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    try:
        return tests[argv[1]][0](*argv[2:])
    except check_prom.PromError as e:
        print("FAIL: the file does not parse:", e, file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
