"""Adaptive concurrency against a fixed limit, on servers that slow down as they fill.

The loopback server (a subprocess) answers in ``latency`` seconds plus
``--slope`` seconds per request in flight beyond ``--knee``, the way a
self-hosted server queues; it never answers 429. ``OpenAI.run`` sends the same
N prompts with ``max_concurrency=C`` twice: with the adaptive limit, and with
a fixed one (``adaptive_concurrency=False``, the floor). Printed for each:
wall time, requests that timed out, answers the server produced (and a
provider would bill) per prompt, and the lowest limit. With the default
settings a fixed limit of 16 sits over the 0.8 s timeout: timed-out requests
are retried while the server still works on them, and it falls further behind.
The target: the adaptive run is at least as fast and produces at most 1.5
answers per prompt.

    python bench/adaptive_concurrency.py [--prompts 100] [--concurrency 16] [--timeout 0.8]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dreamer_dagster.llms import OpenAI  # noqa: E402
from tests.support.openai_server import control, start_server_process  # noqa: E402

MAX_ANSWERS_PER_PROMPT = 1.5


def run(base_url: str, prompts: int, concurrency: int, timeout: float, adaptive: bool) -> dict:
    control(base_url, "/_reset", {})
    llm = OpenAI(
        "fake-chat",
        base_url=base_url,
        max_concurrency=concurrency,
        timeout=timeout,
        retry_initial_delay=0.05,
        adaptive_concurrency=adaptive,
    )
    bound = llm.for_run(cache_folder=None, stats=Counter())
    started = time.perf_counter()
    failed = None
    try:
        bound.run([f"bench prompt {i}" for i in range(prompts)], max_new_tokens=8)
    except RuntimeError as error:
        failed = str(error)[:120]
    elapsed = time.perf_counter() - started
    # Requests the client gave up on are still being worked on: let the server finish them.
    deadline = time.monotonic() + 30
    while (stats := control(base_url, "/_stats"))["in_flight"] and time.monotonic() < deadline:
        time.sleep(0.1)
    return {
        "seconds": elapsed,
        "timeouts": bound.stats["retries_timeout"],
        "answers_per_prompt": stats["answered"] / prompts,
        "lowest_limit": bound.stats["concurrency_limit_min"],
        "failed": failed,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--prompts", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--timeout", type=float, default=0.8)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--slope", type=float, default=0.08)
    parser.add_argument("--knee", type=int, default=4)
    args = parser.parse_args()
    with start_server_process() as base_url:
        control(
            base_url,
            "/_configure",
            {"latency": args.latency, "latency_per_in_flight": args.slope, "latency_knee": args.knee},
        )
        results = {
            "fixed": run(base_url, args.prompts, args.concurrency, args.timeout, adaptive=False),
            "adaptive": run(base_url, args.prompts, args.concurrency, args.timeout, adaptive=True),
        }
    print(
        f"prompts={args.prompts} max_concurrency={args.concurrency} timeout={args.timeout}s; server "
        f"{args.latency}s + {args.slope}s per request in flight beyond {args.knee}"
    )
    for name, result in results.items():
        print(
            f"{name:9} {result['seconds']:6.2f} s, {result['timeouts']} timed-out requests, "
            f"{result['answers_per_prompt']:.2f} answers per prompt, lowest limit {result['lowest_limit']}"
            + (f", FAILED: {result['failed']}" if result["failed"] else "")
        )
    fixed, adaptive = results["fixed"], results["adaptive"]
    speedup = fixed["seconds"] / adaptive["seconds"]
    ok = adaptive["failed"] is None and speedup >= 1.0
    ok = ok and adaptive["answers_per_prompt"] <= MAX_ANSWERS_PER_PROMPT
    print(
        f"adaptive vs fixed: {speedup:.2f}x the speed, {adaptive['answers_per_prompt']:.2f} vs "
        f"{fixed['answers_per_prompt']:.2f} answers per prompt "
        f"(target: >= 1.0x, <= {MAX_ANSWERS_PER_PROMPT}) {'OK' if ok else 'BELOW TARGET'}"
    )
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
