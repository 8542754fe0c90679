"""The loopback server of ``bench/peers.py``: tests/support/openai_server.py plus a seeded long tail
of latency and a count of the prompts each client sends. Runs in the driver's process."""

from __future__ import annotations

import random
import threading
import time

from tests.support.openai_server import FakeOpenAIServer, FakeRequest, FakeResponse

__all__ = ["PeerServer", "is_prompt"]


def is_prompt(request: FakeRequest) -> bool:
    """A chat request carrying a user message (Curator's rate-limit probe sends none)."""
    body = request.body
    return (
        request.path.endswith("/chat/completions")
        and isinstance(body, dict)
        and any(isinstance(m, dict) and m.get("role") == "user" for m in body.get("messages") or [])
    )


class PeerServer(FakeOpenAIServer):
    """The loopback server plus a seeded exponential tail of latency and a count of prompts sent.

    A prompt's extra delay is drawn from ``Random(f"{seed}:{prompt}")``: every
    client sending the same prompts meets the same delays, in whatever order.
    """

    def __init__(self, latency: float) -> None:
        super().__init__(latency=latency)
        self.tail_mean = 0.0
        self.seed = 0
        self.prompts_sent = 0
        self._count_lock = threading.Lock()

    def handle(self, request: FakeRequest) -> FakeResponse | str:
        if is_prompt(request):
            with self._count_lock:
                self.prompts_sent += 1
        return super().handle(request)

    def _route(self, request: FakeRequest) -> FakeResponse:
        if self.tail_mean and is_prompt(request):
            user = [m for m in request.body["messages"] if m.get("role") == "user"][-1]
            time.sleep(random.Random(f"{self.seed}:{user.get('content')}").expovariate(1 / self.tail_mean))
        return super()._route(request)
