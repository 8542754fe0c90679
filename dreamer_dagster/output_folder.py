"""The documented output folder: the one room that knows its layout (the names of its
files and folders, drawn there: :mod:`~dreamer_dagster.layout`, re-exported here).

The rules a step folder goes through before a run are in
:mod:`~dreamer_dagster.step_reuse`, a worker's local folder for a remote output
folder in :mod:`~dreamer_dagster.worker_folder`; this room holds the folders, the
finished check, the commit and the dataset writer.

The output folder is a local path or any fsspec URL (``s3://bucket/prefix``; see
:mod:`~dreamer_dagster.filesystem`). On a remote one, each worker keeps a local
work folder (``local_root``: staging, its own SQLite model caches, downloaded
``_dataset`` / ``_model`` folders, checkpoints); a step is staged there,
uploaded, and its ``step.json`` written last (one PUT). The model cache there
is ``.cache/<model>/<worker>.db`` files merged by every worker (see cache.py),
and the step lock a lease object (``.locks/<step>/``, see step_lock.py).

A step folder counts as finished only when ``step.json`` is there, parses,
holds a fingerprint and a data version, and the ``_dataset`` (or ``_model``)
it describes is there; everything else is written before it, so a crash at any
point leaves a folder that is never taken for a finished one. A folder that
fails those checks (a hand-edited or truncated ``step.json``, a ``_dataset``
deleted by hand) runs again, from the model cache. A finished folder's files are
checked against the manifest its step.json recorded before they are reused or read
(see integrity.py): a difference fails with ``IntegrityError``, never silently used.

Writing problems (a read-only or locked folder, a full disk, an output folder
path that is a file) raise :class:`~dreamer_dagster.errors.OutputFolderError`
naming the folder and the fix; the work folder of the failed run is removed.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .data_versions import dataset_data_version, folder_data_version
from .dataset_io import DatasetSummary, record_batches, save_dataset, stream_dataset
from .errors import OutputFolderError
from .filesystem import files_for, is_remote, resolve_location, url_of
from .folder_errors import check_writable, folder_errors, output_folder_error
from .integrity import check_output, with_manifest
from .layout import (  # every layout name stays importable from here
    BACKUPS,
    CACHE,
    CHECKPOINTS,
    DAGSTER_HOME,
    DATASET,
    IN_PROGRESS,
    LOCKS,
    MODEL,
    MODEL_STATE,
    PARTITIONS,
    SHARDS,
    STAGING,
    STEP_JSON,
)
from .layout import DOWNLOADS as DOWNLOADS  # used by worker_folder only
from .layout import LOCAL_FOLDER_ENV as LOCAL_FOLDER_ENV  # used by worker_folder only
from .partition_folders import partition_folder_name
from .record_formats import is_data_version, is_fingerprint, untrusted
from .step_lock import LeaseLock, StepLock, StepLocked
from .step_reuse import Preparation, prepare_folder
from .work_folders import new_work_folder
from .worker_folder import download_output, download_path, worker_root
from .worker_folder import is_file_url as _is_file_url

__all__ = [
    "OutputFolder",
    "Preparation",
    "StepFolder",
    "StepLocked",
    "dataset_data_version",
    "folder_data_version",
    "folder_errors",
    "output_folder_error",
    "step_uri",
]


def _write_json_atomic(path: Any, data: dict) -> None:
    """Write a small JSON file whole or not at all (a rename locally, one PUT remotely)."""
    files_for(path.parent).write_json(path, data)


@dataclass(frozen=True)
class StepFolder:
    """One step's folder inside the output folder (``name`` may be ``<step>/_shards/<k>``)."""

    output: OutputFolder
    name: str  # the step's safe name (= asset key = folder name)

    @property
    def root(self) -> Any:
        """The output folder (a Path, or a UPath for a remote one)."""
        return self.output.root

    @property
    def files(self) -> Any:
        return self.output.files

    @property
    def path(self) -> Any:
        return self.root / self.name

    @property
    def uri(self) -> str:
        """The folder as a URI (``file:///...``, ``s3://...``)."""
        return str(self.path) if self.output.remote else self.path.as_uri()

    @property
    def step_json_path(self) -> Any:
        return self.path / STEP_JSON

    @property
    def dataset_path(self) -> Any:
        return self.path / DATASET

    @property
    def model_path(self) -> Any:
        return self.path / MODEL

    @property
    def checkpoints_path(self) -> Path:
        """``<step>/_checkpoints`` (on a remote output folder: in the worker's local folder)."""
        return self._local_path / CHECKPOINTS

    @property
    def model_state_path(self) -> Path:
        """``<step>/_model_state``: what a model keeps across a killed run of this step
        (batch job ids); it moves with the folder to ``_backups`` and back (on a remote output
        folder it stays in the worker's local folder)."""
        return self._local_path / MODEL_STATE

    @property
    def _local_path(self) -> Path:
        return (self.output.local_root if self.output.remote else self.root) / self.name

    def backup_path(self, fingerprint: str) -> Any:
        """``_backups/<step>/<fingerprint>``; a value that is not a fingerprint is refused."""
        if not is_fingerprint(fingerprint):
            raise OutputFolderError(f"{untrusted(self.path, 'fingerprint', fingerprint)}. Fix: remove it.")
        return self.root / BACKUPS / self.name / fingerprint

    def shard(self, key: str) -> StepFolder:
        """The folder of shard ``key`` of this step: ``<step>/_shards/<key>``."""
        return StepFolder(self.output, f"{self.name}/{SHARDS}/{key}")

    def partition(self, key: str) -> StepFolder:
        """The folder of user partition ``key``: ``<step>/_partitions/<folder-safe key>``
        (see partition_folders.py; a key is never used as a path as it is)."""
        return StepFolder(self.output, f"{self.name}/{PARTITIONS}/{partition_folder_name(key)}")

    # -- reading ------------------------------------------------------------------

    def step_json(self) -> dict | None:
        """The committed step.json, or None if the step is not finished (see :meth:`problem`)."""
        record = self.files.read_json(self.step_json_path)
        return record if record is not None and self._record_problem(record) is None else None

    def problem(self) -> str | None:
        """Why a folder holding a step.json is not a finished step; None when it is
        (or when there is no step.json at all)."""
        record = self.files.read_json(self.step_json_path)
        if record is None:
            if not self.files.exists(self.step_json_path):
                return self._in_progress_problem()
            return f"{self.step_json_path} does not parse as a JSON object (truncated or hand-edited)"
        return self._record_problem(record)

    def _in_progress_problem(self) -> str | None:
        """Why ``_in_progress.json`` is not trusted; None when it is, or is not there."""
        record = self.files.read_json(self.path / IN_PROGRESS)
        if record is None or is_fingerprint(record.get("fingerprint")):
            return None
        return untrusted(self.path / IN_PROGRESS, "fingerprint", record.get("fingerprint"))

    def _record_problem(self, record: dict) -> str | None:
        for name in ("fingerprint", "data_version"):
            if not isinstance(record.get(name), str) or not record.get(name):
                return f"{self.step_json_path} has no {name} (hand-edited?)"
        for name, valid in (("fingerprint", is_fingerprint), ("data_version", is_data_version)):
            if not valid(record[name]):
                return untrusted(self.step_json_path, name, record[name])
        if record.get("lazy"):
            return None  # a lazy step's folder holds its recipe only (steps/lazy.py)
        output = self.model_path if record.get("model") else self.dataset_path
        if not self.files.is_dir(output):
            return f"{output} is missing (deleted by hand?)"
        return None

    def finished_fingerprint(self) -> str | None:
        record = self.step_json()
        return record.get("fingerprint") if record else None

    def recorded_fingerprint(self) -> str | None:
        """The fingerprint step.json names, finished or not (None when it does not parse)."""
        record = self.files.read_json(self.step_json_path)
        value = record.get("fingerprint") if record else None
        return value if is_fingerprint(value) else None

    def in_progress_fingerprint(self) -> str | None:
        """The fingerprint ``_in_progress.json`` names (None when it names no valid one)."""
        record = self.files.read_json(self.path / IN_PROGRESS)
        value = record.get("fingerprint") if record else None
        return value if is_fingerprint(value) else None

    def holds_finished(self, fingerprint: str) -> bool:
        """Whether a run of ``fingerprint`` would reuse or restore a finished output (reads only)."""
        if self.finished_fingerprint() == fingerprint:
            return True
        backup = self.files.read_json(self.backup_path(fingerprint) / STEP_JSON)
        return backup is not None and backup.get("fingerprint") == fingerprint

    def load_dataset(self, record: dict | None = None) -> Any:
        from datasets import load_from_disk

        return load_from_disk(str(self.local_output(DATASET, record)))

    def local_model_path(self, record: dict | None = None) -> Path:
        """The ``_model`` folder on this machine (downloaded first from a remote output folder)."""
        return self.local_output(MODEL, record)

    def local_output(self, name: str, record: dict | None = None) -> Path:
        """``<step>/<name>`` (``_dataset`` / ``_model``) as a local folder. From a remote output
        folder it is downloaded once into the worker's local folder, by data version. Either
        is checked against step.json first (see :meth:`verify_output`)."""
        if not self.output.remote:
            return self._checked(self.path / name, record)
        return download_output(self, name, record)

    def verify_output(self, record: dict | None = None) -> None:
        """Check the finished ``_dataset`` (``_model``) against what step.json recorded at
        commit: :class:`~dreamer_dagster.errors.IntegrityError` on any difference (see
        integrity.py). A remote folder's copy is checked when it is downloaded to be read."""
        record = record or self.step_json()
        if record is not None and not self.output.remote and not record.get("lazy"):
            self._checked(self.model_path if record.get("model") else self.dataset_path, record)

    def _checked(self, local: Path, record: dict | None) -> Path:
        record = record or self.step_json()
        if record is not None:
            check_output(local, record, self.path)
        return local

    def record_batches(self) -> Iterator[Any] | None:
        """The committed ``_dataset``'s record batches, streamed (see ``dataset_io``), once
        its files are checked against step.json."""
        self.verify_output()
        return record_batches(self.dataset_path)

    # -- before a run -------------------------------------------------------------

    def lock(self) -> StepLock | LeaseLock:
        """The lock one run holds from :meth:`prepare` to :meth:`commit`, so two runs
        never work in this folder at once (``acquire``, ``holder``, ``release``): a ``flock``
        on a local disk, a lease object on a remote output folder."""
        if self.output.remote:
            return LeaseLock(self.root / LOCKS / self.name, self.name, ttl=self.output.lease_seconds)
        return StepLock(self.root / LOCKS / f"{self.name}.lock", self.name)

    def prepare(self, fingerprint: str, verify: bool = True) -> Preparation:
        """Apply the reuse / back up / restore rules for ``fingerprint``.

        1. a finished output with this fingerprint is reused;
        2. a folder with another fingerprint moves to ``_backups/<step>/<its fp>/``;
        3. a backup with this fingerprint is moved back;
        4. otherwise the run starts (or resumes an unfinished run of this fingerprint).

        A sharded step's ``_shards`` stay where they are (each shard is a step folder
        with its own rules). With ``verify``, a finished output about to be reused is first
        checked against its step.json (:meth:`verify_output`). The rules and their moves:
        :mod:`~dreamer_dagster.step_reuse`.
        """
        return prepare_folder(self, fingerprint, verify)

    def start(self, fingerprint: str) -> None:
        """Claim the folder for an unfinished run of ``fingerprint``."""
        self.files.make_dirs(self.path)
        _write_json_atomic(self.path / IN_PROGRESS, {"fingerprint": fingerprint})

    # -- committing ---------------------------------------------------------------

    def commit(self, staged: Path | None, record: dict) -> None:
        """Move (or upload) the staged outputs into place, then write step.json last.

        ``staged`` holds ``_dataset`` and/or ``_model``; each replaces what the
        step folder holds under that name (left over from an unfinished run).
        Anything else in ``staged`` (scratch files) is deleted.
        """
        files = self.files
        files.make_dirs(self.path)
        files.remove_file(self.step_json_path)  # the folder stops being "finished" before it changes
        if staged is not None:
            record = with_manifest(record, staged)
            for name in (DATASET, MODEL):
                entry = staged / name
                if not entry.exists():
                    continue
                if files.remote:
                    # Keep the local copy as this worker's download of the new output.
                    local = download_path(self, record, name)
                    files.put_folder(entry, self.path / name, keep_as=local)
                else:
                    files.put_folder(entry, self.path / name)
            shutil.rmtree(staged, ignore_errors=True)
        _write_json_atomic(self.step_json_path, record)
        files.remove_file(self.path / IN_PROGRESS)


class OutputFolder:
    """The output folder of a pipeline: step folders, the model cache, staging.

    ``path`` is a local path, a ``file://`` URL, any fsspec URL (``s3://bucket/prefix``)
    or a ``upath.UPath``; ``storage_options`` go to the fsspec filesystem (an endpoint,
    a profile; credentials best come from the environment). ``local_folder`` is
    where a worker keeps its work for a remote output folder (default
    ``$DREAMER_LOCAL_FOLDER``, else ``~/.cache/dreamer_dagster/remote``);
    ``lease_seconds`` how long a remote step lock outlives a dead worker (default 60).
    """

    def __init__(
        self,
        path: Any,
        storage_options: dict[str, Any] | None = None,
        local_folder: str | None = None,
        lease_seconds: float | None = None,
    ):
        self.root = resolve_location(path, storage_options)
        #: How long a step lock's lease outlives a worker that stopped renewing it (remote folders).
        self.lease_seconds = lease_seconds
        self.files = files_for(self.root)
        self.remote = self.files.remote
        self.url = url_of(self.root)
        #: Several machines write it (a remote folder, or a shared disk given as a file:// URL):
        #: each worker keeps its own model cache and merges the others' (see cache.py).
        self.shared = self.remote or _is_file_url(path)
        if self.shared:
            self.local_root = worker_root(self.url, local_folder)
            from .cache import share_cache_folder

            share_cache_folder(self.cache_path, self.root / CACHE)
        else:
            self.local_root = self.root

    def __str__(self) -> str:
        return self.url

    def check_writable(self, step_name: str | None = None) -> None:
        """Fail early, with the fix, when the output folder (or the step's folder in it)
        cannot be written: a path that is a file, a read-only or locked folder, a bucket
        that does not exist or refuses the credentials."""
        check_writable(self, step_name)

    def step(self, name: str) -> StepFolder:
        return StepFolder(self, name)

    @property
    def cache_path(self) -> Path:
        """Where this worker's SQLite model caches live: ``<output>/.cache`` on a local disk,
        the worker's local folder for a remote or shared output folder (see cache.py)."""
        return self.local_root / CACHE

    def dagster_home(self) -> Path:
        """``<output>/.dagster`` (for a remote output folder, in the worker's local folder): the
        Dagster instance of a script run without ``DAGSTER_HOME``
        (``DAGSTER_HOME=<output>/.dagster dagster dev -f script.py`` shows its runs). Made
        the first time with a ``dagster.yaml`` that turns Dagster's telemetry off."""
        home = (self.local_root if self.remote else self.root) / DAGSTER_HOME
        home.mkdir(parents=True, exist_ok=True)
        config = home / "dagster.yaml"
        if not config.exists():  # written whole (a rename): a script started beside never reads half
            tmp = home / f".dagster.yaml.{uuid.uuid4().hex}.tmp"
            tmp.write_text("telemetry:\n  enabled: false\n")
            os.replace(tmp, config)
        return home

    def publish_cache(self) -> int:
        """Share the model calls this worker made with every other worker (a remote or shared
        output folder: publish them to ``<output>/.cache``); returns how many. Nothing to do
        for a plain local path, whose one cache every process on the machine shares."""
        if not self.shared:
            return 0
        from .cache import publish_calls

        return publish_calls(self.cache_path)

    def staging(self, name: str, run_id: str | None = None) -> Path:
        """A fresh work folder (on a local disk, beside the step folders, so that committing
        is a rename; for a remote output folder, in the worker's local folder).

        Its name carries the host, the process id and the run id: work folders of
        this step left by a process of this host that no longer runs (a killed
        run) are removed first; another host's are never touched.
        """
        return new_work_folder((self.local_root if self.remote else self.root) / STAGING, name, run_id)

    def write_dataset(
        self,
        staged: Path,
        rows: Iterable[dict] | Any,
        writer_batch_size: int = 1000,
        features: Any = None,
        columns: list[str] | None = None,
        num_proc: int | None = None,
        num_shards: int | None = None,
        observers: Sequence[Callable[[Any], None]] = (),
    ) -> DatasetSummary:
        """Write ``rows`` to ``staged/_dataset``; return its row count and features.

        ``rows`` is a ``datasets.Dataset``, a dict of columns, or an iterable of row
        dicts and/or ``pyarrow`` tables; an iterable is streamed into the folder's
        Arrow files batch by batch, so a step never holds all its rows in memory.
        ``columns`` names the columns of an iterable that turns out to be empty.
        ``num_proc`` / ``num_shards`` go to ``save_to_disk`` (DataDreamer's
        ``save_num_proc`` / ``save_num_shards``); ``observers`` see every row (dicts
        or tables) as it is written.
        """
        import datasets

        target = staged / DATASET
        if isinstance(rows, datasets.Dataset):
            return save_dataset(rows, target, num_proc, num_shards, observers)
        if isinstance(rows, dict):
            dataset = datasets.Dataset.from_dict(rows, features=features)
            return save_dataset(dataset, target, num_proc, num_shards, observers)
        if num_proc is None and num_shards is None:
            return stream_dataset(target, rows, writer_batch_size, features, columns, observers)
        # Files split as asked: streamed to a scratch folder first, then saved by save_to_disk.
        scratch = staged / f"rows-{uuid.uuid4().hex}"
        stream_dataset(scratch, rows, writer_batch_size, features, columns, observers)
        summary = save_dataset(datasets.load_from_disk(str(scratch)), target, num_proc, num_shards)
        shutil.rmtree(scratch)
        return summary


def step_uri(output_folder: Any, name: str) -> str:
    """The URI of step folder ``name`` (``file:///...``, ``s3://...``), without touching any
    filesystem (definitions loading stays fast)."""
    url = url_of(output_folder)
    return f"{url}/{name}" if is_remote(output_folder) else (Path(url) / name).as_uri()
