"""Finished requests handed from a stream's worker threads to the caller's ``poll``.

A stream whose requests finish in other threads (an event loop, one thread a
child stream) puts each as ``(source, request, result, error)`` into a
:class:`FinishedQueue`; its ``poll`` takes what is there (waiting for one item
first when asked) and keeps the answers, raising the first error with the
answers beside it held back for ``drain``, so no answer is lost.
"""

from __future__ import annotations

import queue
from typing import Any

from .generation_result import GenerationResult
from .request import GenerationRequest

__all__ = ["FinishedQueue"]

#: ``(source, request, result, error)``: ``request`` is None for an error that ended a worker.
Finished = tuple[Any, "GenerationRequest | None", "GenerationResult | None", "BaseException | None"]


class FinishedQueue:
    """Thread-safe results of submitted requests, and how many are still out (``pending``)."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._unclaimed: list[tuple[GenerationRequest, GenerationResult]] = []
        #: Submitted (``expect``) and not yet taken back.
        self.pending = 0

    def expect(self, count: int) -> None:
        """``count`` more requests were submitted."""
        self.pending += count

    def put(
        self,
        request: GenerationRequest | None,
        result: GenerationResult | None,
        error: BaseException | None = None,
        source: Any = None,
    ) -> None:
        """A request finished (any thread): its result, or the error it ended with."""
        self._queue.put((source, request, result, error))

    def take(self, block: bool) -> list[Finished]:
        """What has finished, waiting for one item first when ``block`` and requests are out."""
        items = [self._queue.get()] if block and self.pending else []
        while True:
            try:
                items.append(self._queue.get_nowait())
            except queue.Empty:
                break
        self.pending -= sum(request is not None for _, request, _, _ in items)
        return items

    def answers(
        self, items: list[Finished], ignored: BaseException | None = None
    ) -> list[tuple[GenerationRequest, GenerationResult]]:
        """The answers among ``items``; the first error (other than ``ignored``) is raised,
        and the answers that came with it wait for ``drain``."""
        done = [(request, result) for _, request, result, error in items if error is None]
        for _, _, _, error in items:
            if error is not None and error is not ignored:
                self._unclaimed.extend(done)
                raise error
        return done  # type: ignore[return-value]

    def drain(self) -> list[tuple[GenerationRequest, GenerationResult]]:
        """Answers finished and not yet returned (never waits, never raises)."""
        done, self._unclaimed = self._unclaimed, []
        for _, request, result, error in self.take(block=False):
            if error is None:
                done.append((request, result))  # type: ignore[arg-type]
        return done
