"""DataDreamer's ``OpenAIAssistant``: not available here (it names what to use instead)."""

from __future__ import annotations

from typing import Any

from .llm import LLM
from .openai_compatible import unavailable

__all__ = ["OpenAIAssistant"]


class OpenAIAssistant(LLM):
    """DataDreamer's client for OpenAI's Assistants API; declaring it raises an error that says what
    to use."""

    def __init__(self, *args: Any, **kwargs: Any):
        raise unavailable(
            "OpenAIAssistant",
            "OpenAI deprecated the Assistants API and shut it down in August 2026.",
            "use OpenAI(model_name, system_prompt) (the same model, instructions as the system prompt), "
            "with batch=True for work that can wait.",
        )
