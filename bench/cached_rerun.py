"""A fully cached re-run of a 10,000-row generation step, through Dagster.

A ``ProcessWithPrompt`` step over 10,000 distinct inputs is materialized once
against an OpenAI-compatible server on loopback, so the model cache holds every
answer. Each round then removes the step's folder and materializes the step
again with a fresh Dagster instance (no history): every row is answered from
the model cache (asserted: no request reaches the server, 0 model calls,
10,000 cache hits, the same output). The time is the step's, end to end, from
Dagster's event log (``STEP_START`` to ``STEP_SUCCESS``). The floor, measured
in the same run for the same number of rounds, is a bare SQLite
``SELECT key, value ... WHERE key IN (...)`` of every key of the cache file in
chunks of 900. Both sides: best of ``--rounds``. Target (docs/concepts/architecture.md, "Targets"): >= 20,000
rows/s; exits non-zero below it.

    python bench/cached_rerun.py [--rows 10000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import dagster as dg  # noqa: E402

from bench._timing import step_seconds  # noqa: E402
from dreamer_dagster import dreamer_definitions  # noqa: E402
from dreamer_dagster.llms import OpenAI  # noqa: E402
from dreamer_dagster.steps import DataSource, ProcessWithPrompt  # noqa: E402
from tests.support.openai_server import control, start_server_process  # noqa: E402

TARGET_ROWS_PER_S = 20_000


def bare_lookup(database: Path) -> float:
    """Seconds to read every value of the cache file by key, as ``ModelCache`` batches them."""
    connection = sqlite3.connect(database)
    try:
        keys = [row[0] for row in connection.execute("SELECT key FROM cache")]
        started = time.perf_counter()
        for start in range(0, len(keys), 900):
            chunk = keys[start : start + 900]
            marks = ",".join("?" * len(chunk))
            connection.execute(f"SELECT key, value FROM cache WHERE key IN ({marks})", chunk).fetchall()
        return time.perf_counter() - started
    finally:
        connection.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    import datasets

    with start_server_process() as base_url, tempfile.TemporaryDirectory() as folder:
        output = Path(folder) / "output"
        source = DataSource(
            "Items", data={"item": [f"Item number {i} of the list." for i in range(args.rows)]}
        )
        llm = OpenAI("fake-chat", base_url=base_url, api_key="bench", max_concurrency=64)
        step = ProcessWithPrompt(
            "Describe Items",
            inputs={"inputs": source.output["item"]},
            args={"llm": llm, "instruction": "Describe it.", "max_new_tokens": 16},
            progress_interval=None,
        )
        defs = dreamer_definitions([step], output_folder=str(output))
        started = time.perf_counter()
        with dg.instance_for_test() as instance:
            assert dg.materialize(list(defs.assets), resources=defs.resources, instance=instance).success
        fill = time.perf_counter() - started
        first = datasets.load_from_disk(str(output / step.key / "_dataset")).to_dict()
        requests_after_fill = control(base_url, "/_stats")["requests"]
        [database] = (output / ".cache").glob("OpenAI-*.db")
        ours, floor = [], []
        for _ in range(args.rounds):
            shutil.rmtree(output / step.key)
            with dg.instance_for_test() as instance:
                result = dg.materialize(
                    list(defs.assets), selection=[step.asset_key], resources=defs.resources, instance=instance
                )
                assert result.success
                [event] = result.asset_materializations_for_node(step.key)
                assert event.metadata["dreamer/model_calls"].value == 0
                assert event.metadata["dreamer/cache_hits"].value == args.rows
                ours.append(step_seconds(instance, result.run_id, step.key))
            floor.append(bare_lookup(database))
        assert control(base_url, "/_stats")["requests"] == requests_after_fill, "the re-run called the model"
        assert datasets.load_from_disk(str(output / step.key / "_dataset")).to_dict() == first
    rate = args.rows / min(ours)
    floor_rate = args.rows / min(floor)
    print(f"rows={args.rows}; filled the cache through the server in {fill:.0f} s; re-run model calls: 0")
    print(f"bare SQLite lookup of every key (floor): {floor_rate:>9,.0f} rows/s")
    print(
        f"cached step re-run through Dagster:      {rate:>9,.0f} rows/s (ratio to floor {rate / floor_rate:.3f})"
    )
    ok = rate >= TARGET_ROWS_PER_S
    print(f"target >= {TARGET_ROWS_PER_S:,} rows/s: {'OK' if ok else 'BELOW TARGET'}")
    if not ok:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
