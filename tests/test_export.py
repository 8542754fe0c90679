"""Exports of a finished step: dict/list, JSON, CSV, a saved HF dataset, the files
``publish_to_hf_hub`` uploads (README front matter included), and the upload itself."""

from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar

import datasets
import pytest
import yaml

from dreamer_dagster import Pipeline
from dreamer_dagster.cards import LICENSE, MODEL_NAME
from dreamer_dagster.model import Model
from dreamer_dagster.steps import DataSource, HFHubDataSource, Step
from dreamer_dagster.steps.export import NotMaterializedError
from tests.support.foundation import materialize

TOPICS = [f"topic {i}" for i in range(10)]


class Reverser(Model):
    """A stand-in model: reverses text."""

    def identity(self) -> dict:
        return {"model_name": "reverser-1"}

    def card_entries(self) -> dict[str, list[str]]:
        return {MODEL_NAME: ["reverser-1"], LICENSE: ["apache-2.0"]}


class Reverse(Step):
    """Writes each input reversed by the model, in ``generations``."""

    INPUTS: ClassVar = {"inputs": True}
    ARGS: ClassVar = {"llm": None}
    OUTPUTS: ClassVar = ("inputs", "generations")

    def run(self, context):
        for text in context.column(self.inputs["inputs"]):
            yield {"inputs": text, "generations": text[::-1]}


@pytest.fixture
def finished(tmp_path, instance):
    """A materialized pipeline: a hub-style local dataset -> a model step; returns the steps."""
    hub = tmp_path / "topics_dataset"
    hub.mkdir()
    (hub / "train.csv").write_text("topic,group\n" + "".join(f"{t},{i % 2}\n" for i, t in enumerate(TOPICS)))
    (hub / "README.md").write_text("---\nlicense: mit\n---\n")
    output = tmp_path / "output"
    with Pipeline(str(output)) as pipeline:
        source = HFHubDataSource("Topics", str(hub), split="train")
        generated = Reverse(
            "Reversed Topics",
            inputs={"inputs": source.output["topic"]},
            args={"llm": Reverser()},
            outputs={"inputs": "topic"},
        )
        plain = DataSource("Plain", {"a": [1, 2, 3]})
    materialize(pipeline.steps, instance, output)
    return {"source": source, "generated": generated, "plain": plain, "output": output}


def test_export_to_json_csv_dict_list(tmp_path, finished):
    step = finished["generated"]
    path = step.export_to_json(tmp_path / "export" / "all.json")
    lines = [json.loads(line) for line in Path(path).read_text().splitlines()]
    assert [row["topic"] for row in lines] == TOPICS
    assert lines[0] == {"topic": "topic 0", "generations": "0 cipot"}

    paths = step.export_to_json(tmp_path / "export" / "parts.json", train_size=0.8, test_size=0.2)
    assert sorted(paths) == ["test", "train"]
    assert paths["test"].endswith("parts.test.json")
    train = [json.loads(line)["topic"] for line in Path(paths["train"]).read_text().splitlines()]
    test = [json.loads(line)["topic"] for line in Path(paths["test"]).read_text().splitlines()]
    assert len(train) == 8
    assert sorted(train + test) == sorted(TOPICS)

    csv_path = step.export_to_csv(tmp_path / "export" / "all.csv", sep=";")
    csv_lines = Path(csv_path).read_text().splitlines()
    assert csv_lines[0] == "topic;generations"
    assert csv_lines[1] == "topic 0;0 cipot"
    csv_paths = step.export_to_csv(tmp_path / "export" / "parts.csv", train_size=7, validation_size=3)
    assert csv_paths["validation"].endswith("parts.val.csv")
    assert len(Path(csv_paths["validation"]).read_text().splitlines()) == 4

    assert step.export_to_dict()["topic"] == TOPICS
    assert step.export_to_list()[1] == {"topic": "topic 1", "generations": "1 cipot"}
    stratified = finished["source"].export_to_list(train_size=0.6, test_size=0.4, stratify_by_column="group")
    assert sorted(row["group"] for row in stratified["train"]) == [0, 0, 0, 1, 1, 1]


def test_export_to_hf_dataset(tmp_path, finished):
    step = finished["generated"]
    single = step.export_to_hf_dataset(tmp_path / "hf" / "single")
    assert list(datasets.load_from_disk(str(tmp_path / "hf" / "single"))["topic"]) == TOPICS
    assert single.num_rows == 10
    split = step.export_to_hf_dataset(tmp_path / "hf" / "split", train_size=0.5, validation_size=0.5)
    loaded = datasets.load_from_disk(str(tmp_path / "hf" / "split"))
    assert isinstance(loaded, datasets.DatasetDict)
    assert {name: len(part) for name, part in loaded.items()} == {"train": 5, "validation": 5}
    assert list(loaded["train"]["topic"]) == list(split["train"]["topic"])
    again = step.export_to_hf_dataset(tmp_path / "hf" / "again", train_size=0.5, validation_size=0.5)
    assert list(again["train"]["topic"]) == list(split["train"]["topic"])


def test_export_refuses_unfinished_or_other_outputs_and_bad_sizes(tmp_path, finished):
    output = finished["output"]
    never = DataSource("Never Materialized", {"a": [1]})
    with pytest.raises(NotMaterializedError, match="not materialized.*never-materialized/step.json"):
        never.export_to_json(tmp_path / "x.json", output_folder=output)
    changed = DataSource("Plain", {"a": [1, 2, 4]})
    with pytest.raises(NotMaterializedError, match="another configuration"):
        changed.export_to_dict(output_folder=output)
    with pytest.raises(ValueError, match="add up to 0.9; they must add up to 1.0"):
        finished["plain"].export_to_dict(train_size=0.5, test_size=0.4)
    with pytest.raises(ValueError, match=r"must sum up to 1.0 or the number of rows \(3\).*total of: 2"):
        finished["plain"].export_to_dict(train_size=1, test_size=1)
    assert finished["plain"].export_to_dict(output_folder=output) == {"a": [1, 2, 3]}
    with Pipeline(str(output)):
        redeclared = DataSource("Plain", {"a": [1, 2, 3]})
    assert redeclared.export_to_list() == [{"a": 1}, {"a": 2}, {"a": 3}]
    unbound = DataSource("Plain", {"a": [1, 2, 3]})
    with Pipeline(str(output)):
        assert unbound.export_to_dict() == {"a": [1, 2, 3]}


def test_hub_files_and_readme_front_matter(tmp_path, finished):
    step = finished["generated"]
    folder = step.save_hf_hub_files(
        tmp_path / "hub", train_size=0.7, validation_size=0.2, test_size=0.1, repo_id="someone/topics"
    )
    readme = (folder / "README.md").read_text()
    assert readme.startswith("---\n")
    front = yaml.safe_load(readme.split("---\n")[1])
    assert "synthetic" in front["tags"]
    assert "reverser-1" in front["tags"]
    assert front["source_datasets"] == ["topics_dataset"]
    assert sorted(front["license"]) == ["apache-2.0", "mit"]
    assert front["size_categories"] == ["n<1K"]
    assert [item["split"] for item in front["configs"][0]["data_files"]] == ["train", "validation", "test"]
    assert "[step.json](step.json)" in readme
    assert "# Dataset Card for topics" in readme
    record = json.loads((folder / "step.json").read_text())
    assert record["fingerprint"] == step.fingerprint
    assert set(record["data_card"]) == {"Topics", "Reversed Topics"}

    loaded = datasets.load_dataset(str(folder))
    assert {name: len(part) for name, part in loaded.items()} == {"train": 7, "validation": 2, "test": 1}
    assert sorted(sum((list(part["topic"]) for part in loaded.values()), [])) == sorted(TOPICS)

    plain = finished["plain"].save_hf_hub_files(tmp_path / "plain_hub")
    plain_front = yaml.safe_load((plain / "README.md").read_text().split("---\n")[1])
    assert "synthetic" not in plain_front["tags"]
    assert "source_datasets" not in plain_front
    assert [item["split"] for item in plain_front["configs"][0]["data_files"]] == ["train"]


def test_publish_to_hf_hub_uploads_the_saved_files(tmp_path, finished, monkeypatch, caplog):
    import huggingface_hub

    calls = {}

    class RecordingApi:
        def __init__(self, token=None):
            calls["token"] = token

        def whoami(self):
            return {"name": "someone"}

        def create_repo(self, repo_id, **kwargs):
            calls["create_repo"] = (repo_id, kwargs)

        def create_branch(self, repo_id, **kwargs):
            calls["create_branch"] = (repo_id, kwargs)

        def upload_folder(self, folder_path, **kwargs):
            calls["files"] = sorted(
                str(p.relative_to(folder_path)) for p in Path(folder_path).rglob("*") if p.is_file()
            )
            calls["upload"] = kwargs

    monkeypatch.setattr(huggingface_hub, "HfApi", RecordingApi)
    monkeypatch.setenv("HF_TOKEN", "hf_secret_from_env")
    url = finished["generated"].publish_to_hf_hub(
        "topics", branch="v1", private=True, train_size=0.5, test_size=0.5
    )
    assert url == "https://huggingface.co/datasets/someone/topics"
    assert calls["token"] == "hf_secret_from_env"
    assert calls["create_repo"] == (
        "someone/topics",
        {"repo_type": "dataset", "private": True, "exist_ok": True},
    )
    assert calls["create_branch"][1]["branch"] == "v1"
    assert calls["upload"]["repo_id"] == "someone/topics"
    assert calls["upload"]["revision"] == "v1"
    assert calls["files"] == [
        "README.md",
        "data/test-00000-of-00001.parquet",
        "data/train-00000-of-00001.parquet",
        "step.json",
    ]
    assert "hf_secret_from_env" not in caplog.text

    finished["generated"].publish_to_hf_hub("org/topics", token="hf_given")
    assert calls["token"] == "hf_given"
    assert calls["upload"]["revision"] is None
