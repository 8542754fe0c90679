"""The lean request path of ``OpenAI`` and its OpenAI-compatible providers: JSON over one aiohttp pool.

The OpenAI SDK builds typed request and response models around every call; at
hundreds of calls a second that is most of a client's CPU (measured here on
2,000 chat calls through ``OpenAI.run``, run loop and model cache included:
about 1.7 ms a call through the SDK, under 0.5 ms this way). A chat or completion call to an
OpenAI-compatible endpoint needs none of it: this client posts the same JSON
body with the headers the SDK sends (``Authorization``, ``OpenAI-Organization``,
``OpenAI-Project``, ``default_headers``) and hands back the parsed JSON, which
``OpenAI.parse_response`` reads either way. aiohttp is the transport the SDK
itself offers as ``openai[aiohttp]``.

Errors keep the SDK's shape, so :mod:`~dreamer_dagster.llms.api_retry` alone
decides what is retried: a status other than 2xx raises :class:`APIStatusError`
(``status_code``, ``response.headers`` for ``Retry-After``, the server's
message); a connection that fails, drops or times out raises
:class:`APIConnectionError` (:class:`APITimeoutError` for a timeout; no status:
retried; a refused connection, an unknown host or a failed TLS handshake says
so in ``unreachable``, which fails a stream fast before its first answer); a
body that is not JSON raises :class:`~dreamer_dagster.llms.api_retry.MalformedResponse`
(retried).

A ``base_url`` holding a credential works as the OpenAI SDK's client makes it
work (see :mod:`~dreamer_dagster.llms.urls`): its query goes after each path
(``<base>/chat/completions?api-key=...``), a user and password go as HTTP basic
auth (in place of the ``Bearer`` key); ``base_url`` and every message show the
URL without them, and messages (a 401 body that echoes the key included) are
scrubbed of the key and the URL's secrets.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

__all__ = ["APIConnectionError", "APIStatusError", "APITimeoutError", "OpenAIHTTPClient"]

DEFAULT_BASE_URL = "https://api.openai.com/v1"


class APIStatusError(Exception):
    """An answer with a failing HTTP status; ``response.headers`` holds the server's headers.

    Cheap to raise (no SDK import on the request path); :meth:`sdk_error` gives the OpenAI
    SDK's own error for it (``openai.InternalServerError`` for a 5xx...), which is what a
    failed call's error carries as its cause (see ``api_retry._safe_cause``), as DataDreamer's
    SDK client would raise it."""

    def __init__(self, status_code: int, message: str, response: Any, *, body: str = "", url: str = ""):
        super().__init__(message)
        self.status_code = status_code
        self.message = message
        self.response = response
        self.body = body
        self.url = url

    def sdk_error(self) -> Exception:
        """The OpenAI SDK's error for this status, as its client picks it (``_make_status_error``);
        ``message`` and ``body`` are already scrubbed of secrets, ``url`` is the shown one."""
        import httpx2  # the OpenAI SDK's HTTP library
        import openai

        name = _SDK_ERRORS.get(
            self.status_code, "InternalServerError" if self.status_code >= 500 else "APIStatusError"
        )
        request = httpx2.Request("POST", self.url or DEFAULT_BASE_URL)
        response = httpx2.Response(self.status_code, headers=dict(self.response.headers), request=request)
        try:
            body = json.loads(self.body) if isinstance(self.body, str) else self.body
        except ValueError:
            body = self.body
        body = body.get("error", body) if isinstance(body, Mapping) else body
        error = getattr(openai, name)(self.message, response=response, body=body)
        return error.with_traceback(self.__traceback__)


#: The OpenAI SDK's error class for a status, as its client picks it.
_SDK_ERRORS = {
    400: "BadRequestError",
    401: "AuthenticationError",
    403: "PermissionDeniedError",
    404: "NotFoundError",
    409: "ConflictError",
    422: "UnprocessableEntityError",
    429: "RateLimitError",
}


class _Answer:
    """What ``api_retry.retry_delay`` reads of a failed response: its headers."""

    def __init__(self, headers: Mapping[str, str]):
        self.headers = {name.lower(): value for name, value in headers.items()}


class APIConnectionError(ConnectionError):
    """No answer: the connection failed, dropped or timed out."""

    status_code = None
    #: ``"refused"``, ``"dns"`` or ``"tls"`` when the endpoint cannot be reached as configured.
    unreachable: str | None = None

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class APITimeoutError(APIConnectionError):
    """No answer within the timeout (counted as a timeout, which lowers the adaptive limit)."""


class OpenAIHTTPClient:
    """Posts JSON bodies to ``<base_url><path>`` with at most ``max_connections`` connections.

    Made inside the event loop that uses it (aiohttp sessions are bound to one
    loop); ``close()`` there too.
    """

    def __init__(
        self,
        base_url: str | None,
        api_key: str,
        *,
        organization: str | None = None,
        project: str | None = None,
        default_headers: Mapping[str, str] | None = None,
        timeout: float = 120.0,
        max_connections: int = 16,
    ):
        import aiohttp

        from .urls import secrets_of, split_url

        self._endpoint = split_url(base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL)
        self.base_url = self._endpoint.public  # shown: no user, password or secret query value
        #: Scrubbed from every message this client raises.
        self.api_key = api_key  # as the SDK's clients hold it
        self.secrets = secrets_of(api_key, self._endpoint)
        headers = {
            "Authorization": self._endpoint.basic_auth() or f"Bearer {api_key}",
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": "dreamer-dagster",
        }
        organization = organization or os.environ.get("OPENAI_ORG_ID")
        project = project or os.environ.get("OPENAI_PROJECT_ID")
        if organization:
            headers["OpenAI-Organization"] = organization
        if project:
            headers["OpenAI-Project"] = project
        headers.update(default_headers or {})
        self._errors = (aiohttp.ClientError, TimeoutError)
        self._session = aiohttp.ClientSession(
            headers=headers,
            connector=aiohttp.TCPConnector(limit=max(1, int(max_connections))),
            timeout=aiohttp.ClientTimeout(total=timeout),
            trust_env=True,  # HTTP(S)_PROXY, as the SDK honours them
        )

    async def post(self, path: str, body: dict) -> Any:
        """The parsed JSON answer to ``POST <base_url><path>`` with ``body``."""
        from .api_retry import MalformedResponse, unreachable_cause
        from .urls import scrub

        url = self._endpoint.request_url(path)
        shown = self.base_url + path
        try:
            async with self._session.post(url, data=json.dumps(body).encode()) as response:
                raw = await response.read()
                status = response.status
                headers = response.headers
        except self._errors as error:
            cause = error if scrub(repr(error), self.secrets) == repr(error) else None
            if isinstance(error, TimeoutError):
                message = f"the request to {shown} timed out: {error!r}"
                raise APITimeoutError(scrub(message, self.secrets)) from cause
            message = f"the connection to {shown} failed: {type(error).__name__}: {error}"
            failed = APIConnectionError(scrub(message, self.secrets))
            failed.unreachable = unreachable_cause(error)
            raise failed from cause
        if not 200 <= status < 300:
            message = scrub(_error_message(status, raw), self.secrets)
            text = scrub(raw[:2000].decode("utf-8", "replace"), self.secrets)
            raise APIStatusError(status, message, _Answer(headers), body=text, url=shown)
        try:
            return json.loads(raw)
        except ValueError as error:
            message = scrub(f"the answer from {shown} is not JSON: {raw[:200]!r}", self.secrets)
            raise MalformedResponse(message) from error

    async def close(self) -> None:
        await self._session.close()


def _error_message(status: int, raw: bytes) -> str:
    """The server's own message (``{"error": {"message": ...}}``), else the start of the body."""
    try:
        data = json.loads(raw)
    except ValueError:
        return raw[:500].decode("utf-8", "replace") or f"HTTP {status}"
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict) and error.get("message"):
        return str(error["message"])
    if isinstance(error, str):
        return error
    return json.dumps(data)[:500]
