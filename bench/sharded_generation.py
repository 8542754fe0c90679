"""Sharded generation: a 4-shard step of 2,000 prompts on 2 workers against the same step
unsharded on 1, at 50 ms server latency (OpenAI-compatible server on loopback, a subprocess).

Each worker is a process of its own with its own local folder (as on its own machine) over
one output folder on a shared disk (a ``file://`` URL: per-worker model caches, merged on
commit). The unsharded step runs in one worker; the sharded one as partitions 0 and 2 in
worker A and 1 and 3 in worker B at once, then the merge. Each model keeps at most
``--concurrency`` requests in flight per worker. Printed: rows/s of each, measured from the
first worker's start of work to the end of the merge (process start-up, the same for both,
left out: the shards' time plus the merge's), and the wall time with start-up; the ratio is
sharded / unsharded. No target: the figure to watch is how close 2 workers come to 2x. The
one server process answers both workers: on a busy machine its CPU, not the latency, can set
the pace (then no sharding helps); ``--concurrency`` is per worker.

    python bench/sharded_generation.py [--prompts 2000] [--shards 4] [--latency 0.05] [--concurrency 4]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.openai_server import control, start_server_process  # noqa: E402

DEFINITIONS = textwrap.dedent(
    """
    import os

    from dreamer_dagster import Pipeline
    from dreamer_dagster.llms import OpenAI
    from dreamer_dagster.steps import DataSource, ProcessWithPrompt

    shards = int(os.environ["SHARDS"]) or None
    llm = OpenAI("fake-chat", base_url=os.environ["BASE_URL"], max_concurrency=int(os.environ["CONCURRENCY"]))
    with Pipeline(os.environ["OUTPUT"]) as pipeline:
        source = DataSource("Inputs", {"text": [f"text {i}" for i in range(int(os.environ["PROMPTS"]))]})
        ProcessWithPrompt(
            "Gen",
            inputs={"inputs": source.output["text"]},
            args={"llm": llm, "instruction": "Shorten it.", "max_new_tokens": 16},
            progress_interval=None,
            **({"shards": shards} if shards else {}),
        )
    defs = pipeline.definitions()
    """
)

WORKER = textwrap.dedent(
    """
    import json, sys, time
    import dagster as dg
    from dreamer_dagster.cli import load_definitions

    defs = load_definitions(sys.argv[1])
    instance = dg.DagsterInstance.ephemeral()
    started = time.time()
    for part in sys.argv[3].split(","):
        asset, _, partition = part.partition(":")
        result = dg.materialize(
            list(defs.assets), instance=instance, resources=dict(defs.resources),
            selection=[dg.AssetKey(asset)], partition_key=partition or None,
        )
        assert result.success
    with open(sys.argv[2], "w") as handle:
        json.dump({"start": started, "end": time.time()}, handle)
    """
)


def workers(script: Path, env: dict, jobs: list[str], tmp: Path) -> tuple[float, float]:
    """Run one worker process per entry of ``jobs`` at once; ``(first start, last end)``."""
    processes = []
    for number, job in enumerate(jobs):
        timing = tmp / f"timing-{time.monotonic_ns()}-{number}.json"
        worker_env = {**env, "DREAMER_LOCAL_FOLDER": str(tmp / f"machine-{number}-{time.monotonic_ns()}")}
        command = [sys.executable, "-c", WORKER, str(script), str(timing), job]
        processes.append((subprocess.Popen(command, env=worker_env, stderr=subprocess.PIPE), timing))
    for process, _ in processes:
        _, stderr = process.communicate()
        if process.returncode != 0:
            raise SystemExit(f"a worker failed:\n{stderr.decode()[-3000:]}")
    timings = [json.loads(timing.read_text()) for _, timing in processes]
    return min(t["start"] for t in timings), max(t["end"] for t in timings)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--prompts", type=int, default=2000)
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    with start_server_process(latency=args.latency) as base_url, tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        script = tmp / "definitions.py"
        script.write_text(DEFINITIONS)
        base = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "HF_HUB_OFFLINE": "1",
            "BASE_URL": base_url,
            "PROMPTS": str(args.prompts),
            "CONCURRENCY": str(args.concurrency),
        }
        results = {}
        for label, shards in (
            ("unsharded, 1 worker", 0),
            (f"{args.shards} shards, {args.workers} workers", args.shards),
        ):
            env = {**base, "SHARDS": str(shards), "OUTPUT": (tmp / f"output-{shards}").as_uri()}
            workers(script, env, ["inputs"], tmp)  # the input, not timed
            before = control(base_url, "/_stats")["requests"]
            wall = time.time()
            if shards:
                keys = [str(k) for k in range(args.shards)]
                jobs = [
                    ",".join(f"gen_shards:{k}" for k in keys[w :: args.workers]) for w in range(args.workers)
                ]
                start, end = workers(script, env, jobs, tmp)
                merge_start, merge_end = workers(script, env, ["gen"], tmp)
                seconds = (end - start) + (merge_end - merge_start)
            else:
                start, end = workers(script, env, ["gen"], tmp)
                seconds = end - start
            calls = control(base_url, "/_stats")["requests"] - before
            assert calls == args.prompts, f"{label}: {calls} model calls for {args.prompts} prompts"
            results[label] = (args.prompts / seconds, args.prompts / (time.time() - wall))
    (plain, plain_wall), (sharded, sharded_wall) = results.values()
    print(
        f"prompts={args.prompts} latency={args.latency * 1000:.0f} ms concurrency/worker={args.concurrency}"
    )
    for label, (rate, wall_rate) in results.items():
        print(f"{label:>24}: {rate:7.1f} rows/s ({wall_rate:6.1f} rows/s with process start-up)")
    print(f"sharded / unsharded: {sharded / plain:.2f}x ({sharded_wall / plain_wall:.2f}x with start-up)")


if __name__ == "__main__":
    main()
