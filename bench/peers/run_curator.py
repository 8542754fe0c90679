"""Curator 0.1.31: a ``curator.LLM`` subclass called on a ``datasets.Dataset``, cached in the work folder.

API only: Curator's local backend is vLLM, which needs a GPU. The ``openai``
backend at the loopback server with ``max_concurrent_requests`` = the requests
in flight and rate limits far above what the server can answer, so only the
concurrency limit binds. Telemetry is switched off (it would try to upload);
litellm's cost map is read from the package, not fetched. A killed run resumes
from the responses Curator wrote to its cache folder.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from peer_task import (  # noqa: E402
    MODEL_NAME,
    SYSTEM_PROMPT,
    Timer,
    load_config,
    make_prompts,
    offline_tiktoken,
    report,
)


def main() -> None:
    config = load_config()
    if config["task"] != "api":
        raise SystemExit("Curator has no CPU backend for a local model (its local backend is vLLM).")
    prompts = make_prompts(config)
    os.environ["TELEMETRY_ENABLED"] = "false"
    os.environ["CURATOR_CACHE_DIR"] = os.path.join(config["work_dir"], "cache")
    os.environ["CURATOR_DISABLE_RICH_DISPLAY"] = "1"
    os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    offline_tiktoken()
    import datasets
    from bespokelabs import curator

    class Answer(curator.LLM):
        def prompt(self, row: dict) -> list[dict]:
            return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": row["prompt"]}]

        def parse(self, row: dict, response: str) -> dict:
            return {"prompt": row["prompt"], "generation": response}

    with Timer() as timer:
        llm = Answer(
            model_name=MODEL_NAME,
            backend="openai",
            generation_params={"max_tokens": config["max_new_tokens"]},
            backend_params={
                "base_url": config["base_url"],
                "api_key": "bench",
                "max_concurrent_requests": config["concurrency"],
                "max_requests_per_minute": 100_000_000,
                "max_tokens_per_minute": 100_000_000_000,
            },
        )
        result = llm(datasets.Dataset.from_dict({"prompt": prompts}))
        rows = result.dataset
        by_prompt = dict(zip(rows["prompt"], rows["generation"]))
    generations = [by_prompt.get(p) for p in prompts]
    report(config, prompts, generations, timer.seconds)


if __name__ == "__main__":
    main()
