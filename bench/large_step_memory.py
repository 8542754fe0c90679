"""Memory of a large generation step over distinct ~1 KB prompts, at two sizes.

A ``ProcessWithPrompt`` step reads an input column of distinct ~1 KB texts (a
data source step materialized first) and sends one distinct prompt a row to a
fast OpenAI-compatible server on loopback (no latency). Each size runs in a
fresh process, through Dagster, with the real IO manager:

1. materialize a 200-row step of the same kind (imports, the client, the event
   loop thread, SQLite and the Arrow writer all warmed up), then read the
   process's peak RSS: the floor, measured in the same run;
2. materialize the large step and read the peak RSS again.

What a step holds a row (an input column read whole, the prompts, a map of
every distinct prompt, pages of memory-mapped files it touched) shows as
growth that rises with the row count; what it holds a batch at a time does not.
The figure that decides is the growth per row between the two sizes,
``(growth at the large size - growth at the small size) / (difference in
rows)``: target < 200 bytes a row. The peak at the large size must also stay
under 1 GB (docs/concepts/architecture.md, "Targets": a 200,000-row step). Exits non-zero when either misses.

    python bench/large_step_memory.py [--rows 50000 200000] [--concurrency 64]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TARGET_BYTES_PER_ROW = 200
TARGET_PEAK_MB = 1024
WARM_UP_ROWS = 200


def peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def declare(
    rows: int, output: str, base_url: str, concurrency: int, instruction: str = "Summarize it."
) -> tuple:
    """The input step (distinct ~1 KB texts) and the ProcessWithPrompt step over it."""
    from dreamer_dagster import dreamer_definitions
    from dreamer_dagster.llms import OpenAI
    from dreamer_dagster.steps import DataSource, ProcessWithPrompt

    def texts():
        import hashlib

        for i in range(rows):
            words = hashlib.sha256(str(i).encode()).hexdigest() * 16
            yield {"text": f"Document {i}: {words[:1000]}"}

    source = DataSource(f"Distinct Texts {rows}", data=texts, columns=["text"], progress_interval=None)
    llm = OpenAI("fake-chat", base_url=base_url, api_key="bench", max_concurrency=concurrency)
    step = ProcessWithPrompt(
        f"Process Distinct Texts {rows}",
        inputs={"inputs": source.output["text"]},
        args={"llm": llm, "instruction": instruction, "max_new_tokens": 8},
        progress_interval=None,
    )
    return source, step, dreamer_definitions([step], output_folder=output)


def child(mode: str, rows: int, output: str, base_url: str, concurrency: int) -> None:
    """One measurement (or the input's preparation) in this fresh process; prints JSON."""
    import dagster as dg

    instance = dg.DagsterInstance.ephemeral()
    source, step, defs = declare(rows, output, base_url, concurrency)
    if mode == "prepare":
        assert dg.materialize([source.asset], resources=defs.resources, instance=instance).success
        return
    # Other prompts than the measured step's: none of its calls is answered from the cache.
    w_source, w_step, w_defs = declare(WARM_UP_ROWS, output, base_url, concurrency, "Warm up.")
    assert dg.materialize(
        [w_source.asset, w_step.asset], resources=w_defs.resources, instance=instance
    ).success
    floor = peak_rss_mb()
    started = time.perf_counter()
    result = dg.materialize(
        [source.asset, step.asset], selection=[step.asset_key], resources=defs.resources, instance=instance
    )
    elapsed = time.perf_counter() - started
    assert result.success
    [event] = result.asset_materializations_for_node(step.key)
    produced = event.metadata["dagster/row_count"].value
    assert produced == rows and event.metadata["dreamer/model_calls"].value == rows
    print(json.dumps({"rows": rows, "floor_mb": floor, "peak_mb": peak_rss_mb(), "seconds": elapsed}))


def run_child(mode: str, rows: int, output: str, base_url: str, concurrency: int) -> dict | None:
    command = [sys.executable, __file__, "--child", mode, str(rows), output, base_url, str(concurrency)]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if result.returncode != 0:
        sys.stderr.write(result.stderr[-4000:])
        raise SystemExit(f"the {mode} run for {rows} rows failed")
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    return json.loads(lines[-1]) if lines else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, nargs=2, default=[50_000, 200_000])
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        mode, rows, output, base_url, concurrency = args.child
        child(mode, int(rows), output, base_url, int(concurrency))
        return

    from tests.support.openai_server import start_server_process

    small, large = sorted(args.rows)
    measured = {}
    with start_server_process(latency=0.0) as base_url, tempfile.TemporaryDirectory() as folder:
        for rows in (small, large):
            output = str(Path(folder) / f"output-{rows}")  # a cache of its own: every row is a call
            run_child("prepare", rows, output, base_url, args.concurrency)
            measured[rows] = run_child("measure", rows, output, base_url, args.concurrency)
    for rows in (small, large):
        m = measured[rows]
        growth = m["peak_mb"] - m["floor_mb"]
        print(
            f"{rows:>7} distinct ~1 KB prompts: {m['seconds']:.0f} s ({rows / m['seconds']:.0f} rows/s); "
            f"peak RSS {m['peak_mb']:.0f} MB, floor {m['floor_mb']:.0f} MB "
            f"(ratio {m['peak_mb'] / m['floor_mb']:.2f}), growth {growth:.1f} MB = "
            f"{growth * 2**20 / rows:.0f} bytes/row"
        )
    growth_small = measured[small]["peak_mb"] - measured[small]["floor_mb"]
    growth_large = measured[large]["peak_mb"] - measured[large]["floor_mb"]
    per_row = (growth_large - growth_small) * 2**20 / (large - small)
    peak = measured[large]["peak_mb"]
    per_row_ok = per_row < TARGET_BYTES_PER_ROW
    peak_ok = peak <= TARGET_PEAK_MB
    print(
        f"growth per row from {small:,} to {large:,} rows: {per_row:.0f} bytes "
        f"(target < {TARGET_BYTES_PER_ROW}) {'OK' if per_row_ok else 'ABOVE TARGET'}"
    )
    print(
        f"peak RSS at {large:,} rows: {peak:.0f} MB (target <= {TARGET_PEAK_MB}) {'OK' if peak_ok else 'ABOVE TARGET'}"
    )
    if not (per_row_ok and peak_ok):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
