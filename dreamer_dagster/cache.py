"""The model cache: one SQLite file per model identity under ``<output>/.cache/``.

Every generation (LLMs) and every embedding (embedders) goes through it, so a
re-run makes no model call and a killed run resumes with only the missing ones.

- The file is named by ``Model.cache_name()``; it holds one table mapping a key
  to a value, and a ``meta`` table recording the model identity it serves.
- The key hashes the model identity and the fully resolved request (every
  parameter that changes the output, the input, and a per-input occurrence
  index so that repeated inputs get distinct answers). Callers pass the request
  as a dict; ``request_prefix`` + ``key_for`` split the hashing so that the
  constant part is hashed once per run, not once per row.
- Values are data, never pickle: a cache file is safe to share and inspect. A
  value is stored as JSON text (generations, label scores, retrievals), except a
  numpy vector (an embedding), stored as a BLOB of little-endian float32 bytes
  and read back as a read-only ``numpy.float32`` vector: four bytes a number,
  decoded without parsing. Files written before vectors were stored as bytes hold
  them as JSON lists of floats; those still read (as lists).
- WAL journal, a busy timeout and ``BEGIN IMMEDIATE`` writes: several processes
  (Dagster's multiprocess executor) can read and write one file at once;
  ``put_many`` commits at once, so a killed run loses only what was in flight.
- A file SQLite cannot use (damaged, truncated, not a database, or written by
  a newer schema) is never changed or replaced: opening or reading it raises
  :class:`~dreamer_dagster.errors.CacheFileError`, naming the file and the fix
  (move it aside; a newer schema needs a newer dreamer_dagster), before any
  model call is made. A file deleted while a run writes to it is made again,
  with a warning, so the answers received after that are still kept.

Many workers (an output folder on S3 or on a disk shared by several machines):
never one SQLite file over a network filesystem. Each worker writes its own
local cache file (in its local folder, see output_folder.py) and records which
keys it added (``pending``). When a step commits, :func:`publish_calls` writes
those calls to a new SQLite file and uploads it, whole, as
``<output>/.cache/<cache name>/<host>-<pid>-<id>.db``; when a worker opens a
cache, it downloads the files it has not merged yet and merges them with
``INSERT OR IGNORE`` (recorded in ``merged``). So a re-run on any worker reads
every call made on every other, and no uploaded file is ever changed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import sqlite3
import time
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from .errors import CacheFileError, OutputFolderError
from .fingerprint import canonical
from .record_formats import is_worker_cache_name

__all__ = ["ModelCache", "merge_cache_files", "publish_calls", "request_prefix", "share_cache_folder"]

SCHEMA_VERSION = "1"
# SQLite's default limit on bound parameters is 32766 (3.32+); stay well under it.
LOOKUP_CHUNK = 900
BUSY_TIMEOUT_S = 60.0

#: Local cache folder -> the shared cache folder it is merged with (see the module doc).
_SHARED: dict[str, object] = {}
#: Files in shared cache folders already warned about (not a published file's name).
_UNTRUSTED_WARNED: set[str] = set()


def share_cache_folder(local_folder: str | Path, shared_folder: object) -> None:
    """Caches opened in ``local_folder`` from now on (in this process) merge the calls
    published to ``shared_folder`` (a Path or a UPath) and record theirs for publishing."""
    _SHARED[str(local_folder)] = shared_folder


def request_prefix(identity: dict, request: dict) -> bytes:
    """The canonical bytes of everything constant across one run (identity + parameters)."""
    text = json.dumps(
        {"v": SCHEMA_VERSION, "identity": canonical(identity), "request": canonical(request)},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=True,
    )
    return hashlib.sha256(text.encode()).digest()


def key_for(prefix: bytes, item: str, occurrence: int = 0) -> str:
    """The key of one input (``item``, its ``occurrence``-th repeat) under a request prefix."""
    digest = hashlib.sha256(prefix)
    digest.update(item.encode("utf-8", "surrogatepass"))
    digest.update(b"\x00%d" % occurrence)
    return digest.hexdigest()


def _encode(value: Any) -> str | bytes:
    if hasattr(value, "__array_interface__"):
        import numpy as np

        vector = np.asarray(value)
        if vector.ndim != 1:
            raise ValueError(f"The model cache stores 1-D vectors; got an array of shape {vector.shape}.")
        return vector.astype("<f4", copy=False).tobytes()
    return json.dumps(value, ensure_ascii=False)


def _decode(stored: str | bytes) -> Any:
    if isinstance(stored, bytes):
        import numpy as np

        return np.frombuffer(stored, dtype="<f4")
    return json.loads(stored)


class ModelCache:
    """One model's SQLite cache file: ``get_many(keys)`` and ``put_many(items)``.

    Writes ``<folder>/<name>.db`` (plus SQLite's ``-wal``/``-shm`` companions).
    Use it as a context manager, or call ``close()``.
    """

    def __init__(self, folder: str | Path, name: str, identity: dict | None = None):
        self.path = Path(folder) / f"{name}.db"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.identity = identity
        self.shared = _SHARED.get(str(self.path.parent))
        self._connection = self._connect()
        self._inode = _inode(self.path)
        if self.shared is not None:
            self.merge_published()

    @staticmethod
    def exists(folder: str | Path, name: str) -> bool:
        """Whether the cache file of ``name`` exists in ``folder`` (without creating it)."""
        return (Path(folder) / f"{name}.db").exists()

    # -- keys -------------------------------------------------------------------------

    def prefix(self, request: dict) -> bytes:
        return request_prefix(self.identity or {}, request)

    @staticmethod
    def key(prefix: bytes, item: str, occurrence: int = 0) -> str:
        return key_for(prefix, item, occurrence)

    # -- reads and writes -------------------------------------------------------------

    def get_many(self, keys: Sequence[str]) -> list[Any | None]:
        """The cached value of each key, or None where there is none (order kept)."""
        found: dict[str, str | bytes] = {}
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), LOOKUP_CHUNK):
            chunk = unique[start : start + LOOKUP_CHUNK]
            marks = ",".join("?" * len(chunk))
            rows = self._retry(
                lambda marks=marks, chunk=chunk: self._connection.execute(
                    f"SELECT key, value FROM cache WHERE key IN ({marks})", chunk
                ).fetchall()
            )
            found.update(rows)
        return [_decode(found[key]) if key in found else None for key in keys]

    def get(self, key: str) -> Any | None:
        return self.get_many([key])[0]

    def put_many(self, items: Iterable[tuple[str, Any]]) -> None:
        """Store ``(key, value)`` pairs and commit: a value is JSON-able, or a 1-D numpy
        vector (stored as float32 bytes)."""
        rows = [(key, _encode(value)) for key, value in items]
        if not rows:
            return
        self._reopen_if_deleted()

        def write() -> None:
            self._connection.execute("BEGIN IMMEDIATE")
            try:
                self._connection.executemany("INSERT OR REPLACE INTO cache (key, value) VALUES (?, ?)", rows)
                if self.shared is not None:
                    self._connection.executemany(
                        "INSERT OR IGNORE INTO pending (key) VALUES (?)", [(key,) for key, _ in rows]
                    )
            except BaseException:
                self._connection.execute("ROLLBACK")
                raise
            self._connection.execute("COMMIT")

        self._retry(write)

    def merge_published(self) -> int:
        """Merge every file other workers published for this cache that this one has not
        merged yet (``INSERT OR IGNORE``); returns how many files were merged."""
        from .filesystem import files_for

        folder = self.shared / self.path.stem  # type: ignore[operator]
        files = files_for(folder)
        published = []
        for name in files.list_names(folder):
            if is_worker_cache_name(name):
                published.append(name)
            elif name.endswith(".db") and str(folder / name) not in _UNTRUSTED_WARNED:
                _UNTRUSTED_WARNED.add(str(folder / name))
                logging.getLogger(__name__).warning(
                    "%s in the shared model cache folder %s is not a published cache file's name "
                    "(<host>-<pid>-<12 hex>.db); not trusted, not merged (planted?).",
                    name,
                    folder,
                )
        if not published:
            return 0
        known = {
            row[0]
            for row in self._retry(lambda: self._connection.execute("SELECT name FROM merged").fetchall())
        }
        merged = 0
        for name in published:
            if name in known:
                continue
            incoming = self.path.with_name(f".incoming-{uuid.uuid4().hex}.db")
            try:
                try:
                    files.get_file(folder / name, incoming)
                except FileNotFoundError:
                    continue
                merge_cache_files(self.path, [incoming], names=[name], connection=self._connection)
                merged += 1
            finally:
                incoming.unlink(missing_ok=True)
        return merged

    def __len__(self) -> int:
        return self._retry(lambda: self._connection.execute("SELECT COUNT(*) FROM cache").fetchone()[0])

    # -- life cycle -------------------------------------------------------------------

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def __enter__(self) -> ModelCache:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _reopen_if_deleted(self) -> None:
        """A cache file deleted (or replaced) while this run writes to it is made again:
        writing on into the deleted file would lose every answer from now on."""
        if self._connection is None or _inode(self.path) == self._inode:
            return
        logging.getLogger(__name__).warning(
            "The model cache file %s was deleted or replaced while a run was using it; it is made "
            "again, and answers received from now on are kept in it.",
            self.path,
        )
        self._connection.close()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._connection = self._connect()
        self._inode = _inode(self.path)

    def _connect(self) -> sqlite3.Connection:
        try:
            connection = sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as error:
            raise self._unusable(error) from error
        connection.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")

        def set_up() -> None:
            # Switching to WAL needs a moment of exclusive access; the busy handler is
            # not consulted for it on a fresh file, hence the retry around it.
            connection.execute("PRAGMA journal_mode = WAL")
            connection.execute("PRAGMA synchronous = NORMAL")
            connection.execute("CREATE TABLE IF NOT EXISTS cache (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            connection.execute("CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)")
            if self.shared is not None:
                connection.execute("CREATE TABLE IF NOT EXISTS pending (key TEXT PRIMARY KEY)")
                connection.execute("CREATE TABLE IF NOT EXISTS merged (name TEXT PRIMARY KEY)")
            if self.identity is not None:
                connection.execute(
                    "INSERT OR IGNORE INTO meta (name, value) VALUES ('identity', ?)",
                    (json.dumps(canonical(self.identity), sort_keys=True),),
                )
                connection.execute(
                    "INSERT OR IGNORE INTO meta (name, value) VALUES ('schema_version', ?)",
                    (SCHEMA_VERSION,),
                )

        try:
            # The schema is read before anything is written: a newer file stays as it is.
            stored = self._retry(lambda: _schema_version(connection), connection)
            if stored is None or not _newer(stored):
                self._retry(set_up, connection)
        except BaseException:
            connection.close()
            raise
        if stored is not None and _newer(stored):
            connection.close()
            raise CacheFileError(
                f"The model cache file {self.path} was written by a newer dreamer_dagster (cache "
                f"schema {stored}; this version reads schema {SCHEMA_VERSION}). The file was not "
                "changed. Fix: upgrade dreamer_dagster, or give this pipeline another output folder."
            )
        return connection

    def _unusable(self, error: sqlite3.Error) -> Exception:
        """The error to raise for what SQLite said about this file."""
        message = str(error)
        lowered = message.lower()
        if "disk is full" in lowered or "readonly" in lowered or "unable to open" in lowered:
            reason = (
                "the disk is full"
                if "full" in lowered
                else "the folder cannot be written"
                if "readonly" in lowered
                else "the file cannot be opened"
            )
            return OutputFolderError(
                f"The model cache file {self.path} cannot be written: {reason} ({message}). Fix: free "
                f"space or make {self.path.parent} writable, then run again; the answers already in the "
                "cache are kept."
            )
        return CacheFileError(
            f"The model cache file {self.path} cannot be used: {message}. It is damaged, truncated, "
            "or not a dreamer_dagster cache; it was not changed. Fix: move it aside "
            f"(mv '{self.path}' '{self.path}.corrupt') and run again: a new cache is made, and the "
            f"calls the old one held are paid again (`sqlite3 '{self.path}.corrupt' .recover` may "
            "save them)."
        )

    def _retry(self, action: Any, connection: sqlite3.Connection | None = None) -> Any:
        """Run ``action``, retrying while another process holds a lock SQLite would not wait for."""
        deadline = time.monotonic() + BUSY_TIMEOUT_S
        delay = 0.005
        while True:
            try:
                return action()
            except sqlite3.DatabaseError as error:
                message = str(error).lower()
                if not isinstance(error, sqlite3.OperationalError) or (
                    "locked" not in message and "busy" not in message
                ):
                    raise self._unusable(error) from error
                if time.monotonic() > deadline:
                    raise
                conn = connection or self._connection
                if conn is not None and conn.in_transaction:
                    conn.execute("ROLLBACK")
                time.sleep(delay)
                delay = min(delay * 2, 0.25)


def _schema_version(connection: sqlite3.Connection) -> str | None:
    """The schema version a cache file records; None for a new (or pre-versioned) file."""
    try:
        row = connection.execute("SELECT value FROM meta WHERE name = 'schema_version'").fetchone()
    except sqlite3.OperationalError as error:
        if "no such table" in str(error):
            return None
        raise
    return None if row is None else str(row[0])


def _inode(path: Path) -> int | None:
    try:
        return os.stat(path).st_ino
    except FileNotFoundError:
        return None


def _newer(version: str) -> bool:
    try:
        return int(version) > int(SCHEMA_VERSION)
    except ValueError:
        return True  # not a version this one knows


def merge_cache_files(
    target: Path,
    sources: Sequence[Path],
    names: Sequence[str] | None = None,
    connection: sqlite3.Connection | None = None,
) -> None:
    """Merge the calls of the cache files ``sources`` into the cache file ``target``
    (``INSERT OR IGNORE``: an answer already there is kept); each source in one
    transaction, recorded under its name (``names``) in ``merged``."""
    own = connection is None
    conn = connection or sqlite3.connect(target, timeout=BUSY_TIMEOUT_S, isolation_level=None)
    try:
        conn.execute("CREATE TABLE IF NOT EXISTS merged (name TEXT PRIMARY KEY)")
        for index, source in enumerate(sources):
            conn.execute("ATTACH DATABASE ? AS incoming", (str(source),))
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    conn.execute(
                        "INSERT OR IGNORE INTO cache (key, value) SELECT key, value FROM incoming.cache"
                    )
                    name = names[index] if names is not None else source.name
                    conn.execute("INSERT OR IGNORE INTO merged (name) VALUES (?)", (name,))
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
            finally:
                conn.execute("DETACH DATABASE incoming")
    finally:
        if own:
            conn.close()


def publish_calls(local_folder: str | Path) -> int:
    """Upload the calls recorded as pending in every cache file of ``local_folder`` to its
    shared folder (one new file per cache); returns how many calls were published."""
    from .filesystem import files_for

    shared = _SHARED.get(str(local_folder))
    folder = Path(local_folder)
    if shared is None or not folder.is_dir():
        return 0
    published = 0
    for path in sorted(folder.glob("*.db")):
        if path.name.startswith("."):
            continue
        conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        try:
            try:
                count = conn.execute("SELECT COUNT(*) FROM pending").fetchone()[0]
            except sqlite3.OperationalError:
                continue  # a cache file that records nothing for sharing
            if not count:
                continue
            host = "".join(c if c.isascii() and c.isalnum() else "_" for c in socket.gethostname())
            name = f"{host}-{os.getpid()}-{uuid.uuid4().hex[:12]}.db"
            outgoing = path.with_name(f".outgoing-{name}")
            try:
                conn.execute("ATTACH DATABASE ? AS outgoing", (str(outgoing),))
                conn.execute("CREATE TABLE outgoing.cache (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
                conn.execute("CREATE TABLE outgoing.meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)")
                conn.execute("INSERT INTO outgoing.meta SELECT name, value FROM meta")
                conn.execute(
                    "INSERT INTO outgoing.cache SELECT c.key, c.value FROM cache c JOIN pending p ON c.key = p.key"
                )
                conn.execute("DETACH DATABASE outgoing")
                files_for(shared).put_file(outgoing, shared / path.stem / name)  # type: ignore[operator]
                conn.execute("ATTACH DATABASE ? AS outgoing", (str(outgoing),))
                conn.execute("BEGIN IMMEDIATE")
                conn.execute("DELETE FROM pending WHERE key IN (SELECT key FROM outgoing.cache)")
                conn.execute("INSERT OR IGNORE INTO merged (name) VALUES (?)", (name,))
                published += conn.execute("SELECT COUNT(*) FROM outgoing.cache").fetchone()[0]
                conn.execute("COMMIT")
                conn.execute("DETACH DATABASE outgoing")
            finally:
                outgoing.unlink(missing_ok=True)
        finally:
            conn.close()
    return published
