"""Output folders written by earlier releases, moved under DataDreamer's folder names.

Releases up to 0.1.x named a step's folder by its asset key (``write_tweets``, and
``outer_inner`` for a step run inside a SuperStep); the folders now follow DataDreamer's
rule (``write-tweets``, ``outer/inner``; see :func:`~dreamer_dagster.names.folder_name`).
Nothing paid for is lost: the first time a process opens an output folder
(:func:`upgrade_output_folder`), each top-level step folder is matched to its step by
the name its ``step.json`` records (a sharded or partitioned step's: by its first shard's
or partition's), and moved whole under the new name, its ``_backups/<old>/<fp>/`` too,
with a log line naming both. The model cache (``.cache/``) does not depend on step
names, so a step run again after the upgrade makes no model call either way.

A folder is moved only to a name nothing holds yet, under one output-folder-wide lock
(``.locks/.upgrade``), so processes that open the folder together never move one folder
twice; a folder whose new name is taken is left where it is, and said so. Moving (rather
than reading the old names forever) keeps one layout for ``dreamer verify``, exports and
users reading the folder.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .layout import BACKUPS, PARTITIONS, SHARDS, STEP_JSON
from .names import folder_name

if TYPE_CHECKING:
    from .output_folder import OutputFolder

__all__ = ["FolderMove", "upgrade_output_folder"]

#: The lock taken while folders move (a name no step folder can have: they never start with ".").
_LOCK_NAME = ".upgrade"
#: What a shard's or a partition's step.json adds to its step's name.
_PART_SUFFIX = re.compile(r" \((shard .+ of \d+|partition .+)\)$")
#: Output folders this process already upgraded (by URL).
_DONE: set[str] = set()

FolderMove = tuple[str, str]


def upgrade_output_folder(output: OutputFolder, log: Callable[[str], Any] | None = None) -> list[FolderMove]:
    """Move the step folders (and their backups) an earlier release wrote under their
    DataDreamer folder names; once a process per output folder. Returns the moves made,
    each ``(old, new)`` relative to the output folder, each also told to ``log``."""
    if output.url in _DONE:
        return []
    if not output.files.exists(output.root):
        _DONE.add(output.url)
        return []
    say = log or _dagster_log
    lock = output.step(_LOCK_NAME).lock()
    try:
        lock.acquire("folder upgrade")
    except OSError:
        return []  # a folder this process cannot write: nothing can move (reads still work)
    try:
        moves = _move_steps(output, say) + _move_backups(output, say)
    finally:
        lock.release()
    _DONE.add(output.url)
    return moves


def _move_steps(output: OutputFolder, say: Callable[[str], Any]) -> list[FolderMove]:
    files, moves = output.files, []
    for old in files.list_names(output.root):
        if old.startswith((".", BACKUPS)):
            continue
        new = _new_name(output, output.root / old, old)
        if new is None:
            continue
        if files.exists(output.root / new):
            say(
                f"Step folder {old!r} was written by an earlier release; its step's folder is now "
                f"{new!r}, which already exists, so {old!r} is left as it is (remove one of them)."
            )
            continue
        files.move_folder(output.root / old, output.root / new, commit_mark=STEP_JSON)
        moves.append((old, new))
        say(
            f"Moved step folder {old!r} to {new!r} (DataDreamer's folder names; written by an "
            "earlier release, its output and model calls are kept)."
        )
    return moves


def _move_backups(output: OutputFolder, say: Callable[[str], Any]) -> list[FolderMove]:
    files, moves = output.files, []
    backups = output.root / BACKUPS
    for old in files.list_names(backups):
        for fingerprint in files.list_names(backups / old):
            new = _new_name(output, backups / old / fingerprint, old)
            if new is None:
                continue
            source, target = backups / old / fingerprint, backups / new / fingerprint
            if files.exists(target):
                continue  # the same configuration is backed up under the new name already
            files.move_folder(source, target, commit_mark=STEP_JSON)
            moves.append((f"{BACKUPS}/{old}/{fingerprint}", f"{BACKUPS}/{new}/{fingerprint}"))
            say(f"Moved backup {BACKUPS}/{old}/{fingerprint} to {BACKUPS}/{new}/{fingerprint}.")
        if not files.list_names(backups / old) and files.exists(backups / old):
            files.remove_tree(backups / old)
    return moves


def _new_name(output: OutputFolder, path: Any, old: str) -> str | None:
    """The folder the step whose folder ``path`` is (named ``old``) has now, when it differs."""
    name = _step_name(output, path)
    if name is None:
        return None
    try:
        new = folder_name(name)
    except (TypeError, ValueError):
        return None  # a name the current rules refuse: its step cannot be declared either
    return new if new != old else None


def _step_name(output: OutputFolder, path: Any) -> str | None:
    """The step name a step folder's step.json records (or its first shard's or partition's)."""
    files = output.files
    record = files.read_json(path / STEP_JSON)
    if record is None:
        for part in (SHARDS, PARTITIONS):
            children = files.list_names(path / part)
            if children:
                record = files.read_json(path / part / children[0] / STEP_JSON)
                break
    if not record or record.get("type") == "asset":  # a plain @dg.asset keeps its key's folder
        return None
    name = record.get("name")
    return _PART_SUFFIX.sub("", name) if isinstance(name, str) else None


def _dagster_log(message: str) -> None:
    """Into the running step's Dagster log (the run's logs in the web UI), else the terminal."""
    import dagster as dg

    dg.get_dagster_logger("dreamer_dagster").info(message)
