"""The interface between ``LLM.run`` and a backend: submit prompts, poll finished ones."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

from .generation_result import GenerationResult
from .request import GenerationRequest

__all__ = ["GenerationStream"]


class GenerationStream:
    """A backend's open generation session for one ``run`` call.

    ``submit`` hands over prompts (it does not wait for them); ``poll`` returns
    the ones finished since the last poll, in any order, waiting for at least one
    when ``block`` is true. ``LLM.run`` restores input order and writes the cache.
    When a run ends early (an error, an interrupt), ``drain`` hands over what
    finished and was not yet returned, so no answer is lost.
    """

    def submit(self, requests: list[GenerationRequest]) -> None:
        raise NotImplementedError

    def poll(self, block: bool) -> list[tuple[GenerationRequest, GenerationResult]]:
        raise NotImplementedError

    @property
    def pending(self) -> int:
        """Submitted and not yet returned by ``poll``."""
        raise NotImplementedError

    def write_answers_to(self, open_cache: Callable[[], Any]) -> bool:
        """Ask the stream to write each answer to the model cache the moment it arrives
        (``open_cache()`` opens the cache in the stream's own thread) and mark it
        ``in_cache``; True when it will. A stream that cannot leaves the writes to
        ``LLM.run``, at each ``poll``."""
        return False

    def drain(self) -> list[tuple[GenerationRequest, GenerationResult]]:
        """Results finished but not yet returned by ``poll`` (never waits, never raises)."""
        return []

    def stop(self) -> None:
        """Send nothing more; requests already running finish and come back from ``poll``,
        the others never do (``pending`` drops as ``poll`` sees them go)."""

    def take_events(self) -> tuple[Counter, list[str], str | None]:
        """Since the last call: counts (``retries``, ``retries_<cause>``), notes worth
        logging (concurrency changes) and the last retried failure's message."""
        return Counter(), [], None

    def concurrency(self) -> tuple[int, int, int] | None:
        """``(limit now, lowest limit, max_concurrency)`` of an adaptive stream, else None."""
        return None

    def close(self) -> None:
        """Release what the session holds (threads, connections); weights stay loaded."""
