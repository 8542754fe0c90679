"""The files and fine-tuning endpoints of ``FakeOpenAIServer`` (``server.fine_tuning``)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import TYPE_CHECKING

from .http_messages import FakeRequest, FakeResponse, error_response

if TYPE_CHECKING:
    from .openai_server import FakeOpenAIServer

__all__ = ["FineTuningAPI"]


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
            return error_response(404, f"No such File object: {request.match['id']}", "not_found")
        return FakeResponse(200, record)

    def _delete_file(self, request: FakeRequest) -> FakeResponse:
        with self._lock:
            record = self.files.pop(request.match["id"], None)
        if record is None:
            return error_response(404, f"No such File object: {request.match['id']}", "not_found")
        return FakeResponse(200, {"id": record["id"], "object": "file", "deleted": True})

    # -- jobs -----------------------------------------------------------------------------

    def _create_job(self, request: FakeRequest) -> FakeResponse:
        body = request.body
        for key in ("training_file", "validation_file"):
            if body.get(key) is not None and body[key] not in self.files:
                return error_response(400, f"{key} {body[key]!r} does not exist", "invalid_request_error")
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
                return error_response(404, f"No such fine-tuning job: {job_id}", "not_found")
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
            return error_response(404, f"No such fine-tuning job: {job_id}", "not_found")
        with self._lock:
            data = list(reversed(self.events[job_id]))  # newest first, as the API lists them
        return FakeResponse(200, {"object": "list", "data": data, "has_more": False})

    def _cancel_job(self, request: FakeRequest) -> FakeResponse:
        job_id = request.match["id"]
        with self._lock:
            job = self.jobs.get(job_id)
            if job is None:
                return error_response(404, f"No such fine-tuning job: {job_id}", "not_found")
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
