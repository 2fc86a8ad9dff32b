#!/usr/bin/env bash
# record_python.sh — CPython under `tierpool record`, with PYTHONMALLOC=malloc so
# that its objects come from malloc: a deterministic script of dicts, strings,
# JSON, sorting and big integers prints the same as without the library, and
# its trace is readable and full.
source "$(dirname "$0")/lib.sh"

cat >"$INPUT/work.py" <<'PY'
import hashlib, json, random
random.seed(7)
rows = [{"id": i, "name": "n%05d" % i, "tags": [random.random() for _ in range(i % 7)]} for i in range(40000)]
text = json.dumps(rows, sort_keys=True)
back = json.loads(text)
index = {}
for r in back:
    index.setdefault(len(r["tags"]), []).append(r["name"])
print(len(text), hashlib.sha256(text.encode()).hexdigest())
print(sorted((k, len(v)) for k, v in index.items()))
print(sum(int("9" * (i % 50 + 1)) for i in range(20000)) % 1000003)
print(" ".join(sorted({w[::-1] for w in text[:200000].split('"') if w.isalnum()})[:20]))
PY

export PYTHONMALLOC=malloc PYTHONHASHSEED=0  # not through env(1): it would leave a trace of its own
compare_recorded /usr/bin/python3 "$INPUT/work.py"
for trace in "${TRACES[@]}"; do
  expect_summary "$trace" 'truncated == 0' 'ends == 1' 'samples > 100' 'stacks > 0' 'histogram_allocs > 10000' \
    'modules > 3'
done
finish
