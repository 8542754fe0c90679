"""How much longer the README's definitions.py takes to load than an empty
``dg.Definitions``, and whether declaring steps imports heavy libraries.

Target (DESIGN.md): <= 1.5 s more than the empty floor; no torch,
transformers, trl or peft in ``sys.modules`` after loading. Exits non-zero
when either misses.

    python bench/definitions_load.py [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("torch", "transformers", "trl", "peft", "sentence_transformers")
TARGET_EXTRA_S = 1.5

PROBE = """
import json, runpy, sys
runpy.run_path({path!r})
print(json.dumps([m for m in {heavy!r} if m in sys.modules]))
"""


def load_seconds(path: Path) -> tuple[float, list[str]]:
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", PROBE.format(path=str(path), heavy=HEAVY)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    elapsed = time.perf_counter() - started
    return elapsed, json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    options = parser.parse_args()
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
