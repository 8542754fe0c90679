"""What a backend returns for one prompt."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["GenerationResult"]


@dataclass
class GenerationResult:
    """The ``n`` generations for one prompt and the tokens they cost (as the backend counted)."""

    texts: list[str]
    prompt_tokens: int = 0
    completion_tokens: int = 0
