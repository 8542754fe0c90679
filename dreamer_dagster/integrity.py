"""Trust what is on disk only after checking it: a finished step's data against its commit.

At commit, ``step.json`` records a manifest of the step's output (``_dataset``, or
``_model`` for a trainer): each file's name relative to the step folder, its size and
its xxh3_128 hash::

    "manifest": {"hash": "xxh3_128", "files": {
        "_dataset/data-00000-of-00001.arrow": {"size": 1234, "hash": "9f0c..."}, ...}}

The data version is derived from it (see :mod:`~dreamer_dagster.data_versions`), so a
commit reads each file once.

Before a finished step is reused (``StepFolder.prepare``) or read (an input loaded by the
IO manager, ``load_dataset``, ``record_batches``, a trainer's ``_model`` path, ``dreamer
verify``), its files are checked against the manifest: a file missing, of another size or
content, or one the manifest does not list (an Arrow file in ``_dataset``, any file in
``_model``) fails with :class:`~dreamer_dagster.errors.IntegrityError`, naming the step
folder, each difference and the fix; it is never retried. So rows planted in a step folder
are never read, and a planted pickled column is never unpickled (unpickling runs code).

A record without a manifest (a folder committed by the release before manifests) is
checked through the data version it recorded, derived from the files as either release
derives it. A folder checked once is not hashed again in this
process while its files keep their size, times and inode, and its record is the same.
Only names found in the folder itself are opened: a name in the manifest is never a path.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .data_versions import (
    DATASETS_CACHE_PREFIX,
    dataset_data_version,
    folder_data_version,
    manifest_dataset_version,
    manifest_folder_version,
)
from .errors import IntegrityError

__all__ = [
    "HASH_NAME",
    "MANIFEST",
    "build_manifest",
    "check_output",
    "differences",
    "fail_without_retry",
    "forget_checks",
    "hash_file",
    "integrity_error",
    "seal_dataset",
    "seal_model",
    "with_manifest",
]

#: The content hash of the manifest (``xxhash``'s XXH3, 128 bits): fast, not a hand-written one.
HASH_NAME = "xxh3_128"
#: The step.json field holding the manifest.
MANIFEST = "manifest"
_CHUNK = 1 << 22
#: Differences a message lists before "and N more".
_SHOWN = 6
#: Folders whose check passed: local path -> (stat signature, record key).
_CHECKED: dict[str, tuple[tuple, str]] = {}
_CHECKED_MAX = 4096


def hash_file(path: Path) -> tuple[int, str]:
    """``(size, xxh3_128 hex digest)`` of a file's content, read in 4 MiB chunks."""
    import xxhash

    digest = xxhash.xxh3_128()
    buffer = bytearray(_CHUNK)
    view = memoryview(buffer)
    size = 0
    with open(path, "rb", buffering=0) as handle:
        while count := handle.readinto(buffer):
            digest.update(view[:count])
            size += count
    return size, digest.hexdigest()


def _files(folder: Path) -> Iterator[tuple[str, os.DirEntry]]:
    """``(relative posix name, entry)`` of every file under ``folder`` (links not followed)."""
    stack = [(folder, "")]
    while stack:
        current, prefix = stack.pop()
        with os.scandir(current) as entries:
            for entry in entries:
                name = f"{prefix}{entry.name}"
                if entry.is_dir(follow_symlinks=False):
                    stack.append((Path(entry.path), f"{name}/"))
                else:
                    yield name, entry


def build_manifest(folder: Path) -> dict:
    """The manifest of a local output folder (``<staged>/_dataset`` or ``_model``): every file
    under it, named ``<folder name>/<relative path>``, with its size and hash."""
    files = {}
    for name, entry in sorted(_files(folder)):
        size, digest = hash_file(Path(entry.path))
        files[f"{folder.name}/{name}"] = {"size": size, "hash": digest}
    return {"hash": HASH_NAME, "files": files}


def seal_dataset(dataset_path: Path) -> dict:
    """step.json's ``data_version`` and ``manifest`` of a saved ``_dataset`` (hashed once)."""
    manifest = build_manifest(dataset_path)
    version = manifest_dataset_version(manifest["files"], _features(dataset_path))
    return {"data_version": version, MANIFEST: manifest}


def _features(dataset_path: Path) -> Any:
    """The features ``dataset_info.json`` records (None when it cannot be read)."""
    try:
        info = json.loads((dataset_path / "dataset_info.json").read_text())
    except (OSError, ValueError):
        return None
    return info.get("features") if isinstance(info, dict) else None


def seal_model(model_path: Path) -> dict:
    """step.json's ``data_version`` and ``manifest`` of a trained ``_model`` (hashed once)."""
    manifest = build_manifest(model_path)
    return {"data_version": manifest_folder_version(manifest["files"]), MANIFEST: manifest}


def with_manifest(record: dict, staged: Path) -> dict:
    """``record`` with the manifest of the output staged in ``staged`` when it has none yet
    (a record built without :func:`seal_dataset` / :func:`seal_model`), so every commit
    lists its files."""
    output = staged / ("_model" if record.get("model") else "_dataset")
    if MANIFEST in record or not output.is_dir():
        return record
    return {**record, MANIFEST: build_manifest(output)}


def _recorded_files(record: dict, name: str) -> dict[str, dict] | None:
    """The manifest's entries under ``name`` (``_dataset`` / ``_model``); None when the
    manifest is not one this library writes."""
    manifest = record.get(MANIFEST)
    if not isinstance(manifest, dict) or manifest.get("hash") != HASH_NAME:
        return None
    files = manifest.get("files")
    if not isinstance(files, dict):
        return None
    found = {}
    for key, entry in files.items():
        if not (isinstance(entry, dict) and isinstance(entry.get("size"), int)):
            return None
        if not isinstance(entry.get("hash"), str):
            return None
        if isinstance(key, str) and key.startswith(f"{name}/"):
            found[key] = entry
    return found


def _counts(name: str, relative: str) -> bool:
    """Whether a file the manifest does not list matters: any file in ``_model``; in a
    ``_dataset``, an Arrow file other than a reader's ``cache-*`` file."""
    if name != "_dataset":
        return True
    base = relative.rsplit("/", 1)[-1]
    return base.endswith(".arrow") and not base.startswith(DATASETS_CACHE_PREFIX)


def _is_reader_cache(name: str, relative: str) -> bool:
    """Whether ``relative`` (a name under ``name``) is a ``datasets`` cache file of a reader."""
    return name == "_dataset" and relative.rsplit("/", 1)[-1].startswith(DATASETS_CACHE_PREFIX)


def differences(folder: Path, record: dict) -> list[str]:
    """What differs between the local output folder ``folder`` (a step's ``_dataset`` or
    ``_model``) and what its step.json ``record`` recorded at commit; [] when nothing."""
    name = folder.name
    if MANIFEST not in record:
        return _legacy_differences(folder, record)
    recorded = _recorded_files(record, name)
    if recorded is None:
        return [f"step.json's {MANIFEST} is not one this library writes (hand-edited?)"]
    if not recorded:
        return [f"step.json's {MANIFEST} lists no file of {name} (hand-edited?)"]
    present = dict(_files(folder)) if folder.is_dir() else {}
    problems = []
    for key, entry in recorded.items():
        found = present.get(key[len(name) + 1 :])
        if found is None:
            problems.append(f"{key} is missing")
            continue
        if not found.is_file():  # a pipe, a device or a dangling link is never read
            problems.append(f"{key} is not a regular file")
            continue
        size = found.stat().st_size
        if size != entry["size"]:
            problems.append(f"{key} has {size} bytes, step.json recorded {entry['size']}")
            continue
        _, digest = hash_file(Path(found.path))
        if digest != entry["hash"]:
            problems.append(
                f"{key} has other content ({HASH_NAME} {digest[:12]}..., step.json recorded "
                f"{entry['hash'][:12]}...)"
            )
    for relative in sorted(present):
        key = f"{name}/{relative}"
        if key not in recorded and _counts(name, relative):
            kind = "an Arrow file" if relative.endswith(".arrow") else "a file"
            problems.append(f"{key} is {kind} step.json does not list")
    return problems


def _legacy_differences(folder: Path, record: dict) -> list[str]:
    """A record without a manifest (committed before manifests, or the field removed): the
    folder is checked through the data version it recorded, derived from its files either
    as a commit now derives it or as the release before manifests did (SHA-256)."""
    if not folder.is_dir():
        return [f"{folder.name} is missing"]
    recorded = record.get("data_version")
    files = {
        key: entry
        for key, entry in build_manifest(folder)["files"].items()
        if not _is_reader_cache(folder.name, key)
    }
    if record.get("model"):
        derived, legacy = manifest_folder_version(files), folder_data_version
    else:
        derived, legacy = manifest_dataset_version(files, _features(folder)), dataset_data_version
    if recorded == derived or recorded == legacy(folder):
        return []
    return [
        f"{folder.name} does not hash to the data version step.json recorded ({recorded}; a record "
        "without a manifest, so which file changed is not known)"
    ]


def _signature(folder: Path, name: str) -> tuple:
    """Each file's name, size, times and inode: what a change to the folder changes."""
    stats = []
    for relative, entry in _files(folder):
        if _is_reader_cache(name, relative):
            continue
        try:
            stat = entry.stat()  # what a reader reads (a link's target)
        except OSError:
            stat = entry.stat(follow_symlinks=False)
        stats.append((relative, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino))
    return tuple(sorted(stats))


def check_output(folder: Path, record: dict, where: Any = None) -> None:
    """Raise :class:`IntegrityError` unless the local output folder ``folder`` holds what
    ``record`` (its step.json) recorded; ``where`` names the step folder in the message (the
    remote one for a downloaded copy; default ``folder``'s parent). A folder that passed is
    not hashed again while its files and the record stay the same."""
    key = str(folder.absolute())
    record_key = json.dumps(
        [record.get(MANIFEST), record.get("data_version"), bool(record.get("model"))],
        sort_keys=True,
        default=str,
    )
    signature = _signature(folder, folder.name) if folder.is_dir() else ()
    if signature and _CHECKED.get(key) == (signature, record_key):
        return
    problems = differences(folder, record)
    if problems:
        _CHECKED.pop(key, None)
        raise integrity_error(where if where is not None else folder.parent, record, problems, folder)
    if len(_CHECKED) >= _CHECKED_MAX:
        _CHECKED.clear()
    _CHECKED[key] = (signature, record_key)


def forget_checks() -> None:
    """Forget every check that passed in this process (the next check hashes again)."""
    _CHECKED.clear()


def integrity_error(
    where: Any, record: dict, problems: list[str], local: Path | None = None
) -> IntegrityError:
    """The error for a step folder ``where`` whose files differ from its record."""
    name = record.get("name")
    step = f"Step {name!r}: " if isinstance(name, str) and name else ""
    shown = problems[:_SHOWN] + ([f"and {len(problems) - _SHOWN} more"] if len(problems) > _SHOWN else [])
    copy = (
        f" (read from its local copy {local})"
        if local is not None and local.parent != Path(str(where))
        else ""
    )
    return IntegrityError(
        f"{step}the step folder {where}{copy} does not hold what its step.json recorded when the "
        f"step finished: {'; '.join(shown)}. It changed after it was written (by hand, by another "
        "program, or a damaged disk), so it is neither reused nor read. Fix: run `dreamer verify -f "
        "<definitions file>` to list every step that changed; then restore the folder (from "
        "_backups/<step>/<fingerprint>/ or a copy), or run the step again with force=True so it is "
        "computed anew (its model calls come from the model cache)."
    )


@contextmanager
def fail_without_retry(*kinds: type[BaseException]) -> Iterator[None]:
    """Within the block, an error of ``kinds`` (default :class:`IntegrityError`) becomes
    ``dg.Failure(allow_retries=False)`` with the same message, so a step's retry policy
    never runs it again (under a retry policy, Dagster retries any other exception)."""
    import dagster as dg

    caught = kinds or (IntegrityError,)
    try:
        yield
    except caught as error:
        raise dg.Failure(description=str(error), allow_retries=False) from error
