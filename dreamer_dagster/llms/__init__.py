"""LLMs: one ``run`` interface over local transformers, OpenAI-compatible APIs and vLLM.

A step binds a declared model to its run and generates through the model cache::

    llm = context.model(self.args["llm"])
    for text in llm.run(prompts, max_new_tokens=64, temperature=1.2, top_p=1.0,
                        return_generator=True):
        ...
"""

from typing import TYPE_CHECKING

from ..lazy_exports import lazy_exports

if TYPE_CHECKING:
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

_EXPORTS = {
    "AI21": ".ai21",
    "Anthropic": ".anthropic",
    "Bedrock": ".bedrock",
    "Cohere": ".cohere",
    "CTransformers": ".ctransformers",
    "GoogleAIStudio": ".google_ai_studio",
    "HFAPIEndpoint": ".hf_api_endpoint",
    "HFTransformers": ".hf_transformers",
    "DEFAULT_BATCH_SIZE": ".llm",
    "LLM": ".llm",
    "MistralAI": ".mistral_ai",
    "OpenAI": ".openai",
    "OpenAIAssistant": ".openai_assistant",
    "OpenAICompatible": ".openai_compatible",
    "ParallelLLM": ".parallel_llm",
    "Petals": ".petals",
    "SMOLLM2_MODEL_NAME": ".smollm2",
    "default_llm": ".smollm2",
    "smollm2_path": ".smollm2",
    "Together": ".together",
    "VertexAI": ".vertex_ai",
    "VLLM": ".vllm",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

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
