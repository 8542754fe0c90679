"""An OpenAI-compatible HTTP server on 127.0.0.1 for tests and benchmarks (standard library only).

Deterministic answers (echo-based), configurable latency and faults, and a
record of every request (count, concurrency, and when each was received and
answered: ``started`` / ``finished`` on ``time.monotonic()``). Endpoints: ``/v1/chat/completions``,
``/v1/completions``, ``/v1/models``, ``/v1/embeddings``, and the files and
fine-tuning jobs endpoints (``server.fine_tuning``, see :class:`FineTuningAPI`);
more are added with
``server.add_route(method, path_regex, handler)`` (a handler takes a
``FakeRequest`` and returns a ``FakeResponse``, see :mod:`~dreamer_dagster.testing.http_messages`).

In a test, ``with FakeOpenAIServer() as server:`` (a thread in the test process), or the
``openai_server`` fixture of :mod:`dreamer_dagster.testing.pytest_plugin`. As a subprocess
(for ``dagster`` CLI tests and benchmarks), :func:`start_server_process`, or::

    python -m dreamer_dagster.testing --port 0 --latency 0.05

prints ``READY http://127.0.0.1:<port>/v1`` once listening. Control endpoints,
for a server in another process: ``GET /_stats``, ``POST /_reset``,
``POST /_configure`` (``{"latency": s, "faults": [...]}``).

Answers:

- chat: ``"Echo: <last user message>"``; completions: ``" Echo: <prompt>"``;
  with ``seed`` the answer ends ``" [seed S]"``, with ``n > 1`` each choice ends
  ``" [choice i]"``; ``max_tokens`` keeps that many words; ``stop`` cuts;
- ``response_format`` ``json_schema``: a JSON object with a value of the right
  type for each property (a prompt containing ``[[badjson]]`` gets broken JSON);
- chat: a prompt containing ``[[refuse]]`` gets a refusal (``content`` None,
  ``refusal`` set), as OpenAI's structured outputs answer what they will not do;
- embeddings: unit vectors from a hash of the text (``dimensions``, default 8).

Faults, first matching wins: ``fail_next(kind, count)`` fails the next ``count``
model requests; a prompt containing ``[[fail:KIND:COUNT]]`` fails its first
``COUNT`` requests; ``fault_mix({"429": 0.1, ...}, seed=1)`` fails a seeded
random share of all model requests. KIND is an HTTP status (429 carries
``Retry-After``), or ``malformed`` (a 200 whose body is not JSON), or
``disconnect`` (the connection dropped unanswered), or ``timeout`` (no answer
for ``timeout_after`` seconds, then dropped). A prompt containing
``[[sleep:SECONDS]]`` is answered after that long.

Load: ``latency_per_in_flight`` adds that many seconds per request in flight
beyond ``latency_knee`` (a server that slows down as it fills, as a
self-hosted one does); ``overload_above=K`` answers 429 to any request that
arrives while more than K are in flight (a rate-limited endpoint). The listen
backlog takes bursts of ~1,000 connections.

Usage counts words as tokens; ``reasoning_tokens`` / ``cached_prompt_tokens``
add the details a reasoning model / a prompt cache reports.

Records: ``requests`` (each with ``in_flight`` at arrival, its ``headers`` and its
``query`` string), ``statuses``,
``max_in_flight``, and ``answered`` (a Counter of good 200 answers per prompt
text: what a provider would bill).
"""

from __future__ import annotations

import argparse
import json
import random
import re
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .fine_tuning_api import FineTuningAPI
from .http_messages import FakeRequest, FakeResponse, Handler, error_response, prompt_text
from .openai_answers import OpenAIAnswers

__all__ = ["FakeOpenAIServer", "control", "main", "start_server_process"]

_FAIL_MARKER = re.compile(r"\[\[fail:(\w+):(\d+)\]\]")
_SLEEP_MARKER = re.compile(r"\[\[sleep:([0-9.]+)\]\]")


class FakeOpenAIServer(OpenAIAnswers):
    """The server's state and routes; ``start()`` serves it from a background thread."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        latency: float = 0.0,
        models: tuple[str, ...] = ("fake-chat", "fake-instruct"),
        retry_after: str = "0.05",
    ):
        self.host = host
        self.port = port
        self.latency = latency
        self.latency_per_in_flight = 0.0
        self.latency_knee = 0
        self.overload_above: int | None = None
        self.timeout_after = 1.0
        self.reasoning_tokens = 0  # added to each answer's usage (completion_tokens_details)
        self.cached_prompt_tokens = 0  # reported in each answer's usage (prompt_tokens_details)
        self.models = list(models)
        self.retry_after = retry_after
        self._lock = threading.Lock()
        self._routes: list[tuple[str, re.Pattern, Handler]] = []
        self.reset()
        self.add_route("POST", r"/v1/chat/completions", self._chat_completions)
        self.add_route("POST", r"/v1/completions", self._completions)
        self.add_route("GET", r"/v1/models", self._list_models)
        self.add_route("POST", r"/v1/embeddings", self._embeddings)
        self.fine_tuning = FineTuningAPI(self)
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- configuration and records ----------------------------------------------------

    def reset(self) -> None:
        """Forget requests, counters and faults (latency stays)."""
        with self._lock:
            self.requests: list[dict] = []
            self.in_flight = 0
            self.max_in_flight = 0
            self.statuses: Counter = Counter()
            self._faults: list[list] = []  # [kind, remaining]
            self._marker_seen: Counter = Counter()
            self._mix: list[tuple[str, float]] = []
            self._mix_random = random.Random(0)
            self.answered: Counter = Counter()

    def fail_next(self, kind: int | str, count: int = 1) -> None:
        """Fail the next ``count`` model requests with ``kind`` (a status, ``malformed``, ``disconnect``)."""
        with self._lock:
            self._faults.append([str(kind), int(count)])

    def fault_mix(self, rates: dict[str, float], seed: int = 0) -> None:
        """Fail a seeded random share of model requests: ``{"429": 0.1, "500": 0.05,
        "malformed": 0.03, "timeout": 0.02, "disconnect": 0.01}``."""
        if sum(rates.values()) > 1:
            raise ValueError(f"fault rates add up to more than 1: {rates}")
        with self._lock:
            self._mix = [(str(kind), float(rate)) for kind, rate in rates.items()]
            self._mix_random = random.Random(seed)

    def add_route(self, method: str, path: str, handler: Handler) -> None:
        """Serve ``method`` requests whose path fully matches the regex ``path`` (later routes win)."""
        self._routes.insert(0, (method.upper(), re.compile(path), handler))

    @property
    def request_count(self) -> int:
        return len(self.requests)

    def stats(self) -> dict:
        with self._lock:
            return {
                "requests": len(self.requests),
                "max_in_flight": self.max_in_flight,
                "in_flight": self.in_flight,
                "statuses": {str(k): v for k, v in self.statuses.items()},
                "answered": sum(self.answered.values()),
                "answered_prompts": len(self.answered),
                "most_answers_for_one_prompt": max(self.answered.values(), default=0),
            }

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    # -- serving ----------------------------------------------------------------------

    def start(self) -> FakeOpenAIServer:
        server = self

        class RequestHandler(_Handler):
            owner = server

        self._httpd = _QuietServer((self.host, self.port), RequestHandler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-openai", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def handle(self, request: FakeRequest) -> FakeResponse | str:
        """Route one request; returns a response, or ``"disconnect"``."""
        if request.path.startswith("/_"):
            return self._control(request)
        record = {
            "method": request.method,
            "path": request.path,
            "query": request.query,
            "body": request.body,
            "headers": request.headers,
            "started": time.monotonic(),
            "finished": None,
        }
        with self._lock:
            self.in_flight += 1
            in_flight = self.in_flight
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            record["in_flight"] = in_flight
            self.requests.append(record)
        text = prompt_text(request.body)
        try:
            if self.overload_above is not None and in_flight > self.overload_above:
                response: FakeResponse | str = self._fault_response("429")
            else:
                delay = self.latency + self.latency_per_in_flight * max(0, in_flight - self.latency_knee)
                if found := _SLEEP_MARKER.search(text):
                    delay = float(found.group(1))
                fault = self._take_fault(text)
                if fault == "timeout":
                    delay = max(delay, self.timeout_after)
                if delay:
                    time.sleep(delay)
                response = self._fault_response(fault) if fault else self._route(request)
        finally:
            with self._lock:
                self.in_flight -= 1
                record["finished"] = time.monotonic()
        with self._lock:
            self.statuses[response if isinstance(response, str) else response.status] += 1
            if (
                isinstance(response, FakeResponse)
                and response.status == 200
                and not isinstance(response.body, bytes)
                and request.path.endswith(("/completions", "/embeddings"))
            ):
                self.answered[text] += 1
        return response

    def _route(self, request: FakeRequest) -> FakeResponse:
        for method, pattern, handler in self._routes:
            if method == request.method and (found := pattern.fullmatch(request.path)):
                request.match = found
                try:
                    return handler(request)
                except (KeyError, TypeError, ValueError) as error:
                    return error_response(400, f"Bad request: {error}", "invalid_request_error")
        return error_response(404, f"No route for {request.method} {request.path}", "not_found")

    def _take_fault(self, text: str) -> str | None:
        with self._lock:
            for fault in self._faults:
                if fault[1] > 0:
                    fault[1] -= 1
                    return fault[0]
            for found in _FAIL_MARKER.finditer(text):
                marker = found.group(0)
                if self._marker_seen[(marker, text)] < int(found.group(2)):
                    self._marker_seen[(marker, text)] += 1
                    return found.group(1)
            if self._mix:
                draw = self._mix_random.random()
                for kind, rate in self._mix:
                    if draw < rate:
                        return kind
                    draw -= rate
        return None

    def _fault_response(self, kind: str) -> FakeResponse | str:
        if kind in ("disconnect", "timeout"):
            return kind
        if kind == "malformed":
            return FakeResponse(
                200, b'{"id": "chatcmpl-broken", "choices": [', {"Content-Type": "application/json"}
            )
        status = int(kind)
        messages = {
            400: ("Invalid request.", "invalid_request_error"),
            401: ("Incorrect API key provided.", "invalid_api_key"),
            403: ("You are not allowed to use this model.", "permission_denied"),
            404: ("The model does not exist.", "model_not_found"),
            429: ("Rate limit reached.", "rate_limit_exceeded"),
        }
        message, code = messages.get(status, ("The server had an error.", "server_error"))
        response = error_response(status, message, code)
        if status == 429:
            response.headers["Retry-After"] = self.retry_after
        return response

    def _control(self, request: FakeRequest) -> FakeResponse:
        if request.path == "/_stats":
            return FakeResponse(200, self.stats())
        if request.path == "/_reset":
            self.reset()
            return FakeResponse(200, {"ok": True})
        if request.path == "/_configure":
            body = request.body or {}
            for name in ("latency", "latency_per_in_flight", "timeout_after"):
                if name in body:
                    setattr(self, name, float(body[name]))
            if "latency_knee" in body:
                self.latency_knee = int(body["latency_knee"])
            if "overload_above" in body:
                self.overload_above = None if body["overload_above"] is None else int(body["overload_above"])
            if "retry_after" in body:
                self.retry_after = str(body["retry_after"])
            if "fault_mix" in body:
                self.fault_mix(body["fault_mix"], int(body.get("seed", 0)))
            for kind, count in body.get("faults", []):
                self.fail_next(kind, count)
            return FakeResponse(200, {"ok": True})
        return error_response(404, "unknown control path", "not_found")

    # -- endpoints --------------------------------------------------------------------


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024  # the listen backlog: bursts of new connections are queued, not refused

    def handleerror_response(self, request: Any, client_address: Any) -> None:
        # Clients that drop connections (timeouts, "disconnect" faults) are expected.
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handleerror_response(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    owner: FakeOpenAIServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw
        path, _, query = self.path.partition("?")
        headers = {k.lower(): v for k, v in self.headers.items()}
        response = self.owner.handle(FakeRequest(self.command, path, headers, body, query=query))
        if isinstance(response, str):  # "disconnect" / "timeout": drop the connection unanswered
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        data = (
            response.body
            if isinstance(response.body, bytes)
            else json.dumps(response.body if response.body is not None else {}).encode()
        )
        self.send_response(response.status)
        self.send_header("Content-Type", response.headers.pop("Content-Type", "application/json"))
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_DELETE = _serve


# -- a server in another process ------------------------------------------------


@contextmanager
def start_server_process(port: int = 0, latency: float = 0.0, python: str | None = None) -> Iterator[str]:
    """Run the server as a subprocess; yields its base URL (``http://127.0.0.1:<port>/v1``)."""
    command = [python or sys.executable, "-m", "dreamer_dagster.testing", "--port", str(port)]
    command += ["--latency", str(latency)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line.startswith("READY "):
            raise RuntimeError(f"The fake OpenAI server did not start: {line!r}")
        yield line.split()[1]
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


def control(base_url: str, path: str, payload: dict | None = None) -> dict:
    """Call a control endpoint (``/_stats``, ``/_reset``, ``/_configure``) of a server in another process."""
    import urllib.request

    root = base_url.rsplit("/v1", 1)[0]
    data = json.dumps(payload).encode() if payload is not None else None
    method = "POST" if path in ("/_reset", "/_configure") else "GET"
    request = urllib.request.Request(root + path, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--latency-per-in-flight", type=float, default=0.0)
    parser.add_argument("--latency-knee", type=int, default=0)
    parser.add_argument("--overload-above", type=int, default=None)
    args = parser.parse_args(argv)
    server = FakeOpenAIServer(args.host, args.port, latency=args.latency)
    server.latency_per_in_flight = args.latency_per_in_flight
    server.latency_knee = args.latency_knee
    server.overload_above = args.overload_above
    server.start()
    print(f"READY {server.base_url}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
