"""The Batch API routes for a :class:`FakeOpenAIServer`: ``BatchAPI(server)``.

``POST /v1/batches``, ``GET /v1/batches/{id}`` (each retrieve is a poll),
``POST /v1/batches/{id}/cancel`` and ``GET /v1/files/{id}/content``; files are
the server's ``fine_tuning`` file store (``POST /v1/files`` uploads). A job goes
``validating`` -> ``in_progress`` -> ``finalizing`` -> ``completed`` on
successive polls; when it completes, each row is answered by the server's own
route for its ``url`` (so answers equal the synchronous ones). A row whose
prompt holds ``[[batchfail]]`` fails (HTTP 500 in the error file) the first
time it is batched; ``expire_next`` makes the next job end ``expired`` with
only its first half answered. ``jobs`` and ``rows_batched`` count what a
resumed run must not repeat.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from typing import Any

from .openai_server import FakeOpenAIServer, FakeRequest, FakeResponse, _error, _prompt_text

__all__ = ["BatchAPI"]

STEPS = ("validating", "in_progress", "finalizing", "completed")


class BatchAPI:
    def __init__(self, server: FakeOpenAIServer):
        self.server = server
        self.files = server.fine_tuning
        self._lock = threading.Lock()
        self.jobs: dict[str, dict] = {}
        self.polls: Counter = Counter()
        self.rows_batched: Counter = Counter()  # custom_id -> times sent in a job
        self.failed_once: set[str] = set()
        self.expire_next = False
        server.add_route("POST", r"/v1/batches", self._create)
        server.add_route("GET", r"/v1/batches/(?P<id>[^/]+)", self._retrieve)
        server.add_route("POST", r"/v1/batches/(?P<id>[^/]+)/cancel", self._cancel)
        server.add_route("GET", r"/v1/files/(?P<id>[^/]+)/content", self._content)

    def _create(self, request: FakeRequest) -> FakeResponse:
        body = request.body
        content = self.files.contents.get(body["input_file_id"])
        if content is None:
            return _error(
                400, f"input_file_id {body['input_file_id']!r} does not exist", "invalid_request_error"
            )
        rows = [json.loads(line) for line in content.decode().splitlines() if line.strip()]
        with self._lock:
            batch_id = f"batch_{len(self.jobs) + 1}"
            for row in rows:
                self.rows_batched[row["custom_id"]] += 1
            self.jobs[batch_id] = {
                "id": batch_id,
                "object": "batch",
                "endpoint": body["endpoint"],
                "input_file_id": body["input_file_id"],
                "completion_window": body["completion_window"],
                "status": "validating",
                "created_at": int(time.time()),
                "output_file_id": None,
                "error_file_id": None,
                "request_counts": {"total": len(rows), "completed": 0, "failed": 0},
                "_rows": rows,
                "_expire": self.expire_next,
            }
            self.expire_next = False
            return FakeResponse(200, self._public(batch_id))

    def _retrieve(self, request: FakeRequest) -> FakeResponse:
        batch_id = request.match["id"]
        with self._lock:
            job = self.jobs.get(batch_id)
            if job is None:
                return _error(404, f"No such batch: {batch_id}", "not_found")
            if job["status"] in STEPS[:-1]:
                self.polls[batch_id] += 1
                step = STEPS[min(self.polls[batch_id], len(STEPS) - 1)]
                if step == "completed":
                    self._run(job)
                else:
                    job["status"] = step
            return FakeResponse(200, self._public(batch_id))

    def _cancel(self, request: FakeRequest) -> FakeResponse:
        with self._lock:
            job = self.jobs[request.match["id"]]
            job["status"] = "cancelled"
            return FakeResponse(200, self._public(job["id"]))

    def _content(self, request: FakeRequest) -> FakeResponse:
        content = self.files.contents.get(request.match["id"])
        if content is None:
            return _error(404, "No such file", "not_found")
        return FakeResponse(200, content, {"Content-Type": "application/octet-stream"})

    def _run(self, job: dict) -> None:
        rows = job["_rows"]
        if job["_expire"]:
            rows = rows[: len(rows) // 2]
        answered, errors = [], []
        for row in rows:
            prompt = _prompt_text(row["body"])
            if "[[batchfail]]" in prompt and row["custom_id"] not in self.failed_once:
                self.failed_once.add(row["custom_id"])
                errors.append(
                    {
                        "id": f"resp_{row['custom_id'][:8]}",
                        "custom_id": row["custom_id"],
                        "response": {"status_code": 500, "body": {"error": {"message": "server error"}}},
                        "error": None,
                    }
                )
                continue
            response = self.server._route(FakeRequest("POST", row["url"], {}, row["body"]))
            answered.append(
                {
                    "id": f"resp_{row['custom_id'][:8]}",
                    "custom_id": row["custom_id"],
                    "response": {"status_code": response.status, "body": response.body},
                    "error": None,
                }
            )
        job["output_file_id"] = self._store(f"{job['id']}_output.jsonl", answered)
        job["error_file_id"] = self._store(f"{job['id']}_errors.jsonl", errors) if errors else None
        job["request_counts"] = {
            "total": len(job["_rows"]),
            "completed": len(answered),
            "failed": len(errors),
        }
        job["status"] = "expired" if job["_expire"] else "completed"

    def _store(self, name: str, lines: list[dict]) -> str:
        content = "".join(json.dumps(line) + "\n" for line in lines).encode()
        with self.files._lock:
            self.files.uploads += 1
            file_id = f"file-{self.files.uploads}"
            self.files.files[file_id] = {
                "id": file_id,
                "object": "file",
                "bytes": len(content),
                "created_at": int(time.time()),
                "filename": name,
                "purpose": "batch_output",
                "status": "processed",
            }
            self.files.contents[file_id] = content
        return file_id

    def _public(self, batch_id: str) -> dict[str, Any]:
        return {key: value for key, value in self.jobs[batch_id].items() if not key.startswith("_")}
