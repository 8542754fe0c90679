"""What checking a finished step's files against its step.json costs, next to a re-run.

A ``DataSource`` of 200,000 rows is materialized once through Dagster. The floor, measured
in the same run: a re-run of the step (its folder removed, a fresh Dagster instance; the
step's time from Dagster's event log, ``STEP_START`` to ``STEP_SUCCESS``). Ours: the check
that runs before the finished folder is reused or read (``StepFolder.verify_output``: each
file's size and xxh3_128 against the manifest), cold (the process has not checked the
folder yet, so every file is hashed) and warm (checked before: only stat calls). A reuse
run (the folder finished, the check included) is printed too. Both sides: best of
``--rounds``. Target: a cold check under 10 % of the re-run; exits non-zero above it.

    python bench/integrity_check.py [--rows 200000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import dagster as dg  # noqa: E402

from bench._timing import step_seconds  # noqa: E402
from dreamer_dagster import dreamer_definitions, integrity  # noqa: E402
from dreamer_dagster.output_folder import OutputFolder  # noqa: E402
from dreamer_dagster.steps import DataSource  # noqa: E402

TARGET_RATIO = 0.10


def materialize_seconds(defs: dg.Definitions, key: str) -> float:
    """One materialization with a fresh instance; the step's seconds from the event log."""
    with dg.instance_for_test() as instance:
        result = dg.materialize(list(defs.assets), resources=defs.resources, instance=instance)
        assert result.success
        return step_seconds(instance, result.run_id, key)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        output = Path(folder) / "output"
        texts = [
            f"Row {i}: a sentence of about the length of a short generation, {i * 7919 % 1000}."
            for i in range(args.rows)
        ]
        step = DataSource("Rows", data={"text": texts, "n": list(range(args.rows))}, progress_interval=None)
        defs = dreamer_definitions([step], output_folder=str(output))
        materialize_seconds(defs, step.key)
        step_folder = OutputFolder(output).step(step.key)
        record = step_folder.step_json()
        size = sum(entry["size"] for entry in record["manifest"]["files"].values())
        rerun, reuse, cold, warm = [], [], [], []
        for _ in range(args.rounds):
            shutil.rmtree(output / step.key)
            rerun.append(materialize_seconds(defs, step.key))
            integrity.forget_checks()
            reuse.append(materialize_seconds(defs, step.key))  # finished: checked, then reused
            integrity.forget_checks()
            started = time.perf_counter()
            step_folder.verify_output()
            cold.append(time.perf_counter() - started)
            started = time.perf_counter()
            step_folder.verify_output()
            warm.append(time.perf_counter() - started)
    ratio = min(cold) / min(rerun)
    print(f"rows={args.rows}; _dataset {size / 1e6:.1f} MB in {len(record['manifest']['files'])} files")
    print(f"re-run of the step through Dagster (floor):  {min(rerun) * 1000:8.1f} ms")
    print(f"reuse run (finished folder, check included): {min(reuse) * 1000:8.1f} ms")
    print(
        f"check, cold (every file hashed):             {min(cold) * 1000:8.1f} ms (ratio to floor {ratio:.3f})"
    )
    print(f"check, warm (checked before: stat only):     {min(warm) * 1000:8.1f} ms")
    ok = ratio <= TARGET_RATIO
    print(f"target: cold check <= {TARGET_RATIO:.0%} of the re-run: {'OK' if ok else 'ABOVE TARGET'}")
    if not ok:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
