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
retried); a body that is not JSON
raises ``ValueError`` (retried, as a malformed answer).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

__all__ = ["APIConnectionError", "APIStatusError", "APITimeoutError", "OpenAIHTTPClient"]

DEFAULT_BASE_URL = "https://api.openai.com/v1"


class APIStatusError(Exception):
    """An answer with a failing HTTP status; ``response.headers`` holds the server's headers."""

    def __init__(self, status_code: int, message: str, response: Any):
        super().__init__(message)
        self.status_code = status_code
        self.message = message
        self.response = response


class APIConnectionError(ConnectionError):
    """No answer: the connection failed, dropped or timed out."""

    status_code = None

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class APITimeoutError(APIConnectionError):
    """No answer within the timeout (counted as a timeout, which lowers the adaptive limit)."""


class _Answer:
    """What ``api_retry.retry_delay`` reads of a failed response: its headers."""

    def __init__(self, headers: Mapping[str, str]):
        self.headers = {name.lower(): value for name, value in headers.items()}


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

        base = base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL
        self.base_url = base.rstrip("/")
        headers = {
            "Authorization": f"Bearer {api_key}",
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
        url = self.base_url + path
        try:
            async with self._session.post(url, data=json.dumps(body).encode()) as response:
                raw = await response.read()
                status = response.status
                headers = response.headers
        except self._errors as error:
            if isinstance(error, TimeoutError):
                raise APITimeoutError(f"the request to {url} timed out: {error!r}") from error
            raise APIConnectionError(f"the connection to {url} failed: {error!r}") from error
        if not 200 <= status < 300:
            raise APIStatusError(status, _error_message(status, raw), _Answer(headers))
        return json.loads(raw)

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
