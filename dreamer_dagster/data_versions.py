"""Data versions: hashes of a step's output (its ``_dataset`` or ``_model`` folder), so an
unchanged output leaves downstream steps in sync."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

__all__ = ["dataset_data_version", "folder_data_version"]


def _read_json(path: Path) -> dict | None:
    try:
        with open(path) as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


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
