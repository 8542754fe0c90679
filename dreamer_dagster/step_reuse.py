"""The reuse / back up / restore rules a step folder goes through before a run
(``StepFolder.prepare``), and the moves they make.

1. a finished output with the fingerprint about to run is reused;
2. a folder with another fingerprint moves to ``_backups/<step>/<its fp>/``;
3. a backup with this fingerprint is moved back;
4. otherwise the run starts (or resumes an unfinished run of this fingerprint).

A folder moves whole (one rename on a local disk), except a sharded or partitioned
step's: its ``_shards`` / ``_partitions`` stay where they are and its other entries move one by one,
``step.json`` first out of the folder and last into it, so a crash midway never
leaves a folder taken for a finished one. Every move stays inside ``_backups``
(``check_inside``).
"""

from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING, Any

from .layout import BACKUPS, PARTITIONS, SHARDS, STEP_JSON

if TYPE_CHECKING:
    from .output_folder import StepFolder

__all__ = ["Preparation", "prepare_folder"]


class Preparation(Enum):
    """What a step folder held for the fingerprint about to run."""

    FINISHED = "finished"  # a finished output with this fingerprint: reuse it
    RESTORED = "restored"  # a backup with this fingerprint was moved back
    RESUME = "resume"  # an unfinished run of this fingerprint: resume it
    FRESH = "fresh"  # nothing usable: run from the start


def prepare_folder(folder: StepFolder, fingerprint: str, verify: bool = True) -> Preparation:
    """Apply the reuse / back up / restore rules (see above) to ``folder`` for ``fingerprint``.

    A sharded step's ``_shards`` stay where they are (each shard is a step folder
    with its own rules). With ``verify``, a finished output about to be reused is first
    checked against its step.json (``StepFolder.verify_output``).
    """
    if folder.finished_fingerprint() == fingerprint:
        return _verified(folder, Preparation.FINISHED, verify)
    if folder.files.exists(folder.path):
        existing = folder.recorded_fingerprint() or folder.in_progress_fingerprint()
        if existing == fingerprint:
            return Preparation.RESUME
        if existing is not None:
            _move_out(folder, folder.backup_path(existing))
        else:
            _clear(folder)  # neither finished nor claimed by any run
    backup = folder.backup_path(fingerprint)
    if folder.files.exists(backup):
        _move_in(folder, backup)
        if folder.finished_fingerprint() == fingerprint:
            return _verified(folder, Preparation.RESTORED, verify)
        return Preparation.RESUME
    return Preparation.FRESH


def _verified(folder: StepFolder, preparation: Preparation, verify: bool) -> Preparation:
    if verify:
        folder.verify_output()
    return preparation


def _own_entries(folder: StepFolder) -> list[str] | None:
    """The entries of ``folder`` besides ``_shards`` and ``_partitions``; None when it has
    neither (then the folder moves whole, with one rename on a local disk)."""
    names = folder.files.list_names(folder.path)
    kept = {SHARDS, PARTITIONS}
    return [name for name in names if name not in kept] if kept & set(names) else None


def _clear(folder: StepFolder) -> None:
    files, entries = folder.files, _own_entries(folder)
    if entries is None:
        files.remove_tree(folder.path)
        return
    for name in [STEP_JSON, *entries]:  # not finished from the first deletion on
        target = folder.path / name
        files.remove_file(target) if files.is_file(target) else files.remove_tree(target)


def _move_out(folder: StepFolder, target: Any) -> None:
    folder.files.check_inside(target, folder.root / BACKUPS, action="back up to")
    entries = _own_entries(folder)
    if entries is None:
        folder.files.move_folder(folder.path, target, commit_mark=STEP_JSON)
        return
    folder.files.remove_tree(target)
    _move_entries(folder, folder.path, target, entries)


def _move_in(folder: StepFolder, source: Any) -> None:
    folder.files.check_inside(source, folder.root / BACKUPS, action="restore from")
    entries = _own_entries(folder)
    if entries is None:
        folder.files.move_folder(source, folder.path, commit_mark=STEP_JSON)
        return
    _clear(folder)
    _move_entries(folder, source, folder.path, folder.files.list_names(source))
    folder.files.remove_tree(source)


def _move_entries(folder: StepFolder, source: Any, target: Any, names: list[str]) -> None:
    """Move entries one by one, step.json first out of ``source`` and last into ``target``."""
    files, mark = folder.files, None
    if STEP_JSON in names:
        mark = files.read_json(source / STEP_JSON)
        files.remove_file(source / STEP_JSON)
    files.make_dirs(target)
    for name in names:
        if name == STEP_JSON:
            continue
        entry = source / name
        if files.is_file(entry):
            files.move_file(entry, target / name)
        else:
            files.move_folder(entry, target / name)
    if mark is not None:
        # Through output_folder's one JSON writer, looked up when called (tests replace
        # it to stop a run just before a step.json is written).
        from . import output_folder

        output_folder._write_json_atomic(target / STEP_JSON, mark)
