"""Estimate-only mode: a stream that answers nothing and counts what answering would cost."""

from __future__ import annotations

from .generation_result import GenerationResult
from .request import GenerationRequest
from .stream import GenerationStream

__all__ = ["ASSUMED_COMPLETION_TOKENS", "EstimateStream"]

#: Completion tokens assumed per answer when a step sets no ``max_new_tokens``.
ASSUMED_COMPLETION_TOKENS = 256


class EstimateStream(GenerationStream):
    """Takes the prompts the model cache does not hold and returns empty answers at once.

    Each result carries the prompt's tokens as the backend counts them and the
    most completion tokens it could cost: ``max_new_tokens`` (or
    :data:`ASSUMED_COMPLETION_TOKENS`) times ``n``. Nothing is sent and nothing
    is written to the cache. What it assumed is added to ``notes``.
    """

    def __init__(self, params: dict, notes: list[str] | None = None):
        per_answer = params["max_new_tokens"] or ASSUMED_COMPLETION_TOKENS
        note = f"max_new_tokens is not set: {ASSUMED_COMPLETION_TOKENS} completion tokens assumed per answer"
        if params["max_new_tokens"] is None and notes is not None and note not in notes:
            notes.append(note)  # shown with the estimate
        self._n = params["n"]
        self._completion_tokens = per_answer * self._n
        self._done: list[tuple[GenerationRequest, GenerationResult]] = []

    def submit(self, requests: list[GenerationRequest]) -> None:
        for request in requests:
            result = GenerationResult(
                [""] * self._n, prompt_tokens=request.prompt_tokens, completion_tokens=self._completion_tokens
            )
            self._done.append((request, result))

    @property
    def pending(self) -> int:
        return len(self._done)

    def poll(self, block: bool) -> list[tuple[GenerationRequest, GenerationResult]]:
        done, self._done = self._done, []
        return done
