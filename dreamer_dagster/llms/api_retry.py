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

Configuration errors fail fast: before any request of the stream has been
answered, a refused connection, an unknown host or a failed TLS handshake
(:func:`unreachable_cause`) raises
:class:`~dreamer_dagster.errors.EndpointUnreachableError` at once (after an
answer, the same errors are a passing outage and are retried). A ``ValueError``
the client raises before sending (a malformed URL or header) is
:class:`~dreamer_dagster.errors.RequestConfigurationError`, never a "malformed
body": only :func:`malformed_body_errors` are. Every message is scrubbed of
the API key and the URL's secrets (:func:`~dreamer_dagster.llms.urls.scrub`).
"""

from __future__ import annotations

import asyncio
import random
import re
import time
from collections.abc import Awaitable, Callable, Iterable
from contextvars import ContextVar
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

from ..errors import (
    EndpointUnreachableError,
    RequestConfigurationError,
    RequestRejectedError,
    error_chain,
    is_retryable_status,
)
from .urls import scrub

__all__ = [
    "CAUSES",
    "MalformedResponse",
    "NotSent",
    "RetryPolicy",
    "ScrubbedError",
    "call_with_retries",
    "cause_of",
    "current_gate",
    "is_retryable_status",
    "malformed_body_errors",
    "retry_delay",
    "unreachable_cause",
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


def malformed_body_errors() -> tuple[type[BaseException], ...]:
    """The errors that say an answer's body is not what the API promised (not JSON, not the
    schema an SDK validates): retried as ``malformed``. Any other ``ValueError`` is the
    client's (a bad URL or header), which a retry cannot fix."""
    import json

    from pydantic import ValidationError

    return (json.JSONDecodeError, UnicodeDecodeError, ValidationError)


def _chain(error: BaseException) -> list[BaseException]:
    """``error``'s chain, with the OS error each aiohttp connector error carries."""
    chain: list[BaseException] = []
    for current in error_chain(error):
        chain.append(current)
        os_error = getattr(current, "os_error", None)  # aiohttp's connector errors
        if isinstance(os_error, BaseException):
            chain.extend(error_chain(os_error))
    return chain


def unreachable_cause(error: BaseException) -> str | None:
    """``"refused"``, ``"dns"`` or ``"tls"`` when ``error`` (or its chain) says the endpoint
    cannot be reached as configured; None for other failures (a timeout, a dropped connection)."""
    import errno
    import socket
    import ssl

    for current in _chain(error):
        marked = getattr(current, "unreachable", None)
        if isinstance(marked, str):
            return marked
        name = type(current).__name__
        if isinstance(current, ssl.SSLError) or name in (
            "ClientConnectorCertificateError",
            "ClientConnectorSSLError",
            "ClientSSLError",
        ):
            return "tls"
        if isinstance(current, socket.gaierror) or name == "ClientConnectorDNSError":
            return "dns"
        if isinstance(current, ConnectionRefusedError) or (
            isinstance(current, OSError) and current.errno == errno.ECONNREFUSED
        ):
            return "refused"
    return None


_UNREACHABLE = {
    "refused": (
        "the connection was refused",
        "check that the server is running and that base_url's host and port are right",
    ),
    "dns": ("its host name is unknown (DNS)", "check the host name in base_url"),
    "tls": (
        "the TLS (https) handshake failed",
        "check base_url's scheme (http:// or https://) and the server's certificate "
        "(a private CA needs SSL_CERT_FILE)",
    ),
}


def _unreachable(label: str, url: str | None, cause: str, error: BaseException) -> str:
    what, fix = _UNREACHABLE[cause]
    where = f" ({url})" if url and url not in label else ""
    return (
        f"{label}{where} cannot be reached: {what} before any request succeeded "
        f"({describe_failure('the request', error).removeprefix('the request failed: ')}). "
        f"A retry cannot fix a wrong configuration. Fix: {fix}."
    )


class ScrubbedError(ConnectionError):
    """Stands in, as a cause, for a failed request whose error text held a secret: its text
    without the secret, its ``status_code``. Only retryable failures (no answer, 408/429/5xx)
    reach a step's retry rule through it, so it is a ``ConnectionError`` (transient)."""

    def __init__(self, message: str, status_code: int | None, unreachable: str | None):
        super().__init__(message)
        self.status_code = status_code
        self.unreachable = unreachable


def _safe_cause(error: BaseException, secrets: tuple[str, ...]) -> BaseException:
    """``error`` as the cause of a raised error, or a :class:`ScrubbedError` in its place
    when the text of its chain holds a secret (Dagster shows every cause in the run log).
    An error that knows its SDK's form (``sdk_error()``: the lean client's status errors) is
    given as that, so a caller finds the provider's exception (``openai.InternalServerError``)."""
    to_sdk = getattr(error, "sdk_error", None)
    if callable(to_sdk):
        error = to_sdk()
    if not secrets:
        return error
    for current in _chain(error):
        text = f"{current!s} {current!r} {getattr(current, 'message', '')} {getattr(current, 'body', '')}"
        if scrub(text, secrets) != text:
            message = scrub(f"{type(error).__name__}: {error}", secrets)
            return ScrubbedError(message, getattr(error, "status_code", None), unreachable_cause(error))
    return error


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
    *,
    secrets: Iterable[str | None] = (),
    url: str | None = None,
) -> T:
    """``await attempt()``, retried under ``policy`` when it raises one of ``api_errors``
    (the SDK's error base, :class:`MalformedResponse`, :func:`malformed_body_errors`...)
    with a retryable status.

    ``label`` names the model in the error (``"Anthropic model 'claude-x'"``), ``url`` its
    endpoint (without secrets); ``secrets`` (the API key, the URL's secrets) are scrubbed
    from every message; ``on_retry(error, attempt, delay)`` is told of each retry. In an
    AsyncStream each attempt holds an in-flight slot of the stream's adaptive limit.
    """
    gate = current_gate.get()
    hidden = tuple(secret for secret in secrets if secret)
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
                if isinstance(error, ValueError) and not isinstance(error, malformed_body_errors()):
                    message = scrub(f"{label}: the request could not be made: {error}", hidden)
                    raise RequestConfigurationError(
                        f"{message}. A retry cannot fix this. Fix: check base_url (such as "
                        "http://host:8000/v1) and the client arguments (headers, kwargs)."
                    ) from _safe_cause(error, hidden)
                raise
            status = getattr(error, "status_code", None)
            if not is_retryable_status(status):
                message = scrub(describe_failure(label, error), hidden).rstrip(".")
                raise RequestRejectedError(message + "." + _fix_for(status), status) from None
            cause = unreachable_cause(error) if status is None else None
            if cause is not None and not getattr(gate, "answered_any", False):
                message = scrub(_unreachable(label, url, cause, error), hidden)
                raise EndpointUnreachableError(message) from _safe_cause(error, hidden)
            attempts += 1
            if not policy.retry_on_fail or attempts > policy.max_retries:
                tried = f" (after {attempts} attempts)" if policy.retry_on_fail else ""
                message = scrub(describe_failure(label, error) + tried, hidden)
                raise RuntimeError(message) from _safe_cause(error, hidden)
            delay = retry_delay(error, attempts, policy)
            if gate is not None:
                cause, overload = cause_of(error)
                gate.retried(ticket, cause, overload, scrub(describe_failure(label, error), hidden))
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
