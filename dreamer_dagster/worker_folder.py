"""A worker's local folder for a remote (or shared) output folder: where it is, and the
``_dataset`` / ``_model`` copies downloaded into it.

On a remote output folder (any fsspec URL, see :mod:`~dreamer_dagster.filesystem`)
each worker keeps a local work folder (``OutputFolder.local_root``: staging, its own
SQLite model caches, downloaded ``_dataset`` / ``_model`` folders, checkpoints). A
finished step's output is downloaded there once, by data version
(``.downloads/<step>/<data version>/<name>``), and checked against its step.json
before it is read; a planted data version is never a path.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import IntegrityError, OutputFolderError
from .filesystem import LocalFiles
from .integrity import check_output
from .layout import DOWNLOADS, LOCAL_FOLDER_ENV
from .record_formats import is_data_version, untrusted

if TYPE_CHECKING:
    from .output_folder import StepFolder

__all__ = ["download_output", "download_path", "is_file_url", "worker_root"]


def worker_root(url: str, local_folder: str | None = None) -> Path:
    """The worker's local folder for the output folder at ``url``: under ``local_folder``
    (default ``$DREAMER_LOCAL_FOLDER``, else ``~/.cache/dreamer_dagster/remote``), one
    folder a URL (``<readable slug>-<digest>``)."""
    base = local_folder or os.environ.get(LOCAL_FOLDER_ENV) or "~/.cache/dreamer_dagster/remote"
    slug = re.sub(r"[^A-Za-z0-9]+", "_", url.split("://", 1)[-1])[-60:].strip("_")
    digest = hashlib.sha256(url.encode()).hexdigest()[:12]
    return Path(base).expanduser().resolve() / f"{slug}-{digest}"


def is_file_url(path: Any) -> bool:
    """Whether ``path`` is a ``file://`` URL (or a local UPath): a shared disk."""
    if type(path).__module__.startswith("upath"):
        return getattr(path, "protocol", "") in ("file", "local")
    return str(path).lower().startswith("file://")


def download_path(folder: StepFolder, record: dict, name: str) -> Path:
    """``<local folder>/.downloads/<step>/<data version>/<name>`` (a valid data version only)."""
    version = record.get("data_version")
    if not is_data_version(version):
        fix = "Fix: remove that step.json (the step runs again, from the model cache)."
        raise OutputFolderError(f"{untrusted(folder.step_json_path, 'data_version', version)}. {fix}")
    local_root = folder.output.local_root
    path = local_root / DOWNLOADS / folder.name / version / name
    LocalFiles(local_root).check_inside(path, action="download to")
    return path


def download_output(folder: StepFolder, name: str, record: dict | None = None) -> Path:
    """``<step>/<name>`` of a remote output folder as a local folder: downloaded once into
    the worker's local folder, by data version, and checked against step.json."""
    record = record or folder.step_json()
    if record is None:
        raise FileNotFoundError(f"{folder.path} holds no finished step (no step.json).")
    local = download_path(folder, record, name)
    if local.is_dir():
        try:
            return _checked(folder, local, record)
        except IntegrityError:  # a copy kept by another commit of the same data version
            shutil.rmtree(local)
    local.parent.mkdir(parents=True, exist_ok=True)
    folder.files.get_folder(folder.path / name, local)
    return _checked(folder, local, record)


def _checked(folder: StepFolder, local: Path, record: dict) -> Path:
    check_output(local, record, folder.path)
    return local
