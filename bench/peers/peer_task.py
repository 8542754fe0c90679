"""What every peer runner shares (standard library only: each runner runs in its peer's venv).

A runner is started as ``<venv>/bin/python bench/peers/run_<peer>.py '<config JSON>'``
and prints one line ``RESULT <JSON>`` when its work is done. The config holds:

- ``task``: ``"api"`` (chat completions against the loopback server) or ``"local"``
  (SmolLM2 on the CPU);
- ``prompts`` (how many), ``tag`` (makes the prompts of one scenario distinct
  from another's), ``concurrency`` (requests in flight / local batch size),
  ``max_new_tokens``;
- ``base_url`` (api), ``model_dir`` (local: a transformers folder), ``work_dir``
  (the peer's output and cache folder; the same folder on a re-run);
- optional ``prompt_list`` (the prompts themselves, in the driver's order) and
  ``save_generations`` (write ``generations.json`` in ``work_dir``).

``seconds`` in the result times the peer's own run call, from the moment its
pipeline or step is declared to the moment its output dataset exists; imports
and process start are outside it (the driver reports those as ``wall``).
"""

from __future__ import annotations

import json
import os
import sys
import time

__all__ = [
    "MODEL_NAME",
    "SYSTEM_PROMPT",
    "OfflineEncoding",
    "Timer",
    "expected_answer",
    "load_config",
    "make_prompts",
    "offline_tiktoken",
    "report",
]

#: The model name every API runner asks for: DataDreamer treats only GPT names as chat models.
MODEL_NAME = "gpt-4o-mini"
SYSTEM_PROMPT = "You are a helpful assistant."


def load_config() -> dict:
    config = json.loads(sys.argv[1])
    os.makedirs(config["work_dir"], exist_ok=True)
    return config


def make_prompts(config: dict) -> list[str]:
    if config.get("prompt_list"):  # the driver's prompts, in its order (bench/peers/local_work.py)
        return list(config["prompt_list"])
    if config["task"] == "local":
        subjects = [
            "the sea",
            "a city at night",
            "mountains",
            "a library",
            "rain",
            "a train",
            "bread",
            "snow",
        ]
        return [
            f"Write a short poem about {subjects[i % len(subjects)]} (#{config['tag']}.{i})."
            for i in range(config["prompts"])
        ]
    return [f"Write one sentence about item {i} of list {config['tag']}." for i in range(config["prompts"])]


def expected_answer(prompt: str) -> str:
    """What the loopback server answers a chat prompt (``max_tokens`` is never reached here)."""
    return "Echo: " + prompt


class OfflineEncoding:
    """Stands in for a tiktoken ``Encoding``: about 4 characters a token, no table to download."""

    name = "offline"

    def encode(self, text: str, **kwargs: object) -> list[int]:
        return [0] * max(1, (len(text) + 3) // 4)

    def encode_ordinary(self, text: str) -> list[int]:
        return self.encode(text)


def offline_tiktoken() -> None:
    """Make ``tiktoken.get_encoding`` / ``encoding_for_model`` return an offline count: the real
    ones download their tables on first use, and this machine reaches no such host."""
    import tiktoken

    tiktoken.get_encoding = lambda *args, **kwargs: OfflineEncoding()
    tiktoken.encoding_for_model = lambda *args, **kwargs: OfflineEncoding()


class Timer:
    """``with Timer() as timer: ...``; then ``timer.seconds``."""

    def __enter__(self) -> Timer:
        self.started = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.started


def report(config: dict, prompts: list[str], generations: list, seconds: float, **extra: object) -> None:
    """Print the result line: rows, seconds and how many rows hold the right answer."""
    if config["task"] == "api":
        correct = sum(
            isinstance(g, str) and g.strip() == expected_answer(p) for p, g in zip(prompts, generations)
        )
    else:
        correct = sum(isinstance(g, str) and bool(g.strip()) for g in generations)
    result = {"rows": len(generations), "correct": correct, "seconds": seconds, **extra}
    if config.get("save_generations"):
        with open(os.path.join(config["work_dir"], "generations.json"), "w") as out:
            json.dump([str(g) for g in generations], out)
    print("RESULT " + json.dumps(result), flush=True)
