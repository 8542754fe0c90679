"""DataDreamer's ``Petals``: not available here (it names what to use instead)."""

from __future__ import annotations

from typing import Any

from .llm import LLM
from .openai_compatible import unavailable

__all__ = ["Petals"]


class Petals(LLM):
    """DataDreamer's client for the Petals swarm; declaring it raises an error that says what to use."""

    def __init__(self, *args: Any, **kwargs: Any):
        raise unavailable(
            "Petals",
            "it runs a model across a public swarm of machines over the internet, and the petals "
            "package is unmaintained (it does not install beside this project's torch and transformers).",
            "run the model locally with HFTransformers(model_name, ...), or serve it with vLLM / "
            "text-generation-inference and use OpenAI(model_name, base_url=...) or HFAPIEndpoint(url, model_name).",
        )
