"""A finished step's data is checked against what its step.json recorded before it is
reused or read: a ``_dataset`` swapped for other rows, a garbage Arrow file, an extra
Arrow file or a planted pickle fails at once naming the step folder and the file, with
no model call and no retry; a folder committed before step.json listed its files is
still reused. Each case is made by hand on a folder a real ``dg.materialize`` wrote."""

from __future__ import annotations

import json
import os
import pickle
import shutil
from collections import Counter
from pathlib import Path

import dagster as dg
import datasets
import pytest

from dreamer_dagster import dreamer_definitions, integrity
from dreamer_dagster.data_versions import dataset_data_version
from dreamer_dagster.llms import OpenAI
from dreamer_dagster.steps import DataSource, ProcessWithPrompt, Step

ROWS = ["one", "two", "three"]
ARROW = "_dataset/data-00000-of-00001.arrow"


def pipeline(server, instruction="Shorten it.", source_kwargs=None, step_kwargs=None):
    llm = OpenAI("fake-chat", base_url=server.base_url, api_key="test-key", max_concurrency=1)
    source = DataSource("Inputs", {"text": ROWS}, **(source_kwargs or {}))
    processed = ProcessWithPrompt(
        "Processed",
        inputs={"inputs": source.output["text"]},
        args={"llm": llm, "instruction": instruction},
        **(step_kwargs or {}),
    )
    return source, processed


def run(steps, instance, output, only=None) -> dg.ExecuteInProcessResult:
    defs = dreamer_definitions(list(steps), output_folder=str(output))
    selection = [step.asset_key for step in only] if only is not None else None
    return dg.materialize(
        list(defs.assets),
        instance=instance,
        resources=dict(defs.resources),
        selection=selection,
        raise_on_error=False,
    )


def failure_text(result: dg.ExecuteInProcessResult) -> str:
    failures = [event for event in result.all_events if event.event_type_value == "STEP_FAILURE"]
    assert failures, "the run did not fail"
    return "\n".join(str(event.event_specific_data.error) for event in failures)


def events_of(result: dg.ExecuteInProcessResult, step: Step) -> Counter:
    return Counter(event.event_type_value for event in result.all_events if event.step_key == step.key)


def step_record(output: Path, step: Step) -> dict:
    return json.loads((output / step.folder / "step.json").read_text())


def test_commit_records_each_files_size_and_hash(tmp_path, instance, openai_server):
    output = tmp_path / "output"
    source, processed = pipeline(openai_server)
    assert run([processed], instance, output).success
    record = step_record(output, source)
    manifest = record["manifest"]
    assert manifest["hash"] == "xxh3_128"
    assert set(manifest["files"]) == {ARROW, "_dataset/dataset_info.json", "_dataset/state.json"}
    arrow = output / source.folder / ARROW
    assert manifest["files"][ARROW] == {
        "size": arrow.stat().st_size,
        "hash": integrity.hash_file(arrow)[1],
    }


def test_a_swapped_dataset_is_never_used_and_force_recomputes_it(tmp_path, instance, openai_server):
    output = tmp_path / "output"
    source, processed = pipeline(openai_server)
    assert run([processed], instance, output).success
    dataset = output / source.folder / "_dataset"
    shutil.rmtree(dataset)  # valid Arrow, other rows; step.json left alone
    datasets.Dataset.from_dict({"text": ["planted one", "planted two", "planted three"]}).save_to_disk(
        str(dataset)
    )
    calls = openai_server.request_count

    # A changed downstream step must run: it would generate from the planted rows.
    source, processed = pipeline(openai_server, instruction="Lengthen it.")
    result = run([processed], instance, output)
    assert not result.success
    text = failure_text(result)
    assert f"the step folder {output / source.folder}" in text and "Step 'Inputs'" in text
    assert f"{ARROW} has " in text  # other bytes, or other content
    assert "dreamer verify" in text and "force=True" in text
    assert openai_server.request_count == calls
    assert events_of(result, processed)["STEP_START"] == 0  # never ran

    # Reading it as an input (the upstream step not in the run) fails the same way.
    result = run([processed], instance, output, only=[processed])
    assert not result.success and f"the step folder {output / source.folder}" in failure_text(result)
    assert openai_server.request_count == calls

    # The fix the message names: force= computes the step again from its declaration.
    forced, processed = pipeline(openai_server, source_kwargs={"force": True})
    assert run([processed], instance, output).success
    assert datasets.load_from_disk(str(dataset))["text"] == ROWS


@pytest.mark.parametrize("damage", ["garbage", "extra_arrow"])
def test_a_damaged_dataset_fails_at_once_naming_the_file_and_is_not_retried(
    tmp_path, instance, openai_server, damage
):
    output = tmp_path / "output"
    retry = {"retry_policy": dg.RetryPolicy(max_retries=2)}
    source, processed = pipeline(openai_server, source_kwargs=retry, step_kwargs=retry)
    assert run([source], instance, output).success
    arrow = output / source.folder / ARROW
    if damage == "garbage":
        arrow.write_bytes(os.urandom(arrow.stat().st_size))  # same size: only the hash tells
        named = f"{ARROW} has other content"
    else:
        shutil.copy(arrow, arrow.with_name("data-00001-of-00002.arrow"))
        named = "_dataset/data-00001-of-00002.arrow is an Arrow file step.json does not list"
    calls = openai_server.request_count

    # Loaded as an input by a step with a retry policy: one attempt, the file named.
    result = run([processed], instance, output, only=[processed])
    assert not result.success
    assert named in failure_text(result) and str(output / source.folder) in failure_text(result)
    assert events_of(result, processed)["STEP_UP_FOR_RETRY"] == 0
    assert openai_server.request_count == calls

    # Reused (the step in the run, with its own retry policy): the same, at the reuse.
    result = run([processed], instance, output)
    assert not result.success and named in failure_text(result)
    assert events_of(result, source)["STEP_UP_FOR_RETRY"] == 0
    assert events_of(result, processed)["STEP_START"] == 0
    assert openai_server.request_count == calls


class Planted:
    """A pickle that creates ``marker`` when it is unpickled: a pickled column is code."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


class PickleValues(Step):
    def setup(self):
        self.register_output("value")

    def run(self):
        return {"value": [self.pickle({"n": n}) for n in range(3)]}


class UnpickleValues(Step):
    def setup(self):
        self.register_input("value")
        self.register_arg("tag", required=False, default="")
        self.register_output("n")

    def run(self):
        return {"n": [self.unpickle(value)["n"] for value in self.inputs["value"]]}


def test_a_planted_pickle_is_never_unpickled(tmp_path, instance):
    output = tmp_path / "output"
    pickled = PickleValues("Pickled")
    reader = UnpickleValues("Unpickled", inputs={"value": pickled.output["value"]})
    assert run([reader], instance, output).success
    probe, marker = tmp_path / "probe", tmp_path / "marker"
    pickle.loads(pickle.dumps(Planted(probe)))  # noqa: S301 - the payload runs when unpickled
    assert probe.exists()

    dataset = output / pickled.folder / "_dataset"
    shutil.rmtree(dataset)
    datasets.Dataset.from_dict({"value": [pickle.dumps(Planted(marker))] * 3}).save_to_disk(str(dataset))
    reader = UnpickleValues("Unpickled", inputs={"value": pickled.output["value"]}, args={"tag": "again"})
    for only in (None, [reader]):  # reused in the run, or only loaded as an input
        result = run([reader], instance, output, only=only)
        assert not result.success and str(output / pickled.folder) in failure_text(result)
        assert not marker.exists()


def test_a_folder_committed_without_a_manifest_is_still_reused_and_still_checked(
    tmp_path, instance, openai_server
):
    output = tmp_path / "output"
    source, processed = pipeline(openai_server)
    assert run([processed], instance, output).success
    for step in (source, processed):  # the field deleted; Processed as the release before wrote it
        record = step_record(output, step)
        del record["manifest"]
        if step is processed:
            record["data_version"] = dataset_data_version(output / step.folder / "_dataset")
        (output / step.folder / "step.json").write_text(json.dumps(record))
    calls = openai_server.request_count
    integrity.forget_checks()
    result = run([processed], instance, output)
    assert result.success
    for step in (source, processed):
        [event] = result.asset_materializations_for_node(step.key)
        assert event.metadata["dreamer/reused"].value is True
    assert openai_server.request_count == calls

    # Checked through the data version it recorded: other rows fail all the same.
    dataset = output / source.folder / "_dataset"
    shutil.rmtree(dataset)
    datasets.Dataset.from_dict({"text": ["x", "y", "z"]}).save_to_disk(str(dataset))
    result = run([processed], instance, output)
    assert not result.success
    assert "_dataset does not hash to the data version step.json recorded" in failure_text(result)
    assert openai_server.request_count == calls


class TwoColumns(Step):
    INPUTS = {"a": True, "b": True}  # noqa: RUF012
    OUTPUTS = ("joined",)

    def run(self, context):
        a, b = context.column(self.inputs["a"]), list(context.iter_column(self.inputs["b"]))
        for x, y in zip(a, b, strict=True):
            yield {"joined": f"{x}-{y}"}


def test_a_folder_read_several_times_in_a_run_is_hashed_once(tmp_path, instance, monkeypatch):
    output = tmp_path / "output"
    source = DataSource("Inputs", {"text": ROWS, "other": ROWS})
    joined = TwoColumns("Joined", inputs={"a": source.output["text"], "b": source.output["other"]})
    assert run([source], instance, output).success
    hashed: Counter = Counter()
    real = integrity.hash_file

    def counting(path):
        hashed[Path(path).relative_to(output).as_posix()] += 1
        return real(path)

    monkeypatch.setattr(integrity, "hash_file", counting)
    integrity.forget_checks()
    # Reused, then loaded as two inputs and streamed column by column: hashed once.
    assert run([joined], instance, output).success
    assert hashed[f"{source.folder}/{ARROW}"] == 1


def test_a_file_planted_in_a_trained_model_is_never_loaded(tmp_path, instance, openai_server, monkeypatch):
    from dreamer_dagster.errors import IntegrityError
    from dreamer_dagster.trainers import TrainOpenAIFineTune

    monkeypatch.setenv("OPENAI_API_KEY", "sk-loopback")
    output = tmp_path / "output"
    pairs = DataSource(
        "Pairs", {"abstract": ["We study cats.", "We study dogs."], "tweet": ["Cats!", "Dogs!"]}
    )
    trainer = TrainOpenAIFineTune(
        "Tune", model_name="fake-chat", base_url=openai_server.base_url, poll_interval=0.05
    ).train(train_input=pairs.output["abstract"], train_output=pairs.output["tweet"], epochs=1)
    assert run([trainer], instance, output).success
    files = step_record(output, trainer)["manifest"]["files"]
    assert files and all(name.startswith("_model/") for name in files)

    # A weights file next to the trained model: a loader would unpickle it.
    (output / trainer.folder / "_model" / "pytorch_model.bin").write_bytes(
        pickle.dumps(Planted(tmp_path / "m"))
    )
    calls = openai_server.request_count
    result = run([trainer], instance, output)
    assert not result.success
    assert "_model/pytorch_model.bin is a file step.json does not list" in failure_text(result)
    with pytest.raises(IntegrityError, match="pytorch_model.bin"):
        trainer.finished_model_dir(str(output))  # trainer.model, export_to_disk, publishing
    assert openai_server.request_count == calls and not (tmp_path / "m").exists()
