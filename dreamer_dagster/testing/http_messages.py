"""The requests and responses of the loopback servers (``FakeOpenAIServer`` and servers built
on it): what a route handler takes and returns, and the helpers handlers share."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["FakeRequest", "FakeResponse", "Handler", "content_text", "error_response", "prompt_text"]


@dataclass
class FakeRequest:
    """One request as a route handler sees it (``match``: the route's regex match)."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any  # parsed JSON, or raw bytes when the body is not JSON
    match: re.Match | None = None
    query: str = ""


@dataclass
class FakeResponse:
    """What a route handler answers."""

    status: int = 200
    body: Any = None  # JSON-serializable, or bytes sent as they are
    headers: dict[str, str] = field(default_factory=dict)


#: A route handler: a request in, a response out.
Handler = Callable[[FakeRequest], FakeResponse]


def content_text(content: Any) -> str:
    """A message's text (content parts joined)."""
    if isinstance(content, list):  # content parts
        return " ".join(part.get("text", "") for part in content if isinstance(part, dict))
    return str(content or "")


def prompt_text(body: Any) -> str:
    """The prompt text of a request body (chat messages, ``prompt`` or ``input``)."""
    if not isinstance(body, dict):
        return ""
    if "messages" in body:
        return " ".join(content_text(m.get("content")) for m in body["messages"] if isinstance(m, dict))
    for name in ("prompt", "input"):
        if name in body:
            return json.dumps(body[name]) if not isinstance(body[name], str) else body[name]
    return ""


def error_response(status: int, message: str, code: str) -> FakeResponse:
    """An error in OpenAI's shape (``{"error": {"message", "type", "code"}}``)."""
    return FakeResponse(status, {"error": {"message": message, "type": code, "param": None, "code": code}})
