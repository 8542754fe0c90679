"""A Messages-API (Anthropic) server on 127.0.0.1 for tests, on the OpenAI fake's HTTP core.

``FakeAnthropicServer`` is a :class:`FakeOpenAIServer` (same threads, request
records, latency, ``fail_next`` faults and ``[[fail:KIND:COUNT]]`` markers)
with ``POST /v1/messages`` added and errors in Anthropic's shape
(``{"type": "error", "error": {"type": ..., "message": ...}}``); 429 and 529
("overloaded") carry ``Retry-After``. Answers: ``"Claude: <last user
message>"``, cut to ``max_tokens`` words and at ``stop_sequences``. The SDK's
base URL is ``server.root_url`` (the SDK adds ``/v1/messages``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest

from .openai_server import FakeOpenAIServer, FakeRequest, FakeResponse, _content_text

__all__ = ["FakeAnthropicServer", "anthropic_server"]

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
    529: "overloaded_error",
}


class FakeAnthropicServer(FakeOpenAIServer):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.answered: Counter = Counter()  # prompt -> times answered with a 200
        self.add_route("POST", r"/v1/messages", self._messages)

    @property
    def root_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _messages(self, request: FakeRequest) -> FakeResponse:
        body = request.body
        if not body.get("model") or not body.get("max_tokens"):
            return _anthropic_error(400, "model and max_tokens are required")
        user = [m for m in body["messages"] if m.get("role") == "user"]
        prompt = _content_text(user[-1]["content"]) if user else ""
        with self._lock:
            self.answered[prompt] += 1
        words = ("Claude: " + prompt).split()[: int(body["max_tokens"])]
        text = " ".join(words)
        stop_reason = "end_turn"
        for stop in body.get("stop_sequences") or []:
            if stop and stop in text:
                text, stop_reason = text[: text.index(stop)], "stop_sequence"
        return FakeResponse(
            200,
            {
                "id": f"msg_{len(self.requests)}",
                "type": "message",
                "role": "assistant",
                "model": body["model"],
                "content": [{"type": "text", "text": text}],
                "stop_reason": stop_reason,
                "stop_sequence": None,
                "usage": {"input_tokens": len(prompt.split()), "output_tokens": len(text.split())},
            },
        )

    def _fault_response(self, kind: str) -> FakeResponse | str:
        if kind in ("disconnect", "malformed"):
            return super()._fault_response(kind)
        status = int(kind)
        response = _anthropic_error(status, f"fault {status}")
        if status in (429, 529):
            response.headers["Retry-After"] = self.retry_after
        return response


def _anthropic_error(status: int, message: str) -> FakeResponse:
    kind = _ERROR_TYPES.get(status, "api_error")
    return FakeResponse(status, {"type": "error", "error": {"type": kind, "message": message}})


@pytest.fixture
def anthropic_server() -> Iterator[FakeAnthropicServer]:
    """A fake Messages-API server on 127.0.0.1 (a thread); the SDK's base URL is ``.root_url``."""
    with FakeAnthropicServer() as server:
        yield server
