"""The moves of ``step_reuse.py`` stay inside ``_backups``: a backup or restore path that is
not under ``<output>/_backups`` is refused with the exact message, locally and on an object
store, and nothing moves. Written to kill the mutants ``make mutants`` found alive in
``step_reuse.py`` (see docs/mutants.md); fast, no Dagster run."""

from __future__ import annotations

import uuid

import pytest

from dreamer_dagster import step_reuse
from dreamer_dagster.errors import OutputFolderError
from dreamer_dagster.output_folder import OutputFolder

FP = "0123456789abcdef"


def refusal(action: str, path, base) -> str:
    return (
        f"Refusing to {action} {path}: it lies outside the output folder {base} (a symlink, or a "
        "path or name planted in the output folder?); nothing outside the output folder is ever "
        "changed. Fix: remove whatever in the output folder leads there (a symlink, a hand-edited "
        "step.json or _in_progress.json), then run again."
    )


@pytest.fixture(params=["local", "memory"])
def step(request, tmp_path):
    if request.param == "local":
        output = OutputFolder(tmp_path / "out")
    else:
        output = OutputFolder(f"memory://reuse-{uuid.uuid4().hex}/out", local_folder=str(tmp_path / "w"))
    folder = output.step("tweets")
    folder.files.make_dirs(folder.path)
    folder.files.write_json(folder.path / "step.json", {"fingerprint": FP})
    return folder


def test_a_backup_outside_backups_is_refused_and_nothing_moves(step):
    # Inside the output folder but not inside _backups: the root check alone would let it pass.
    target = step.root / "elsewhere" / FP
    with pytest.raises(OutputFolderError) as raised:
        step_reuse._move_out(step, target)
    assert str(raised.value) == refusal("back up to", target, step.root / "_backups")
    assert step.files.exists(step.path / "step.json") and not step.files.exists(target)


def test_a_restore_from_outside_backups_is_refused_and_nothing_moves(step):
    source = step.root / "elsewhere" / FP
    step.files.make_dirs(source)
    step.files.write_json(source / "step.json", {"fingerprint": "planted"})
    with pytest.raises(OutputFolderError) as raised:
        step_reuse._move_in(step, source)
    assert str(raised.value) == refusal("restore from", source, step.root / "_backups")
    assert step.files.read_json(step.path / "step.json") == {"fingerprint": FP}
    assert step.files.exists(source / "step.json")
