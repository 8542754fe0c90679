"""The foundation end to end with real Dagster: folder layout, step.json, code versions
and Dagster's staleness, backups and restores, crash safety, data versions, and the
errors a bad declaration raises."""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path
from typing import ClassVar

import pytest

from dreamer_dagster import Pipeline, dreamer_definitions
from dreamer_dagster import output_folder as output_folder_module
from dreamer_dagster.output_folder import OutputFolder, Preparation
from dreamer_dagster.steps import DataSource, JSONDataSource, Step, StepDeclarationError
from tests.support.foundation import (
    counting_source,
    exists,
    materialization_metadata,
    materialize,
    rows,
    runs,
    stale_statuses,
    step_json,
)


@pytest.fixture(params=["local", "s3"])
def output(request, tmp_path):
    """The output folder: a local path, or a prefix of a bucket on the loopback S3 server."""
    if request.param == "local":
        return tmp_path / "output"
    return request.getfixturevalue("s3_output")


class Upper(Step):
    """Upper-cases its ``texts`` input; writes ``texts`` and ``upper``."""

    INPUTS: ClassVar = {"texts": True}
    ARGS: ClassVar = {"suffix": ""}
    OUTPUTS: ClassVar = ("texts", "upper")

    def run(self, context):
        for text in context.column(self.inputs["texts"]):
            yield {"texts": text, "upper": text.upper() + self.args["suffix"]}


def tagging_map(counter: Path, tag: str):
    """A map function that appends to ``counter`` each time it is called."""
    path = str(counter)

    def add_tag(row):
        with open(path, "a") as handle:
            handle.write("ran\n")
        return {"text": row["text"] + tag}

    return add_tag


def declare(tmp_path: Path, tag: str = "!", with_splits: bool = True, output=None) -> dict[str, Step]:
    """source -> tagged (map) -> upper (column input) -> take -> splits; plus a lone source."""
    with Pipeline(str(output or tmp_path / "output")):
        source = counting_source("Seed Texts", tmp_path / "source.count", ["a", "b", "c", "d", "e"])
        # lazy=False: a map that writes its rows (a lazy one, DataDreamer's default, runs when read)
        tagged = source.map(
            tagging_map(tmp_path / "map.count", tag), name="Tagged", output_columns=["text"], lazy=False
        )
        upper = Upper("Upper Texts", inputs={"texts": tagged.output["text"]}, outputs={"texts": "text"})
        first = upper.take(4, name="First Four")
        steps = {"source": source, "tagged": tagged, "upper": upper, "first": first}
        if with_splits:
            splits = first.splits(train_size=0.5, validation_size=0.5, name="Halves")
            steps.update({"train": splits["train"], "validation": splits["validation"]})
        steps["lone"] = DataSource("Lone Source", {"x": [1, 2]})
    return steps


def test_folder_layout_and_step_json(tmp_path, instance):
    steps = declare(tmp_path)
    output = tmp_path / "output"
    result = materialize(list(steps.values()), instance, output)
    assert result.success

    for step in steps.values():
        folder = output / step.folder
        assert sorted(p.name for p in folder.iterdir()) == ["_dataset", "step.json"]
        assert (folder / "_dataset" / "dataset_info.json").exists()
        assert step.asset.code_versions_by_key[step.asset_key] == step.fingerprint
    assert not list((output / ".staging").iterdir())
    assert sorted(p.name for p in output.iterdir() if not p.name.startswith(".")) == sorted(
        step.folder for step in steps.values()
    )

    record = step_json(output, steps["upper"])
    assert record["name"] == "Upper Texts"
    assert record["type"] == "Upper"
    assert record["fingerprint"] == steps["upper"].fingerprint
    assert record["version"]
    assert record["datetime"].startswith("20")
    assert record["args"] == {"suffix": ""}
    assert record["inputs"] == {
        "texts": {"step": "Tagged", "column": "text", "fingerprint": steps["tagged"].fingerprint}
    }
    assert record["outputs"] == ["text", "upper"]
    assert record["num_rows"] == 5
    assert set(record["schema"]) == {"text", "upper"}
    assert record["data_version"]

    train = step_json(output, steps["train"])
    assert train["sources"] == [{"step": "First Four", "fingerprint": steps["first"].fingerprint}]
    assert train["num_rows"] == 2
    assert list(train["data_card"]) == ["Seed Texts", "Tagged", "Upper Texts", "First Four", "Halves (train)"]
    assert all("Date & Time" in entry for entry in train["data_card"].values())
    assert sorted(rows(output, steps["train"])["upper"] + rows(output, steps["validation"])["upper"]) == [
        "A!",
        "B!",
        "C!",
        "D!",
    ]

    metadata = materialization_metadata(result, steps["train"])
    assert metadata["dreamer/fingerprint"] == steps["train"].fingerprint
    assert metadata["dagster/row_count"] == 2
    assert "## Seed Texts" in metadata["dreamer/data_card"]
    assert metadata["dreamer/reused"] is False


def test_changed_args_mark_exactly_downstream_stale_then_backup_and_restore(tmp_path, instance, output):
    original = declare(tmp_path, tag="!", with_splits=False, output=output)
    materialize(list(original.values()), instance, output)
    assert set(stale_statuses(instance, list(original.values())).values()) == {"FRESH"}
    assert runs(tmp_path / "map.count") == 5

    changed = declare(tmp_path, tag="?", with_splits=False, output=output)
    differs = {name for name in original if original[name].fingerprint != changed[name].fingerprint}
    assert differs == {"tagged", "upper", "first"}
    for name in differs:
        old_version = original[name].asset.code_versions_by_key[original[name].asset_key]
        assert changed[name].asset.code_versions_by_key[changed[name].asset_key] != old_version
    statuses = stale_statuses(instance, list(changed.values()))
    assert {key for key, status in statuses.items() if status == "STALE"} == {
        "tagged",
        "upper_texts",
        "first_four",
    }
    assert statuses["seed_texts"] == statuses["lone_source"] == "FRESH"

    # A downstream step alone would read the upstream output of the old configuration.
    with pytest.raises(FileNotFoundError, match="unsynced"):
        materialize(list(changed.values()), instance, output, only=[changed["upper"]])
    assert step_json(output, changed["upper"])["fingerprint"] == original["upper"].fingerprint

    result = materialize(list(changed.values()), instance, output)
    assert runs(tmp_path / "map.count") == 10
    assert runs(tmp_path / "source.count") == 1  # the unchanged source was reused
    assert materialization_metadata(result, changed["source"])["dreamer/reused"] is True
    backup = ("_backups", "tagged", original["tagged"].fingerprint)
    backup_record = OutputFolder(output).files.read_json(
        OutputFolder(output).root.joinpath(*backup, "step.json")
    )
    assert backup_record["fingerprint"] == original["tagged"].fingerprint
    assert rows(output, changed["upper"])["upper"][0] == "A?"
    assert set(stale_statuses(instance, list(changed.values())).values()) == {"FRESH"}

    reverted = declare(tmp_path, tag="!", with_splits=False, output=output)
    assert {k: s.fingerprint for k, s in reverted.items()} == {k: s.fingerprint for k, s in original.items()}
    result = materialize(list(reverted.values()), instance, output)
    assert runs(tmp_path / "map.count") == 10  # restored from _backups, the map did not run
    assert materialization_metadata(result, reverted["tagged"])["dreamer/reused"] is True
    assert rows(output, reverted["upper"])["upper"][0] == "A!"
    assert not exists(output, *backup)
    assert exists(output, "_backups", "tagged", changed["tagged"].fingerprint, "step.json")
    assert set(stale_statuses(instance, list(reverted.values())).values()) == {"FRESH"}


def test_rematerializing_an_unchanged_upstream_keeps_downstream_in_sync(tmp_path, instance):
    output = tmp_path / "output"
    steps = declare(tmp_path, with_splits=False)
    materialize(list(steps.values()), instance, output)
    before = step_json(output, steps["source"])["data_version"]

    materialize(list(steps.values()), instance, output, only=[steps["source"], steps["tagged"]])
    assert runs(tmp_path / "source.count") == 1
    assert step_json(output, steps["source"])["data_version"] == before
    record = instance.get_latest_data_version_record(steps["source"].asset_key)
    assert record is not None
    assert set(stale_statuses(instance, list(steps.values())).values()) == {"FRESH"}


class SimulatedCrash(RuntimeError):
    """Stands for the process dying at that point."""


def test_crash_between_dataset_and_step_json_is_not_taken_for_finished(
    tmp_path, instance, monkeypatch, output
):
    with Pipeline(str(output)):
        source = counting_source("Crashing Source", tmp_path / "source.count", ["a", "b"])
        downstream = source.take(1, name="After Crash")
    real_write = output_folder_module._write_json_atomic

    def crash_on_step_json(path, data):
        if path.name == "step.json":
            raise SimulatedCrash("killed between _dataset and step.json")
        real_write(path, data)

    monkeypatch.setattr(output_folder_module, "_write_json_atomic", crash_on_step_json)
    with pytest.raises(Exception) as crashed:
        materialize([source], instance, output)
    assert isinstance(crashed.value, SimulatedCrash) or isinstance(crashed.value.__cause__, SimulatedCrash)
    monkeypatch.setattr(output_folder_module, "_write_json_atomic", real_write)

    folder = OutputFolder(output).step(source.folder)
    assert exists(output, source.folder, "_dataset", "dataset_info.json")
    assert folder.step_json() is None
    with pytest.raises(FileNotFoundError, match="no step.json"):
        materialize([downstream], instance, output, only=[downstream])
    assert folder.prepare(source.fingerprint) is Preparation.RESUME

    materialize([downstream], instance, output)
    assert runs(tmp_path / "source.count") == 2
    assert step_json(output, source)["fingerprint"] == source.fingerprint
    assert rows(output, downstream) == {"text": ["a"]}


def test_force_runs_a_finished_step_again(tmp_path, instance, output):
    forced = counting_source("Forced", tmp_path / "forced.count", ["a"], force=True)
    materialize([forced], instance, output)
    materialize([forced], instance, output)
    assert runs(tmp_path / "forced.count") == 2
    assert rows(output, forced) == {"text": ["a"]}


def test_recomputing_an_upstream_with_the_same_output_keeps_downstream_in_sync(tmp_path, instance):
    output = tmp_path / "output"
    with Pipeline(str(output)):
        source = counting_source("Recomputed Source", tmp_path / "source.count", ["a", "b"], force=True)
        upper = Upper("Upper After Recompute", inputs={"texts": source.output["text"]})
    materialize([upper], instance, output)
    first = step_json(output, upper)
    before = instance.get_latest_data_version_record(source.asset_key)

    # force=True: the source runs again (a real recomputation, a new _dataset), and
    # its output is the same, so its data version is too.
    result = materialize([upper], instance, output, only=[source])
    assert runs(tmp_path / "source.count") == 2
    assert materialization_metadata(result, source)["dreamer/reused"] is False
    after = instance.get_latest_data_version_record(source.asset_key)
    assert after.storage_id != before.storage_id  # a new materialization was recorded
    versions = [record.asset_materialization.tags["dagster/data_version"] for record in (before, after)]
    assert versions[0] == versions[1] == step_json(output, source)["data_version"]
    # Dagster itself says the downstream step is still in sync: nothing needs to run.
    assert stale_statuses(instance, [source, upper]) == {source.key: "FRESH", upper.key: "FRESH"}
    assert step_json(output, upper) == first


def test_same_pipeline_declared_twice_in_one_process(tmp_path):
    first = declare(tmp_path)
    second = declare(tmp_path)
    assert first["train"].fingerprint == second["train"].fingerprint
    defs = dreamer_definitions([second["train"], second["lone"]], output_folder=str(tmp_path))
    assert len(list(defs.assets)) == 6


@pytest.mark.parametrize(
    ("declare_bad", "argument", "words"),
    [
        (lambda s, tmp: s.output["nope"], "output", ["'nope'", "['text']"]),
        (lambda s, tmp: s.select_columns(["nope"]), "column_names", ["'nope'"]),
        (lambda s, tmp: DataSource("  !!! ", {"y": [1]}), "name", ["no letter or digit"]),
        (
            lambda s, tmp: Upper("Up", inputs={"texts": "hello"}),
            "inputs['texts']",
            ["not a column reference"],
        ),
        (
            lambda s, tmp: Upper("Up", inputs={"texts": s.output["text"]}, args={"sufix": "!"}),
            "args['sufix']",
            [],
        ),
        (
            lambda s, tmp: Upper("Up", inputs={"texts": s.output["text"]}, outputs={"upper": "texts"}),
            "outputs",
            ["['texts']"],
        ),
        (
            lambda s, tmp: JSONDataSource("J", data_files=str(tmp / "missing.json")),
            "data_files",
            ["missing.json", "does not exist", "Fix"],
        ),
        (lambda s, tmp: s.take(-1), "n", [">= 0"]),
        (lambda s, tmp: s.splits(train_size=0.8, validation_size=0.5), "train_size", ["add up to 1.3"]),
        (lambda s, tmp: s.shard(num_shards=2, index=2), "index", []),
        (lambda s, tmp: s.take(1, nmae="x"), "nmae", ["unexpected"]),
    ],
    ids=[
        "unknown-column",
        "unknown-column-in-operation",
        "name-without-letters",
        "input-not-a-column",
        "unknown-arg",
        "outputs-renamed-onto-each-other",
        "missing-data-file",
        "negative-take",
        "split-sizes-over-1",
        "shard-index-out-of-range",
        "misspelled-option",
    ],
)
def test_bad_declarations_fail_when_declared(tmp_path, declare_bad, argument, words):
    with Pipeline(str(tmp_path / "output")):
        seed = DataSource("Seed", {"text": ["a"]})
        with pytest.raises(StepDeclarationError) as caught:
            declare_bad(seed, tmp_path)
    message = str(caught.value)
    assert message.startswith("Step '")
    assert f"argument {argument!r}" in message
    for word in words:
        assert word in message


def test_work_folders_of_dead_processes_are_cleaned(tmp_path) -> None:
    from dreamer_dagster.output_folder import OutputFolder

    folder = OutputFolder(tmp_path / "output")
    stale = folder.root / ".staging" / "my_step-999999999-abc"
    stale.mkdir(parents=True)
    other_step = folder.root / ".staging" / "other_step-999999999-abc"
    other_step.mkdir()
    other_host = folder.root / ".staging" / "my_step-elsewhere--999999999--run1-abc"
    other_host.mkdir()
    host = re.sub(r"[^A-Za-z0-9.]", "_", socket.gethostname())  # as work folder names spell it
    dead_here = folder.root / ".staging" / f"my_step-{host}--999999999--run1-abc"
    dead_here.mkdir()
    mine = folder.staging("my_step", run_id="5f2c9a1e-77aa-4b0e")
    assert mine.name.startswith(f"my_step-{host}--{os.getpid()}--5f2c9a1e-")
    assert not stale.exists()  # its process is gone (an older name: this host's)
    assert not dead_here.exists()  # a dead process of this host
    assert other_host.exists()  # another host's live work is never touched
    assert other_step.exists()  # another step's: left for that step
    folder.staging("my_step")
    assert mine.exists()  # this process still runs
