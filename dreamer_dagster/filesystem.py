"""Where the output folder lives: a local disk, or any fsspec filesystem (S3, GCS...).

Used only by :mod:`~dreamer_dagster.output_folder` (and the model cache's and the
step lock's shared parts): it does the moves, copies, uploads, downloads and
atomic writes; the output folder decides what goes where.

- A local path (or a ``file://`` URL, a shared disk) is a plain :class:`pathlib.Path`,
  handled by :class:`LocalFiles`: renames are atomic (``os.replace``), small JSON
  files are written to a temporary name, synced and renamed into place.
- A URL of any other fsspec protocol (``s3://bucket/prefix``, ``gs://...``) or a
  ``upath.UPath`` is handled by :class:`RemoteFiles` over universal-pathlib. An
  object store has no rename: a small file is one PUT (atomic: readers see the
  old object or the new one, never half of it), and a folder moves by copying
  every file, the commit mark last, then deleting the source, the commit mark
  first. So a folder is never taken for a finished one while half copied.

Both are bound to the folder they may change (``files_for(root)``): every write, move
and removal first checks that its path lies inside that root (symlinks resolved on a
local disk; no ``..`` or empty segment on a remote one), and raises
:class:`~dreamer_dagster.errors.OutputFolderError` naming the path otherwise, so no
value planted in the output folder, and no bug, moves or deletes anything outside it.

Credentials and endpoints come from the filesystem's standard variables
(``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
``GOOGLE_APPLICATION_CREDENTIALS``...) or from ``storage_options`` (whose ``dg.EnvVar``
values are read from the environment when the folder is opened); neither enters a
fingerprint, step.json or metadata.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from .errors import OutputFolderError
from .storage_options import resolve_storage_options

__all__ = [
    "LocalFiles",
    "RemoteFiles",
    "files_for",
    "is_remote",
    "resolve_location",
    "url_of",
]

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_LOCAL_PROTOCOLS = frozenset({"", "file", "local"})


def is_remote(location: Any) -> bool:
    """Whether ``location`` (a path, a URL or a UPath) is on a non-local fsspec filesystem."""
    if _is_upath(location):
        return location.protocol not in _LOCAL_PROTOCOLS
    text = os.fspath(location) if isinstance(location, os.PathLike) else str(location)
    return bool(_URL.match(text)) and text.split("://", 1)[0].lower() not in _LOCAL_PROTOCOLS


def _is_upath(value: Any) -> bool:
    return type(value).__module__.startswith("upath")


def url_of(location: Any) -> str:
    """``location`` as a string (a URL for a remote folder, an absolute path for a local one),
    without touching any filesystem: cheap enough for definitions loading."""
    if is_remote(location):
        return str(location).rstrip("/")
    return str(resolve_location(location))


def resolve_location(location: Any, storage_options: Mapping[str, Any] | None = None) -> Any:
    """A local ``Path`` (absolute), or a ``UPath`` for a remote folder.

    ``file:///shared/output`` and a local ``UPath`` become a plain Path (local
    renames and locks work there, also on a shared disk). A ``dg.EnvVar`` among the
    storage options is read from the environment here (see
    :mod:`~dreamer_dagster.storage_options`).
    """
    if _is_upath(location):
        if location.protocol in _LOCAL_PROTOCOLS:
            return Path(location.path).expanduser().resolve()
        merged = {**location.storage_options, **(storage_options or {})}
        resolved = resolve_storage_options(merged)
        if storage_options or resolved != merged:
            from upath import UPath

            return UPath(str(location), **resolved)
        return location
    text = os.fspath(location) if isinstance(location, os.PathLike) else str(location)
    if _URL.match(text):
        protocol = text.split("://", 1)[0].lower()
        if protocol in _LOCAL_PROTOCOLS:
            return Path(unquote(urlsplit(text).path)).expanduser().resolve()
        from upath import UPath

        return UPath(text.rstrip("/"), **resolve_storage_options(storage_options))
    return Path(text).expanduser().resolve()


def files_for(root: Any) -> LocalFiles | RemoteFiles:
    """The file operations for the folder ``root`` (a Path or a UPath): they write, move
    and remove only inside it."""
    return RemoteFiles(root) if is_remote(root) else LocalFiles(root)


def _outside(path: Any, root: Any, action: str) -> OutputFolderError:
    return OutputFolderError(
        f"Refusing to {action} {path}: it lies outside the output folder {root} (a symlink, or a "
        "path or name planted in the output folder?); nothing outside the output folder is ever "
        "changed. Fix: remove whatever in the output folder leads there (a symlink, a hand-edited "
        "step.json or _in_progress.json), then run again."
    )


class LocalFiles:
    """File operations on a local disk (or a shared disk mounted as one), inside ``root``."""

    remote = False

    def __init__(self, root: Path):
        self.root = Path(os.path.realpath(root))

    def check_inside(self, path: Path, base: Path | None = None, action: str = "change") -> None:
        """Raise :class:`OutputFolderError` unless ``path`` lies strictly inside ``base``
        (default: the root). Symlinks above ``path`` are resolved; ``path`` itself is not
        followed (a symlink there is removed or moved as a link)."""
        base = self.root if base is None else Path(os.path.realpath(base))
        path = Path(path)
        name = path.name
        real = Path(os.path.realpath(path.parent)) / name
        if name in ("", ".", "..") or real == base or not real.is_relative_to(base):
            raise _outside(path, base, action)

    @staticmethod
    def exists(path: Path) -> bool:
        return path.exists()

    @staticmethod
    def is_file(path: Path) -> bool:
        return path.is_file()

    @staticmethod
    def is_dir(path: Path) -> bool:
        return path.is_dir()

    @staticmethod
    def list_names(path: Path) -> list[str]:
        try:
            return sorted(child.name for child in path.iterdir())
        except (FileNotFoundError, NotADirectoryError):
            return []

    @staticmethod
    def read_json(path: Path) -> dict | None:
        try:
            with open(path) as handle:
                data = json.load(handle)
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def write_json(self, path: Path, data: dict) -> None:
        """Write ``data`` atomically: a temporary file, synced, renamed into place."""
        self.check_inside(path, action="write")
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        with open(tmp, "w") as handle:
            json.dump(data, handle, indent=2, sort_keys=False, default=str)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)

    def make_dirs(self, path: Path) -> None:
        if path != self.root:
            self.check_inside(path, action="make")
        path.mkdir(parents=True, exist_ok=True)

    def remove_file(self, path: Path) -> None:
        self.check_inside(path, action="remove")
        path.unlink(missing_ok=True)

    def remove_tree(self, path: Path) -> None:
        self.check_inside(path, action="remove")
        _remove_local(path)

    def move_folder(self, source: Path, target: Path, commit_mark: str | None = None) -> None:
        """Move ``source`` to ``target`` (replacing it) with one rename."""
        self.check_inside(source, action="move")
        self.check_inside(target, action="move a folder to")
        _remove_local(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(source, target)

    def move_file(self, source: Path, target: Path) -> None:
        self.check_inside(source, action="move")
        self.check_inside(target, action="move a file to")
        os.replace(source, target)

    def put_file(self, local: Path, target: Path) -> None:
        """Copy a local file to ``target``, whole or not at all (a copy, then a rename)."""
        self.check_inside(target, action="write")
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
        shutil.copyfile(local, tmp)
        os.replace(tmp, target)

    @staticmethod
    def get_file(source: Path, local: Path) -> None:
        shutil.copyfile(source, local)

    def put_folder(self, local: Path, target: Path, keep_as: Path | None = None) -> None:
        """Move a finished local work folder into place (a rename on the same disk)."""
        self.check_inside(target, action="replace")
        _remove_local(target)
        os.replace(local, target)


def _remove_local(path: Path) -> None:
    """Remove a folder, a file, or a symlink (the link itself, never what it points to)."""
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path)


class RemoteFiles:
    """File operations on an fsspec filesystem through universal-pathlib, inside ``root``.

    Listings are never taken from fsspec's cache: another worker may have changed
    the folder since.
    """

    remote = True

    def __init__(self, root: Any):
        self.root = root
        self._root_raw = str(root.path).rstrip("/")

    def check_inside(self, path: Any, base: Any = None, action: str = "change") -> None:
        """Raise :class:`OutputFolderError` unless ``path`` lies strictly inside ``base``
        (default: the root), on the same filesystem, by plain segments (no ``.``, ``..``
        or empty one)."""
        base_raw = self._root_raw if base is None else str(base.path).rstrip("/")
        raw = str(getattr(path, "path", ""))
        rest = raw[len(base_raw) + 1 :] if raw.startswith(base_raw + "/") else ""
        same_fs = getattr(path, "protocol", None) == getattr(self.root, "protocol", None)
        if not same_fs or not rest or any(part in ("", ".", "..") for part in rest.split("/")):
            raise _outside(path, self.root if base is None else base, action)

    @staticmethod
    def _fs_path(path: Any) -> tuple[Any, str]:
        fs = path.fs
        return fs, path.path

    def exists(self, path: Any) -> bool:
        fs, raw = self._fs_path(path)
        fs.invalidate_cache(raw)
        return fs.exists(raw)

    def is_file(self, path: Any) -> bool:
        fs, raw = self._fs_path(path)
        fs.invalidate_cache(raw)
        return fs.isfile(raw)

    def is_dir(self, path: Any) -> bool:
        fs, raw = self._fs_path(path)
        fs.invalidate_cache(raw)
        return fs.isdir(raw)

    def list_names(self, path: Any) -> list[str]:
        fs, raw = self._fs_path(path)
        fs.invalidate_cache(raw)
        try:
            entries = fs.ls(raw, detail=False)
        except FileNotFoundError:
            return []
        names = (entry.rstrip("/").rsplit("/", 1)[-1] for entry in entries)
        return sorted(name for name in names if name not in ("", ".", ".."))

    def read_bytes(self, path: Any) -> bytes | None:
        fs, raw = self._fs_path(path)
        try:
            return fs.cat_file(raw)
        except (FileNotFoundError, IsADirectoryError):
            return None

    def read_json(self, path: Any) -> dict | None:
        data = self.read_bytes(path)
        if data is None:
            return None
        try:
            value = json.loads(data)
        except ValueError:
            return None
        return value if isinstance(value, dict) else None

    def write_json(self, path: Any, data: dict) -> None:
        """One PUT: readers see the old object or the new one, never a part."""
        self.write_bytes(path, json.dumps(data, indent=2, sort_keys=False, default=str).encode())

    def write_bytes(self, path: Any, data: bytes) -> None:
        self.check_inside(path, action="write")
        fs, raw = self._fs_path(path)
        fs.pipe_file(raw, data)
        fs.invalidate_cache(raw)

    def create_exclusive(self, path: Any, data: bytes) -> bool:
        """Write ``path`` only if it does not exist (S3's ``If-None-Match: *``); False if it did."""
        self.check_inside(path, action="write")
        fs, raw = self._fs_path(path)
        try:
            fs.pipe_file(raw, data, mode="create")
        except FileExistsError:
            return False
        finally:
            fs.invalidate_cache(raw)
        return True

    def make_dirs(self, path: Any) -> None:
        """Object stores have no folders; a folder exists once a file is in it."""

    def remove_file(self, path: Any) -> None:
        self.check_inside(path, action="remove")
        fs, raw = self._fs_path(path)
        with contextlib.suppress(FileNotFoundError):
            fs.rm_file(raw)
        fs.invalidate_cache(raw)

    def remove_tree(self, path: Any) -> None:
        self.check_inside(path, action="remove")
        fs, raw = self._fs_path(path)
        fs.invalidate_cache(raw)
        files = self._files(fs, raw)
        if files:
            fs.rm(files)
        fs.invalidate_cache(raw)

    @staticmethod
    def _files(fs: Any, raw: str) -> list[str]:
        try:
            return sorted(fs.find(raw))
        except FileNotFoundError:
            return []

    def move_folder(self, source: Any, target: Any, commit_mark: str | None = None) -> None:
        """Copy every file of ``source`` to ``target`` (the commit mark last), then delete the
        source (the commit mark first): at no point is a half-copied folder finished."""
        self.check_inside(source, action="move")
        self.check_inside(target, action="move a folder to")
        fs, src = self._fs_path(source)
        _, dst = self._fs_path(target)
        self.remove_tree(target)
        files = self._files(fs, src)
        mark = f"{src}/{commit_mark}" if commit_mark else None
        ordered = [f for f in files if f != mark] + ([mark] if mark in files else [])
        for file in ordered:
            fs.copy(file, dst + file[len(src) :])
        if mark in files:
            fs.rm_file(mark)
        rest = [f for f in files if f != mark]
        if rest:
            fs.rm(rest)
        fs.invalidate_cache(src)
        fs.invalidate_cache(dst)

    def move_file(self, source: Any, target: Any) -> None:
        self.check_inside(source, action="move")
        self.check_inside(target, action="move a file to")
        fs, src = self._fs_path(source)
        fs.copy(src, self._fs_path(target)[1])
        fs.rm_file(src)
        fs.invalidate_cache(src)

    def put_folder(self, local: Path, target: Any, keep_as: Path | None = None) -> None:
        """Upload a finished local work folder to ``target`` (replacing it); then the local
        folder is deleted, or renamed to ``keep_as`` (a local copy worth keeping)."""
        self.check_inside(target, action="replace")
        fs, dst = self._fs_path(target)
        self.remove_tree(target)
        files = sorted(p for p in Path(local).rglob("*") if p.is_file())
        if files:
            fs.put([str(p) for p in files], [f"{dst}/{p.relative_to(local).as_posix()}" for p in files])
        fs.invalidate_cache(dst)
        if keep_as is not None and not keep_as.exists():
            keep_as.parent.mkdir(parents=True, exist_ok=True)
            os.replace(local, keep_as)
        else:
            shutil.rmtree(local, ignore_errors=True)

    def get_folder(self, source: Any, local: Path) -> None:
        """Download ``source`` into the local folder ``local`` (made fresh; renamed into place
        only when every file is there)."""
        fs, src = self._fs_path(source)
        files = self._files(fs, src)
        if not files:
            raise FileNotFoundError(f"{source} is missing or empty.")
        work = local.with_name(f".{local.name}.{uuid.uuid4().hex}.partial")
        work.mkdir(parents=True)
        try:
            fs.get(files, [str(work / f[len(src) :].lstrip("/")) for f in files])
            if local.exists():
                shutil.rmtree(local)
            os.replace(work, local)
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def get_file(self, source: Any, local: Path) -> None:
        fs, src = self._fs_path(source)
        fs.get_file(src, str(local))

    def put_file(self, local: Path, target: Any) -> None:
        """Upload one file (one PUT for a small file: whole or not at all)."""
        self.check_inside(target, action="write")
        fs, dst = self._fs_path(target)
        fs.put_file(str(local), dst)
        fs.invalidate_cache(dst)
