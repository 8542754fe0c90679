"""Each data source produces the right rows, knows its columns when declared, enters
the fingerprint by file content and writes its data card entries."""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import pytest

from dreamer_dagster import Pipeline
from dreamer_dagster.steps import (
    CSVDataSource,
    DataSource,
    HFDatasetDataSource,
    HFHubDataSource,
    JSONDataSource,
    StepDeclarationError,
    TextDataSource,
)
from tests.support.foundation import materialize, rows, step_json


@pytest.fixture
def files(tmp_path: Path) -> Path:
    folder = tmp_path / "files"
    folder.mkdir()
    (folder / "rows.jsonl").write_text('{"q": "a", "n": 1}\n{"q": "b", "n": 2, "extra": true}\n')
    (folder / "list.json").write_text(json.dumps([{"q": "c", "n": 3}, {"q": "d", "n": 4}]))
    (folder / "nested.json").write_text(json.dumps({"version": 1, "data": [{"q": "e"}]}))
    (folder / "table.csv").write_text("x,y\n1,hello\n2,world\n")
    (folder / "table.tsv").write_text("x\ty\n3\tsemi\n")
    (folder / "lines.txt").write_text("line one\nline two\nline three\n")
    (folder / "more").mkdir()
    (folder / "more" / "extra.txt").write_text("line four\n")
    saved = datasets.Dataset.from_dict({"a": [1, 2, 3], "b": ["x", "y", "z"]})
    saved.info.license = "mit"
    saved.info.citation = "@misc{saved}"
    saved.save_to_disk(str(folder / "saved"))
    datasets.DatasetDict({"train": saved, "test": saved}).save_to_disk(str(folder / "saved_dict"))
    hub = folder / "hub_dataset"
    (hub / "data").mkdir(parents=True)
    (hub / "data" / "train.csv").write_text("text,label\nfoo,0\nbar,1\nbaz,0\n")
    (hub / "README.md").write_text("---\nlicense: cc-by-4.0\npretty_name: Tiny\n---\n# Tiny\n")
    return folder


def test_every_data_source_produces_its_rows(tmp_path, files, instance):
    output = tmp_path / "output"

    def generate():
        yield from ({"k": i, "sq": i * i} for i in range(3))

    licensed = datasets.Dataset.from_dict({"d": [True, False]})
    licensed.info.license = "cc0-1.0"
    with Pipeline(str(output)) as pipeline:
        json_lines = JSONDataSource("JSON Lines", data_files=str(files / "rows.jsonl"))
        json_list = JSONDataSource("JSON List", data_folder=str(files), data_files="list.json")
        json_field = JSONDataSource("JSON Field", data_files=str(files / "nested.json"), field="data")
        csv = CSVDataSource("CSV", data_folder=str(files), data_files=["table.csv"])
        tsv = CSVDataSource("TSV", data_files=str(files / "table.tsv"), sep="\t")
        text = TextDataSource("Text", data_folder=str(files))
        saved = HFDatasetDataSource("Saved", str(files / "saved"))
        hub = HFHubDataSource("Hub", str(files / "hub_dataset"), split="train")
        hub_stream = HFHubDataSource("Hub Stream", str(files / "hub_dataset"), streaming=True)
        from_dict = DataSource("From Dict", {"a": [1, 2], "b": ["x", "y"]})
        from_list = DataSource("From List", [{"a": 1}, {"a": 2, "c": "z"}])
        from_generator = DataSource("From Generator", generate, columns=["k", "sq"])
        from_dataset = DataSource("From Dataset", licensed)

    assert json_lines.output_columns == ["q", "n", "extra"]
    assert json_field.output_columns == ["q"]
    assert csv.output_columns == ["x", "y"]
    assert tsv.output_columns == ["x", "y"]
    assert text.output_columns == ["text"]
    assert saved.output_columns == ["a", "b"]
    assert hub.output_columns is None
    assert from_list.output_columns == ["a", "c"]

    materialize(pipeline.steps, instance, output)
    assert rows(output, json_lines) == {"q": ["a", "b"], "n": [1, 2], "extra": [None, True]}
    assert rows(output, json_list) == {"q": ["c", "d"], "n": [3, 4]}
    assert rows(output, json_field) == {"q": ["e"]}
    assert rows(output, csv) == {"x": [1, 2], "y": ["hello", "world"]}
    assert rows(output, tsv) == {"x": [3], "y": ["semi"]}
    assert rows(output, text) == {"text": ["line one", "line two", "line three", "line four"]}
    assert rows(output, saved) == {"a": [1, 2, 3], "b": ["x", "y", "z"]}
    assert rows(output, hub) == {"text": ["foo", "bar", "baz"], "label": [0, 1, 0]}
    assert rows(output, hub_stream) == rows(output, hub)
    assert rows(output, from_dict) == {"a": [1, 2], "b": ["x", "y"]}
    assert rows(output, from_list) == {"a": [1, 2], "c": [None, "z"]}
    assert rows(output, from_generator) == {"k": [0, 1, 2], "sq": [0, 1, 4]}
    assert rows(output, from_dataset) == {"d": [True, False]}

    hub_card = step_json(output, hub)["data_card"]["Hub"]
    assert hub_card["Dataset Name"] == ["hub_dataset"]
    assert hub_card["License Information"] == ["cc-by-4.0"]
    assert hub_card["URL"] == [str(files / "hub_dataset")]
    saved_card = step_json(output, saved)["data_card"]["Saved"]
    assert saved_card["License Information"] == ["mit"]
    assert saved_card["Citation Information"] == ["@misc{saved}"]
    csv_card = step_json(output, csv)["data_card"]["CSV"]
    assert csv_card["Dataset Name"] == ["files"]
    assert csv_card["URL"] == [str(files)]
    assert step_json(output, from_dataset)["data_card"]["From Dataset"]["License Information"] == ["cc0-1.0"]
    assert "License Information" not in step_json(output, from_dict)["data_card"]["From Dict"]
    assert step_json(output, json_lines)["data_card"]["JSON Lines"]["URL"] == [str(files / "rows.jsonl")]


def test_data_files_enter_the_fingerprint_by_content(tmp_path, files):
    def fingerprints() -> list[str]:
        return [
            JSONDataSource("J", data_files=str(files / "rows.jsonl")).fingerprint,
            CSVDataSource("C", data_files=str(files / "table.csv")).fingerprint,
            TextDataSource("T", data_folder=str(files)).fingerprint,
            HFDatasetDataSource("H", str(files / "saved")).fingerprint,
            HFHubDataSource("Hub", str(files / "hub_dataset")).fingerprint,
        ]

    before = fingerprints()
    assert fingerprints() == before
    (files / "rows.jsonl").write_text('{"q": "changed", "n": 1}\n')
    (files / "table.csv").write_text("x,y\n9,changed\n")
    (files / "more" / "extra.txt").write_text("changed\n")
    datasets.Dataset.from_dict({"a": [7], "b": ["w"]}).save_to_disk(str(files / "saved"))
    (files / "hub_dataset" / "data" / "train.csv").write_text("text,label\nnew,1\n")
    after = fingerprints()
    assert all(old != new for old, new in zip(before, after))

    moved = tmp_path / "elsewhere"
    moved.mkdir()
    (moved / "rows.jsonl").write_text((files / "rows.jsonl").read_text())
    assert JSONDataSource("J", data_files=str(moved / "rows.jsonl")).fingerprint == after[0]
    assert CSVDataSource("C", data_files=str(files / "table.csv"), sep=";").fingerprint != after[1]


@pytest.mark.parametrize(
    ("declare_bad", "argument", "words"),
    [
        (
            lambda f: JSONDataSource("J", data_files=str(f / "nope.jsonl")),
            "data_files",
            ["nope.jsonl", "Fix"],
        ),
        (lambda f: CSVDataSource("C", data_folder=str(f), data_files="nope.csv"), "data_files", ["nope.csv"]),
        (lambda f: TextDataSource("T", data_folder=str(f / "missing")), "data_folder", ["does not exist"]),
        (lambda f: TextDataSource("T", data_files=str(f / "*.md")), "data_files", ["matches no file"]),
        (lambda f: CSVDataSource("C", data_folder=str(f / "more")), "data_folder", ["no .csv/.tsv file"]),
        (lambda f: JSONDataSource("J"), "data_files", ["give data_folder"]),
        (lambda f: JSONDataSource("J", data_files={"train": "a.json"}), "data_files", ["dict of splits"]),
        (lambda f: HFDatasetDataSource("H", str(f / "nope")), "dataset_path", ["does not exist"]),
        (lambda f: HFDatasetDataSource("H", str(f / "saved_dict")), "dataset_path", ["DatasetDict", "train"]),
        (lambda f: HFHubDataSource("Hub", "./no/such/folder"), "path", ["does not exist"]),
        (
            lambda f: HFHubDataSource("Hub", str(f / "hub_dataset"), None, None, None, "yes"),
            "trust_remote_code",
            ["True or False"],
        ),
        (lambda f: DataSource("D", {"a": [1, 2], "b": [1]}), "data", ["different lengths"]),
        (lambda f: DataSource("D", [1, 2]), "data", ["one dict per row"]),
        (lambda f: DataSource("D", 42), "data", ["got int"]),
    ],
)
def test_bad_data_sources_fail_when_declared(files, declare_bad, argument, words):
    with pytest.raises(StepDeclarationError) as caught:
        declare_bad(files)
    message = str(caught.value)
    assert message.startswith("Step '")
    assert f"argument {argument!r}" in message
    for word in words:
        assert word in message


def test_hub_data_source_takes_datadreamers_positional_order(files):
    path = str(files / "hub_dataset")
    # DataDreamer's slots: (name, path, config_name, split, revision, trust_remote_code, streaming).
    positional = HFHubDataSource("Hub", path, None, "train", None, False, True)
    assert positional.args["trust_remote_code"] is False and positional.args["streaming"] is True
    trusting = HFHubDataSource("Hub", path, None, "train", None, True)
    assert trusting.args["trust_remote_code"] is True and trusting.args["streaming"] is False
    # datasets 4+ runs no dataset scripts, so the flag cannot change the rows: not fingerprinted.
    plain = HFHubDataSource("Hub", path, split="train")
    assert trusting.fingerprint == plain.fingerprint
    assert positional.fingerprint != plain.fingerprint  # streaming is


def test_data_source_columns_are_checked_when_referenced(files):
    source = CSVDataSource("CSV", data_files=str(files / "table.csv"))
    assert source.output["y"].column == "y"
    with pytest.raises(StepDeclarationError, match=r"no output column 'z'"):
        source.output["z"]


def test_hub_dataset_card_entries_come_from_the_local_hub_cache(tmp_path, monkeypatch):
    import huggingface_hub.constants

    repo = tmp_path / "hub_cache" / "datasets--someone--tiny"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("abc123")
    (repo / "snapshots" / "abc123").mkdir(parents=True)
    (repo / "snapshots" / "abc123" / "README.md").write_text("---\nlicense:\n- mit\n- cc-by-4.0\n---\n")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub_cache"))

    entries = HFHubDataSource("Tiny", "someone/tiny", split="train").card_entries(None)
    assert entries["Dataset Name"] == ["someone/tiny"]
    assert entries["Dataset Card"] == ["https://huggingface.co/datasets/someone/tiny"]
    assert entries["License Information"] == ["mit", "cc-by-4.0"]
    assert "License Information" not in HFHubDataSource("Other", "someone/other").card_entries(None)
