"""This project: a ``DataSource`` and a ``Prompt`` step materialized through Dagster (``dg.materialize``).

The same work as the peers' runners: the output folder is ``<work_dir>/output``
(step folders and the SQLite model cache), so a re-run in the same folder
reuses the finished step, and a re-run after a kill pays only for the calls the
model cache did not yet hold. API: ``OpenAI`` at the loopback server with
``max_concurrency`` = the requests in flight. Local: ``default_llm()``
(SmolLM2-135M-Instruct) with ``batch_size`` 32, greedy.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent.parent))

from peer_task import MODEL_NAME, SYSTEM_PROMPT, Timer, load_config, make_prompts, report  # noqa: E402


def main() -> None:
    config = load_config()
    prompts = make_prompts(config)
    import dagster as dg
    import datasets

    from dreamer_dagster import dreamer_definitions
    from dreamer_dagster.llms import OpenAI, default_llm
    from dreamer_dagster.steps import DataSource, Prompt

    output = os.path.join(config["work_dir"], "output")
    if config["task"] == "local":
        import torch  # noqa: F401  (imported before the timer, as every local side does)
        import transformers  # noqa: F401
    with Timer() as timer:
        source = DataSource("Prompts", data={"prompts": prompts})
        if config["task"] == "api":
            llm = OpenAI(
                MODEL_NAME,
                system_prompt=SYSTEM_PROMPT,
                api_key="bench",
                base_url=config["base_url"],
                max_concurrency=config["concurrency"],
            )
        else:
            llm = default_llm()
        step = Prompt(
            "Answer",
            inputs={"prompts": source.output["prompts"]},
            args={
                "llm": llm,
                "batch_size": config["concurrency"],
                "max_new_tokens": config["max_new_tokens"],
            },
        )
        defs = dreamer_definitions([step], output_folder=output)
        dg.materialize(list(defs.assets), resources=dict(defs.resources), raise_on_error=True)
        generations = datasets.load_from_disk(os.path.join(output, step.folder, "_dataset"))["generations"]
    report(config, prompts, generations, timer.seconds)


if __name__ == "__main__":
    main()
