"""DataDreamer's ``CTransformers``: not available here (it names what to use instead)."""

from __future__ import annotations

from typing import Any

from .llm import LLM
from .openai_compatible import unavailable

__all__ = ["CTransformers"]


class CTransformers(LLM):
    """DataDreamer's GGML/GGUF runner on the ctransformers package; declaring it raises an error
    that says what to use."""

    def __init__(self, *args: Any, **kwargs: Any):
        raise unavailable(
            "CTransformers",
            "the ctransformers package is unmaintained (no release since 2023, no build for current "
            "Python and GGUF versions).",
            "load a GGUF model with HFTransformers (transformers reads GGUF files; default_llm() is an "
            "example), or serve it with llama.cpp's server and use OpenAI(model_name, base_url=...).",
        )
