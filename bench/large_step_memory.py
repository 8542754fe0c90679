"""Peak memory of one large generation step: DataFromPrompt with ``n`` rows
against a fast OpenAI-compatible server on loopback (no latency).

The floor is this process's peak RSS after everything is imported and the
definitions are built, measured in the same run; the step must add rows to
disk as it goes, so its peak stays near that floor however many rows it has.
Target (DESIGN.md): peak RSS <= 1 GB for 200,000 rows.

    python bench/large_step_memory.py [--rows 200000] [--concurrency 64]
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import dagster as dg  # noqa: E402

from dreamer_dagster import dreamer_definitions  # noqa: E402
from dreamer_dagster.llms import OpenAI  # noqa: E402
from dreamer_dagster.steps import DataFromPrompt  # noqa: E402
from tests.support.openai_server import start_server_process  # noqa: E402

TARGET_MB = 1024


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    with start_server_process(latency=0.0) as base_url, tempfile.TemporaryDirectory() as folder:
        llm = OpenAI("fake-chat", base_url=base_url, api_key="bench", max_concurrency=args.concurrency)
        step = DataFromPrompt(
            "Large Generation",
            args={"llm": llm, "n": args.rows, "instruction": "Write one sentence.", "max_new_tokens": 16},
            progress_interval=None,
        )
        defs = dreamer_definitions([step], output_folder=str(Path(folder) / "output"))
        import datasets  # noqa: F401 - imported before the floor is read, as the step needs it

        floor = peak_rss_mb()
        started = time.perf_counter()
        result = dg.materialize(
            [step.asset], resources=defs.resources, instance=dg.DagsterInstance.ephemeral()
        )
        elapsed = time.perf_counter() - started
        assert result.success
        rows = result.asset_materializations_for_node(step.key)[0].metadata["dagster/row_count"].value
        peak = peak_rss_mb()
    print(f"rows: {rows} in {elapsed:.0f} s ({rows / elapsed:.0f} rows/s)")
    print(f"peak RSS before the step (floor): {floor:.0f} MB")
    print(f"peak RSS with the step:           {peak:.0f} MB (+{peak - floor:.0f} MB over the floor)")
    print(f"target <= {TARGET_MB} MB: {'met' if peak <= TARGET_MB else 'MISSED'}")


if __name__ == "__main__":
    main()
