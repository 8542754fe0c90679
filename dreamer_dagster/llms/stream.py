"""The interface between ``LLM.run`` and a backend: submit prompts, poll finished ones."""

from __future__ import annotations

from .generation_result import GenerationResult
from .request import GenerationRequest

__all__ = ["GenerationStream"]


class GenerationStream:
    """A backend's open generation session for one ``run`` call.

    ``submit`` hands over prompts (it does not wait for them); ``poll`` returns
    the ones finished since the last poll, in any order, waiting for at least one
    when ``block`` is true. ``LLM.run`` restores input order and writes the cache.
    """

    def submit(self, requests: list[GenerationRequest]) -> None:
        raise NotImplementedError

    def poll(self, block: bool) -> list[tuple[GenerationRequest, GenerationResult]]:
        raise NotImplementedError

    @property
    def pending(self) -> int:
        """Submitted and not yet returned by ``poll``."""
        raise NotImplementedError

    def close(self) -> None:
        """Release what the session holds (threads, connections); weights stay loaded."""
