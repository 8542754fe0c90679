"""``TrainOpenAIFineTune``: an OpenAI fine-tuning job as a trainer step."""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from ..llms.urls import sdk_client_options, sending_endpoint, split_url
from ..pools import endpoint_pool
from ..steps.step import REQUIRED
from .base import Trainer, TrainingRun
from .train_arguments import train_arguments

if TYPE_CHECKING:
    from ..deferred import ColumnRef

__all__ = ["TrainOpenAIFineTune"]

#: The job's progress, kept in ``_checkpoints`` so an interrupted run resumes it.
JOB_STATE = "openai_fine_tune.json"
#: The fine-tuned model's name inside ``_model`` (DataDreamer's file name).
TRAINED_MODEL_NAME = "trained_model_name.json"
#: Base models trained on prompt / completion pairs rather than chat messages.
COMPLETION_MODELS = frozenset({"babbage-002", "davinci-002"})
DONE = "succeeded"
FAILED = frozenset({"failed", "cancelled"})


class TrainOpenAIFineTune(Trainer):
    """Fine-tunes an OpenAI model (or one behind any OpenAI-compatible server) on input/output pairs.

    It writes ``train.jsonl`` / ``validation.jsonl`` (chat messages, or
    prompt / completion pairs for ``babbage-002`` and ``davinci-002``), uploads
    them, creates a fine-tuning job and polls it, logging its events, until it
    succeeds. The uploaded file ids and the job id are saved in
    ``_checkpoints/openai_fine_tune.json`` as soon as they exist, so a run that
    is interrupted picks the same files and job up again: nothing is uploaded
    or trained twice. ``_model`` holds ``trained_model_name.json`` (the
    fine-tuned model's name), ``training_args.json`` and the model card.
    DataDreamer's order: ``TrainOpenAIFineTune(name, model_name, system_prompt,
    organization, api_key, base_url, api_version, retry_on_fail, ...)``;
    ``api_version`` selects Azure OpenAI, other keyword arguments go to the
    client. The API key is ``api_key`` or ``OPENAI_API_KEY``, read when the job
    runs and never stored. ``OpenAI(trainer)`` generates with the fine-tuned model.
    """

    KINDS: ClassVar[tuple[str, ...]] = ("openai",)

    INPUTS: ClassVar = {
        "train_input": True,
        "train_output": True,
        "validation_input": False,
        "validation_output": False,
    }
    MODEL_ARGS: ClassVar = {
        "model_name": REQUIRED,
        "system_prompt": None,
        "organization": None,
        "base_url": None,
        "api_version": None,
        "retry_on_fail": True,
        "poll_interval": 10.0,
        "device": None,
    }
    TRAIN_ARGS: ClassVar = {
        "truncate": True,
        "epochs": None,
        "batch_size": None,
        "learning_rate_multiplier": None,
        "seed": None,
        "suffix": "dreamer-dagster",
    }
    #: ``truncate`` is accepted as DataDreamer takes it; the API applies its own length limits.
    UNFINGERPRINTED_ARGS: ClassVar = frozenset(
        {"device", "organization", "api_version", "retry_on_fail", "poll_interval", "truncate"}
    )

    def __init__(
        self,
        name: str,
        model_name: str,
        system_prompt: str | None = None,
        organization: str | None = None,
        api_key: str | None = None,
        base_url: str | None = None,
        api_version: str | None = None,
        retry_on_fail: bool = True,
        force: bool = False,
        verbose: bool | None = None,
        log_level: int | None = None,
        *,
        poll_interval: float = 10.0,
        **kwargs: Any,
    ):
        # The key and the client kwargs (headers may hold secrets) stay out of the args,
        # so out of step.json and the fingerprint.
        self._api_key = api_key
        self._client_kwargs = dict(kwargs)
        # A credential in base_url is sent, never stored: the args hold the URL without it.
        self._endpoint = split_url(base_url) if isinstance(base_url, str) and base_url else None
        super().__init__(
            name,
            model_name=model_name,
            system_prompt=system_prompt,
            organization=organization,
            base_url=self._endpoint.public if self._endpoint else base_url,
            api_version=api_version,
            retry_on_fail=retry_on_fail,
            poll_interval=poll_interval,
            force=force,
            verbose=verbose,
            log_level=log_level,
        )

    def default_pool(self) -> str | None:
        """Training runs at the API: the endpoint's pool, shared with its ``OpenAI`` models."""
        return endpoint_pool("openai", self._model_args.get("base_url"), "api.openai.com")

    def validate_model_args(self) -> None:
        if not isinstance(self._model_args["model_name"], str) or not self._model_args["model_name"]:
            raise self.error("must be the name of a model that can be fine-tuned.", "model_name")
        interval = self._model_args["poll_interval"]
        if not isinstance(interval, (int, float)) or interval <= 0:
            raise self.error("must be a positive number of seconds.", "poll_interval")

    def train(
        self,
        train_input: ColumnRef,
        train_output: ColumnRef,
        validation_input: ColumnRef | None = None,
        validation_output: ColumnRef | None = None,
        truncate: bool = True,
        epochs: int | None = None,
        batch_size: int | None = None,
        learning_rate_multiplier: float | None = None,
        *,
        seed: int | None = None,
        suffix: str = "dreamer-dagster",
    ) -> TrainOpenAIFineTune:
        """Declare the fine-tuning job; hyperparameters left as None are chosen by the API."""
        return self.declare_training(*train_arguments(locals()))

    def validate(self) -> None:
        for name in ("epochs", "batch_size"):
            value = self.args[name]
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise self.error("must be a positive integer (or None to let the API choose).", name)
        multiplier = self.args["learning_rate_multiplier"]
        if multiplier is not None and (not isinstance(multiplier, (int, float)) or multiplier <= 0):
            raise self.error(
                "must be a positive number (or None to let the API choose).", "learning_rate_multiplier"
            )

    # -- running --------------------------------------------------------------------

    def train_model(self, run: TrainingRun) -> dict:
        args = run.args
        client = self._client(args)
        state_path = run.checkpoints_dir / JOB_STATE
        state = _read_json(state_path) or {}

        file_ids = {}
        for split in ("train", "validation"):
            dataset = run.split(split)
            if dataset is None:
                continue
            jsonl = run.checkpoints_dir / f"{split}.jsonl"
            self._write_jsonl(dataset, jsonl, args)
            file_ids[split] = self._uploaded_file(client, run, state, state_path, split, jsonl)

        hyperparameters = {
            key: args[name]
            for key, name in (
                ("n_epochs", "epochs"),
                ("batch_size", "batch_size"),
                ("learning_rate_multiplier", "learning_rate_multiplier"),
            )
            if args[name] is not None
        }
        job = self._job(client, run, state, state_path, file_ids, hyperparameters)
        job = self._wait(client, run, state, state_path, job)
        trained = job.fine_tuned_model
        if not trained:
            raise RuntimeError(f"Fine-tuning job {job.id} succeeded but names no fine-tuned model.")

        (run.model_dir / TRAINED_MODEL_NAME).write_text(json.dumps(trained))
        training_args = {"model": args["model_name"], "suffix": args["suffix"], **hyperparameters}
        if args["seed"] is not None:
            training_args["seed"] = args["seed"]
        (run.model_dir / "training_args.json").write_text(json.dumps(training_args, indent=2))
        for file_id in file_ids.values():
            self._delete_file(client, run, file_id)

        metrics: dict[str, Any] = {}
        trained_tokens = getattr(job, "trained_tokens", None)
        if isinstance(trained_tokens, int):
            metrics["trained_tokens"] = trained_tokens
        return {
            "metrics": metrics,
            "model_info": {
                "task": "openai",
                "adapter": False,
                "fine_tuned_model": trained,
                "base_url": args["base_url"],
                "job_id": job.id,
                "system_prompt": self._system_prompt(args),
            },
        }

    def usage_snippet(self, run: TrainingRun, info: dict) -> str:
        base_url = f", base_url={info.get('base_url')!r}" if info.get("base_url") else ""
        return (
            "from dreamer_dagster.llms import OpenAI\n\n"
            f"llm = OpenAI(model_name={info.get('fine_tuned_model')!r}{base_url})\n"
            "# In a dreamer_dagster pipeline: OpenAI(trainer) (adds the dependency edge)."
        )

    # -- the API --------------------------------------------------------------------

    def _client(self, args: dict) -> Any:
        import openai

        api_key = self._api_key or os.environ.get("OPENAI_API_KEY")
        if not api_key:
            raise RuntimeError(
                "TrainOpenAIFineTune needs an API key. Fix: set the OPENAI_API_KEY environment "
                "variable where the pipeline runs (it is read at run time and never stored), or pass api_key=."
            )
        options: dict[str, Any] = {
            "api_key": api_key,
            "organization": args["organization"],
            "max_retries": 5 if args["retry_on_fail"] else 0,
            **self._client_kwargs,
        }
        endpoint = sending_endpoint(args["base_url"], getattr(self, "_endpoint", None))
        if args.get("api_version"):
            if endpoint is not None and "azure_endpoint" not in options:
                options = sdk_client_options(endpoint, options)
            return openai.AzureOpenAI(api_version=args["api_version"], **options)
        return openai.OpenAI(**sdk_client_options(endpoint, {"base_url": None, **options}))

    def _system_prompt(self, args: dict) -> str | None:
        if args["model_name"] in COMPLETION_MODELS:
            return None
        return args["system_prompt"] if args["system_prompt"] is not None else "You are a helpful assistant."

    def _write_jsonl(self, dataset: Any, path: Path, args: dict) -> None:
        """The split as JSONL in the fine-tuning format (written to a temporary name, then renamed)."""
        system_prompt = self._system_prompt(args)
        tmp = path.with_name(f".{path.name}.tmp")
        with open(tmp, "w") as handle:
            for row in dataset:
                prompt, completion = str(row["input"]), str(row["output"])
                if system_prompt is None:
                    record: dict = {"prompt": prompt, "completion": completion}
                else:
                    record = {
                        "messages": [
                            {"role": "system", "content": system_prompt},
                            {"role": "user", "content": prompt},
                            {"role": "assistant", "content": completion},
                        ]
                    }
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        os.replace(tmp, path)

    def _uploaded_file(
        self, client: Any, run: TrainingRun, state: dict, state_path: Path, split: str, jsonl: Path
    ) -> str:
        """The id of ``jsonl`` on the server: the saved one when the server still has it."""
        import openai

        digest = _sha256(jsonl)
        saved = (state.get("files") or {}).get(split) or {}
        if saved.get("id") and saved.get("sha256") == digest:
            try:
                client.files.retrieve(saved["id"])
                run.info(f"Reusing the uploaded {split} file {saved['id']}.")
                return saved["id"]
            except openai.NotFoundError:
                run.info(f"The uploaded {split} file {saved['id']} is gone; uploading it again.")
        with open(jsonl, "rb") as handle:
            uploaded = client.files.create(file=(f"{run.step_key}_{jsonl.name}", handle), purpose="fine-tune")
        state.setdefault("files", {})[split] = {"id": uploaded.id, "sha256": digest}
        _write_json(state_path, state)
        run.info(f"Uploaded the {split} file as {uploaded.id}.")
        return uploaded.id

    def _job(
        self,
        client: Any,
        run: TrainingRun,
        state: dict,
        state_path: Path,
        file_ids: dict[str, str],
        hyperparameters: dict,
    ) -> Any:
        """The saved job when the server still has it (and it did not fail), else a new one."""
        import openai

        job_id = state.get("job_id")
        if job_id and state.get("job_files") == file_ids:
            try:
                job = client.fine_tuning.jobs.retrieve(job_id)
            except openai.NotFoundError:
                run.info(f"Fine-tuning job {job_id} is gone; creating a new one.")
            else:
                if job.status not in FAILED:
                    run.info(f"Resuming fine-tuning job {job_id} ({job.status}).")
                    return job
                run.info(f"Fine-tuning job {job_id} ended {job.status}; creating a new one.")
        args = run.args
        request: dict[str, Any] = {
            "model": args["model_name"],
            "training_file": file_ids["train"],
            "suffix": args["suffix"],
        }
        if "validation" in file_ids:
            request["validation_file"] = file_ids["validation"]
        if hyperparameters:
            request["hyperparameters"] = hyperparameters
        if args["seed"] is not None:
            request["seed"] = args["seed"]
        job = client.fine_tuning.jobs.create(**request)
        state.update({"job_id": job.id, "job_files": file_ids, "status": job.status, "seen_events": []})
        _write_json(state_path, state)
        run.info(f"Created fine-tuning job {job.id} on {args['model_name']}.")
        return job

    def _wait(self, client: Any, run: TrainingRun, state: dict, state_path: Path, job: Any) -> Any:
        """Poll the job until it succeeds, logging its new events; raise if it fails."""
        interval = float(run.args["poll_interval"])
        seen = set(state.get("seen_events") or [])
        while True:
            self._log_events(client, run, job.id, seen)
            if job.status == DONE:
                break
            if job.status in FAILED:
                error = getattr(job, "error", None)
                raise RuntimeError(f"Fine-tuning job {job.id} {job.status}: {error}")
            time.sleep(interval)
            job = client.fine_tuning.jobs.retrieve(job.id)
            if job.status != state.get("status"):
                state["status"] = job.status
                state["seen_events"] = sorted(seen)
                _write_json(state_path, state)
        state.update(
            {"status": job.status, "fine_tuned_model": job.fine_tuned_model, "seen_events": sorted(seen)}
        )
        _write_json(state_path, state)
        return job

    @staticmethod
    def _log_events(client: Any, run: TrainingRun, job_id: str, seen: set) -> None:
        try:
            page = client.fine_tuning.jobs.list_events(job_id, limit=100)
        except Exception as error:  # events are informative only
            run.info(f"Could not list the events of {job_id}: {error}")
            return
        for event in sorted(page.data, key=lambda e: e.created_at or 0):
            if event.id not in seen:
                seen.add(event.id)
                run.info(f"{job_id}: {event.message}")

    @staticmethod
    def _delete_file(client: Any, run: TrainingRun, file_id: str) -> None:
        try:
            client.files.delete(file_id)
        except Exception as error:  # the model is trained; a leftover file is harmless
            run.info(f"Could not delete the uploaded file {file_id}: {error}")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _read_json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)
