"""Two batches side by side on the CPU against one at a time, in one process.

``default_llm()`` (SmolLM2-135M-Instruct) answers ``--prompts`` new chat prompts through
``llm.run`` (greedy, batches of ``--batch-size``, ``--max-new-tokens`` new tokens, no
session: no cache), once with ``cpu_threads.LANES`` = 2 (the waiting batches generate
side by side, each thread on half of torch's threads) and once with 1 (one batch at a
time on all of them, the thread tuner on), interleaved over ``--rounds`` rounds with new
prompts each round and the order turning. ``--busy N`` keeps N busy-loop processes
running throughout (a machine shared with other work). Prints each side's median and
spread, the ratio and whether the answers are the same. Target: side by side at least
as fast as one at a time, the same answers; exits non-zero otherwise.

    python bench/cpu_lanes.py [--rounds 3] [--prompts 64] [--busy 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench" / "peers"))

from peer_task import make_prompts  # noqa: E402

from dreamer_dagster.llms import cpu_threads, default_llm  # noqa: E402

SIDES = {"side by side": 2, "one at a time": 1}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--busy", type=int, default=0)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    llm = default_llm()
    llm.run(["Say hello."], max_new_tokens=2)  # load and warm up outside the timings
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.busy)]
    seconds: dict[str, list[float]] = {side: [] for side in SIDES}
    same = total = 0
    try:
        print(
            f"SmolLM2 on CPU, {args.prompts} prompts, batch {args.batch_size}, {args.max_new_tokens} new tokens, "
            f"{args.rounds} rounds, {args.busy} busy processes"
        )
        for round_ in range(args.rounds):
            prompts = make_prompts(
                {"task": "local", "prompts": args.prompts, "tag": f"lanes{round_}-{time.time_ns()}"}
            )
            order = list(SIDES) if round_ % 2 == 0 else list(SIDES)[::-1]
            answers = {}
            for side in order:
                cpu_threads.LANES = SIDES[side]
                started = time.perf_counter()
                answers[side] = llm.run(
                    prompts, batch_size=args.batch_size, max_new_tokens=args.max_new_tokens
                )
                seconds[side].append(time.perf_counter() - started)
                print(f"round {round_ + 1}: {side}: {seconds[side][-1]:.2f} s", flush=True)
            same += sum(a == b for a, b in zip(*answers.values()))
            total += len(prompts)
    finally:
        for process in busy:
            process.kill()
    print()
    for side, found in seconds.items():
        print(
            f"{side:<14} median {statistics.median(found):6.2f} s  spread {min(found):.2f}-{max(found):.2f} s"
        )
    ratio = statistics.median(seconds["one at a time"]) / statistics.median(seconds["side by side"])
    print(f"side by side / one at a time: {ratio:.3f}x faster; answers the same: {same}/{total}")
    if ratio < 1.0 or same != total:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
