"""distilabel 1.5.3: ``LoadDataFromDicts >> TextGeneration`` in a ``Pipeline`` whose cache is the work folder.

API: ``OpenAILLM`` at the loopback server, ``input_batch_size`` = the requests in
flight (distilabel sends a batch's requests together and waits for all of
them). Local: ``TransformersLLM`` on the SmolLM2 folder, batches of 32, greedy.
``pipeline.run(use_cache=True)`` resumes from the batches a killed run stored.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from peer_task import MODEL_NAME, SYSTEM_PROMPT, Timer, load_config, make_prompts, report  # noqa: E402


def main() -> None:
    config = load_config()
    prompts = make_prompts(config)
    os.environ.setdefault("DISTILABEL_LOG_LEVEL", "WARNING")
    from distilabel.models import OpenAILLM, TransformersLLM
    from distilabel.pipeline import Pipeline
    from distilabel.steps import LoadDataFromDicts
    from distilabel.steps.tasks import TextGeneration

    batch = config["concurrency"]
    with Timer() as timer:
        with Pipeline(name="bench-peers", cache_dir=os.path.join(config["work_dir"], "cache")) as pipeline:
            load = LoadDataFromDicts(data=[{"instruction": p} for p in prompts], batch_size=batch)
            if config["task"] == "api":
                llm = OpenAILLM(
                    model=MODEL_NAME,
                    base_url=config["base_url"],
                    api_key="bench",
                    generation_kwargs={"max_new_tokens": config["max_new_tokens"]},
                )
            else:
                llm = TransformersLLM(
                    model=config["model_dir"],
                    device="cpu",
                    generation_kwargs={"max_new_tokens": config["max_new_tokens"], "do_sample": False},
                )
            generate = TextGeneration(llm=llm, system_prompt=SYSTEM_PROMPT, input_batch_size=batch)
            load >> generate
        distiset = pipeline.run(use_cache=True)
        rows = distiset["default"]["train"]
        by_prompt = dict(zip(rows["instruction"], rows["generation"]))
    generations = [by_prompt.get(p) for p in prompts]
    report(config, prompts, generations, timer.seconds)


if __name__ == "__main__":
    main()
