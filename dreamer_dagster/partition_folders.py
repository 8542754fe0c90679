"""User partitions in the output folder: ``<step>/_partitions/<key>/``, one step folder each.

A partition key is data (a date, a language, a topic a sensor added), never trusted as
a path: :func:`partition_folder_name` keeps a plain key (lower-case letters, digits,
``.`` and ``-``, not starting with ``.``, no ``..``, at most 64 characters: ``2026-12-01``,
``en``)
as it is, and writes any other one as ``_<readable part>_<hash>``. A plain name never
starts with ``_``, so the two forms never meet, and two keys never share a folder
(the hash is of the exact key; case-insensitive disks are why upper case is hashed).

Each partition folder is a :class:`~dreamer_dagster.output_folder.StepFolder` of its
own (step.json, lock, reuse / back up / restore), reached through
``StepFolder.partition(key)``. :func:`load_partitions` reads several partitions of a
step back as one dataset, in the order given (what a step reading all partitions gets).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .fingerprint import fingerprint

if TYPE_CHECKING:
    from .output_folder import StepFolder

__all__ = [
    "MissingPartitionsError",
    "load_partitions",
    "partition_folder_name",
    "partition_run_fingerprint",
]

_PLAIN = re.compile(r"[a-z0-9][a-z0-9.-]{0,63}")
_READABLE = re.compile(r"[^a-z0-9]+")
_HASH_LENGTH = 16


class MissingPartitionsError(FileNotFoundError):
    """Partitions a step reads have no finished output of its declared configuration."""


def partition_folder_name(key: str) -> str:
    """The folder name of partition ``key``: the key itself when it is plain
    (``2026-12-01``, ``en``), else ``_<letters and digits, '-' between>_<16 hex digits of
    its hash>`` (``"Fr/../x"`` -> ``_fr-x_<hash>``)."""
    if not isinstance(key, str) or not key:
        raise ValueError(f"A partition key must be a non-empty string, got {key!r}.")
    if _PLAIN.fullmatch(key) and ".." not in key:
        return key
    readable = _READABLE.sub("-", key.lower()).strip("-")[:40]
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:_HASH_LENGTH]
    return f"_{readable}_{digest}" if readable else f"_{digest}"


def partition_run_fingerprint(
    step_fingerprint: str, key: str | None, reads: Mapping[str, Sequence[str]] | None = None
) -> str:
    """The fingerprint of one run of a step over partitions: the step's, its own
    partition ``key`` (None: the step is not partitioned) and the partitions of each
    partitioned upstream step it reads (``reads``: step key -> partition keys)."""
    return fingerprint(
        {
            "step": step_fingerprint,
            "partition": key,
            "reads": {name: list(keys) for name, keys in sorted((reads or {}).items())},
        }
    )


def load_partitions(step_folder: StepFolder, keys: Sequence[str], step_fingerprint: str | None) -> Any:
    """Partitions ``keys`` of the step in ``step_folder``, concatenated in that order as one
    ``datasets.Dataset`` (each checked against its step.json first). A partition without a
    finished output of ``step_fingerprint`` (the declared configuration) raises
    :class:`MissingPartitionsError` naming them all."""
    missing, parts = [], []
    for key in keys:
        folder = step_folder.partition(key)
        record = folder.step_json()
        if record is None or (
            step_fingerprint is not None and record.get("step_fingerprint") != step_fingerprint
        ):
            missing.append(key)
            continue
        parts.append((folder, record))
    if missing:
        raise MissingPartitionsError(
            f"Step {step_folder.name!r}: partitions {missing} have no finished output of its declared "
            f"configuration in {step_folder.path}. Fix: materialize those partitions first "
            f"(`dagster asset materialize --select {step_folder.name} --partition <key>`, or a backfill)."
        )
    import datasets

    loaded = [folder.load_dataset(record) for folder, record in parts]
    if not loaded:
        return datasets.Dataset.from_dict({})
    non_empty = [part for part in loaded if len(part)] or loaded[:1]
    return datasets.concatenate_datasets(non_empty) if len(non_empty) > 1 else non_empty[0]
