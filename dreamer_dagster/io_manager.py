"""``DreamerIOManager``: steps in and out of DataDreamer's output folder.

It owns the output folder (see :mod:`~dreamer_dagster.output_folder`): it
commits each step's staged ``_dataset`` / ``_model`` and writes ``step.json``
last, loads finished steps for downstream steps (``load_from_disk``, or the
model folder's path for a trainer), and tells the models where the SQLite
model cache is. It also works with plain ``@dg.asset`` functions that return a
``datasets.Dataset``, a dict of columns or a list of rows.
"""

from __future__ import annotations

import datetime as _dt
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field

from . import metadata as keys
from .errors import IntegrityError
from .folder_upgrade import upgrade_output_folder
from .integrity import fail_without_retry, seal_dataset
from .metadata import step_metadata
from .output_folder import OutputFolder, StepFolder, folder_errors
from .partition_folders import MissingPartitionsError, load_partitions

__all__ = [
    "IO_MANAGER_KEY",
    "CommittedStep",
    "DreamerIOManager",
    "StagedStep",
    "load_finished",
    "step_metadata",
]

IO_MANAGER_KEY = "dreamer_io_manager"


@dataclass
class StagedStep:
    """A step's finished work in a staging folder, waiting to be committed.

    ``lock`` is the step folder's lock, held since the run began; committing releases it.
    """

    folder: StepFolder
    staged: Path
    record: dict
    lock: Any = None


@dataclass
class CommittedStep:
    """A step whose folder already holds a finished output (reused or restored)."""

    folder: StepFolder
    record: dict = field(default_factory=dict)
    lock: Any = None


def dataset_schema(dataset: Any) -> dict[str, str]:
    return {name: str(feature) for name, feature in dataset.features.items()}


class DreamerIOManager(dg.ConfigurableIOManager):
    """Writes each asset to ``<output_folder>/<asset>/`` in DataDreamer's layout.

    ``<asset>/_dataset`` is ``save_to_disk`` output, ``<asset>/_model`` a trained
    model, and ``<asset>/step.json`` is written last, atomically: a folder without
    it is never loaded as finished.

    ``output_folder`` is a local path or any fsspec URL (``s3://bucket/prefix``;
    ``storage_options`` for its filesystem): a step is staged on the worker's disk,
    uploaded, and its step.json written last; inputs and trained models are
    downloaded once into the worker's ``local_folder``.

    One run at a time works in a step folder: a second run of the same step
    waits for the first (``lock_timeout`` seconds at most; None waits as long
    as it takes, 0 fails at once naming the run holding it), then reuses its
    finished output.
    """

    output_folder: str = Field(
        default="./output",
        description="The pipeline's output folder: a local path, or any fsspec URL (s3://bucket/prefix, "
        "gs://..., file:///shared/disk).",
    )
    storage_options: dict[str, Any] = Field(
        default_factory=dict,
        description="Options of the fsspec filesystem of a remote output folder (endpoint_url, "
        "profile...). Credentials best come from the environment (AWS_ACCESS_KEY_ID...), or as "
        "dg.EnvVar values, read when the output folder is opened at run time.",
    )
    local_folder: str | None = Field(
        default=None,
        description="Where a worker keeps its local work for a remote or shared output folder "
        "(staging, its own model caches, downloads); default $DREAMER_LOCAL_FOLDER, else "
        "~/.cache/dreamer_dagster/remote.",
    )
    lease_seconds: float | None = Field(
        default=None,
        description="On a remote output folder, the step lock is a lease its run renews; a worker "
        "that dies frees it this many seconds later (default $DREAMER_LEASE_SECONDS, else 60).",
    )
    lock_timeout: float | None = Field(
        default=None,
        description="Seconds a run waits for another run of the same step (None: as long as it "
        "takes; 0: fail at once naming the run that holds it).",
    )

    def folder(self) -> OutputFolder:
        """The output folder; the first time in a process, folders an earlier release wrote
        move under their current names (see folder_upgrade.py)."""
        output = OutputFolder(
            self.output_folder, self.storage_options or None, self.local_folder, self.lease_seconds
        )
        upgrade_output_folder(output)
        return output

    @property
    def cache_path(self) -> Path:
        return self.folder().cache_path

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        if obj is None:
            return
        if isinstance(obj, (StagedStep, CommittedStep)):
            try:
                if isinstance(obj, StagedStep):
                    self.commit_staged(obj)
            finally:
                if obj.lock is not None:
                    obj.lock.release()  # the next run of this step may now start
            return
        self._write_plain_asset(context, obj)

    @staticmethod
    def commit_staged(staged: StagedStep) -> None:
        """Commit a staged step: publish the model calls it made (a remote or shared output
        folder), move or upload its outputs into place, write step.json last. On failure the
        staging folder is removed."""
        try:
            with folder_errors(staged.folder.root, staged.folder.name):
                # The calls the step made are shared before it counts as finished.
                staged.folder.output.publish_cache()
                staged.folder.commit(staged.staged, staged.record)
        except BaseException:
            shutil.rmtree(staged.staged, ignore_errors=True)
            raise

    def _write_plain_asset(self, context: dg.OutputContext, obj: Any) -> None:
        """A plain ``@dg.asset`` that returned rows: write it as a step of its own."""
        import datasets

        if isinstance(obj, list):
            obj = datasets.Dataset.from_list(obj)
        elif isinstance(obj, dict):
            obj = datasets.Dataset.from_dict(obj)
        if not isinstance(obj, datasets.Dataset):
            raise TypeError(
                f"DreamerIOManager: asset {context.asset_key.to_user_string()} returned a "
                f"{type(obj).__name__}; return a datasets.Dataset, a dict of columns or a list of rows."
            )
        output = self.folder()
        name = "_".join(context.asset_key.path)
        step_folder = output.step(name)
        staged = output.staging(name, context.run_id)
        dataset = output.write_dataset(staged, obj)
        sealed = seal_dataset(staged / "_dataset")  # data_version and manifest
        data_version = sealed["data_version"]
        record = {
            "name": name,
            "type": "asset",
            "fingerprint": context.definition_metadata.get(keys.FINGERPRINT)
            if context.definition_metadata
            else None,
            "version": _library_version(),
            "datetime": _dt.datetime.now(_dt.UTC).isoformat(),
            "args": {},
            "inputs": {},
            "outputs": dataset.column_names,
            "num_rows": dataset.num_rows,
            "schema": dataset_schema(dataset),
            **sealed,
            "data_card": {},
        }
        record["fingerprint"] = record["fingerprint"] or data_version
        step_folder.commit(staged, record)
        context.add_output_metadata(step_metadata(step_folder, record))

    def load_input(self, context: dg.InputContext) -> Any:
        name = _folder_name(context)
        step_folder = self.folder().step(name)
        if context.has_asset_partitions and _upstream_metadata(context, keys.FOLDER) is not None:
            # A partitioned step: the partitions the mapping gives, in order (partition_folders.py).
            with fail_without_retry(IntegrityError, MissingPartitionsError):
                return load_partitions(
                    step_folder, context.asset_partition_keys, _declared_fingerprint(context)
                )
        return load_finished(step_folder, _declared_fingerprint(context))


def load_finished(step_folder: StepFolder, expected: str | None = None) -> Any:
    """A finished step's output for a downstream step (a Dataset, or a trainer's ``_model``
    path), checked against its step.json; FileNotFoundError when it is missing or holds
    another fingerprint than ``expected`` (the in-process IO manager and the Pipes worker)."""
    name = step_folder.name
    record = step_folder.step_json()
    if record is None:
        raise FileNotFoundError(
            f"Step {name!r} has no finished output in {step_folder.path} (no step.json). "
            f"Materialize it first, e.g. `dagster asset materialize --select {name}`."
        )
    if expected is not None and record.get("fingerprint") != expected:
        # Reading it would compute this step from an output of another configuration
        # and commit that under a fingerprint that promises the declared one.
        raise FileNotFoundError(
            f"Step {name!r} is unsynced: {step_folder.path} holds the output of fingerprint "
            f"{record.get('fingerprint')}, but the step is declared with {expected}. "
            f"Materialize it first, e.g. `dagster asset materialize --select {name}`."
        )
    if (record.get("iterable") or {}).get("type_error"):  # rows DataDreamer fails to read
        from .steps.iterable_types import raise_recorded

        raise_recorded(name, record)
    if record.get("lazy"):  # a lazy step: its upstream rows streamed through its recipe
        from .steps.lazy import load_lazy

        return load_lazy(step_folder, record, load_finished)
    # Checked against step.json first: files that changed fail, and are never retried.
    with fail_without_retry():
        if record.get("model"):
            return str(step_folder.local_model_path(record))
        dataset = step_folder.load_dataset(record)
    if record.get("pickled"):  # DataDreamer's reads give the values (see pickling.py)
        from .pickling import unpickled

        dataset = unpickled(dataset)
    return dataset


def _folder_name(context: dg.InputContext) -> str:
    """The upstream step's folder: its safe name (whatever key prefix its asset has), or the
    asset key joined by ``_`` for a plain asset."""
    folder = _upstream_metadata(context, keys.FOLDER)
    if folder is not None:
        return folder
    key = context.upstream_output.asset_key if context.upstream_output else context.asset_key
    return "_".join(key.path)


def _declared_fingerprint(context: dg.InputContext) -> str | None:
    """The upstream step's declared fingerprint (its asset's metadata), if it is a step."""
    return _upstream_metadata(context, keys.FINGERPRINT)


def _upstream_metadata(context: dg.InputContext, key: str) -> str | None:
    upstream = context.upstream_output
    if upstream is None:
        return None
    try:
        metadata = upstream.definition_metadata or {}
    except Exception:  # an upstream output context without definition metadata
        return None
    value = metadata.get(key)
    value = getattr(value, "value", value)
    return value if isinstance(value, str) else None


def _library_version() -> str:
    from . import __version__

    return __version__
