"""Values read from the output folder are data, never paths: a fingerprint planted in
step.json or _in_progress.json, a data version on an S3 folder, a lease file, a published
cache file's name or a symlink never make the library move, delete or write anything
outside the output folder; the step runs again (with a warning naming the file) or fails
naming the path."""

from __future__ import annotations

import json
import os
from pathlib import Path

import dagster as dg
import pytest

from dreamer_dagster import Pipeline
from dreamer_dagster.errors import OutputFolderError
from dreamer_dagster.filesystem import files_for
from dreamer_dagster.output_folder import OutputFolder
from tests.support.foundation import counting_source, materialize, rows, runs, step_json

MARKER = "marker.txt"


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    """A folder outside the output folder that nothing may touch."""
    folder = tmp_path / "victim"
    folder.mkdir()
    (folder / MARKER).write_text("keep me")
    return folder


def untouched(folder: Path, entries: list[str] | None = None) -> bool:
    """Whether ``folder`` still holds exactly ``entries`` (default: the marker) and its marker."""
    found = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))
    marker = next(folder.rglob(MARKER), None)
    return found == sorted(entries or [MARKER]) and marker is not None and marker.read_text() == "keep me"


def planted(kind: str, victim: Path, ups: int) -> str:
    """A value planted where a fingerprint or data version belongs."""
    if kind == "absolute":
        return str(victim)
    if kind == "dotdot":  # enough ../ to climb from where the value is joined to the victim
        return "../" * ups + victim.name
    return "a" * 64  # a fingerprint far too long (and not a path)


def warnings_of(instance: dg.DagsterInstance, result: dg.ExecuteInProcessResult) -> str:
    return "\n".join(entry.user_message for entry in instance.all_logs(result.run_id))


def error_text(error: BaseException) -> str:
    """The messages of an error and every error behind it."""
    texts, seen = [], set()
    while error is not None and id(error) not in seen:  # a chain can loop back on itself
        seen.add(id(error))
        texts.append(str(error))
        error = error.__cause__ or error.__context__
    return "\n".join(texts)


def source_step(output: str | Path, tmp_path: Path, values: tuple[str, ...] = ("a", "b")):
    with Pipeline(str(output)):
        return counting_source("Source", tmp_path / "source.count", list(values))


# -- step.json and _in_progress.json on a local disk ---------------------------------------


@pytest.mark.parametrize("kind", ["absolute", "dotdot", "too-long"])
@pytest.mark.parametrize("record", ["step.json", "_in_progress.json"])
def test_a_planted_fingerprint_is_never_a_path(record, kind, tmp_path, instance, victim):
    output = tmp_path / "output"
    source = source_step(output, tmp_path)
    materialize([source], instance, output)
    folder = output / source.folder
    # _backups/<step>/<fingerprint>: three ../ climb to tmp_path, beside the victim.
    value = planted(kind, victim, ups=3)
    if record == "step.json":
        changed = {**json.loads((folder / "step.json").read_text()), "fingerprint": value}
        (folder / "step.json").write_text(json.dumps(changed))
    else:  # a run that started and never finished, as far as the folder says
        (folder / "step.json").unlink()
        (folder / "_in_progress.json").write_text(json.dumps({"fingerprint": value}))

    result = materialize([source], instance, output)

    assert untouched(victim)
    assert runs(tmp_path / "source.count") == 2  # ran again (a model step: from its cache)
    assert step_json(output, source)["fingerprint"] == source.fingerprint
    assert rows(output, source) == {"text": ["a", "b"]}
    log = warnings_of(instance, result)
    assert f"{folder / record} names the fingerprint" in log and "not trusted" in log
    backups = output / "_backups"
    assert not backups.exists() or all(
        len(p.name) == 16 for p in backups.rglob("*") if p.parent.parent == backups
    )


# -- a data version on an object store ------------------------------------------------------


@pytest.mark.parametrize("kind", ["absolute", "dotdot"])
def test_a_planted_data_version_on_s3_is_never_a_download_path(
    kind, s3_output, tmp_path, instance, victim, monkeypatch
):
    with Pipeline(s3_output):
        source = counting_source("Source", tmp_path / "source.count", ["a", "b"])
        first = source.take(1, name="First")
    monkeypatch.setenv("DREAMER_LOCAL_FOLDER", str(tmp_path / "worker-a"))
    materialize([first], instance, s3_output)
    folder = OutputFolder(s3_output).step(source.folder)
    # <local folder>/<slug>/.downloads/<step>/<data version>: four ../ climb to tmp_path.
    record = {**folder.files.read_json(folder.step_json_path), "data_version": planted(kind, victim, ups=4)}
    folder.files.write_json(folder.step_json_path, record)

    monkeypatch.setenv("DREAMER_LOCAL_FOLDER", str(tmp_path / "worker-b"))  # the victim's machine
    result = materialize([first], instance, s3_output)

    assert untouched(victim)
    assert runs(tmp_path / "source.count") == 2
    assert rows(s3_output, first) == {"text": ["a"]}
    log = warnings_of(instance, result)
    assert f"{folder.step_json_path} names the data_version" in log and "not trusted" in log


# -- lease files and published cache files ---------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content", "why"),
    [
        ("000000000007.json", {"owner": "/victim", "expires": "never"}, "expiry is not a finite number"),
        ("0000000000009.json", {}, "not a lease file"),  # 13 digits: not a name the lock writes
    ],
)
def test_a_planted_lease_file_is_not_trusted(
    name, content, why, s3_output, tmp_path, instance, victim, monkeypatch, caplog
):
    source = source_step(s3_output, tmp_path)
    folder = OutputFolder(s3_output)
    folder.files.write_bytes(folder.root / ".locks" / source.folder / name, json.dumps(content).encode())
    monkeypatch.setenv("DREAMER_LEASE_SECONDS", "1")  # an unreadable lease is free after 1 s

    with caplog.at_level("WARNING", logger="dreamer_dagster.step_lock"):
        materialize([source], instance, s3_output)

    assert untouched(victim)
    assert runs(tmp_path / "source.count") == 1
    assert name in caplog.text and why in caplog.text


def test_a_planted_worker_cache_name_is_never_merged(tmp_path, instance, monkeypatch, caplog):
    from dreamer_dagster.llms import OpenAI
    from dreamer_dagster.steps import DataSource, ProcessWithPrompt
    from tests.support.openai_server import FakeOpenAIServer

    output = (tmp_path / "shared").as_uri()  # a disk several machines share
    with FakeOpenAIServer() as server:
        for worker in ("a", "b"):
            monkeypatch.setenv("DREAMER_LOCAL_FOLDER", str(tmp_path / f"worker-{worker}"))
            with Pipeline(output) as pipeline:
                source = DataSource("Inputs", {"text": ["one", "two", "three"]})
                ProcessWithPrompt(
                    "Processed",
                    inputs={"inputs": source.output["text"]},
                    args={"llm": OpenAI("fake-chat", base_url=server.base_url), "instruction": "Shorten it."},
                )
            defs = pipeline.definitions()
            with caplog.at_level("WARNING", logger="dreamer_dagster.cache"):
                dg.materialize(list(defs.assets), instance=instance, resources=dict(defs.resources))
            if worker == "a":
                assert server.request_count == 3
                [published] = (tmp_path / "shared" / ".cache").glob("*/*.db")
                published.rename(published.with_name("planted.db"))  # not <host>-<pid>-<12 hex>.db
                OutputFolder(output).files.remove_tree(OutputFolder(output).root / "processed")
        assert server.request_count == 6  # worker b merged nothing from the planted file
    assert "planted.db" in caplog.text and "not trusted" in caplog.text


# -- symlinks and the filesystem layer ------------------------------------------------------


def test_a_symlink_out_of_the_output_folder_is_never_followed_to_move_or_delete(tmp_path, instance, victim):
    output = tmp_path / "output"
    source = source_step(output, tmp_path)
    materialize([source], instance, output)
    (victim / source.fingerprint).mkdir()
    (victim / source.fingerprint / MARKER).write_text("keep me")
    (victim / MARKER).unlink()
    (output / "_backups").mkdir()
    (output / "_backups" / source.folder).symlink_to(victim)  # _backups/<step> leads outside

    changed = source_step(output, tmp_path, ("a", "b", "c"))  # backing up the old folder is next
    with pytest.raises(Exception) as failed:
        materialize([changed], instance, output)

    assert untouched(victim, [source.fingerprint, f"{source.fingerprint}/{MARKER}"])
    text = error_text(failed.value)
    assert "outside the output folder" in text and str(output / "_backups" / source.folder) in text
    assert step_json(output, source)["fingerprint"] == source.fingerprint  # left where it was


def test_a_symlinked_step_output_is_removed_as_a_link(tmp_path, instance, victim):
    output = tmp_path / "output"
    source = source_step(output, tmp_path)
    materialize([source], instance, output)
    folder = output / source.folder
    # An unfinished run of this configuration whose _dataset is a link to the victim.
    (folder / "step.json").unlink()
    (folder / "_in_progress.json").write_text(json.dumps({"fingerprint": source.fingerprint}))
    import shutil

    shutil.rmtree(folder / "_dataset")
    (folder / "_dataset").symlink_to(victim)

    materialize([source], instance, output)

    assert untouched(victim)
    assert not (folder / "_dataset").is_symlink() and rows(output, source) == {"text": ["a", "b"]}


@pytest.mark.parametrize("where", ["local", "file-url", "s3"])
def test_the_filesystem_layer_changes_nothing_outside_its_root(where, tmp_path, victim, request):
    if where == "s3":
        bucket = request.getfixturevalue("s3_output").rsplit("/", 1)[0]
        folder = OutputFolder(f"{bucket}/output")
        outside = folder.root.parent / "victim"
        files_for(outside).write_bytes(outside / MARKER, b"keep me")  # the bucket's other prefix
    else:
        output = tmp_path / "output"
        folder = OutputFolder(output.as_uri() if where == "file-url" else output)
        outside = victim
    files, root = folder.files, folder.root
    files.write_bytes(root / "step" / "x", b"x") if files.remote else files.make_dirs(root / "step")
    attempts = [
        lambda: files.remove_tree(outside),
        lambda: files.remove_tree(root / "_backups" / "step" / "../../../victim"),
        lambda: files.remove_file(root / ".." / "victim" / MARKER),
        lambda: files.move_folder(root / "step", outside),
        lambda: files.move_folder(outside, root / "step"),
        lambda: files.write_json(outside / "planted.json", {}),
        lambda: files.remove_tree(root),
    ]
    for attempt in attempts:
        with pytest.raises(OutputFolderError, match="outside the output folder"):
            attempt()
    if where == "s3":
        assert files.read_bytes(outside / MARKER) == b"keep me"
        assert files.list_names(outside) == [MARKER]
    else:
        assert untouched(victim)
    assert files.exists(root / "step")


def test_a_backup_path_is_made_only_of_a_fingerprint(tmp_path):
    folder = OutputFolder(tmp_path / "output").step("step")
    assert (
        folder.backup_path("0123456789abcdef")
        == tmp_path / "output" / "_backups" / "step" / "0123456789abcdef"
    )
    for value in ("/etc", "../../x", "0123456789ABCDEF", "0123456789abcdef0", ""):
        with pytest.raises(OutputFolderError, match="not one this library writes"):
            folder.backup_path(value)
    assert not os.path.exists(tmp_path / "output" / "_backups")
