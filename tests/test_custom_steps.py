"""DataDreamer's way of writing steps ports unchanged: ``setup()`` with ``register_input`` /
``register_arg`` / ``register_output`` / ``register_data_card``, ``run()`` reading
``self.inputs`` / ``self.args`` and returning rows in any of DataDreamer's forms
(``LazyRows``, ``LazyRowBatches`` included), ``SuperStep``, ``help``; and the project's
own ``INPUTS`` / ``ARGS`` / ``OUTPUTS`` + ``run(context)`` steps keep working beside them."""

from __future__ import annotations

import logging
from pathlib import Path

import dagster as dg
import datasets
import pytest

from dreamer_dagster import Pipeline
from dreamer_dagster.cli import load_module
from dreamer_dagster.errors import StepOutputError, StepOutputTypeError
from dreamer_dagster.steps import (
    DataCardType,
    DataSource,
    LazyRowBatches,
    LazyRows,
    Step,
    StepDeclarationError,
    SuperStep,
)
from dreamer_dagster.steps.step import REQUIRED


@pytest.fixture(autouse=True)
def _runs_in_the_shared_home(script_home):
    """Script-mode blocks here record their runs in one shared instance."""


EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_the_docs_custom_step_and_super_step_run_unchanged(
    tmp_path, openai_server, monkeypatch, instance, caplog
):
    """examples/custom_step.py (DataDreamer's "Creating a new Step" page, filled in) loaded as
    Dagster loads it, then materialized: MyNewStep and the SuperStep that runs it."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OPENAI_BASE_URL", openai_server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-loopback")
    module = load_module(EXAMPLES / "custom_step.py")
    counts, summaries = module.word_counts, module.summaries
    assert counts.output_columns == ["texts", "word_counts"] and counts.args == {"lowercase": True}
    assert "'texts': 'The texts to count the words of.'" in module.MyNewStep.help
    assert "'lowercase': 'Whether to lowercase the texts first. (optional, defaults to False)'" in counts.help
    defs = module.defs
    assert {key.to_user_string() for key in defs.resolve_asset_graph().get_all_asset_keys()} == {
        "texts",
        "count_words",
        "summarize_then_count",
    }  # the SuperStep's inner steps are no assets

    counts.progress_interval = 0  # log every progress update
    with caplog.at_level(logging.INFO):
        assert dg.materialize(list(defs.assets), instance=instance, resources=dict(defs.resources)).success
    rows = counts.output.dataset.to_dict()
    assert rows["texts"][1] == "a new bakery opened on the main square."
    assert rows["word_counts"] == [9, 8, 8]
    assert (tmp_path / "output" / "count-words" / "run_output" / "request.json").read_text() == (
        '{"rows": 3, "lowercase": true}'
    )
    assert "Step 'Count Words' progress: 100%" in caplog.text
    card = counts.finished_record()[1]["data_card"]["Count Words"]
    assert card[DataCardType.LICENSE] == ["MIT License"]
    assert card[DataCardType.CITATION] == ["@misc{word_counts, title={Counting Words}}"]

    summarized = summaries.output.dataset.to_dict()
    assert summarized["summaries"][0].startswith("Echo: ")
    assert summarized["word_counts"] == [len(text.split()) for text in summarized["summaries"]]
    inner = tmp_path / "output" / "summarize-then-count" / "summarize"
    assert (inner / "step.json").is_file() and (
        tmp_path / "output" / "summarize-then-count" / "count-words"
    ).is_dir()
    full_card = summaries.finished_record()[1]["data_card"]
    assert {"Summarize Then Count / Summarize", "Summarize Then Count / Count Words"} <= set(full_card)
    assert "gpt-4" in full_card["Summarize Then Count / Summarize"][DataCardType.MODEL_NAME]

    # A second materialization reuses the SuperStep, and its inner steps call nothing.
    calls = openai_server.request_count
    assert dg.materialize(list(defs.assets), instance=instance, resources=dict(defs.resources)).success
    assert openai_server.request_count == calls


class Forms(Step):
    """run() returns its rows in the form named by the ``form`` arg."""

    def setup(self):
        self.register_arg("form")
        self.register_output("word")
        self.register_output("length")

    def run(self):
        words = ["a", "bb", "ccc"]
        form = self.args["form"]
        if form == "dict":
            return {"word": words, "length": [len(w) for w in words]}
        if form == "list_of_dicts":
            return [{"word": w, "length": len(w)} for w in words]
        if form == "list_of_tuples":
            return [(w, len(w)) for w in words]
        if form == "tuple_of_columns":
            return (words, [len(w) for w in words])
        if form == "generator_function":

            def rows():
                for w in words:
                    yield {"word": w, "length": len(w)}

            return LazyRows(rows, total_num_rows=3)  # DataDreamer refuses a bare function
        if form == "dataset":
            return datasets.Dataset.from_dict({"word": words, "length": [len(w) for w in words]})
        if form == "iterable_dataset":
            data = datasets.Dataset.from_dict({"word": words, "length": [len(w) for w in words]})
            return LazyRows(data.to_iterable_dataset(), total_num_rows=3)
        if form == "lazy_rows":
            return LazyRows(((w, len(w)) for w in words), total_num_rows=3)
        if form == "lazy_row_batches":
            return LazyRowBatches(lambda: iter([{"word": words[:2], "length": [1, 2]}, ([words[2]], [3])]))
        raise AssertionError(form)


class OneColumn(Step):
    def setup(self):
        self.register_input("texts")
        self.register_output("upper")

    def run(self):
        return [text.upper() for text in self.inputs["texts"]]


FORMS = [
    "dict",
    "list_of_dicts",
    "list_of_tuples",
    "tuple_of_columns",
    "generator_function",
    "dataset",
    "iterable_dataset",
    "lazy_rows",
    "lazy_row_batches",
]


def test_every_datadreamer_output_form_gives_the_same_rows(tmp_path):
    with Pipeline(str(tmp_path / "output"), run=True):
        steps = [Forms(f"Form {form}", args={"form": form}) for form in FORMS]
        source = DataSource("Texts", {"text": ["x", "y"]})
        single = OneColumn("Upper", inputs={"texts": source.output["text"]}, outputs={"upper": "shout"})
    for step in steps:
        assert step.output.dataset.to_dict() == {"word": ["a", "bb", "ccc"], "length": [1, 2, 3]}, step.name
    assert list(single.output["shout"]) == ["X", "Y"]


class Broken(Step):
    def setup(self):
        self.register_arg("problem")
        self.register_output("value")

    def run(self):
        if self.args["problem"] == "column":
            return [{"value": 1, "extra": 2}]
        if self.args["problem"] == "types":
            return {"value": [1, "two", [3]]}
        return datasets.DatasetDict({"train": datasets.Dataset.from_dict({"value": [1]})})


@pytest.mark.parametrize(
    ("problem", "error", "words"),
    [
        ("column", StepOutputError, "Expected ('value',) as dict keys instead of ('value', 'extra')"),
        ("types", StepOutputTypeError, "cannot be stored together"),
        ("nothing", StepOutputError, "run() returned a DatasetDict"),
    ],
)
def test_bad_outputs_raise_datadreamers_errors_naming_the_step(tmp_path, problem, error, words):
    with (
        pytest.raises(error, match=f"Step 'Broken {problem}' \\(Broken\\)") as raised,
        Pipeline(str(tmp_path), run=True),
    ):
        Broken(f"Broken {problem}", args={"problem": problem})
    assert words in str(raised.value)
    assert not (tmp_path / f"broken_{problem}" / "step.json").exists()


class Registrations(Step):
    def setup(self):
        self.register_input("texts")
        self.register_input("extra", required=False, help="Optional.")
        self.register_arg("needed")
        self.register_arg("**kwargs", help="Anything else.")
        self.register_output("out")

    def run(self):
        return {"out": list(self.inputs["texts"])}


class NoOutputs(Step):
    def setup(self):
        self.register_arg("x", required=False)


def test_registrations_are_checked_at_declaration(tmp_path):
    source = DataSource("Texts", {"text": ["a"]})
    step = Registrations("Ok", inputs={"texts": source.output["text"]}, args={"needed": 1, "free": "x"})
    assert step.args == {"needed": 1, "free": "x"}  # "**kwargs" takes any other argument
    with pytest.raises(
        StepDeclarationError, match="argument \"args\\['needed'\\]\": this argument is required"
    ):
        Registrations("Bad", inputs={"texts": source.output["text"]})
    with pytest.raises(
        StepDeclarationError, match="argument \"inputs\\['texts'\\]\": this input is required"
    ):
        Registrations("Bad", args={"needed": 1})
    with pytest.raises(StepDeclarationError, match="registered no output"):  # ValueError, as DataDreamer
        NoOutputs("None")
    with pytest.raises(RuntimeError, match="is called in setup\\(\\) only"):
        step.register_output("late")
    with pytest.raises(ValueError, match="`default` cannot be set"):

        class BadDefault(Step):
            def setup(self):
                self.register_arg("x", required=True, default=1)

        BadDefault("Bad default")
    assert "'extra': 'Optional. (optional)'" in Registrations.help
    assert Registrations.uses_registration() and not DataSource.uses_registration()
    assert "args = {\n\t\t'data': '(optional, defaults to None)'" in DataSource.help
    assert REQUIRED is not None


class Outer(SuperStep):
    """run() returns an inner step's output."""

    def setup(self):
        self.register_input("texts")
        self.register_output("upper")

    def run(self):
        inner = OneColumn("Shout", inputs={"texts": self.inputs["texts"]})
        inner.take(1)  # an operation inside: its name is derived inside the SuperStep
        return inner.output


def test_a_super_step_returning_an_inner_output_in_both_modes(tmp_path, instance):
    output = tmp_path / "output"
    with Pipeline(str(output), run=False) as pipeline:
        source = DataSource("Texts", {"text": ["q", "r"]})
        outer = Outer("Outer", inputs={"texts": source.output["text"]})
    defs = pipeline.definitions()
    assert dg.materialize(list(defs.assets), instance=instance, resources=dict(defs.resources)).success
    assert outer.output.dataset.to_dict() == {"upper": ["Q", "R"]}
    # Steps run inside the SuperStep nest in its folder (DataDreamer's "outer/shout").
    assert sorted(p.name for p in output.iterdir() if not p.name.startswith(".")) == ["outer", "texts"]
    assert (output / "outer" / "shout" / "step.json").is_file() and (output / "outer" / "shout-take").is_dir()
    with Pipeline(str(output), run=True):
        again = Outer("Outer", inputs={"texts": DataSource("Texts", {"text": ["q", "r"]}).output["text"]})
        assert list(again.output["upper"]) == ["Q", "R"]
