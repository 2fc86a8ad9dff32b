#!/usr/bin/env python3
"""check_pprof.py PROFILE.txt [--totals FILE] [EXPECT...]

Reads a pprof profile as decoded by an independent reader
(`gunzip | protoc --decode=perftools.profiles.Profile pprof.proto`), checks the
rules of the format that pprof, Pyroscope and Parca rely on, then each EXPECT:

  total.TYPE=N              the sum of the TYPE column (alloc_objects, ...) is N exactly
  label.KEY.VALUE.TYPE=X    the sum over samples labelled KEY=VALUE is X, within
                            1 per sample (each value is an estimate rounded)
  samples=N locations=N mappings=N period=N period_type=TYPE/UNIT
  build_id.PATH=HEX         the mapping of file PATH has that build-id
  function=NAME             some function is called NAME
  leaf.NAME.TYPE=N          the sum over samples whose innermost function is NAME
  first_mapping=PATH        mapping[0] (pprof's main binary) is PATH
  file_offset.NAME=OFF      the location of function NAME is at file offset OFF
                            (address - memory_start + file_offset)

A function named MODULE+0xADDR (unsymbolized) must sit at the file offset that
holds ADDR: the same number when MODULE's file is not on this machine
(synthetic traces lay code out at vaddr == offset unless a file_offset EXPECT
says otherwise), else found through the file's program headers.

Prints one "ok: ..." or "FAIL: ..." line per check; --totals writes
"alloc_objects=N alloc_space=N inuse_objects=N inuse_space=N samples=N".
"""
import codecs
import os
import re
import struct
import sys

TYPES = [("alloc_objects", "count"), ("alloc_space", "bytes"), ("inuse_objects", "count"), ("inuse_space", "bytes")]


def parse(text):
    """protoc's text format: `name: value` and `name { ... }`, as nested dicts of lists."""
    root, stack = {}, []
    cur = root
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if line.endswith("{"):
            child = {}
            cur.setdefault(line[:-1].strip(), []).append(child)
            stack.append(cur)
            cur = child
        elif line == "}":
            cur = stack.pop()
        else:
            key, value = line.split(":", 1)
            value = value.strip()
            if value.startswith('"'):
                value = codecs.escape_decode(value[1:-1].encode("latin-1"))[0].decode("utf-8")
            elif value in ("true", "false"):
                value = value == "true"
            else:
                value = int(value)
            cur.setdefault(key, []).append(value)
    if stack:
        raise ValueError("unbalanced braces")
    return root


def vaddr_to_offset(path, vaddr):
    """The file offset of virtual address vaddr in ELF file path (its PT_LOAD
    headers), or None if the file is not there or does not map it."""
    try:
        with open(path, "rb") as f:
            head = f.read(64)
            if head[:4] != b"\x7fELF" or head[4] != 2:
                return None
            phoff, = struct.unpack_from("<Q", head, 0x20)
            phentsize, phnum = struct.unpack_from("<HH", head, 0x36)
            f.seek(phoff)
            table = f.read(phentsize * phnum)
    except OSError:
        return None
    for i in range(phnum):
        p_type, _flags, p_offset, p_vaddr, _paddr, p_filesz = struct.unpack_from("<IIQQQQ", table, i * phentsize)
        if p_type == 1 and p_vaddr <= vaddr < p_vaddr + p_filesz:
            return vaddr - p_vaddr + p_offset
    return None


def one(msg, key, default=0):
    return msg.get(key, [default])[0]


results = []


def check(ok, what):
    results.append(("ok: " if ok else "FAIL: ") + what)
    return ok


def main():
    args = sys.argv[1:]
    totals_file = None
    if "--totals" in args:
        i = args.index("--totals")
        totals_file = args[i + 1]
        del args[i : i + 2]
    with open(args[0]) as f:
        prof = parse(f.read())
    expects = args[1:]

    strings = prof.get("string_table", [])
    check(strings and strings[0] == "", 'string_table[0] is ""')

    def s(i):
        return strings[i] if 0 <= i < len(strings) else None

    types = [(s(one(t, "type")), s(one(t, "unit"))) for t in prof.get("sample_type", [])]
    check(types == TYPES, "sample types %s" % types)
    check(s(one(prof, "default_sample_type")) == "inuse_space", "default sample type inuse_space")

    mappings = {one(m, "id"): m for m in prof.get("mapping", [])}
    check(all(i > 0 for i in mappings), "mapping ids are nonzero")
    locations = {one(l, "id"): l for l in prof.get("location", [])}
    functions = {one(f, "id"): f for f in prof.get("function", [])}
    check(len(locations) == len(prof.get("location", [])) and all(i > 0 for i in locations),
          "%d locations, ids unique and nonzero" % len(locations))

    bad = []
    for loc in locations.values():
        mid = one(loc, "mapping_id")
        addr = one(loc, "address")
        for line in loc.get("line", []):
            if one(line, "function_id") not in functions:
                bad.append("location %d: no function %d" % (one(loc, "id"), one(line, "function_id")))
        if mid == 0:
            continue
        m = mappings.get(mid)
        if m is None:
            bad.append("location %d: no mapping %d" % (one(loc, "id"), mid))
            continue
        if not one(m, "memory_start") <= addr < one(m, "memory_limit"):
            bad.append("location %d: address %#x outside its mapping" % (one(loc, "id"), addr))
        # A frame named module+0xOFF must be at that module-relative address.
        for line in loc.get("line", []):
            name = s(one(functions.get(one(line, "function_id"), {}), "name")) or ""
            hit = re.fullmatch(r"(.+)\+0x([0-9a-f]+)", name)
            if not hit:
                continue
            rel = addr - one(m, "memory_start") + one(m, "file_offset")
            want = int(hit.group(2), 16)
            if "file_offset." + name in " ".join(expects):
                want = rel  # checked on its own below
            else:
                want = vaddr_to_offset(s(one(m, "filename")), want) or want
            if os.path.basename(s(one(m, "filename"))) != hit.group(1) or rel != want:
                bad.append("location %d named %s: mapping %s gives +%#x" % (one(loc, "id"), name,
                           s(one(m, "filename")), rel))
    check(not bad, "locations are in their mappings, at their module-relative addresses" +
          ("" if not bad else ": " + "; ".join(bad[:5])))

    samples = prof.get("sample", [])
    totals = [0] * 4
    bad = []
    for i, smp in enumerate(samples):
        values = smp.get("value", [])
        if len(values) != 4:
            bad.append("sample %d has %d values" % (i, len(values)))
            continue
        if any(v < 0 for v in values):
            bad.append("sample %d has a negative value" % i)
        if any(l not in locations for l in smp.get("location_id", [])):
            bad.append("sample %d names a missing location" % i)
        keys = sorted(s(one(l, "key")) for l in smp.get("label", []))
        if keys != ["tenant", "tier"] or any(one(l, "str") == 0 for l in smp.get("label", [])):
            bad.append("sample %d labels %s" % (i, keys))
        totals = [a + b for a, b in zip(totals, values)]
    check(not bad, "%d samples: 4 values, known locations, string labels tier and tenant" % len(samples) +
          ("" if not bad else ": " + "; ".join(bad[:5])))

    def labels(smp):
        return {s(one(l, "key")): s(one(l, "str")) for l in smp.get("label", [])}

    def leaf(smp):
        ids = smp.get("location_id", [])
        if not ids:
            return None
        lines = locations[ids[0]].get("line", [])
        return s(one(functions[one(lines[0], "function_id")], "name")) if lines else None

    names = {s(one(f, "name")) for f in functions.values()}
    by_file = {s(one(m, "filename")): s(one(m, "build_id")) for m in mappings.values()}
    for e in expects:
        key, want = e.split("=", 1)
        parts = key.split(".")
        if parts[0] == "total":
            got = totals[[t for t, _ in TYPES].index(parts[1])]
            check(got == int(want), "%s: %d (want %s)" % (key, got, want))
        elif parts[0] == "label":
            k, v, t = parts[1], ".".join(parts[2:-1]), parts[-1]
            col = [t2 for t2, _ in TYPES].index(t)
            hits = [smp for smp in samples if labels(smp).get(k) == v]
            got = sum(smp["value"][col] for smp in hits)
            check(abs(got - float(want)) <= max(1, len(hits)),
                  "%s: %d over %d samples (want %s)" % (key, got, len(hits), want))
        elif parts[0] == "leaf":
            name, t = ".".join(parts[1:-1]), parts[-1]
            col = [t2 for t2, _ in TYPES].index(t)
            got = sum(smp["value"][col] for smp in samples if leaf(smp) == name)
            check(got == int(want), "%s: %d (want %s)" % (key, got, want))
        elif key == "samples":
            check(len(samples) == int(want), "samples: %d (want %s)" % (len(samples), want))
        elif key == "locations":
            check(len(locations) == int(want), "locations: %d (want %s)" % (len(locations), want))
        elif key == "mappings":
            check(len(mappings) == int(want), "mappings: %d (want %s)" % (len(mappings), want))
        elif key == "period":
            check(one(prof, "period") == int(want), "period: %d (want %s)" % (one(prof, "period"), want))
        elif key == "period_type":
            pt = prof.get("period_type", [{}])[0]
            got = "%s/%s" % (s(one(pt, "type")), s(one(pt, "unit")))
            check(got == want, "period_type: %s (want %s)" % (got, want))
        elif parts[0] == "build_id":
            path = key[len("build_id."):]
            check(by_file.get(path, None) == want, "build-id of %s: %r (want %r)" % (path, by_file.get(path), want))
        elif key == "function":
            check(want in names, "function %r" % want)
        elif parts[0] == "file_offset":
            name = key[len("file_offset."):]
            got = None
            for loc in locations.values():
                fids = [one(line, "function_id") for line in loc.get("line", [])]
                m = mappings.get(one(loc, "mapping_id"))
                if m and any(s(one(functions.get(f, {}), "name")) == name for f in fids):
                    got = one(loc, "address") - one(m, "memory_start") + one(m, "file_offset")
            check(got == int(want, 0), "%s at file offset %s (want %s)" % (name, got if got is None else hex(got), want))
        elif key == "first_mapping":
            first = prof.get("mapping", [{}])[0]
            check(s(one(first, "filename")) == want, "mapping[0] is %s (want %s)" % (s(one(first, "filename")), want))
        else:
            check(False, "unknown expectation %s" % e)

    if totals_file:
        with open(totals_file, "w") as f:
            f.write(" ".join("%s=%d" % (t, v) for (t, _), v in zip(TYPES, totals)) + " samples=%d\n" % len(samples))
    print("\n".join(results))


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # a profile the reader cannot take apart is a failure, not a crash
        print("\n".join(results))
        print("FAIL: %s: %s: %s" % (sys.argv[1] if len(sys.argv) > 1 else "?", type(e).__name__, e))
