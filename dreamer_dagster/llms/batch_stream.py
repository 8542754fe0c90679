"""A stream for local backends that generate synchronously, a batch at a time."""

from __future__ import annotations

from collections.abc import Callable

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
    """

    def __init__(
        self,
        run_batch: Callable[[list[GenerationRequest]], list[GenerationResult]],
        batch_size: int,
        group_batches: int = 4,
        is_out_of_memory: Callable[[BaseException], bool] | None = None,
        on_out_of_memory: Callable[[], None] | None = None,
    ):
        self.run_batch = run_batch
        self.batch_size = max(1, int(batch_size))
        self.group_size = self.batch_size * max(1, group_batches)
        self.is_out_of_memory = is_out_of_memory or (lambda error: False)
        self.on_out_of_memory = on_out_of_memory
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
        start = 0
        while start < len(group):
            batch = group[start : start + self.batch_size]
            try:
                results = self.run_batch(batch)
            except Exception as error:
                if not self.is_out_of_memory(error) or self.batch_size == 1:
                    raise
                if self.on_out_of_memory is not None:
                    self.on_out_of_memory()
                self.batch_size = max(1, self.batch_size // 2)
                continue
            done.extend(zip(batch, results))
            start += len(batch)
        self._finished = []
        return done

    def drain(self) -> list[tuple[GenerationRequest, GenerationResult]]:
        done, self._finished = self._finished, []
        return done

    def stop(self) -> None:
        self._buffer = []
