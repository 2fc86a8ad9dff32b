#!/usr/bin/env python3
"""check_prom.py — a strict checker of the Prometheus text exposition format
0.0.4, as node_exporter's textfile collector reads it.

    check_prom.py FILE...     exit 0 when every file is valid, else one line
                              "FILE:LINE: what" on stderr and exit 1

As a module: parse(text) returns {family: Family} or raises PromError.
Beyond the grammar it insists on what a collector needs: HELP and TYPE at
most once per family and before its samples, a family's samples contiguous,
no duplicate series, counters named *_total, no timestamps (the textfile
collector refuses them), a final newline.  When `promtool` is installed,
`promtool check metrics` must accept the file too.
"""
import math
import re
import shutil
import subprocess
import sys

METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
FLOAT = re.compile(r"[+-]?(?:\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?|Inf)|NaN")
META = re.compile(r"#[ \t]*(HELP|TYPE)[ \t]+(\S+)(?:[ \t](.*))?")
TYPES = ("counter", "gauge", "histogram", "summary", "untyped")
SUFFIXES = {"histogram": ("_bucket", "_sum", "_count"), "summary": ("_sum", "_count", "")}


class PromError(Exception):
    def __init__(self, line, what):
        super().__init__(f"{line}: {what}")
        self.line = line


class Family:
    def __init__(self, name):
        self.name, self.type, self.help, self.samples = name, None, None, []


def unescape(text, allowed, line):
    """Undoes the format's backslash escapes; `allowed` maps escape to char."""
    out, i = [], 0
    while i < len(text):
        c = text[i]
        if c == "\\":
            if i + 1 >= len(text) or text[i + 1] not in allowed:
                raise PromError(line, f"bad escape sequence in {text!r}")
            out.append(allowed[text[i + 1]])
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def parse_labels(text, pos, line):
    """Parses '{a="x",b="y"}' from text[pos] ('{'); returns (labels, next pos)."""
    labels, pos = {}, pos + 1
    while True:
        if text.startswith("}", pos):
            return labels, pos + 1
        m = LABEL_NAME.match(text, pos)
        if not m:
            raise PromError(line, f"bad label name at column {pos + 1}")
        name = m.group(0)
        if name.startswith("__"):
            raise PromError(line, f"label name {name} is reserved")
        if name in labels:
            raise PromError(line, f"label {name} twice")
        pos = m.end()
        if not text.startswith('="', pos):
            raise PromError(line, f"expected =\" after label {name}")
        pos += 2
        end = pos
        while end < len(text) and text[end] != '"':
            end += 2 if text[end] == "\\" else 1
        if end >= len(text):
            raise PromError(line, "unterminated label value")
        labels[name] = unescape(text[pos:end], {"\\": "\\", '"': '"', "n": "\n"}, line)
        pos = end + 1
        if text.startswith(",", pos):
            pos += 1
        elif not text.startswith("}", pos):
            raise PromError(line, f"expected , or }} after label {name}")


def family_of(name, families):
    """The family a sample name belongs to (histogram and summary suffixes)."""
    for fam in families.values():
        for suffix in SUFFIXES.get(fam.type, ()):
            if suffix and name == fam.name + suffix:
                return fam
    return families.get(name)


def parse(text, require_meta=True):
    """require_meta: every family with samples has both HELP and TYPE."""
    if not text:
        raise PromError(0, "empty file")
    if not text.endswith("\n"):
        raise PromError(text.count("\n") + 1, "no newline at the end of the file")
    families, order, series = {}, [], set()
    closed = set()  # families whose samples are over (another family began)
    current = None
    for number, raw in enumerate(text[:-1].split("\n"), 1):
        if raw.strip() == "":
            continue
        if raw.startswith("#"):
            m = META.fullmatch(raw)
            if not m:
                continue  # a comment
            keyword, name, rest = m.group(1), m.group(2), m.group(3) or ""
            if not METRIC_NAME.fullmatch(name):
                raise PromError(number, f"bad metric name {name!r}")
            fam = families.get(name)
            if fam is None:
                fam = families[name] = Family(name)
                order.append(name)
            if fam.samples:
                raise PromError(number, f"{keyword} for {name} after its samples")
            if keyword == "HELP":
                if fam.help is not None:
                    raise PromError(number, f"second HELP for {name}")
                fam.help = unescape(rest, {"\\": "\\", "n": "\n"}, number)
            else:
                if fam.type is not None:
                    raise PromError(number, f"second TYPE for {name}")
                if rest.strip() not in TYPES:
                    raise PromError(number, f"bad TYPE line for {name}")
                fam.type = rest.strip()
                if fam.type == "counter" and not name.endswith("_total"):
                    raise PromError(number, f"counter {name} does not end in _total")
            continue
        m = METRIC_NAME.match(raw)
        if not m:
            raise PromError(number, "a sample must start with a metric name")
        name, pos = m.group(0), m.end()
        labels = {}
        if raw.startswith("{", pos):
            labels, pos = parse_labels(raw, pos, number)
        fields = raw[pos:].split()
        if not raw[pos:pos + 1] in (" ", "\t") or not fields:
            raise PromError(number, f"expected a value after {name}")
        if len(fields) > 1:
            raise PromError(number, "a timestamp or trailing text (the textfile collector refuses timestamps)")
        if not FLOAT.fullmatch(fields[0]):
            raise PromError(number, f"bad value {fields[0]!r}")
        value = float(fields[0])
        fam = family_of(name, families)
        if fam is None:
            fam = families[name] = Family(name)
            order.append(name)
        if fam.name in closed:
            raise PromError(number, f"samples of {fam.name} are not contiguous")
        if current is not None and current is not fam:
            closed.add(current.name)
        current = fam
        if fam.type == "counter" and (value < 0 or math.isnan(value)):
            raise PromError(number, f"counter {name} is {fields[0]}")
        key = (name, tuple(sorted(labels.items())))
        if key in series:
            raise PromError(number, f"duplicate series {name}{dict(labels)}")
        series.add(key)
        fam.samples.append((name, labels, value, fields[0]))
    if require_meta:
        for fam in families.values():
            if fam.samples and (fam.help is None or fam.type is None):
                raise PromError(0, f"{fam.name} has samples but no {'HELP' if fam.help is None else 'TYPE'}")
    return {name: families[name] for name in order}


def check_with_promtool(text):
    """None when promtool is missing or accepts the text, else its complaint."""
    promtool = shutil.which("promtool")
    if not promtool:
        return None
    run = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True)
    return None if run.returncode == 0 else (run.stdout + run.stderr).strip()


def main(argv):
    if len(argv) < 2 or argv[1] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if len(argv) >= 2 else 2
    status = 0
    for path in argv[1:]:
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
            parse(text)
            complaint = check_with_promtool(text)
            if complaint:
                raise PromError(0, "promtool: " + complaint)
        except PromError as e:
            print(f"{path}:{e}", file=sys.stderr)
            status = 1
        except (OSError, UnicodeDecodeError) as e:
            print(f"{path}: {e}", file=sys.stderr)
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv))
