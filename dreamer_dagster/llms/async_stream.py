"""A stream for API backends: an event loop thread with a fixed number of workers."""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Awaitable, Callable
from typing import Any

from .generation_result import GenerationResult
from .request import GenerationRequest
from .stream import GenerationStream

__all__ = ["AsyncStream"]


class AsyncStream(GenerationStream):
    """Runs ``call(client, request)`` for each submitted request, ``max_concurrency`` at a time.

    An asyncio loop runs in a background thread; ``max_concurrency`` worker
    tasks take requests from one queue, so there is no batch barrier: as soon as
    one request finishes its worker starts the next, and a slow request holds up
    nothing but its own result. ``make_client`` runs inside the loop (clients are
    bound to the loop that made them); ``close_client`` closes it. The first
    error a worker raises is re-raised by ``poll``, and no queued request is
    sent after it.
    """

    def __init__(
        self,
        call: Callable[[Any, GenerationRequest], Awaitable[GenerationResult]],
        max_concurrency: int,
        make_client: Callable[[], Any],
        close_client: Callable[[Any], Awaitable[None]] | None = None,
    ):
        self._call = call
        self._make_client = make_client
        self._close_client = close_client
        self._done: queue.SimpleQueue = queue.SimpleQueue()
        self._pending = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="llm-requests", daemon=True)
        self._thread.start()
        self._queue: asyncio.Queue | None = None
        self._workers: list[asyncio.Task] = []
        self._client: Any = None
        self._error: BaseException | None = None
        asyncio.run_coroutine_threadsafe(self._start(max(1, int(max_concurrency))), self._loop).result()

    async def _start(self, workers: int) -> None:
        self._queue = asyncio.Queue()
        self._client = self._make_client()
        self._workers = [asyncio.create_task(self._work()) for _ in range(workers)]

    async def _work(self) -> None:
        assert self._queue is not None
        while True:
            request = await self._queue.get()
            if self._error is not None:
                # The run has already failed (a 401, say): requests still queued are
                # not sent, so a failing step pays for no call it cannot use.
                self._done.put((request, None, self._error))
                continue
            try:
                result = await self._call(self._client, request)
            except asyncio.CancelledError:
                raise
            except BaseException as error:  # handed to the caller's thread by poll()
                self._error = error
                self._done.put((request, None, error))
            else:
                self._done.put((request, result, None))

    def submit(self, requests: list[GenerationRequest]) -> None:
        self._pending += len(requests)

        def enqueue() -> None:
            assert self._queue is not None
            for request in requests:
                self._queue.put_nowait(request)

        self._loop.call_soon_threadsafe(enqueue)

    @property
    def pending(self) -> int:
        return self._pending

    def poll(self, block: bool) -> list[tuple[GenerationRequest, GenerationResult]]:
        items = []
        if block and self._pending:
            items.append(self._done.get())
        while True:
            try:
                items.append(self._done.get_nowait())
            except queue.Empty:
                break
        self._pending -= len(items)
        for _, _, error in items:
            if error is not None:
                raise error
        return [(request, result) for request, result, _ in items]

    def close(self) -> None:
        if not self._thread.is_alive():
            return

        async def stop() -> None:
            for worker in self._workers:
                worker.cancel()
            await asyncio.gather(*self._workers, return_exceptions=True)
            if self._close_client is not None and self._client is not None:
                await self._close_client(self._client)

        try:
            asyncio.run_coroutine_threadsafe(stop(), self._loop).result(timeout=30)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=30)
            self._loop.close()
