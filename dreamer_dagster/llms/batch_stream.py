"""A stream for local backends that generate synchronously, a batch (or a few side by side) at a time."""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import AbstractContextManager

from .generation_result import GenerationResult
from .request import GenerationRequest
from .stream import GenerationStream

__all__ = ["BatchStream"]


class BatchStream(GenerationStream):
    """Buffers prompts and runs them in length-sorted batches of ``batch_size``.

    Prompts are gathered into groups of ``group_batches`` batches; each group is
    sorted by prompt length so a batch pads little, and results go back tagged
    with their request so ``LLM.run`` restores input order. ``run_batch`` runs one
    batch; it may raise ``MemoryError``-like errors, on which the batch size is
    halved and the batch retried (``is_out_of_memory`` decides what counts).

    With ``lanes`` above 1, up to that many batches of a group run at once, each in its
    own thread inside ``lane(lanes)`` (the caller's thread runs the first); results keep
    the batches' order. A batch that fails leaves the others' results to ``drain()``. Out
    of memory with batches side by side first goes back to one at a time, then halves.
    """

    def __init__(
        self,
        run_batch: Callable[[list[GenerationRequest]], list[GenerationResult]],
        batch_size: int,
        group_batches: int = 4,
        is_out_of_memory: Callable[[BaseException], bool] | None = None,
        on_out_of_memory: Callable[[], None] | None = None,
        lanes: int = 1,
        lane: Callable[[int], AbstractContextManager] | None = None,
    ):
        self.run_batch = run_batch
        self.batch_size = max(1, int(batch_size))
        self.group_size = self.batch_size * max(1, group_batches)
        self.is_out_of_memory = is_out_of_memory or (lambda error: False)
        self.on_out_of_memory = on_out_of_memory
        self.lanes = max(1, int(lanes)) if lane is not None else 1
        self.lane = lane
        self._buffer: list[GenerationRequest] = []
        # Results of the group being generated: kept here until poll returns them, so a
        # failure in a later batch of the group leaves them to drain().
        self._finished: list[tuple[GenerationRequest, GenerationResult]] = []

    def submit(self, requests: list[GenerationRequest]) -> None:
        self._buffer.extend(requests)

    @property
    def pending(self) -> int:
        return len(self._buffer)

    def poll(self, block: bool) -> list[tuple[GenerationRequest, GenerationResult]]:
        if len(self._buffer) >= self.group_size:
            group, self._buffer = self._buffer[: self.group_size], self._buffer[self.group_size :]
        elif block and self._buffer:
            group, self._buffer = self._buffer, []
        else:
            return []
        group.sort(key=lambda request: (request.prompt_tokens, request.index))
        done = self._finished
        waiting = group
        while waiting:
            size = self.batch_size
            batches = [waiting[start : start + size] for start in range(0, len(waiting), size)][: self.lanes]
            outcomes = self._run_side_by_side(batches)
            failed: list[GenerationRequest] = []
            errors: list[Exception] = []
            for batch, outcome in zip(batches, outcomes):
                if isinstance(outcome, Exception):
                    failed += batch
                    errors.append(outcome)
                else:
                    done.extend(zip(batch, outcome))
            waiting = failed + waiting[sum(len(batch) for batch in batches) :]
            if not errors:
                continue
            other = next((error for error in errors if not self.is_out_of_memory(error)), None)
            if other is not None or (self.batch_size == 1 and len(batches) == 1):
                raise other or errors[0]
            if self.on_out_of_memory is not None:
                self.on_out_of_memory()
            if len(batches) > 1:
                self.lanes = 1
            else:
                self.batch_size = max(1, self.batch_size // 2)
        self._finished = []
        return done

    def _run_side_by_side(self, batches: list[list[GenerationRequest]]) -> list:
        """Each batch's results, or the ``Exception`` it raised; the first batch runs in
        the calling thread, any others in threads of their own."""
        if len(batches) == 1:
            try:
                return [self.run_batch(batches[0])]
            except Exception as error:
                return [error]
        assert self.lane is not None
        outcomes: list = [None] * len(batches)
        contexts = [self.lane(len(batches)) for _ in batches]

        def run(index: int) -> None:
            try:
                with contexts[index]:
                    outcomes[index] = self.run_batch(batches[index])
            except Exception as error:
                outcomes[index] = error

        # Daemon threads: an interrupt of the calling thread does not wait for them.
        others = [
            threading.Thread(target=run, args=(index,), name=f"dreamer-batch-lane-{index}", daemon=True)
            for index in range(1, len(batches))
        ]
        for thread in others:
            thread.start()
        run(0)
        for thread in others:
            thread.join()
        return outcomes

    def drain(self) -> list[tuple[GenerationRequest, GenerationResult]]:
        done, self._finished = self._finished, []
        return done

    def stop(self) -> None:
        self._buffer = []
