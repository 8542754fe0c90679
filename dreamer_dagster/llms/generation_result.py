"""What a backend returns for one prompt."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["GenerationResult"]


@dataclass
class GenerationResult:
    """The ``n`` generations for one prompt and the tokens they cost.

    ``usage_reported`` is true when the counts are an API provider's own (the
    response's ``usage``), false when an API answer carried none and they are
    estimated offline, None for backends that count their own tokens. Reasoning
    tokens are part of ``completion_tokens`` (billed as output) and reported
    apart; cached prompt tokens are part of ``prompt_tokens``. ``in_cache`` is
    set by a stream that wrote the answer to the model cache as it arrived.
    """

    texts: list[str]
    prompt_tokens: int = 0
    completion_tokens: int = 0
    reasoning_tokens: int = 0
    cached_prompt_tokens: int = 0
    usage_reported: bool | None = None
    in_cache: bool = False
