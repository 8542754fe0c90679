"""A stream for API backends: an event loop thread and an adaptive in-flight limit."""

from __future__ import annotations

import asyncio
import collections
import threading
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from .adaptive_concurrency import AdaptiveConcurrency, Ticket
from .api_retry import NotSent, current_gate
from .finished_queue import FinishedQueue
from .generation_result import GenerationResult
from .request import GenerationRequest
from .stream import GenerationStream

__all__ = ["AsyncStream"]

_NOT_SENT = NotSent()


class AsyncStream(GenerationStream):
    """Runs ``call(client, request)`` for each submitted request, at most ``max_concurrency`` at a time.

    An asyncio loop runs in a background thread; ``max_concurrency`` worker
    tasks take requests from one queue, so there is no batch barrier: as soon as
    one request finishes its worker starts the next, and a slow request holds up
    nothing but its own result. ``make_client`` runs inside the loop (clients are
    bound to the loop that made them); ``close_client`` closes it.

    The stream is also the gate that
    :func:`~dreamer_dagster.llms.api_retry.call_with_retries` finds in
    :data:`~dreamer_dagster.llms.api_retry.current_gate` inside ``call``: each
    attempt takes a slot under an
    :class:`~dreamer_dagster.llms.adaptive_concurrency.AdaptiveConcurrency`
    limit (never above ``max_concurrency``; ``adaptive=False`` keeps it there;
    answers slower than ``latency_ceiling`` seconds count as overload), gives it
    back while it waits to retry, and each retry is counted by cause
    (:meth:`take_events`). The first error ``call`` raises is re-raised by
    ``poll``, and no queued request is sent after it.

    With :meth:`write_answers_to`, answers are written to the model cache on the
    loop as they arrive (the answers of one loop pass in one transaction), before
    ``poll`` sees them: a process killed at any moment has paid twice for at most
    the requests that were in flight.
    """

    def __init__(
        self,
        call: Callable[[Any, GenerationRequest], Awaitable[GenerationResult]],
        max_concurrency: int,
        make_client: Callable[[], Any],
        close_client: Callable[[Any], Awaitable[None]] | None = None,
        *,
        adaptive: bool = True,
        latency_ceiling: float | None = None,
    ):
        self._call = call
        self._make_client = make_client
        self._close_client = close_client
        self.limit = AdaptiveConcurrency(
            max(1, int(max_concurrency)), enabled=adaptive, latency_ceiling=latency_ceiling
        )
        self._finished = FinishedQueue()
        self._events_lock = threading.Lock()
        self._counts: Counter = Counter()
        self._notes: list[str] = []
        self._last_retry: str | None = None
        self._in_flight = 0
        self._waiters: collections.deque[asyncio.Future] = collections.deque()
        self.stopped = False
        #: Whether any request of this stream has been answered: before that, an endpoint that
        #: cannot be reached is misconfigured, not down for a moment (``api_retry``).
        self.answered_any = False
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="llm-requests", daemon=True)
        self._thread.start()
        self._queue: asyncio.Queue | None = None
        self._workers: list[asyncio.Task] = []
        self._client: Any = None
        self._error: BaseException | None = None
        self._open_cache: Callable[[], Any] | None = None
        self._cache: Any = None
        self._to_write: list[tuple[GenerationRequest, GenerationResult]] = []
        self._flush: asyncio.Future | None = None
        asyncio.run_coroutine_threadsafe(self._start(self.limit.maximum), self._loop).result()

    async def _start(self, workers: int) -> None:
        self._queue = asyncio.Queue()
        self._client = self._make_client()
        self._workers = [asyncio.create_task(self._work()) for _ in range(workers)]

    # -- the event loop's side -----------------------------------------------------------

    async def _work(self) -> None:
        assert self._queue is not None
        current_gate.set(self)  # this task's context: call_with_retries finds the gate here
        while True:
            request = await self._queue.get()
            if self._error is not None or self.stopped:
                # The run has failed (a 401, say) or stopped (its budget is spent): requests
                # still queued are not sent, so a step pays for no call it cannot use.
                self._finished.put(request, None, self._error or _NOT_SENT)
                continue
            try:
                result = await self._call(self._client, request)
            except asyncio.CancelledError:
                raise
            except NotSent:
                self._finished.put(request, None, _NOT_SENT)
            except BaseException as error:  # handed to the caller's thread by poll()
                if self._error is None:
                    self._error = error
                self._finished.put(request, None, error)
            else:
                if self._open_cache is not None:
                    await self._write(request, result)
                self._finished.put(request, result)

    async def _write(self, request: GenerationRequest, result: GenerationResult) -> None:
        """Queue an answer for the cache and wait for the write of this loop pass."""
        self._to_write.append((request, result))
        if self._flush is None:
            self._flush = self._loop.create_future()
            self._loop.call_soon(self._write_pending)
        await asyncio.shield(self._flush)

    def _write_pending(self) -> None:
        items, self._to_write = self._to_write, []
        flush, self._flush = self._flush, None
        try:
            if self._open_cache is not None:
                if self._cache is None:
                    self._cache = self._open_cache()
                self._cache.put_many((request.key, result.texts) for request, result in items)
                for _, result in items:
                    result.in_cache = True
        except Exception as error:  # LLM.run writes these itself, and raises the cache's error
            self._open_cache = None
            self._note(f"answers are written by the caller from now on: {error}")
        finally:
            if flush is not None:
                flush.set_result(None)

    # -- the gate (used by call_with_retries, on the loop) -------------------------------

    async def acquire(self) -> Ticket:
        """Wait for an in-flight slot under the current limit; the ticket stamps the attempt."""
        while self._in_flight >= self.limit.allowed:
            waiter = self._loop.create_future()
            self._waiters.append(waiter)
            await waiter
        self._in_flight += 1
        return self.limit.ticket()

    def release(self) -> None:
        self._in_flight -= 1
        self._wake()

    def answered(self, ticket: Ticket, latency: float, completion_tokens: int) -> None:
        self.answered_any = True
        change = self.limit.answered(ticket, latency, completion_tokens)
        if change is not None:
            self._note(change)
            self._wake()

    def retried(self, ticket: Ticket, cause: str, overload: bool, message: str) -> None:
        change = self.limit.overloaded(ticket, cause) if overload else None
        with self._events_lock:
            self._counts["retries"] += 1
            self._counts[f"retries_{cause}"] += 1
            self._last_retry = message
            if change is not None:
                self._notes.append(change)

    def _wake(self) -> None:
        free = self.limit.allowed - self._in_flight
        while free > 0 and self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                free -= 1

    def _note(self, change: str) -> None:
        with self._events_lock:
            self._notes.append(change)

    # -- the caller's side ---------------------------------------------------------------

    def submit(self, requests: list[GenerationRequest]) -> None:
        self._finished.expect(len(requests))

        def enqueue() -> None:
            assert self._queue is not None
            for request in requests:
                self._queue.put_nowait(request)

        self._loop.call_soon_threadsafe(enqueue)

    @property
    def pending(self) -> int:
        return self._finished.pending

    def poll(self, block: bool) -> list[tuple[GenerationRequest, GenerationResult]]:
        # Requests not sent (the run failed or stopped) are no error of their own.
        return self._finished.answers(self._finished.take(block), ignored=_NOT_SENT)

    def drain(self) -> list[tuple[GenerationRequest, GenerationResult]]:
        return self._finished.drain()

    def stop(self) -> None:
        self.stopped = True

    def write_answers_to(self, open_cache: Callable[[], Any]) -> bool:
        self._open_cache = open_cache
        return True

    def take_events(self) -> tuple[Counter, list[str], str | None]:
        with self._events_lock:
            counts, self._counts = self._counts, Counter()
            notes, self._notes = self._notes, []
            last, self._last_retry = self._last_retry, None
        return counts, notes, last

    def concurrency(self) -> tuple[int, int, int] | None:
        return self.limit.allowed, self.limit.lowest, self.limit.maximum

    def close(self) -> None:
        if not self._thread.is_alive():
            return

        async def stop() -> None:
            for worker in self._workers:
                worker.cancel()
            await asyncio.gather(*self._workers, return_exceptions=True)
            if self._to_write:
                self._write_pending()
            if self._cache is not None:
                self._cache.close()  # opened on this loop's thread, closed there
            if self._close_client is not None and self._client is not None:
                await self._close_client(self._client)

        try:
            asyncio.run_coroutine_threadsafe(stop(), self._loop).result(timeout=30)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=30)
            self._loop.close()
