"""How much longer the README's definitions.py takes to load than an empty
``dg.Definitions``, and whether declaring steps imports heavy libraries.

Target (docs/concepts/architecture.md, "Targets"): <= 1.5 s more than the empty floor; no torch,
transformers, trl or peft in ``sys.modules`` after loading. Exits non-zero
when either misses. Also prints what a 300 MB local data file adds to a repeated load
(its content hash comes from the file-hash cache, ``dreamer_dagster/file_hashes.py``;
target < 0.1 s) and to the first load (the file is read).

    python bench/definitions_load.py [--runs 5] [--data-mb 300]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("torch", "transformers", "trl", "peft", "sentence_transformers")
TARGET_EXTRA_S = 1.5
TARGET_DATA_FILE_S = 0.1

DATA_SOURCE = """
from dreamer_dagster.steps import JSONDataSource

step = JSONDataSource("Rows", data_files={path!r})
"""

PROBE = """
import json, runpy, sys
runpy.run_path({path!r})
print(json.dumps([m for m in {heavy!r} if m in sys.modules]))
"""


def load_seconds(path: Path, env: dict[str, str] | None = None) -> tuple[float, list[str]]:
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", PROBE.format(path=str(path), heavy=HEAVY)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    elapsed = time.perf_counter() - started
    return elapsed, json.loads(result.stdout.strip().splitlines()[-1])


def data_file_overhead(runs: int, data_mb: int) -> float:
    """Print what a ``data_mb`` MB data file adds to a first and to a repeated load, against
    the same definitions over a one-line file; return the repeated load's addition."""
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        env = {**os.environ, "DREAMER_LOCAL_FOLDER": str(root / "local")}
        small, large = root / "small.jsonl", root / "large.jsonl"
        line = json.dumps({"text": "x" * 1000}) + "\n"
        small.write_text(line)
        with open(large, "w") as out:
            chunk = line * ((1 << 20) // len(line))
            for _ in range(data_mb * (1 << 20) // len(chunk)):
                out.write(chunk)
        past = time.time() - 60  # an older mtime: a just-written file is not remembered
        for path in (small, large):
            os.utime(path, (past, past))
        definitions = {}
        for name, path in (("small", small), ("large", large)):
            definitions[name] = root / f"{name}_definitions.py"
            definitions[name].write_text(DATA_SOURCE.format(path=str(path)))
        first = load_seconds(definitions["large"], env)[0]
        base, repeated = [], []
        for _ in range(runs):
            base.append(load_seconds(definitions["small"], env)[0])
            repeated.append(load_seconds(definitions["large"], env)[0])
    base_s, repeated_s = statistics.median(base), statistics.median(repeated)
    print(f"{data_mb} MB data file, first load:    {first - base_s:+.2f} s (the file is read)")
    print(
        f"{data_mb} MB data file, repeated load: {repeated_s - base_s:+.3f} s "
        f"(target < {TARGET_DATA_FILE_S:.2f} s; median of {runs})"
    )
    return repeated_s - base_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--data-mb", type=int, default=300)
    options = parser.parse_args()
    data_file_overhead(options.runs, options.data_mb)
    with tempfile.TemporaryDirectory() as folder:
        empty = Path(folder) / "empty_definitions.py"
        empty.write_text("import dagster as dg\ndefs = dg.Definitions()\n")
        floor, ours, heavy = [], [], set()
        for _ in range(options.runs):
            floor.append(load_seconds(empty)[0])
            seconds, imported = load_seconds(ROOT / "definitions.py")
            ours.append(seconds)
            heavy.update(imported)
    floor_s, ours_s = statistics.median(floor), statistics.median(ours)
    print(f"empty dg.Definitions (floor): {floor_s:.2f} s (median of {options.runs})")
    print(f"definitions.py:               {ours_s:.2f} s")
    print(
        f"difference: {ours_s - floor_s:+.2f} s (target <= +{TARGET_EXTRA_S:.2f} s); ratio {ours_s / floor_s:.2f}x"
    )
    print(f"heavy modules imported: {sorted(heavy) or 'none'} (target: none)")
    if ours_s - floor_s > TARGET_EXTRA_S or heavy:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
