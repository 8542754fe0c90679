"""The one retry rule of every API backend (OpenAI, Anthropic, the OpenAI-compatible providers).

A failed request is retried when a retry can fix it: a 408 / 409 / 429, any
5xx (529, Anthropic's "overloaded", included), a timeout, a dropped connection
or a body that is not what the API promised. The wait honours the server's
``retry-after-ms`` / ``Retry-After`` header (seconds or an HTTP date), else it
backs off exponentially with jitter. Any other 4xx (a bad request, a wrong key,
a missing model) raises :class:`~dreamer_dagster.errors.NonRetryableError` at
once: no retry, and Dagster's retry policy does not re-run the step either.
The SDKs' own retries are switched off (``max_retries=0``) so that this is the
only rule.
"""

from __future__ import annotations

import asyncio
import random
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

from ..errors import NonRetryableError

__all__ = ["MalformedResponse", "RetryPolicy", "call_with_retries", "is_retryable_status", "retry_delay"]

T = TypeVar("T")


class MalformedResponse(Exception):
    """A 200 response without what the API promises (choices, content blocks)."""


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to wait; none of it changes a result, so none is in an identity."""

    retry_on_fail: bool = True
    max_retries: int = 8
    initial_delay: float = 0.5
    max_delay: float = 30.0


def is_retryable_status(status: int | None) -> bool:
    """Whether a failure with this HTTP status (None: no response at all) is worth retrying."""
    return status is None or status in (408, 409, 429) or status >= 500


def retry_delay(error: Any, attempt: int, policy: RetryPolicy) -> float:
    """Seconds to wait before retry number ``attempt`` (1-based) of a request that failed with ``error``."""
    response = getattr(error, "response", None)
    headers = getattr(response, "headers", None) or {}
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            return max(0.0, float(value) * scale)
        except ValueError:
            try:
                return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
            except (TypeError, ValueError):
                pass
    ceiling = min(policy.max_delay, policy.initial_delay * 2 ** (attempt - 1))
    return random.uniform(ceiling / 2, ceiling)


def describe_failure(label: str, error: Any) -> str:
    """``<label> failed: HTTP 401: <the server's message>`` (the key never appears in it)."""
    status = getattr(error, "status_code", None)
    message = getattr(error, "message", None) or str(error) or type(error).__name__
    message = re.sub(r"^Error code: \d+ - ", "", str(message))
    code = f"HTTP {status}: " if status else f"{type(error).__name__}: "
    return f"{label} failed: {code}{message}"


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
    ``on_retry(error, attempt, delay)`` is told of each retry (counting, logging).
    """
    attempts = 0
    while True:
        try:
            return await attempt()
        except api_errors as error:
            status = getattr(error, "status_code", None)
            if not is_retryable_status(status):
                raise NonRetryableError(
                    describe_failure(label, error)
                    + ". A retry cannot fix this. Fix: check the model name, the API key and the request."
                ) from None
            attempts += 1
            if not policy.retry_on_fail or attempts > policy.max_retries:
                tried = f" (after {attempts} attempts)" if policy.retry_on_fail else ""
                raise RuntimeError(describe_failure(label, error) + tried) from error
            delay = retry_delay(error, attempts, policy)
            if on_retry is not None:
                on_retry(error, attempts, delay)
            await asyncio.sleep(delay)
