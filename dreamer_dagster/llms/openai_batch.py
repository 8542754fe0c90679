"""The OpenAI Batch API as a generation stream (``OpenAI(..., batch=True)``): half the price,
answers within a day.

A run's uncached prompts are written as one JSONL file of requests (each
``custom_id`` is the prompt's cache key), uploaded, and sent as a batch job;
the job is polled (its status and counts logged as they change: validating,
in progress, finalizing, completed) until it ends, and its output file read
back. The file and job ids go to ``<step>/_model_state/openai_batches.json``
as soon as they exist, so a killed run that starts again finds its job and
resumes polling it (or reads its output again) instead of submitting the
prompts again. Rows that failed
or expired (a job that ran out of its window, or was cancelled) are sent again
in a new job, and only they, up to ``max_retries`` times (none with
``retry_on_fail=False``). Every answer goes to
the model cache by ``LLM.run`` like any other, so a later run without
``batch=True`` reads them.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import NonRetryableError
from .api_retry import MalformedResponse, is_retryable_status
from .generation_result import GenerationResult
from .request import GenerationRequest
from .stream import GenerationStream

if TYPE_CHECKING:
    from .openai import OpenAI

__all__ = ["BATCH_STATE_FILE", "BatchAPIStream"]

BATCH_STATE_FILE = "openai_batches.json"
#: Job states after which a job's output can be read (completed) or must be partly re-sent.
DONE = "completed"
ENDED = frozenset({"completed", "expired", "cancelled", "failed"})

_logger = logging.getLogger("dreamer_dagster.llms.openai_batch")


class BatchAPIStream(GenerationStream):
    """Sends the prompts it is given as Batch API jobs when ``poll(block=True)`` asks for results."""

    def __init__(self, llm: OpenAI, client: Any, params: dict, arguments: dict):
        self.llm = llm
        self.client = client
        self.params = params
        self.arguments = arguments
        self.endpoint = "/v1/chat/completions" if llm.chat else "/v1/completions"
        self._waiting: dict[str, GenerationRequest] = {}
        # Jobs whose output this process has read. Not saved: a run killed before the
        # answers reached the cache reads the output file again (nothing is paid twice).
        self._read: set[str] = set()
        folder = llm.state_folder
        self.state_path = Path(folder) / BATCH_STATE_FILE if folder is not None else None
        self.state = self._read_state()

    # -- GenerationStream ---------------------------------------------------------------

    def submit(self, requests: list[GenerationRequest]) -> None:
        for request in requests:
            self._waiting[request.key] = request

    @property
    def pending(self) -> int:
        return len(self._waiting)

    def poll(self, block: bool) -> list[tuple[GenerationRequest, GenerationResult]]:
        if not block or not self._waiting:
            return []
        done: list[tuple[GenerationRequest, GenerationResult]] = []
        attempts = 0
        while self._waiting:
            jobs = self._live_jobs()
            covered = {key for job in jobs for key in job["custom_ids"]}
            fresh = [request for key, request in self._waiting.items() if key not in covered]
            if fresh:
                if attempts > (self.llm.max_retries if self.llm.retry_on_fail else 0):
                    raise RuntimeError(
                        f"{self.llm._label()}: {len(fresh)} batch rows still failed after "
                        f"{attempts} batch jobs. Fix: run again later, or without batch=True."
                    )
                jobs.append(self._create_job(fresh))
                attempts += 1
            for job in jobs:
                done.extend(self._finish(self._wait(job), job))
        return done

    def close(self) -> None:
        self.client.close()

    # -- jobs -----------------------------------------------------------------------------

    def _live_jobs(self) -> list[dict]:
        """Saved jobs that are still running or whose output was not read, for waiting prompts."""
        return [
            job
            for job in self.state["jobs"]
            if job["batch_id"] not in self._read and any(key in self._waiting for key in job["custom_ids"])
        ]

    def _create_job(self, requests: list[GenerationRequest]) -> dict:
        lines = [
            json.dumps(
                {
                    "custom_id": request.key,
                    "method": "POST",
                    "url": self.endpoint,
                    "body": self.llm.request_body(request, self.params, self.arguments),
                },
                ensure_ascii=False,
            )
            for request in requests
        ]
        data = ("\n".join(lines) + "\n").encode()
        uploaded = self.client.files.create(file=("dreamer_batch.jsonl", data), purpose="batch")
        batch = self.client.batches.create(
            input_file_id=uploaded.id, endpoint=self.endpoint, completion_window="24h"
        )
        job = {
            "batch_id": batch.id,
            "input_file_id": uploaded.id,
            "custom_ids": [request.key for request in requests],
            "status": batch.status,
        }
        self.state["jobs"].append(job)
        self._write_state()
        self._log(
            f"batch job {batch.id}: {batch.status.replace('_', ' ')}, {len(requests)} prompts submitted"
        )
        self._count("batch_jobs", 1)
        return job

    def _wait(self, job: dict) -> Any:
        """Poll ``job`` until it ends, logging each change of status and counts."""
        seen = None
        while True:
            batch = self.client.batches.retrieve(job["batch_id"])
            counts = getattr(batch, "request_counts", None)
            progress = (
                f"{counts.completed} of {counts.total} done, {counts.failed} failed"
                if counts is not None
                else ""
            )
            if (batch.status, progress) != seen:
                seen = (batch.status, progress)
                self._log(
                    f"batch job {batch.id}: {batch.status.replace('_', ' ')}"
                    + (f", {progress}" if progress else "")
                )
                if job["status"] != batch.status:
                    job["status"] = batch.status
                    self._write_state()
            if batch.status in ENDED:
                return batch
            time.sleep(self.llm.batch_poll_interval)

    def _finish(self, batch: Any, job: dict) -> list[tuple[GenerationRequest, GenerationResult]]:
        """The answered rows of an ended job; its failed or missing rows stay waiting."""
        if batch.status == "failed":
            errors = getattr(getattr(batch, "errors", None), "data", None) or []
            detail = "; ".join(str(getattr(error, "message", error)) for error in errors) or "no detail"
            raise NonRetryableError(f"{self.llm._label()}: batch job {batch.id} failed validation: {detail}")
        done = []
        failed = 0
        for line in self._read_file(getattr(batch, "output_file_id", None)) + self._read_file(
            getattr(batch, "error_file_id", None)
        ):
            row = json.loads(line)
            request = self._waiting.get(row.get("custom_id"))
            if request is None:
                continue
            response = row.get("response") or {}
            status = response.get("status_code")
            if row.get("error") or status != 200:
                failed += 1
                if status is not None and not is_retryable_status(status):
                    message = json.dumps((response.get("body") or {}).get("error") or row.get("error"))
                    raise NonRetryableError(
                        f"{self.llm._label()} failed in batch job {batch.id}: HTTP {status}: {message}"
                    )
                continue
            try:
                result = self.llm.parse_response(response["body"], request, self.params)
            except (MalformedResponse, KeyError, TypeError):
                failed += 1
                continue
            done.append((self._waiting.pop(request.key), result))
        missing = sum(key in self._waiting for key in job["custom_ids"])
        if missing:
            self._log(
                f"batch job {batch.id} ended {batch.status}: {missing} rows failed or expired; sending them again"
            )
            self._count("batch_rows_resent", missing)
        self._read.add(job["batch_id"])
        return done

    def _read_file(self, file_id: str | None) -> list[str]:
        if not file_id:
            return []
        return [line for line in self.client.files.content(file_id).text.splitlines() if line.strip()]

    # -- state and reporting ----------------------------------------------------------

    def _read_state(self) -> dict:
        if self.state_path is not None and self.state_path.is_file():
            try:
                state = json.loads(self.state_path.read_text())
                if isinstance(state, dict) and isinstance(state.get("jobs"), list):
                    return state
            except ValueError:
                pass
        return {"jobs": []}

    def _write_state(self) -> None:
        if self.state_path is None:
            return
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_path.with_name(f".{self.state_path.name}.tmp")
        tmp.write_text(json.dumps(self.state, indent=1))
        os.replace(tmp, self.state_path)

    def _log(self, message: str) -> None:
        text = f"{self.llm._label()}: {message}"
        (self.llm.log or _logger).info(text)

    def _count(self, name: str, value: int) -> None:
        if self.llm.stats is not None:
            self.llm.stats[name] += value
