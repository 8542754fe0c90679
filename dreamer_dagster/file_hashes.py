"""Data-file content hashes kept between processes, so a large data file is read once,
not at every code-location load (``dagster dev`` reloads, and each step subprocess of a
run loads the definitions again).

One small JSON file a data file, under ``$DREAMER_LOCAL_FOLDER/file_hashes/`` (default
``~/.cache/dreamer_dagster/file_hashes/``), named by a digest of the file's absolute path
and holding that path, its size, ``mtime_ns``, ``ctime_ns`` and inode, and the SHA-256 of
its content. A hash is reused only while all of those still match the file; any change
(a rewrite of the same size still moves ``mtime_ns`` and ``ctime_ns``) reads it again.

- Writes are atomic (a temporary file renamed into place), so processes that hash the
  same file together each write a whole entry; a reader sees an old or a new one.
- An entry that cannot be read or does not have the expected form is ignored and
  rewritten; a cache folder that cannot be written only costs the re-reads.
- Only files of at least ``MIN_SIZE`` bytes are kept (a small file hashes faster than an
  entry is read), and only once their ``mtime`` is ``RACY_SECONDS`` in the past: a file
  changed again within its filesystem's timestamp resolution could otherwise keep its
  old stat and its old hash (git's "racily clean" rule).
- At most ``MAX_ENTRIES`` entries are kept; the least recently written go first.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
import time
from pathlib import Path

from .layout import LOCAL_FOLDER_ENV

__all__ = ["MIN_SIZE", "cache_folder", "lookup", "remember"]

MIN_SIZE = 1 << 20
RACY_SECONDS = 3.0
MAX_ENTRIES = 2000
FOLDER_NAME = "file_hashes"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def cache_folder() -> Path:
    """Where the entries live: ``$DREAMER_LOCAL_FOLDER/file_hashes``, else
    ``~/.cache/dreamer_dagster/file_hashes``."""
    base = os.environ.get(LOCAL_FOLDER_ENV) or "~/.cache/dreamer_dagster"
    return Path(base).expanduser() / FOLDER_NAME


def _entry_path(resolved: Path) -> Path:
    digest = hashlib.sha256(os.fsencode(resolved)).hexdigest()[:32]
    return cache_folder() / f"{digest}.json"


def _stat_record(resolved: Path, stat: os.stat_result) -> dict:
    return {
        "path": str(resolved),
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "ctime_ns": stat.st_ctime_ns,
        "inode": stat.st_ino,
    }


def lookup(resolved: Path, stat: os.stat_result) -> str | None:
    """The SHA-256 recorded for the file at ``resolved`` (an absolute path) while its
    ``stat`` still matches the entry; None otherwise (no entry, a stale or a broken one)."""
    if stat.st_size < MIN_SIZE:
        return None
    try:
        entry = json.loads(_entry_path(resolved).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(entry, dict):
        return None
    digest = entry.get("sha256")
    if not isinstance(digest, str) or not _SHA256.match(digest):
        return None
    recorded = {key: entry.get(key) for key in ("path", "size", "mtime_ns", "ctime_ns", "inode")}
    return digest if recorded == _stat_record(resolved, stat) else None


def remember(resolved: Path, stat: os.stat_result, digest: str) -> None:
    """Record ``digest`` for the file at ``resolved`` as it was when ``stat`` was taken
    (before it was read). Skipped for small or just-changed files; never raises."""
    if stat.st_size < MIN_SIZE or time.time() - stat.st_mtime_ns / 1e9 < RACY_SECONDS:
        return
    if not _SHA256.match(digest):
        return
    folder = cache_folder()
    text = json.dumps({**_stat_record(resolved, stat), "sha256": digest})
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=folder, prefix=".entry-", suffix=".tmp")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                out.write(text)
            os.replace(temporary, _entry_path(resolved))
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
        _prune(folder)
    except OSError:
        return  # a read-only or full cache folder: the file is hashed again next time


def _prune(folder: Path) -> None:
    """Keep the ``MAX_ENTRIES`` most recently written entries (and drop stray temporaries)."""
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return
    if len(entries) <= MAX_ENTRIES:
        return
    dated = []
    for entry in entries:
        with contextlib.suppress(OSError):
            dated.append((entry.stat().st_mtime_ns, entry.path))
    dated.sort()
    for _, path in dated[: len(dated) - MAX_ENTRIES]:
        with contextlib.suppress(OSError):
            os.unlink(path)
