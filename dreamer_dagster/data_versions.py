"""Data versions: hashes of a step's output (its ``_dataset`` or ``_model`` folder), so an
unchanged output leaves downstream steps in sync.

A commit derives the data version from the step's file manifest (each file's size and
content hash, see :mod:`~dreamer_dagster.integrity`), so its files are hashed once:
:func:`manifest_dataset_version` / :func:`manifest_folder_version`. Folders committed
before manifests existed recorded :func:`dataset_data_version` /
:func:`folder_data_version` (SHA-256 of the files themselves), which is how they are
still checked."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from .filesystem import LocalFiles

__all__ = [
    "DATASETS_CACHE_PREFIX",
    "dataset_data_version",
    "folder_data_version",
    "manifest_dataset_version",
    "manifest_folder_version",
]

#: ``datasets`` writes the cache files of a ``map`` / ``filter`` on a loaded dataset beside its
#: Arrow files, under this prefix; ``load_from_disk`` never reads them.
DATASETS_CACHE_PREFIX = "cache-"
#: Frames the manifest-derived versions apart from the SHA-256-of-files ones.
_MANIFEST_TAG = b"dreamer-manifest-v1"


def dataset_data_version(dataset_path: Path) -> str:
    """A hash of a saved dataset's content: its Arrow files and its features.

    ``state.json`` is left out: it holds a random fingerprint that changes on
    every save of the same rows.
    """
    digest = hashlib.sha256()
    info = LocalFiles.read_json(dataset_path / "dataset_info.json") or {}
    _update_framed(digest, json.dumps(info.get("features"), sort_keys=True).encode())
    for arrow in sorted(dataset_path.glob("*.arrow")):
        if not arrow.name.startswith(DATASETS_CACHE_PREFIX):  # a reader's cache, not the data
            _update_file(digest, arrow)
    return digest.hexdigest()[:16]


def manifest_dataset_version(files: dict[str, dict], features: Any) -> str:
    """A saved dataset's data version from its manifest ``files`` (relative name -> ``size``
    and ``hash``) and its ``features``: its Arrow files, in name order, and its features
    (``state.json`` and the names are left out, as in :func:`dataset_data_version`)."""
    digest = hashlib.sha256()
    _update_framed(digest, _MANIFEST_TAG)
    _update_framed(digest, json.dumps(features, sort_keys=True).encode())
    for name in sorted(n for n in files if n.endswith(".arrow")):
        _update_framed(digest, f"{files[name]['size']}:{files[name]['hash']}".encode())
    return digest.hexdigest()[:16]


def manifest_folder_version(files: dict[str, dict]) -> str:
    """A folder's data version (a trained model) from its manifest ``files``: every file's
    relative name, size and hash."""
    digest = hashlib.sha256()
    _update_framed(digest, _MANIFEST_TAG)
    for name in sorted(files):
        _update_framed(digest, f"{name}\0{files[name]['size']}:{files[name]['hash']}".encode())
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
