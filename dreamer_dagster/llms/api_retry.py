"""The one retry rule of every API backend (OpenAI, Anthropic, the OpenAI-compatible providers).

A failed request is retried when a retry can fix it: a 408 / 409 / 429, any
5xx (529, Anthropic's "overloaded", included), a timeout, a dropped connection
or a body that is not what the API promised. The wait honours the server's
``retry-after-ms`` / ``Retry-After`` header (seconds or an HTTP date), else it
backs off exponentially with jitter. Any other 4xx (a bad request, a wrong key,
a missing model) raises :class:`~dreamer_dagster.errors.RequestRejectedError`
(a ``NonRetryableError``) at once: no retry, and Dagster's retry policy does
not re-run the step either. The SDKs' own retries are switched off
(``max_retries=0``) so that this is the only rule.

Inside an :class:`~dreamer_dagster.llms.async_stream.AsyncStream`,
:func:`call_with_retries` also goes through the stream's gate (the context
variable :data:`current_gate`): each attempt takes an in-flight slot under the
adaptive concurrency limit and gives it back while it waits to retry, and
every retry is counted by cause (``stats["retries"]``,
``stats["retries_<cause>"]``) and reported to the limit (429s, 503s and
timeouts lower it).
"""

from __future__ import annotations

import asyncio
import random
import re
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

from ..errors import RequestRejectedError, is_retryable_status

__all__ = [
    "CAUSES",
    "MalformedResponse",
    "NotSent",
    "RetryPolicy",
    "call_with_retries",
    "cause_of",
    "current_gate",
    "is_retryable_status",
    "retry_delay",
]

T = TypeVar("T")

#: Retry causes, as counted in ``stats["retries_<cause>"]``.
CAUSES = ("rate_limited", "overloaded", "server_error", "timeout", "connection", "malformed")

#: The gate of the AsyncStream whose worker runs the current task (None elsewhere).
current_gate: ContextVar[Any] = ContextVar("dreamer_dagster_attempt_gate", default=None)


class MalformedResponse(Exception):
    """A 200 response without what the API promises (choices, content blocks)."""


class NotSent(Exception):
    """A request waiting to be retried when its stream stopped sending (a spent budget)."""


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to wait; none of it changes a result, so none is in an identity."""

    retry_on_fail: bool = True
    max_retries: int = 8
    initial_delay: float = 0.5
    max_delay: float = 30.0


def cause_of(error: BaseException) -> tuple[str, bool]:
    """``(cause, overload)`` of a retryable failure: what to count it as, and whether it
    says the endpoint has too many requests in flight."""
    status = getattr(error, "status_code", None)
    if status == 429:
        return "rate_limited", True
    if status in (503, 529):
        return "overloaded", True
    if status in (408, 504) or "timeout" in type(error).__name__.lower():
        return "timeout", True
    if status is not None:
        return "server_error", False
    if isinstance(error, (MalformedResponse, ValueError)):
        return "malformed", False
    if "connection" in type(error).__name__.lower():
        return "connection", False
    return "malformed", False  # a response the SDK could not validate


def retry_after_seconds(headers: Any) -> float | None:
    """The wait a response asks for (``retry-after-ms``, ``retry-after`` in seconds or as an
    HTTP date), or None."""
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name) if headers else None
        if value is None:
            continue
        try:
            return max(0.0, float(value) * scale)
        except ValueError:
            try:
                return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
            except (TypeError, ValueError):
                pass
    return None


def retry_delay(error: Any, attempt: int, policy: RetryPolicy) -> float:
    """Seconds to wait before retry number ``attempt`` (1-based) of a request that failed with ``error``."""
    asked = retry_after_seconds(getattr(getattr(error, "response", None), "headers", None))
    if asked is not None:
        return asked
    ceiling = min(policy.max_delay, policy.initial_delay * 2 ** (attempt - 1))
    return random.uniform(ceiling / 2, ceiling)


def describe_failure(label: str, error: Any) -> str:
    """``<label> failed: HTTP 401: <the server's message>`` (the key never appears in it)."""
    status = getattr(error, "status_code", None)
    message = getattr(error, "message", None) or str(error) or type(error).__name__
    message = re.sub(r"^Error code: \d+ - ", "", str(message))
    code = f"HTTP {status}: " if status else f"{type(error).__name__}: "
    return f"{label} failed: {code}{message}"


def _fix_for(status: int | None) -> str:
    """What to change after a rejected request (a retry gets the same answer)."""
    if status == 401:
        return " A retry cannot fix this. Fix: check the API key."
    if status == 403:
        return " A retry cannot fix this. Fix: check that the key may use this model."
    if status == 404:
        return " A retry cannot fix this. Fix: check the model name and base_url."
    return " A retry cannot fix this. Fix: check the model name, the API key and the request."


async def call_with_retries(
    attempt: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    label: str,
    api_errors: tuple[type[BaseException], ...],
    on_retry: Callable[[BaseException, int, float], None] | None = None,
) -> T:
    """``await attempt()``, retried under ``policy`` when it raises one of ``api_errors``
    (the SDK's error base, :class:`MalformedResponse`, ...) with a retryable status.

    ``label`` names the model in the error (``"Anthropic model 'claude-x'"``);
    ``on_retry(error, attempt, delay)`` is told of each retry. In an AsyncStream
    each attempt holds an in-flight slot of the stream's adaptive limit.
    """
    gate = current_gate.get()
    attempts = 0
    while True:
        ticket = await gate.acquire() if gate is not None else None
        started = time.monotonic()
        try:
            result = await attempt()
        except BaseException as error:
            if gate is not None:
                gate.release()
            if not isinstance(error, api_errors):
                raise
            status = getattr(error, "status_code", None)
            if not is_retryable_status(status):
                message = describe_failure(label, error).rstrip(".")
                raise RequestRejectedError(message + "." + _fix_for(status), status) from None
            attempts += 1
            if not policy.retry_on_fail or attempts > policy.max_retries:
                tried = f" (after {attempts} attempts)" if policy.retry_on_fail else ""
                raise RuntimeError(describe_failure(label, error) + tried) from error
            delay = retry_delay(error, attempts, policy)
            if gate is not None:
                cause, overload = cause_of(error)
                gate.retried(ticket, cause, overload, describe_failure(label, error))
            if on_retry is not None:
                on_retry(error, attempts, delay)
            await asyncio.sleep(delay)
            if gate is not None and gate.stopped:
                raise NotSent from None
            continue
        if gate is not None:
            gate.release()
            gate.answered(ticket, time.monotonic() - started, getattr(result, "completion_tokens", 0))
        return result
