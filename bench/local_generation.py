"""Local generation throughput: a ``Prompt`` step on ``default_llm()`` against bare batched
``model.generate`` and DataDreamer 0.46's ``HFTransformers``, in the same run.

SmolLM2-135M-Instruct on the CPU, greedy, ``--prompts`` chat prompts in batches of
``--batch-size``, ``--max-new-tokens`` new tokens. The work and the way it is timed are
``bench/peers/local_work.py``'s, shared with ``bench/peers.py``: every side gets the same
prompts in the same length-sorted order, runs in a fresh process with a cold cache and
times its own run call; the sides are interleaved over ``--rounds`` rounds (new prompts
each round, the order of the sides turning). Prints each side's median and spread, this
project's median throughput as a multiple of each other side's, and how many generations
agree with bare ``generate``'s, surrounding whitespace aside (greedy: they should all). Exits non-zero below the
targets: >= 1.0x bare ``generate`` and >= 1.5x DataDreamer. DataDreamer runs in its own
venv under ``.bench-peers/`` (built from PyPI on first use).

    python bench/local_generation.py [--rounds 5] [--prompts 64] [--sides generate,ours,datadreamer]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench" / "peers"))

from local_work import LOCAL_SIDES, measure_local  # noqa: E402

TARGETS = {"generate": 1.0, "datadreamer": 1.5}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--sides", default="generate,ours,datadreamer")
    args = parser.parse_args()
    sides = [side.strip() for side in args.sides.split(",") if side.strip()]
    unknown = [side for side in sides if side not in LOCAL_SIDES]
    if unknown or "ours" not in sides:
        raise SystemExit(f"--sides: 'ours' and any of {sorted(LOCAL_SIDES)}; got {args.sides!r}")
    print(
        f"SmolLM2-135M-Instruct on CPU, greedy: {args.prompts} prompts, batch {args.batch_size}, "
        f"{args.max_new_tokens} new tokens, {args.rounds} rounds interleaved"
    )
    results = measure_local(sides, args.rounds, args.prompts, args.batch_size, args.max_new_tokens)
    if any(not results[side].seconds for side in sides):
        raise SystemExit("a side produced no result; see the runner logs named above")
    print()
    print(f"{'side':<12} {'median':>8} {'spread':>16} {'prompts/s':>10}")
    for side in sides:
        found = results[side]
        print(f"{side:<12} {found.median:>7.2f}s {found.spread():>16} {args.prompts / found.median:>10.2f}")
    ours = results["ours"]
    failed = False
    for side in sides:
        if side == "ours":
            continue
        ratio = results[side].median / ours.median
        paired = statistics.median(a / b for a, b in zip(results[side].seconds, ours.seconds))
        target = TARGETS.get(side)
        verdict = "" if target is None else (" OK" if ratio >= target else f" BELOW TARGET {target}")
        failed |= target is not None and ratio < target
        print(f"ours / {side}: {ratio:.3f}x (median of rounds' ratios {paired:.3f}x){verdict}")
    if "generate" in results:
        for side in sides:
            if side == "generate":
                continue
            same = sum(
                a.strip() == b.strip()  # a Prompt step strips its generations; bare generate does not
                for theirs, floor in zip(results[side].generations, results["generate"].generations)
                for a, b in zip(theirs, floor)
            )
            total = sum(len(g) for g in results[side].generations)
            print(f"{side}: {same}/{total} generations identical to bare generate")
    if failed:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
