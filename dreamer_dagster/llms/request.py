"""One prompt on its way through a generation run."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["GenerationRequest"]


@dataclass
class GenerationRequest:
    """A prompt to generate for: its position in the run, its cache key and its own seed.

    ``prompt`` is the user's text; ``text`` is what the backend sends (after the
    chat template or response-format instruction). ``seed`` is derived from the
    cache key, so repeated prompts sample differently and a re-run samples alike.
    """

    index: int
    prompt: str
    key: str
    seed: int
    text: str = ""
    prompt_tokens: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
