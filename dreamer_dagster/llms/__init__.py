"""LLMs: one ``run`` interface over local transformers, OpenAI-compatible APIs and vLLM.

A step binds a declared model to its run and generates through the model cache::

    llm = context.model(self.args["llm"])
    for text in llm.run(prompts, max_new_tokens=64, temperature=1.2, top_p=1.0,
                        return_generator=True):
        ...
"""

from .ai21 import AI21
from .anthropic import Anthropic
from .bedrock import Bedrock
from .cohere import Cohere
from .ctransformers import CTransformers
from .google_ai_studio import GoogleAIStudio
from .hf_api_endpoint import HFAPIEndpoint
from .hf_transformers import HFTransformers
from .llm import DEFAULT_BATCH_SIZE, LLM
from .mistral_ai import MistralAI
from .openai import OpenAI
from .openai_assistant import OpenAIAssistant
from .openai_compatible import OpenAICompatible
from .parallel_llm import ParallelLLM
from .petals import Petals
from .smollm2 import SMOLLM2_MODEL_NAME, default_llm, smollm2_path
from .together import Together
from .vertex_ai import VertexAI
from .vllm import VLLM

__all__ = [
    "AI21",
    "DEFAULT_BATCH_SIZE",
    "LLM",
    "SMOLLM2_MODEL_NAME",
    "VLLM",
    "Anthropic",
    "Bedrock",
    "CTransformers",
    "Cohere",
    "GoogleAIStudio",
    "HFAPIEndpoint",
    "HFTransformers",
    "MistralAI",
    "OpenAI",
    "OpenAIAssistant",
    "OpenAICompatible",
    "ParallelLLM",
    "Petals",
    "Together",
    "VertexAI",
    "default_llm",
    "smollm2_path",
]
