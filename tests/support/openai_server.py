"""An OpenAI-compatible HTTP server on 127.0.0.1 for tests and benchmarks.

Deterministic answers (echo-based), configurable latency and faults, and a
record of every request (count, concurrency, and when each was received and
answered: ``started`` / ``finished`` on ``time.monotonic()``). Endpoints: ``/v1/chat/completions``,
``/v1/completions``, ``/v1/models``, ``/v1/embeddings``, and the files and
fine-tuning jobs endpoints (``server.fine_tuning``, see :class:`FineTuningAPI`);
more are added with
``server.add_route(method, path_regex, handler)`` (a handler takes a
``FakeRequest`` and returns a ``FakeResponse``).

In a test, use the ``openai_server`` fixture (a thread in the test process).
As a subprocess (for ``dagster`` CLI tests and benchmarks)::

    python -m tests.support.openai_server --port 0 --latency 0.05

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
import hashlib
import json
import math
import random
import re
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

__all__ = [
    "FakeOpenAIServer",
    "FakeRequest",
    "FakeResponse",
    "FineTuningAPI",
    "openai_server",
    "openai_server_process",
    "start_server_process",
]

_FAIL_MARKER = re.compile(r"\[\[fail:(\w+):(\d+)\]\]")
_SLEEP_MARKER = re.compile(r"\[\[sleep:([0-9.]+)\]\]")


@dataclass
class FakeRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: Any  # parsed JSON, or raw bytes when the body is not JSON
    match: re.Match | None = None
    query: str = ""


@dataclass
class FakeResponse:
    status: int = 200
    body: Any = None  # JSON-serializable, or bytes sent as they are
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[[FakeRequest], FakeResponse]


class FakeOpenAIServer:
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
        text = _prompt_text(request.body)
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
                    return _error(400, f"Bad request: {error}", "invalid_request_error")
        return _error(404, f"No route for {request.method} {request.path}", "not_found")

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
        response = _error(status, message, code)
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
        return _error(404, "unknown control path", "not_found")

    # -- endpoints --------------------------------------------------------------------

    def _chat_completions(self, request: FakeRequest) -> FakeResponse:
        body = request.body
        self._check_model(body["model"])
        user = [m for m in body["messages"] if m.get("role") == "user"]
        content = _content_text(user[-1]["content"]) if user else ""
        choices = []
        for i, text in enumerate(self._answers("Echo: " + content, body, content)):
            message = {"role": "assistant", "content": text}
            if "[[refuse]]" in content:
                message = {"role": "assistant", "content": None, "refusal": "I can't help with that."}
            choices.append({"index": i, "message": message, "finish_reason": "stop", "logprobs": None})
        prompt_words = sum(len(_content_text(m.get("content", "")).split()) for m in body["messages"])
        return FakeResponse(200, self._completion_body("chat.completion", body, choices, prompt_words))

    def _completions(self, request: FakeRequest) -> FakeResponse:
        body = request.body
        self._check_model(body["model"])
        prompts = body["prompt"] if isinstance(body["prompt"], list) else [body["prompt"]]
        choices = []
        for prompt in prompts:
            for text in self._answers(" Echo: " + prompt, body, prompt):
                choices.append(
                    {"index": len(choices), "text": text, "finish_reason": "stop", "logprobs": None}
                )
        prompt_words = sum(len(p.split()) for p in prompts)
        return FakeResponse(200, self._completion_body("text_completion", body, choices, prompt_words))

    def _answers(self, answer: str, body: dict, prompt: str) -> list[str]:
        n = int(body.get("n") or 1)
        if body.get("seed") is not None:
            answer += f" [seed {body['seed']}]"
        texts = []
        for i in range(n):
            text = answer + (f" [choice {i}]" if n > 1 else "")
            response_format = body.get("response_format") or {}
            if response_format.get("type") == "json_schema":
                schema = response_format["json_schema"].get("schema", {})
                text = "{broken" if "[[badjson]]" in prompt else json.dumps(_example_of(schema, text))
            limit = body.get("max_tokens") or body.get("max_completion_tokens")
            if limit and not text.startswith("{"):
                lead = text[: len(text) - len(text.lstrip())]
                text = lead + " ".join(text.split()[: int(limit)])
            for stop in [body["stop"]] if isinstance(body.get("stop"), str) else body.get("stop") or []:
                if stop and stop in text:
                    text = text[: text.index(stop)]
            texts.append(text)
        return texts

    def _completion_body(self, kind: str, body: dict, choices: list, prompt_words: int) -> dict:
        completion_words = sum(
            len((c.get("text") or c.get("message", {}).get("content") or "").split()) for c in choices
        )
        return {
            "id": f"cmpl-{hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:24]}",
            "object": kind,
            "created": 1_700_000_000,
            "model": body["model"],
            "choices": choices,
            "usage": self._usage(prompt_words, completion_words),
        }

    def _usage(self, prompt_words: int, completion_words: int) -> dict:
        """Words count as tokens; reasoning tokens are billed inside completion_tokens, as OpenAI does."""
        completion = completion_words + self.reasoning_tokens
        usage: dict = {
            "prompt_tokens": prompt_words,
            "completion_tokens": completion,
            "total_tokens": prompt_words + completion,
        }
        if self.reasoning_tokens:
            usage["completion_tokens_details"] = {"reasoning_tokens": self.reasoning_tokens}
        if self.cached_prompt_tokens:
            usage["prompt_tokens_details"] = {"cached_tokens": min(self.cached_prompt_tokens, prompt_words)}
        return usage

    def _list_models(self, request: FakeRequest) -> FakeResponse:
        data = [
            {"id": m, "object": "model", "created": 1_700_000_000, "owned_by": "fake"} for m in self.models
        ]
        return FakeResponse(200, {"object": "list", "data": data})

    def _embeddings(self, request: FakeRequest) -> FakeResponse:
        body = request.body
        inputs = body["input"]
        if isinstance(inputs, str) or (isinstance(inputs, list) and inputs and isinstance(inputs[0], int)):
            inputs = [inputs]
        dimensions = int(body.get("dimensions") or 8)
        data = [
            {"object": "embedding", "index": i, "embedding": fake_embedding(item, dimensions)}
            for i, item in enumerate(inputs)
        ]
        tokens = sum(len(item.split()) if isinstance(item, str) else len(item) for item in inputs)
        return FakeResponse(
            200,
            {
                "object": "list",
                "data": data,
                "model": body["model"],
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            },
        )

    def _check_model(self, model: str) -> None:
        if not isinstance(model, str) or not model:
            raise ValueError("model is required")


class FineTuningAPI:
    """The files and fine-tuning endpoints of a :class:`FakeOpenAIServer` (``server.fine_tuning``).

    ``POST /v1/files`` (multipart), ``GET`` / ``DELETE /v1/files/{id}``,
    ``POST /v1/fine_tuning/jobs``, ``GET /v1/fine_tuning/jobs/{id}`` (each
    retrieve is a poll), ``GET /v1/fine_tuning/jobs/{id}/events`` and
    ``POST /v1/fine_tuning/jobs/{id}/cancel``. A job is ``queued``, then
    ``running``, and ``succeeded`` on its ``polls_to_finish``-th poll, naming
    the model ``ft:<model>:loopback:<job id>``. ``uploads`` and
    ``jobs_created`` count what a resumed training must not repeat.
    """

    def __init__(self, server: FakeOpenAIServer, polls_to_finish: int = 2):
        self.polls_to_finish = polls_to_finish
        self._lock = threading.Lock()
        self.files: dict[str, dict] = {}
        self.contents: dict[str, bytes] = {}
        self.jobs: dict[str, dict] = {}
        self.events: dict[str, list[dict]] = {}
        self.polls: Counter = Counter()
        self.uploads = 0
        self.jobs_created = 0
        server.add_route("POST", r"/v1/files", self._upload)
        server.add_route("GET", r"/v1/files/(?P<id>[^/]+)", self._retrieve_file)
        server.add_route("DELETE", r"/v1/files/(?P<id>[^/]+)", self._delete_file)
        server.add_route("POST", r"/v1/fine_tuning/jobs", self._create_job)
        server.add_route("GET", r"/v1/fine_tuning/jobs/(?P<id>[^/]+)", self._retrieve_job)
        server.add_route("GET", r"/v1/fine_tuning/jobs/(?P<id>[^/]+)/events", self._list_events)
        server.add_route("POST", r"/v1/fine_tuning/jobs/(?P<id>[^/]+)/cancel", self._cancel_job)

    # -- files ----------------------------------------------------------------------------

    def _upload(self, request: FakeRequest) -> FakeResponse:
        raw = request.body if isinstance(request.body, bytes) else b""
        fields = _multipart_fields(request.headers.get("content-type", ""), raw)
        if "file" not in fields:
            raise ValueError("a multipart 'file' field is required")
        filename, content = fields["file"]
        with self._lock:
            self.uploads += 1
            file_id = f"file-{self.uploads}"
            record = {
                "id": file_id,
                "object": "file",
                "bytes": len(content),
                "created_at": int(time.time()),
                "filename": filename,
                "purpose": fields.get("purpose", ("", b"fine-tune"))[1].decode(),
                "status": "processed",
            }
            self.files[file_id] = record
            self.contents[file_id] = content
        return FakeResponse(200, record)

    def _retrieve_file(self, request: FakeRequest) -> FakeResponse:
        record = self.files.get(request.match["id"])
        if record is None:
            return _error(404, f"No such File object: {request.match['id']}", "not_found")
        return FakeResponse(200, record)

    def _delete_file(self, request: FakeRequest) -> FakeResponse:
        with self._lock:
            record = self.files.pop(request.match["id"], None)
        if record is None:
            return _error(404, f"No such File object: {request.match['id']}", "not_found")
        return FakeResponse(200, {"id": record["id"], "object": "file", "deleted": True})

    # -- jobs -----------------------------------------------------------------------------

    def _create_job(self, request: FakeRequest) -> FakeResponse:
        body = request.body
        for key in ("training_file", "validation_file"):
            if body.get(key) is not None and body[key] not in self.files:
                return _error(400, f"{key} {body[key]!r} does not exist", "invalid_request_error")
        if "training_file" not in body:
            raise KeyError("training_file")
        with self._lock:
            self.jobs_created += 1
            job_id = f"ftjob-{self.jobs_created}"
            self.jobs[job_id] = {
                "id": job_id,
                "object": "fine_tuning.job",
                "created_at": int(time.time()),
                "model": body["model"],
                "training_file": body["training_file"],
                "validation_file": body.get("validation_file"),
                "hyperparameters": body.get("hyperparameters") or {},
                "seed": body.get("seed") or 0,
                "suffix": body.get("suffix"),
                "status": "queued",
                "fine_tuned_model": None,
                "finished_at": None,
                "trained_tokens": None,
                "error": None,
                "organization_id": "org-fake",
                "result_files": [],
            }
            self.events[job_id] = []
            self._event(job_id, "Created fine-tuning job.")
            return FakeResponse(200, dict(self.jobs[job_id]))

    def _retrieve_job(self, request: FakeRequest) -> FakeResponse:
        job_id = request.match["id"]
        with self._lock:
            job = self.jobs.get(job_id)
            if job is None:
                return _error(404, f"No such fine-tuning job: {job_id}", "not_found")
            if job["status"] in ("queued", "running"):
                self.polls[job_id] += 1
                if self.polls[job_id] >= self.polls_to_finish:
                    job.update(
                        status="succeeded",
                        finished_at=int(time.time()),
                        fine_tuned_model=f"ft:{job['model']}:loopback:{job_id}",
                        trained_tokens=len(self.contents.get(job["training_file"], b"").split()),
                    )
                    self._event(job_id, "The job has successfully completed.")
                elif job["status"] == "queued":
                    job["status"] = "running"
                    self._event(job_id, "Fine-tuning job started.")
            return FakeResponse(200, dict(job))

    def _list_events(self, request: FakeRequest) -> FakeResponse:
        job_id = request.match["id"]
        if job_id not in self.jobs:
            return _error(404, f"No such fine-tuning job: {job_id}", "not_found")
        with self._lock:
            data = list(reversed(self.events[job_id]))  # newest first, as the API lists them
        return FakeResponse(200, {"object": "list", "data": data, "has_more": False})

    def _cancel_job(self, request: FakeRequest) -> FakeResponse:
        job_id = request.match["id"]
        with self._lock:
            job = self.jobs.get(job_id)
            if job is None:
                return _error(404, f"No such fine-tuning job: {job_id}", "not_found")
            if job["status"] in ("queued", "running"):
                job["status"] = "cancelled"
                self._event(job_id, "Fine-tuning job cancelled.")
            return FakeResponse(200, dict(job))

    def _event(self, job_id: str, message: str) -> None:
        events = self.events[job_id]
        events.append(
            {
                "id": f"ftevent-{job_id}-{len(events) + 1}",
                "object": "fine_tuning.job.event",
                "created_at": int(time.time()),
                "level": "info",
                "message": message,
                "type": "message",
            }
        )


def _multipart_fields(content_type: str, body: bytes) -> dict[str, tuple[str, bytes]]:
    """A multipart/form-data body's fields: name -> (filename, content)."""
    from email.parser import BytesParser
    from email.policy import HTTP

    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    message = BytesParser(policy=HTTP).parsebytes(head + body)
    fields: dict[str, tuple[str, bytes]] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if name:
            fields[str(name)] = (part.get_filename() or "", part.get_payload(decode=True) or b"")
    return fields


def fake_embedding(item: Any, dimensions: int = 8) -> list[float]:
    """A deterministic unit vector for ``item`` (a string or a token list)."""
    text = item if isinstance(item, str) else json.dumps(item)
    values = []
    counter = 0
    while len(values) < dimensions:
        digest = hashlib.sha256(f"{counter}:{text}".encode()).digest()
        values.extend((b - 127.5) / 127.5 for b in digest)
        counter += 1
    values = values[:dimensions]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [v / norm for v in values]


def _example_of(schema: dict, text: str, definitions: dict | None = None) -> Any:
    definitions = definitions if definitions is not None else schema.get("$defs", {})
    if "$ref" in schema:
        return _example_of(definitions.get(schema["$ref"].rsplit("/", 1)[-1], {}), text, definitions)
    if "enum" in schema:
        return schema["enum"][0]
    if "anyOf" in schema:
        return _example_of(schema["anyOf"][0], text, definitions)
    kind = schema.get("type", "string")
    kind = kind[0] if isinstance(kind, list) else kind
    if kind == "object":
        return {
            name: _example_of(sub, text, definitions) for name, sub in schema.get("properties", {}).items()
        }
    if kind == "array":
        return [_example_of(schema.get("items", {}), text, definitions)]
    return {"integer": 1, "number": 1.5, "boolean": True, "null": None}.get(kind, text)


def _content_text(content: Any) -> str:
    if isinstance(content, list):  # content parts
        return " ".join(part.get("text", "") for part in content if isinstance(part, dict))
    return str(content or "")


def _prompt_text(body: Any) -> str:
    if not isinstance(body, dict):
        return ""
    if "messages" in body:
        return " ".join(_content_text(m.get("content")) for m in body["messages"] if isinstance(m, dict))
    for name in ("prompt", "input"):
        if name in body:
            return json.dumps(body[name]) if not isinstance(body[name], str) else body[name]
    return ""


def _error(status: int, message: str, code: str) -> FakeResponse:
    return FakeResponse(status, {"error": {"message": message, "type": code, "param": None, "code": code}})


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024  # the listen backlog: bursts of new connections are queued, not refused

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that drop connections (timeouts, "disconnect" faults) are expected.
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


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


# -- pytest fixtures and process helpers ------------------------------------------------


@pytest.fixture
def openai_server() -> Iterator[FakeOpenAIServer]:
    """A fake OpenAI-compatible server on 127.0.0.1 (a thread); ``.base_url`` ends in ``/v1``."""
    with FakeOpenAIServer() as server:
        yield server


@contextmanager
def start_server_process(port: int = 0, latency: float = 0.0, python: str | None = None) -> Iterator[str]:
    """Run the server as a subprocess; yields its base URL (``http://127.0.0.1:<port>/v1``)."""
    command = [python or sys.executable, "-m", "tests.support.openai_server", "--port", str(port)]
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


@pytest.fixture
def openai_server_process() -> Iterator[str]:
    """The fake server in a subprocess (for ``dagster`` CLI subprocess tests); yields its base URL."""
    with start_server_process() as base_url:
        yield base_url


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
