"""Lazy operations (DataDreamer's ``lazy=``): an iterable output computed on demand, a
recipe-only step folder, consumers streaming the upstream rows through it."""

from __future__ import annotations

import json

import pytest

from dreamer_dagster import Pipeline, dreamer_definitions
from dreamer_dagster.datasets import OutputDataset, OutputIterableDataset, OutputIterableDatasetColumn
from dreamer_dagster.metadata import REUSED
from dreamer_dagster.steps import DataSource, LazyRows, Prompt, Step
from dreamer_dagster.testing import FakeLLM
from dreamer_dagster.verify import verify_definitions
from tests.support.foundation import exists, materialization_metadata, materialize, rows, step_json

WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot"]


def _chain(lazy: bool) -> tuple[Step, Step, Step, Step]:
    words = DataSource("Words", {"word": WORDS})
    shout = words.map(lambda row: {"word": row["word"].upper()}, lazy=lazy, auto_progress=False)
    kept = shout.filter(lambda row: len(row["word"]) == 5, lazy=lazy, auto_progress=False)
    answers = Prompt(
        "Answers",
        inputs={"prompts": kept.output["word"]},
        args={"llm": FakeLLM(lambda prompt: prompt.lower())},
    )
    return words, shout, kept, answers


def test_a_lazy_chain_writes_only_recipes_and_feeds_its_consumer(tmp_path, instance):
    output = tmp_path / "output"
    with Pipeline(str(output), run=False) as pipeline:
        words, shout, kept, answers = _chain(lazy=True)
    assert isinstance(shout.output, OutputIterableDataset)
    assert isinstance(kept.output["word"], OutputIterableDatasetColumn)
    assert not isinstance(answers.output, OutputIterableDataset)

    result = materialize(pipeline.steps, instance, output)
    # Each lazy step is a materialized asset with its code version, but wrote no dataset.
    for step in (shout, kept):
        record = step_json(output, step)
        assert record["lazy"]["upstream"][0]["fingerprint"] == step.source.fingerprint
        assert record["fingerprint"] == step.fingerprint == step.asset.code_versions_by_key[step.asset_key]
        assert not exists(output, step.folder, "_dataset")
    assert exists(output, answers.folder, "_dataset")
    assert rows(output, answers) == {
        "prompts": ["ALPHA", "BRAVO", "DELTA"],
        "generations": ["alpha", "bravo", "delta"],
    }
    assert rows(output, kept) == {"word": ["ALPHA", "BRAVO", "DELTA"]}  # computed on demand
    assert materialization_metadata(result, kept)[REUSED] is False

    # dreamer verify understands a recipe-only folder; a second run reuses every step.
    defs = dreamer_definitions(pipeline.steps, output_folder=str(output))
    report = verify_definitions(defs)
    assert [f.status for f in report.findings] == ["ok"] * 4, report.lines()
    assert any("lazy" in line for line in report.lines())
    again = materialize(pipeline.steps, instance, output)
    assert all(materialization_metadata(again, step)[REUSED] for step in (shout, kept, answers))


def test_verify_reports_a_recipe_whose_upstream_changed(tmp_path, instance):
    output = tmp_path / "output"
    with Pipeline(str(output), run=False) as pipeline:
        words, shout, kept, answers = _chain(lazy=True)
    materialize(pipeline.steps, instance, output)
    record = step_json(output, words)
    record["data_version"] = "0" * 16  # the upstream's rows are not the ones the recipe read
    (output / words.folder / "step.json").write_text(json.dumps(record))
    report = verify_definitions(dreamer_definitions(pipeline.steps, output_folder=str(output)))
    drifted = {finding.key: finding.details for finding in report.drifted}
    assert shout.key in drifted and "data changed" in drifted[shout.key][0]


def test_lazy_false_writes_every_dataset_with_the_same_rows(tmp_path, instance):
    output = tmp_path / "output"
    with Pipeline(str(output), run=False) as pipeline:
        words, shout, kept, answers = _chain(lazy=False)
    assert not isinstance(shout.output, OutputIterableDataset)
    materialize(pipeline.steps, instance, output)
    assert exists(output, shout.folder, "_dataset") and exists(output, kept.folder, "_dataset")
    assert "lazy" not in step_json(output, kept)
    assert rows(output, answers)["generations"] == ["alpha", "bravo", "delta"]


def test_datadreamer_defaults_of_lazy():
    with Pipeline("unused", run=False):
        words = DataSource("Words", {"word": WORDS})
        with pytest.warns(UserWarning, match="total_num_rows"):
            words.map(lambda row: row)  # DataDreamer's warning: a lazy map cannot show progress
        lazy_ops = [
            words.map(lambda row: row, total_num_rows=6),
            words.filter(lambda row: True, auto_progress=False),
            words.reverse(),
        ]
        written = [
            words.take(2),  # lazy only over an iterable source, as DataDreamer's result types
            words.select([0]),
            words.select_columns("word"),
            words.shuffle(seed=1),
            words.sort("word"),
            words.copy(),  # copy(): lazy when its source is iterable
            words.save(),
        ]
        lazy_source = lazy_ops[0]
        over_lazy = [lazy_source.take(2), lazy_source.select_columns("word"), lazy_source.copy()]
        never = [lazy_source.select([0]), lazy_source.sort("word"), lazy_source.save()]
    assert all(step.lazy_output for step in lazy_ops + over_lazy)
    assert not any(step.lazy_output for step in written + never)
    assert type(never[-1]).__name__ == "Save"


def test_script_mode_iterable_outputs(tmp_path, script_home):
    with Pipeline(str(tmp_path / "output"), run=True):
        words = DataSource("Words", {"word": WORDS})
        doubled = words.map(lambda row: {"word": row["word"] * 2}, auto_progress=False)
        assert isinstance(doubled.output, OutputIterableDataset)
        assert doubled.output.num_rows is None
        assert list(doubled.output["word"])[:2] == ["alphaalpha", "bravobravo"]
        with pytest.raises(TypeError, match="no len"):
            len(doubled.output)
        counted = words.map(lambda row: row, total_num_rows=6)
        assert counted.output.num_rows == 6
        first = doubled.take(2)
        assert isinstance(first.output, OutputIterableDataset) and first.output.num_rows is None
        assert [row["word"] for row in first.output] == ["alphaalpha", "bravobravo"]
        saved = doubled.save()
        assert isinstance(saved.output, OutputDataset) and not isinstance(saved.output, OutputIterableDataset)
        assert len(saved.output) == 6 and saved.output["word"][5] == "foxtrotfoxtrot"
        assert (tmp_path / "output" / saved.folder / "_dataset").is_dir()
        assert not (tmp_path / "output" / doubled.folder / "_dataset").exists()

        class Gen(Step):
            def setup(self):
                self.register_output("n")

            def run(self):
                return LazyRows(({"n": i} for i in range(3)), total_num_rows=3)

        gen = Gen("Gen")
        assert list(gen.output["n"]) == [0, 1, 2]
        assert isinstance(gen.output, OutputIterableDataset)  # run() returned LazyRows
        assert gen.output.num_rows == 3
        taken = gen.take(2)
        assert isinstance(taken.output, OutputIterableDataset) and taken.output.num_rows == 2
        assert list(taken.output["n"]) == [0, 1]
