"""Local generation throughput: ``HFTransformers.run`` against bare batched ``model.generate``.

SmolLM2-135M-Instruct on CPU, greedy, the same prompts (chat-formatted the
same way) in batches of 32 both ways, the same number of new tokens, and the
same batching: both sides sort the prompts by token count within groups of
four batches (as ``HFTransformers`` does, so a batch pads little) and
generate them in that order. Our side runs as a step runs it: bound to a model
cache (a fresh one each round, so every prompt is a model call, and every
answer is written to the cache). The same number of rounds on both sides,
best of each. Prints our prompts/s as a ratio of the bare loop's (target
>= 0.9) and exits non-zero below it.

    python bench/local_generation.py [--prompts 64] [--max-new-tokens 24]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dreamer_dagster.llms import default_llm  # noqa: E402

TARGET = 0.9
SUBJECTS = ["the sea", "a city at night", "mountains", "a library", "rain", "a train ride", "bread", "winter"]


def prompts_for(count: int, round_: int) -> list[str]:
    return [
        f"Write a short poem about {SUBJECTS[i % len(SUBJECTS)]}" + " please" * (i % 5) + f" (#{round_}.{i})."
        for i in range(count)
    ]


def length_sorted(tokenizer, texts: list[str], batch_size: int) -> list[str]:
    """``texts`` sorted by token count within groups of four batches (``BatchStream``'s order)."""
    group = 4 * batch_size
    ordered = []
    for start in range(0, len(texts), group):
        chunk = texts[start : start + group]
        counts = [len(tokenizer(text, add_special_tokens=False)["input_ids"]) for text in chunk]
        ordered += [text for _, _, text in sorted(zip(counts, range(len(chunk)), chunk))]
    return ordered


def bare(llm, prompts: list[str], batch_size: int, max_new_tokens: int) -> float:
    import torch

    model, tokenizer = llm.model, llm.tokenizer
    started = time.perf_counter()
    texts = length_sorted(tokenizer, [llm._format_text(p) for p in prompts], batch_size)
    for start in range(0, len(texts), batch_size):
        encoded = tokenizer(
            texts[start : start + batch_size], return_tensors="pt", padding=True, add_special_tokens=False
        )
        with torch.inference_mode():
            output = model.generate(
                **encoded, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id
            )
        tokenizer.batch_decode(output[:, encoded["input_ids"].shape[1] :], skip_special_tokens=True)
    return time.perf_counter() - started


def ours(llm, prompts: list[str], batch_size: int, max_new_tokens: int) -> float:
    with tempfile.TemporaryDirectory() as cache:
        bound = llm.for_run(cache_folder=Path(cache), stats=Counter())
        started = time.perf_counter()
        results = bound.run(prompts, max_new_tokens=max_new_tokens, batch_size=batch_size)
        elapsed = time.perf_counter() - started
    assert len(results) == len(prompts) and bound.stats["model_calls"] == len(prompts)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=24)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    llm = default_llm().for_run(cache_folder=None, stats=Counter())
    ours(llm, ["Hi."], 1, 2)  # load weights and warm up, outside the timings
    bare(llm, ["Hi."], 1, 2)
    floor_times, our_times = [], []
    for round_ in range(args.rounds):
        prompts = prompts_for(args.prompts, round_)
        sides = [(floor_times, bare), (our_times, ours)]
        for times, side in sides if round_ % 2 == 0 else sides[::-1]:  # neither side always goes first
            times.append(side(llm, prompts, args.batch_size, args.max_new_tokens))
    floor = min(floor_times)
    mine = min(our_times)
    ratio = floor / mine
    print(f"prompts={args.prompts} batch_size={args.batch_size} max_new_tokens={args.max_new_tokens}")
    print(f"bare model.generate: {floor:.2f} s ({args.prompts / floor:.2f} prompts/s)")
    print(f"HFTransformers.run:  {mine:.2f} s ({args.prompts / mine:.2f} prompts/s)")
    print(f"ratio {ratio:.3f} (target >= {TARGET}) {'OK' if ratio >= TARGET else 'BELOW TARGET'}")
    if ratio < TARGET:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
