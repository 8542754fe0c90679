"""DataDreamer 0.46.0: a ``DataSource`` and a ``Prompt`` step in ``with DataDreamer(work_dir):``.

API: ``OpenAI`` at the loopback server, ``batch_size`` = the requests in flight
(DataDreamer sends one batch at a time from a thread pool). Local:
``HFTransformers`` on the SmolLM2 folder with its chat template, ``batch_size``
32, greedy. tiktoken
would download its tables on first use, so the token count is replaced by an
offline estimate (4 characters a token) before anything runs.
"""

from __future__ import annotations

import logging
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


def chat_template(model_dir: str) -> str:
    """The folder's chat template as DataDreamer spells one (``{{prompt}}``). DataDreamer finds a
    template by asking the Hugging Face Hub about the model name, which a local folder is not."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    messages = [{"role": "user", "content": "{{prompt}}"}]
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def main() -> None:
    config = load_config()
    prompts = make_prompts(config)
    offline_tiktoken()
    from datadreamer import DataDreamer
    from datadreamer.llms import HFTransformers, OpenAI
    from datadreamer.steps import DataSource, Prompt

    with Timer() as timer, DataDreamer(os.path.join(config["work_dir"], "output"), log_level=logging.WARNING):
        source = DataSource("Prompts", data={"prompts": prompts})
        if config["task"] == "api":
            llm = OpenAI(
                MODEL_NAME, system_prompt=SYSTEM_PROMPT, api_key="bench", base_url=config["base_url"]
            )
        else:
            llm = HFTransformers(
                config["model_dir"], chat_prompt_template=chat_template(config["model_dir"]), device="cpu"
            )
        step = Prompt(
            "Answer",
            inputs={"prompts": source.output["prompts"]},
            args={
                "llm": llm,
                "batch_size": config["concurrency"],
                "max_new_tokens": config["max_new_tokens"],
            },
        )
        generations = list(step.output["generations"])
    report(config, prompts, generations, timer.seconds)


if __name__ == "__main__":
    main()
