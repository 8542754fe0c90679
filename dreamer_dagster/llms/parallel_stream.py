"""A stream that spreads one run's prompts over several backends' streams."""

from __future__ import annotations

import queue
import threading

from .finished_queue import FinishedQueue
from .generation_result import GenerationResult
from .request import GenerationRequest
from .stream import GenerationStream

__all__ = ["ParallelStream"]

_STOP = object()


class ParallelStream(GenerationStream):
    """Gives each chunk of ``chunk_size`` prompts to the least-loaded child stream.

    Each child is driven by its own thread (local backends compute inside
    ``poll``, so this is what makes them run side by side); results from all of
    them come back through one queue.
    """

    def __init__(self, streams: list[GenerationStream], chunk_size: int):
        self._streams = streams
        self._chunk_size = max(1, chunk_size)
        self._finished = FinishedQueue()
        self._inboxes: list[queue.SimpleQueue] = [queue.SimpleQueue() for _ in streams]
        self._load = [0] * len(streams)
        self._threads = [
            threading.Thread(target=self._drive, args=(i,), name=f"parallel-llm-{i}", daemon=True)
            for i in range(len(streams))
        ]
        for thread in self._threads:
            thread.start()

    def _drive(self, index: int) -> None:
        stream, inbox = self._streams[index], self._inboxes[index]
        try:
            while True:
                items = [inbox.get()] if not stream.pending else []
                while True:
                    try:
                        items.append(inbox.get_nowait())
                    except queue.Empty:
                        break
                for item in items:
                    if item is _STOP:
                        return
                    stream.submit(item)
                for request, result in stream.poll(block=True):
                    self._finished.put(request, result, source=index)
        except BaseException as error:  # handed to the caller's thread by poll()
            self._finished.put(None, None, error, source=index)

    def submit(self, requests: list[GenerationRequest]) -> None:
        for start in range(0, len(requests), self._chunk_size):
            chunk = requests[start : start + self._chunk_size]
            target = min(range(len(self._streams)), key=lambda i: self._load[i])
            self._load[target] += len(chunk)
            self._finished.expect(len(chunk))
            self._inboxes[target].put(chunk)

    @property
    def pending(self) -> int:
        return self._finished.pending

    def poll(self, block: bool) -> list[tuple[GenerationRequest, GenerationResult]]:
        items = self._finished.take(block)
        for index, request, _, _ in items:
            if request is not None:
                self._load[index] -= 1
        return self._finished.answers(items)

    def drain(self) -> list[tuple[GenerationRequest, GenerationResult]]:
        return self._finished.drain()

    def close(self) -> None:
        for inbox in self._inboxes:
            inbox.put(_STOP)
        for thread in self._threads:
            thread.join(timeout=60)
        for stream in self._streams:
            stream.close()
