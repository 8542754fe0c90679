"""API generation throughput: ``OpenAI.run`` against a bare ``AsyncOpenAI`` + semaphore loop.

Both talk to the same OpenAI-compatible server (tests/support/openai_server.py,
a subprocess on loopback) with a fixed latency, N prompts and C requests in
flight. Prints our throughput as a ratio of the bare loop's (target >= 0.9),
the most requests the server saw in flight (must be <= C), and where the
adaptive concurrency limit went (on this healthy server it should stay at C);
exits non-zero when the ratio or the in-flight limit misses.

    python bench/api_generation.py [--prompts 1000] [--concurrency 32] [--latency 0.05]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dreamer_dagster.llms import OpenAI  # noqa: E402
from tests.support.openai_server import control, start_server_process  # noqa: E402

TARGET = 0.9


def bare(base_url: str, prompts: list[str], concurrency: int) -> float:
    from openai import AsyncOpenAI

    async def main() -> list[str]:
        client = AsyncOpenAI(api_key="bench", base_url=base_url, max_retries=0)
        semaphore = asyncio.Semaphore(concurrency)

        async def one(prompt: str) -> str:
            async with semaphore:
                response = await client.chat.completions.create(
                    model="fake-chat", messages=[{"role": "user", "content": prompt}], max_tokens=16
                )
                return response.choices[0].message.content

        try:
            return await asyncio.gather(*(one(p) for p in prompts))
        finally:
            await client.close()

    started = time.perf_counter()
    results = asyncio.run(main())
    elapsed = time.perf_counter() - started
    assert len(results) == len(prompts)
    return elapsed


def ours(base_url: str, prompts: list[str], concurrency: int, cache: Path) -> tuple[float, Counter]:
    llm = OpenAI("fake-chat", base_url=base_url, max_concurrency=concurrency, system_prompt="")
    bound = llm.for_run(cache_folder=cache, stats=Counter())
    started = time.perf_counter()
    results = list(bound.run(prompts, max_new_tokens=16, return_generator=True))
    elapsed = time.perf_counter() - started
    assert len(results) == len(prompts) and bound.stats["model_calls"] == len(prompts)
    return elapsed, bound.stats


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--prompts", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    with start_server_process(latency=args.latency) as base_url, tempfile.TemporaryDirectory() as folder:
        ours(base_url, ["warm-up"], 1, Path(folder) / "warm")
        bare(base_url, ["warm-up"], 1)
        floor_times, our_times, max_in_flight, lowest_limit = [], [], 0, args.concurrency
        for round_ in range(args.rounds):
            prompts = [f"round {round_} prompt {i}" for i in range(args.prompts)]
            control(base_url, "/_reset", {})
            floor_times.append(bare(base_url, prompts, args.concurrency))
            control(base_url, "/_reset", {})
            # A fresh cache each round: every prompt is a model call.
            elapsed, stats = ours(base_url, prompts, args.concurrency, Path(folder) / f"cache{round_}")
            our_times.append(elapsed)
            lowest_limit = min(lowest_limit, stats["concurrency_limit_min"])
            max_in_flight = max(max_in_flight, control(base_url, "/_stats")["max_in_flight"])
    floor = args.prompts / min(floor_times)
    ours_rate = args.prompts / min(our_times)
    ideal = args.concurrency / args.latency if args.latency else float("inf")
    ratio = ours_rate / floor
    print(f"prompts={args.prompts} concurrency={args.concurrency} latency={args.latency}s")
    print(f"bare AsyncOpenAI + semaphore: {floor:.1f} req/s (ideal {ideal:.0f} req/s)")
    print(f"OpenAI.run:                   {ours_rate:.1f} req/s")
    print(f"ratio {ratio:.3f} (target >= {TARGET}) {'OK' if ratio >= TARGET else 'BELOW TARGET'}")
    print(
        f"max in flight {max_in_flight} (limit {args.concurrency}) "
        f"{'OK' if max_in_flight <= args.concurrency else 'OVER LIMIT'}"
    )
    print(f"adaptive concurrency limit: lowest {lowest_limit} of {args.concurrency}")
    if ratio < TARGET or max_in_flight > args.concurrency:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
