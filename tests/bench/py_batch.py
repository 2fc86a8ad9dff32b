"""A Python batch job, the allocator's weak spot (README, Performance): 30
rounds, each building about 100 MiB of strings (up to 70 KB), lists and dicts
in one list, then dropping it.  Not in scripts/bench; run it by hand:

    /usr/bin/time -f '%e s %M KB %R faults' python3 tests/bench/py_batch.py
    /usr/bin/time -f '%e s %M KB %R faults' \
        build/analyze/tierpool run -- python3 tests/bench/py_batch.py
"""
import random

rng = random.Random(1)
total = 0
for _ in range(30):
    rows = []
    size = 0
    while size < 100 << 20:
        kind = rng.random()
        if kind < 0.4:
            n = rng.randint(1, 70000) if rng.random() < 0.1 else rng.randint(1, 400)
            rows.append("x" * n)
            size += n + 50
        elif kind < 0.7:
            items = list(range(rng.randint(1, 200)))
            rows.append(items)
            size += 8 * len(items) + 56
        else:
            table = {i: str(i) for i in range(rng.randint(1, 50))}
            rows.append(table)
            size += 100 * len(table)
    total += len(rows)
    del rows
print(total)
