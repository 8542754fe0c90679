"""A fully cached ``Embed`` re-run through Dagster, against a cached generation re-run.

10,000 distinct texts are embedded once with MiniLM (the default embedder) and
generated for once by a ``ProcessWithPrompt`` step (an OpenAI-compatible
server on loopback), so both model caches hold every row. Then, for each
round and each side: the step's folder is removed and a fresh Dagster instance
(no history) materializes the step again, which answers every row from the
model cache (asserted: 0 model calls, 10,000 cache hits, the same output).

The time taken is the step's, end to end, from Dagster's own event log
(``STEP_START`` to ``STEP_SUCCESS``: loading the input through the IO manager,
the cache lookups, writing ``_dataset``, committing ``step.json``). The floor,
measured in the same run with the same number of rounds, is the cached
generation re-run of the same size. Targets: the embedding re-run at
>= 40,000 rows/s, and at least half the floor's rate. Exits non-zero when
either misses.

    python bench/cached_embed.py [--rows 10000] [--rounds 3]
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
from dreamer_dagster import dreamer_definitions  # noqa: E402
from dreamer_dagster.embedders import default_embedder  # noqa: E402
from dreamer_dagster.llms import OpenAI  # noqa: E402
from dreamer_dagster.steps import DataSource, Embed, ProcessWithPrompt  # noqa: E402
from tests.support.openai_server import start_server_process  # noqa: E402

TARGET_ROWS_PER_S = 40_000
TARGET_RATIO = 0.5


def rerun(step, defs, output: Path) -> tuple[float, float, dict]:
    """Remove the step's folder, wipe history, materialize it: (step s, wall s, metadata)."""
    shutil.rmtree(output / step.key)
    with dg.instance_for_test() as instance:
        started = time.perf_counter()
        result = dg.materialize(
            list(defs.assets), selection=[step.asset_key], resources=defs.resources, instance=instance
        )
        wall = time.perf_counter() - started
        assert result.success
        [event] = result.asset_materializations_for_node(step.key)
        metadata = {key: value.value for key, value in event.metadata.items()}
        return step_seconds(instance, result.run_id, step.key), wall, metadata


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    texts = [f"Note {i}: the meeting about topic {i % 97} moved to room {i % 13}." for i in range(args.rows)]
    with start_server_process() as base_url, tempfile.TemporaryDirectory() as folder:
        output = Path(folder) / "output"
        source = DataSource("Texts", data={"text": texts})
        embed = Embed(
            "Embed Texts",
            inputs={"texts": source.output["text"]},
            args={"embedder": default_embedder(), "batch_size": 64},
            progress_interval=None,
        )
        generate = ProcessWithPrompt(
            "Generate From Texts",
            inputs={"inputs": source.output["text"]},
            args={
                "llm": OpenAI("fake-chat", base_url=base_url, api_key="bench", max_concurrency=64),
                "instruction": "Rephrase it.",
                "max_new_tokens": 16,
            },
            progress_interval=None,
        )
        defs = dreamer_definitions([embed, generate], output_folder=str(output))
        started = time.perf_counter()
        with dg.instance_for_test() as instance:
            assert dg.materialize(list(defs.assets), resources=defs.resources, instance=instance).success
        print(f"rows={args.rows}; filled both model caches in {time.perf_counter() - started:.0f} s")
        expected = {step.key: (output / step.key / "_dataset") for step in (embed, generate)}
        import datasets

        first = {key: datasets.load_from_disk(str(path)).to_dict() for key, path in expected.items()}
        timings: dict[str, list[tuple[float, float]]] = {embed.key: [], generate.key: []}
        for _ in range(args.rounds):
            for step in (generate, embed):
                seconds, wall, metadata = rerun(step, defs, output)
                assert metadata["dreamer/model_calls"] == 0, metadata
                assert metadata["dreamer/cache_hits"] == args.rows, metadata
                timings[step.key].append((seconds, wall))
        for step in (embed, generate):
            again = datasets.load_from_disk(str(expected[step.key])).to_dict()
            assert again == first[step.key], f"the cached re-run of {step.name} changed its output"
    floor = args.rows / min(seconds for seconds, _ in timings[generate.key])
    rate = args.rows / min(seconds for seconds, _ in timings[embed.key])
    floor_wall = args.rows / min(wall for _, wall in timings[generate.key])
    rate_wall = args.rows / min(wall for _, wall in timings[embed.key])
    ratio = rate / floor
    print(
        f"best of {args.rounds} re-runs each, step time from Dagster's event log (whole dg.materialize call):"
    )
    print(f"cached generation re-run (floor): {floor:>9,.0f} rows/s ({floor_wall:,.0f} rows/s)")
    print(f"cached Embed re-run:              {rate:>9,.0f} rows/s ({rate_wall:,.0f} rows/s)")
    rate_ok, ratio_ok = rate >= TARGET_ROWS_PER_S, ratio >= TARGET_RATIO
    print(f"target >= {TARGET_ROWS_PER_S:,} rows/s: {'OK' if rate_ok else 'BELOW TARGET'}")
    print(f"ratio to floor {ratio:.2f} (target >= {TARGET_RATIO}): {'OK' if ratio_ok else 'BELOW TARGET'}")
    if not (rate_ok and ratio_ok):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
