"""DataDreamer's own constructors of its output classes (``datadreamer.datasets``):
``OutputDataset(step, dataset, pickled=False)``, ``OutputIterableDataset(step, iterable,
pickled=False, total_num_rows=None)`` and ``OutputIterableDatasetColumn(step, iterable)`` are
outputs held in memory; a step's ``run()`` returns them, or their columns, in every form
DataDreamer accepts (its ``test_step_output.py`` TestDataset and TestColumn), and the step's
output is an ``OutputDataset`` / ``OutputIterableDataset`` with the values unpickled."""

from __future__ import annotations

import json

import datasets
import pytest

from dreamer_dagster import Pipeline
from dreamer_dagster.datasets import (
    OutputDataset,
    OutputDatasetColumn,
    OutputIterableDataset,
    OutputIterableDatasetColumn,
)
from dreamer_dagster.pickling import pickle_value
from dreamer_dagster.steps import DataSource, LazyRowBatches, LazyRows, Prompt, Step
from dreamer_dagster.testing import FakeLLM


@pytest.fixture(autouse=True)
def _runs_in_the_shared_home(script_home):
    """Script-mode blocks here record their runs in one shared instance."""


def _pickled_sets(step, name, values):
    """Values pickled in DataDreamer's format, elsewhere than the step's ``step.pickle``
    (read from a DataDreamer folder, say): the constructor's ``pickled=True`` alone says so."""
    return datasets.Dataset.from_dict({name: [pickle_value({v}) for v in values]})


def _foo(step):
    return OutputDataset(step, datasets.Dataset.from_dict({"foo": ["a", "b", "c"]}))["foo"]


def _lazy_foo(step):
    iterable = datasets.Dataset.from_dict({"foo": ["a", "b", "c"]}).to_iterable_dataset()
    return OutputIterableDataset(step, iterable)["foo"]


# case -> run()'s value (given the running step); each gives out1 = a, b, c
COLUMN_FORMS = {
    "column": lambda s: _foo(s),
    "list_of_column": lambda s: [_foo(s)],
    "tuple_of_column": lambda s: (_foo(s),),
    "dict_of_column": lambda s: {"out1": _foo(s)},
    "lazy_column": lambda s: LazyRows(_lazy_foo(s), total_num_rows=3),
    "lazy_tuple_of_column": lambda s: LazyRows((_lazy_foo(s),), total_num_rows=3),
    "lazy_dict_of_column": lambda s: LazyRows({"out1": _lazy_foo(s)}, total_num_rows=3),
    "lazy_column_constructed": lambda s: LazyRows(
        OutputIterableDatasetColumn(
            s, datasets.Dataset.from_dict({"x": ["a", "b", "c"]}).to_iterable_dataset()
        ),
        total_num_rows=3,
    ),
}

# case -> run()'s value; each gives out1 = {"a"}, {"b"}, {"c"} (pickled sets)
DATASET_FORMS = {
    "output_dataset": lambda s: OutputDataset(s, _pickled_sets(s, "out1", "abc"), pickled=True),
    "output_iterable_dataset": lambda s: LazyRows(
        OutputIterableDataset(s, _pickled_sets(s, "out1", "abc").to_iterable_dataset(), True, 3)
    ),
    "output_iterable_dataset_batched": lambda s: LazyRowBatches(
        OutputIterableDataset(s, _pickled_sets(s, "out1", "abc").to_iterable_dataset(), True, 3)
    ),
}


class Forms(Step):
    def setup(self):
        self.register_arg("case")
        self.register_output("out1")

    def run(self):
        return {**COLUMN_FORMS, **DATASET_FORMS}[self.args["case"]](self)


class TwoDatasets(Step):
    def setup(self):
        self.register_output("out1")
        self.register_output("out2")

    def run(self):
        lazy = OutputIterableDataset(
            self, _pickled_sets(self, "out1", "abc").to_iterable_dataset(), pickled=True
        )
        eager = OutputDataset(self, _pickled_sets(self, "out2", [1, 2, 3]), pickled=True)
        return LazyRows([lazy, eager], total_num_rows=3)


def test_a_column_of_an_output_built_in_memory_in_every_form_gives_its_values(tmp_path):
    with Pipeline(str(tmp_path / "output"), run=True):
        steps = {case: Forms(f"Column {case}", args={"case": case}) for case in COLUMN_FORMS}
    for case, step in steps.items():
        lazy = case.startswith("lazy")
        assert isinstance(step.output, OutputIterableDataset if lazy else OutputDataset), case
        assert [row["out1"] for row in step.output] == ["a", "b", "c"], case


def test_an_output_dataset_built_datadreamers_way_is_the_steps_output_unpickled(tmp_path):
    with Pipeline(str(tmp_path / "output"), run=True):
        steps = {case: Forms(f"Dataset {case}", args={"case": case}) for case in DATASET_FORMS}
        two = TwoDatasets("Two Datasets")
    for case, step in steps.items():
        output = step.output
        assert isinstance(output, OutputIterableDataset if "iterable" in case else OutputDataset), case
        assert [row["out1"] for row in output] == [{"a"}, {"b"}, {"c"}], case
        assert output.num_rows == 3, case  # an OutputIterableDataset's total_num_rows passes on
        record = json.loads((tmp_path / "output" / step.folder / "step.json").read_text())
        assert record["pickled"] is True, case
    assert isinstance(two.output, OutputIterableDataset)
    assert list(two.output) == [
        {"out1": {"a"}, "out2": {1}},
        {"out1": {"b"}, "out2": {2}},
        {"out1": {"c"}, "out2": {3}},
    ]
    assert steps["output_dataset"].output["out1"][0] == {"a"}
    assert steps["output_dataset"].output[0] == {"out1": {"a"}}


def test_an_output_built_in_memory_reads_as_a_steps_output():
    step = DataSource("Anything", {"x": [1]})
    output = OutputDataset(step, _pickled_sets(step, "s", "ab"), pickled=True)
    assert (len(output), output.column_names, output.num_rows) == (2, ["s"], 2)
    assert output[0] == {"s": {"a"}} and output["s"][1] == {"b"} and list(output["s"]) == [{"a"}, {"b"}]
    assert isinstance(output["s"], OutputDatasetColumn) and len(output["s"]) == 2
    assert output.info.features == datasets.Features({"s": datasets.Value("binary")})
    raw = OutputDataset(step, _pickled_sets(step, "s", "ab"))  # not pickled=: bytes as they are
    assert isinstance(raw[0]["s"], bytes)
    lazy = OutputIterableDataset(step, _pickled_sets(step, "s", "ab").to_iterable_dataset(), pickled=True)
    assert lazy.num_rows is None and list(lazy["s"]) == [{"a"}, {"b"}] and lazy.column_names == ["s"]
    with pytest.raises(TypeError, match="no len"):
        len(lazy)


def test_datadreamers_constructor_checks_and_in_memory_columns_are_no_inputs():
    step = DataSource("Anything Else", {"x": [1]})
    table = datasets.Dataset.from_dict({"a": [1], "b": [2]})
    with pytest.raises(ValueError, match=r"expected a datasets.Dataset, got dict. Fix:"):
        OutputDataset(step, {"a": [1]})
    with pytest.raises(ValueError, match=r"expected a datasets.IterableDataset, got Dataset. Fix:"):
        OutputIterableDataset(step, table)
    with pytest.raises(ValueError, match="expected a Step"):
        OutputDataset("my-step", table)
    with pytest.raises(ValueError, match=r"expected a single column, got \['a', 'b'\]. Fix:"):
        OutputIterableDatasetColumn(step, table.to_iterable_dataset())
    with pytest.raises(KeyError, match="no column 'c'"):
        OutputDataset(step, table)["c"]
    column = OutputDataset(step, table)["a"]
    with pytest.raises(
        TypeError, match=r"Step 'Bad Input' \(Prompt\), argument \"inputs\['prompts'\]\".*Fix:"
    ):
        Prompt("Bad Input", inputs={"prompts": column}, args={"llm": FakeLLM()})
    with pytest.raises(
        TypeError, match="holds rows in memory.*cannot be another step's input or a deferred value"
    ):
        column.at(0)
