"""The documented output folder: the one room that knows its layout.

::

    output/
      <step>/step.json            written last: the commit mark of a finished step
      <step>/_dataset/            datasets.Dataset.save_to_disk
      <trainer>/_checkpoints/     resumable training checkpoints
      <trainer>/_model/           the trained model
      <step>/_in_progress.json    a started, unfinished run: its fingerprint
      .cache/<model>.db           SQLite model cache (see cache.py)
      .staging/                   work folders, renamed into place when finished
      .locks/<step>.lock          held (flock) by the one run working on <step>
      _backups/<step>/<fingerprint>/   a step folder whose configuration was replaced

A step folder counts as finished only when ``step.json`` is there, parses,
holds a fingerprint and a data version, and the ``_dataset`` (or ``_model``)
it describes is there; everything else is written before it, so a crash at any
point leaves a folder that is never taken for a finished one. A folder that
fails those checks (a hand-edited or truncated ``step.json``, a ``_dataset``
deleted by hand) runs again, from the model cache.

Writing problems (a read-only or locked folder, a full disk, an output folder
path that is a file) raise :class:`~dreamer_dagster.errors.OutputFolderError`
naming the folder and the fix; the work folder of the failed run is removed.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from .errors import OutputFolderError
from .step_lock import StepLock, StepLocked

__all__ = ["OutputFolder", "Preparation", "StepFolder", "StepLocked", "folder_errors", "output_folder_error"]

STEP_JSON = "step.json"
IN_PROGRESS = "_in_progress.json"
DATASET = "_dataset"
MODEL = "_model"
CHECKPOINTS = "_checkpoints"
#: State a model keeps across a killed run (OpenAI Batch API file and job ids).
MODEL_STATE = "_model_state"
BACKUPS = "_backups"
CACHE = ".cache"
STAGING = ".staging"
LOCKS = ".locks"


class Preparation(Enum):
    """What a step folder held for the fingerprint about to run."""

    FINISHED = "finished"  # a finished output with this fingerprint: reuse it
    RESTORED = "restored"  # a backup with this fingerprint was moved back
    RESUME = "resume"  # an unfinished run of this fingerprint: resume it
    FRESH = "fresh"  # nothing usable: run from the start


def _write_json_atomic(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    with open(tmp, "w") as handle:
        json.dump(data, handle, indent=2, sort_keys=False, default=str)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def _read_json(path: Path) -> dict | None:
    try:
        with open(path) as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


@dataclass(frozen=True)
class StepFolder:
    """One step's folder inside the output folder."""

    root: Path  # the output folder
    name: str  # the step's safe name (= asset key = folder name)

    @property
    def path(self) -> Path:
        return self.root / self.name

    @property
    def uri(self) -> str:
        """The folder as a URI (``file:///...``)."""
        return self.path.as_uri()

    @property
    def step_json_path(self) -> Path:
        return self.path / STEP_JSON

    @property
    def dataset_path(self) -> Path:
        return self.path / DATASET

    @property
    def model_path(self) -> Path:
        return self.path / MODEL

    @property
    def checkpoints_path(self) -> Path:
        return self.path / CHECKPOINTS

    @property
    def model_state_path(self) -> Path:
        """``<step>/_model_state``: what a model keeps across a killed run of this step
        (batch job ids); it moves with the folder to ``_backups`` and back."""
        return self.path / MODEL_STATE

    def backup_path(self, fingerprint: str) -> Path:
        return self.root / BACKUPS / self.name / fingerprint

    # -- reading ------------------------------------------------------------------

    def step_json(self) -> dict | None:
        """The committed step.json, or None if the step is not finished (see :meth:`problem`)."""
        record = _read_json(self.step_json_path)
        return record if record is not None and self._record_problem(record) is None else None

    def problem(self) -> str | None:
        """Why a folder holding a step.json is not a finished step; None when it is
        (or when there is no step.json at all)."""
        if not self.step_json_path.exists():
            return None
        record = _read_json(self.step_json_path)
        if record is None:
            return f"{self.step_json_path} does not parse as a JSON object (truncated or hand-edited)"
        return self._record_problem(record)

    def _record_problem(self, record: dict) -> str | None:
        for name in ("fingerprint", "data_version"):
            if not isinstance(record.get(name), str) or not record.get(name):
                return f"{self.step_json_path} has no {name} (hand-edited?)"
        output = self.model_path if record.get("model") else self.dataset_path
        if not output.is_dir():
            return f"{output} is missing (deleted by hand?)"
        return None

    def finished_fingerprint(self) -> str | None:
        record = self.step_json()
        return record.get("fingerprint") if record else None

    def recorded_fingerprint(self) -> str | None:
        """The fingerprint step.json names, finished or not (None when it does not parse)."""
        record = _read_json(self.step_json_path)
        value = record.get("fingerprint") if record else None
        return value if isinstance(value, str) else None

    def in_progress_fingerprint(self) -> str | None:
        record = _read_json(self.path / IN_PROGRESS)
        return record.get("fingerprint") if record else None

    def holds_finished(self, fingerprint: str) -> bool:
        """Whether a run of ``fingerprint`` would reuse or restore a finished output (reads only)."""
        if self.finished_fingerprint() == fingerprint:
            return True
        backup = _read_json(self.backup_path(fingerprint) / STEP_JSON)
        return backup is not None and backup.get("fingerprint") == fingerprint

    def load_dataset(self) -> Any:
        from datasets import load_from_disk

        return load_from_disk(str(self.dataset_path))

    # -- before a run -------------------------------------------------------------

    def lock(self) -> StepLock:
        """The lock one run holds from :meth:`prepare` to :meth:`commit`, so two runs
        never work in this folder at once (``acquire``, ``holder``, ``release``)."""
        return StepLock(self.root / LOCKS / f"{self.name}.lock", self.name)

    def prepare(self, fingerprint: str) -> Preparation:
        """Apply the reuse / back up / restore rules for ``fingerprint``.

        1. a finished output with this fingerprint is reused;
        2. a folder with another fingerprint moves to ``_backups/<step>/<its fp>/``;
        3. a backup with this fingerprint is moved back;
        4. otherwise the run starts (or resumes an unfinished run of this fingerprint).
        """
        if self.finished_fingerprint() == fingerprint:
            return Preparation.FINISHED
        if self.path.exists():
            existing = self.recorded_fingerprint() or self.in_progress_fingerprint()
            if existing == fingerprint:
                return Preparation.RESUME
            if existing is not None:
                self._move(self.path, self.backup_path(existing))
            else:
                shutil.rmtree(self.path)  # neither finished nor claimed by any run
        backup = self.backup_path(fingerprint)
        if backup.exists():
            self._move(backup, self.path)
            if self.finished_fingerprint() == fingerprint:
                return Preparation.RESTORED
            return Preparation.RESUME
        return Preparation.FRESH

    def start(self, fingerprint: str) -> None:
        """Claim the folder for an unfinished run of ``fingerprint``."""
        self.path.mkdir(parents=True, exist_ok=True)
        _write_json_atomic(self.path / IN_PROGRESS, {"fingerprint": fingerprint})

    @staticmethod
    def _move(source: Path, target: Path) -> None:
        if target.exists():
            shutil.rmtree(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(source, target)

    # -- committing ---------------------------------------------------------------

    def commit(self, staged: Path | None, record: dict) -> None:
        """Move the staged outputs into place, then write step.json last.

        ``staged`` holds ``_dataset`` and/or ``_model``; each replaces what the
        step folder holds under that name (left over from an unfinished run).
        Anything else in ``staged`` (scratch files) is deleted.
        """
        self.path.mkdir(parents=True, exist_ok=True)
        stale = self.step_json_path
        if stale.exists():
            stale.unlink()  # the folder stops being "finished" before it changes
        if staged is not None:
            for name in (DATASET, MODEL):
                entry = staged / name
                if not entry.exists():
                    continue
                target = self.path / name
                if target.exists():
                    shutil.rmtree(target)
                os.replace(entry, target)
            shutil.rmtree(staged, ignore_errors=True)
        _write_json_atomic(self.step_json_path, record)
        (self.path / IN_PROGRESS).unlink(missing_ok=True)


class OutputFolder:
    """The output folder of a pipeline: step folders, the model cache, staging."""

    def __init__(self, path: str | Path):
        self.root = Path(path).expanduser().resolve()

    def check_writable(self, step_name: str | None = None) -> None:
        """Fail early, with the fix, when the output folder (or the step's folder in it)
        cannot be written: a path that is a file, a read-only or locked folder."""
        if self.root.exists() and not self.root.is_dir():
            raise OutputFolderError(
                f"The output folder {self.root} is a file, not a folder. Fix: pass a folder path as "
                "output_folder= (Pipeline(...), dreamer_definitions(...) or DreamerIOManager(...)), or "
                "move the file away."
            )
        targets = [self.root]
        if step_name is not None and (self.root / step_name).is_dir():
            targets.append(self.root / step_name)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            for folder in targets:
                probe = folder / f".write-check-{os.getpid()}-{uuid.uuid4().hex}"
                probe.write_bytes(b"")
                probe.unlink()
        except OSError as error:
            raise output_folder_error(error, self.root, step_name) or error from error

    def step(self, name: str) -> StepFolder:
        return StepFolder(self.root, name)

    @property
    def cache_path(self) -> Path:
        return self.root / CACHE

    def staging(self, name: str) -> Path:
        """A fresh work folder on the same filesystem as the step folders.

        Its name carries the process id; work folders of this step left by a
        process that no longer runs (a killed run) are removed first.
        """
        base = self.root / STAGING
        base.mkdir(parents=True, exist_ok=True)
        for leftover in base.glob(f"{name}-*-*"):
            pid = leftover.name[len(name) + 1 :].split("-", 1)[0]
            if pid.isdigit() and not _process_alive(int(pid)):
                shutil.rmtree(leftover, ignore_errors=True)
        return Path(tempfile.mkdtemp(prefix=f"{name}-{os.getpid()}-", dir=base))

    def write_dataset(
        self,
        staged: Path,
        rows: Iterable[dict] | Any,
        writer_batch_size: int = 1000,
        features: Any = None,
        columns: list[str] | None = None,
    ) -> Any:
        """Write ``rows`` to ``staged/_dataset`` and return the loaded Dataset.

        ``rows`` is a ``datasets.Dataset``, a dict of columns, or an iterable of row
        dicts; an iterable is streamed to an Arrow file batch by batch, so a step
        never holds all its rows in memory. ``columns`` names the columns of an
        iterable that turns out to be empty.
        """
        import datasets

        target = staged / DATASET
        if isinstance(rows, datasets.Dataset):
            dataset = rows
        elif isinstance(rows, dict):
            dataset = datasets.Dataset.from_dict(rows, features=features)
        else:
            dataset = self._stream_rows(staged, rows, writer_batch_size, features, columns)
        # datasets writes no shard at all for zero rows, and then cannot load the
        # folder back; one (empty) shard keeps an empty output loadable.
        dataset.save_to_disk(str(target), num_shards=1 if len(dataset) == 0 else None)
        del dataset
        for leftover in staged.glob("rows-*.arrow"):
            leftover.unlink()
        return datasets.load_from_disk(str(target))

    @staticmethod
    def _stream_rows(
        staged: Path, rows: Iterable[dict], batch_size: int, features: Any, columns: list[str] | None
    ) -> Any:
        import datasets
        from datasets.arrow_writer import ArrowWriter

        path = staged / f"rows-{uuid.uuid4().hex}.arrow"
        count = 0
        with ArrowWriter(path=str(path), writer_batch_size=batch_size, features=features) as writer:
            for row in _rows(rows):
                writer.write(row)
                count += 1
            if count == 0 and features is None:
                if not columns:
                    raise ValueError(
                        "The step produced no rows, and its columns are not known before it runs, "
                        "so there is no table to save. Fix: name its columns (e.g. map(..., "
                        "output_columns=[...])) or make sure it yields rows."
                    )
                return datasets.Dataset.from_dict({column: [] for column in columns})
            writer.finalize()
        return datasets.Dataset.from_file(str(path))


_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)
_NOT_WRITABLE = (errno.EROFS, errno.EACCES, errno.EPERM)


def output_folder_error(
    error: BaseException, root: Path, step_name: str | None = None
) -> OutputFolderError | None:
    """The :class:`OutputFolderError` for a write that failed in the output folder
    ``root``, or None when ``error`` is not such a failure."""
    code = getattr(error, "errno", None)
    text = str(error)
    filename = getattr(error, "filename", None)
    inside = filename is None or str(filename).startswith(str(root)) or not os.path.isabs(str(filename))
    step = f"Step {step_name!r}: " if step_name else ""
    if code in _NO_SPACE or "No space left on device" in text or "Disk quota exceeded" in text:
        return OutputFolderError(
            f"{step}the disk of the output folder {root} is full ({text}). Nothing was committed; the "
            "unfinished work folder was removed, and answers already received are in the model cache. "
            "Fix: free space (or point output_folder= at a larger disk) and run again."
        )
    if code == errno.ENOTDIR or (code == errno.EEXIST and root.exists() and not root.is_dir()):
        return OutputFolderError(
            f"{step}the output folder {root} (or a folder above it) is a file, not a folder ({text}). "
            "Fix: pass a folder path as output_folder=, or move the file away."
        )
    if code in _NOT_WRITABLE and inside:
        what = (
            "is on a read-only filesystem"
            if code == errno.EROFS
            else "is locked or not writable by this user"
        )
        return OutputFolderError(
            f"{step}the output folder {root} {what} ({text}). Nothing was committed. Fix: make it "
            "writable (remount it read-write, `chattr -i`, `chmod u+w`), or point output_folder= at "
            "a writable folder."
        )
    return None


@contextmanager
def folder_errors(root: Path, step_name: str | None = None) -> Iterator[None]:
    """Within the block, a failed write in the output folder raises :class:`OutputFolderError`."""
    try:
        yield
    except OutputFolderError:
        raise
    except Exception as error:
        translated = output_folder_error(error, root, step_name)
        if translated is None:
            raise
        raise translated from error


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, owned by someone else
    return True


def _rows(rows: Iterable[dict]) -> Iterator[dict]:
    """The rows, checked: every row has the first row's columns (a missing one is None);
    a column the first row lacks is an error, since the Arrow writer would drop it."""
    columns: dict[str, None] | None = None
    for number, row in enumerate(rows, start=1):
        if not isinstance(row, dict):
            raise TypeError(f"A step produced a row that is not a dict: {row!r}")
        if columns is None:
            columns = dict.fromkeys(row)
        elif row.keys() != columns.keys():
            extra = [key for key in row if key not in columns]
            if extra:
                raise ValueError(
                    f"Row {number} has the columns {extra}, which the first row lacks; every row "
                    f"must have the same columns (the first row has {list(columns)})."
                )
            row = {key: row.get(key) for key in columns}
        yield row


def dataset_data_version(dataset_path: Path) -> str:
    """A hash of a saved dataset's content: its Arrow files and its features.

    ``state.json`` is left out: it holds a random fingerprint that changes on
    every save of the same rows.
    """
    digest = hashlib.sha256()
    info = _read_json(dataset_path / "dataset_info.json") or {}
    _update_framed(digest, json.dumps(info.get("features"), sort_keys=True).encode())
    for arrow in sorted(dataset_path.glob("*.arrow")):
        _update_file(digest, arrow)
    return digest.hexdigest()[:16]


def folder_data_version(path: Path) -> str:
    """A hash of every file under ``path`` (for a trained model folder)."""
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        _update_framed(digest, str(file.relative_to(path)).encode("utf-8", "surrogateescape"))
        _update_file(digest, file)
    return digest.hexdigest()[:16]


def _update_framed(digest: Any, data: bytes) -> None:
    """Hash ``data`` with its length first, so no two sequences of fields hash alike."""
    digest.update(len(data).to_bytes(8, "big"))
    digest.update(data)


def _update_file(digest: Any, path: Path) -> None:
    """Hash a file's content with its length first (see :func:`_update_framed`)."""
    digest.update(path.stat().st_size.to_bytes(8, "big"))
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
