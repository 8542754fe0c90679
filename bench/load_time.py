"""Load time of the example ``definitions.py`` against an empty ``dg.Definitions``, and what a
300 MB local data file adds to a repeated load (issue 17's targets).

Each load is a fresh Python process (cold imports: nothing imported before it; byte
code compiled once beforehand, as in an install), timed from start to exit; the figures are medians of ``--runs`` loads, the two kinds of load
interleaved. Targets: the example within +0.2 s of the empty floor; the 300 MB file
under +0.1 s on a repeated load (its content hash comes from the file-hash cache,
``dreamer_dagster/file_hashes.py``). Exits non-zero when a target is missed.

    python bench/load_time.py [--runs 7] [--data-mb 300]

``python -X importtime -c "import definitions"`` shows where the time goes if it is over.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from definitions_load import ROOT, data_file_overhead, load_seconds  # noqa: E402

TARGET_EXTRA_S = 0.2
TARGET_DATA_FILE_S = 0.1


def definitions_overhead(runs: int) -> float:
    """Print and return the example's median load time minus the empty floor's."""
    with tempfile.TemporaryDirectory() as folder:
        empty = Path(folder) / "empty_definitions.py"
        empty.write_text("import dagster as dg\ndefs = dg.Definitions()\n")
        floor, ours = [], []
        for _ in range(runs):
            floor.append(load_seconds(empty)[0])
            ours.append(load_seconds(ROOT / "definitions.py")[0])
    floor_s, ours_s = statistics.median(floor), statistics.median(ours)
    extra = ours_s - floor_s
    print(f"empty dg.Definitions: {floor_s:.2f} s   definitions.py: {ours_s:.2f} s   (medians of {runs})")
    print(f"definitions.py adds {extra:+.2f} s (target <= +{TARGET_EXTRA_S:.2f} s)")
    return extra


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--data-mb", type=int, default=300)
    options = parser.parse_args()
    # Loads as a user's install has them: byte code compiled once and kept (a checkout run
    # with PYTHONDONTWRITEBYTECODE=1 would compile every module at every load).
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    subprocess.run(
        [sys.executable, "-c", f"import runpy; runpy.run_path({str(ROOT / 'definitions.py')!r})"], check=True
    )
    extra = definitions_overhead(options.runs)
    repeated = data_file_overhead(options.runs, options.data_mb)
    if extra > TARGET_EXTRA_S or (repeated is not None and repeated >= TARGET_DATA_FILE_S):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
