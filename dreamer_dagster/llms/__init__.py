"""LLMs: one ``run`` interface over local transformers, OpenAI-compatible APIs and vLLM.

A step binds a declared model to its run and generates through the model cache::

    llm = context.model(self.args["llm"])
    for text in llm.run(prompts, max_new_tokens=64, temperature=1.2, top_p=1.0,
                        return_generator=True):
        ...
"""

from .anthropic import Anthropic
from .hf_transformers import HFTransformers
from .llm import DEFAULT_BATCH_SIZE, LLM
from .openai import OpenAI
from .parallel_llm import ParallelLLM
from .smollm2 import SMOLLM2_MODEL_NAME, default_llm, smollm2_path
from .vllm import VLLM

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "LLM",
    "Anthropic",
    "SMOLLM2_MODEL_NAME",
    "HFTransformers",
    "OpenAI",
    "ParallelLLM",
    "VLLM",
    "default_llm",
    "smollm2_path",
]
