"""Every ``run()`` output form DataDreamer 0.46 accepts gives DataDreamer's rows; every form it
refuses is refused with its error type. The cases and expected values are ported from
DataDreamer's ``src/tests/steps/test_step_output.py`` (TestSingleOutput, TestMultipleOutput,
TestEmptyOutput, TestErrors, TestTypes), run here as real script-mode pipelines."""

from __future__ import annotations

import datasets
import pytest

from dreamer_dagster import Pipeline
from dreamer_dagster.errors import StepOutputError, StepOutputTypeError
from dreamer_dagster.steps import DataSource, LazyRowBatches, LazyRows, Prompt, Step
from dreamer_dagster.testing import FakeLLM


@pytest.fixture(autouse=True)
def _runs_in_the_shared_home(script_home):
    """Script-mode blocks here record their runs in one shared instance."""


def _abc():
    yield "a"
    yield "b"
    yield "c"


def _dataset(**columns):
    return datasets.Dataset.from_dict(columns)


def _iterable(**columns):
    return _dataset(**columns).to_iterable_dataset()


# case -> (run()'s value, DataDreamer's rows as columns)
ONE = {
    "single": (lambda: "a", ["a"]),
    "single_list": (lambda: ["a"], ["a"]),
    "single_tuple": (lambda: ("a",), ["a"]),
    "single_dict": (lambda: {"out1": "a"}, ["a"]),
    "none": (lambda: None, []),
    "list_empty": (lambda: [], []),
    "iterator_empty": (lambda: iter(str.upper(x) for x in []), []),
    "tuple_of_list_empty": (lambda: ([],), []),
    "list": (lambda: ["a", "b", "c"], ["a", "b", "c"]),
    "list_of_dicts_matching": (lambda: [{"out1": "a"}, {"out1": "b"}], ["a", "b"]),
    "list_of_dicts": (lambda: [{"foo": "a"}, {"foo": "b"}], [{"foo": "a"}, {"foo": "b"}]),
    "list_of_tuple": (lambda: [("a",), ("b",), ("c",)], ["a", "b", "c"]),
    "list_of_list_row": (lambda: [["a"], ["b"], ["c"]], [["a"], ["b"], ["c"]]),
    "list_of_list_column": (lambda: [["a", "b", "c"]], [["a", "b", "c"]]),
    "iterator": (lambda: map(str.lower, ["a", "b", "c"]), ["a", "b", "c"]),
    "long_generator": (lambda: (f"row {i}" for i in range(5)), [f"row {i}" for i in range(5)]),
    "tuple_of_list": (lambda: (["a", "b", "c"],), ["a", "b", "c"]),
    "tuple_of_iterator": (lambda: (iter(range(3)),), [0, 1, 2]),
    "dict_of_list": (lambda: {"out1": ["a", "b", "c"]}, ["a", "b", "c"]),
    "dict_of_iterator": (lambda: {"out1": iter(range(3))}, [0, 1, 2]),
    "dataset": (lambda: _dataset(out1=["a", "b", "c"]), ["a", "b", "c"]),
    "list_of_datasets": (lambda: [_dataset(out1=["a", "b", "c"])], ["a", "b", "c"]),
    "tuple_of_datasets": (lambda: (_dataset(out1=["a", "b", "c"]),), ["a", "b", "c"]),
    "lazy_iterable_dataset": (
        lambda: LazyRows(_iterable(out1=["a", "b", "c"]), total_num_rows=3),
        ["a", "b", "c"],
    ),
    "lazy_batches_iterable_dataset": (lambda: LazyRowBatches(_iterable(out1=["a", "b"])), ["a", "b"]),
    "lazy_single": (lambda: LazyRows(_abc, total_num_rows=3), ["a", "b", "c"]),
    "lazy_dict_rows": (lambda: LazyRows(lambda: ({"out1": v} for v in _abc())), ["a", "b", "c"]),
    "lazy_tuple_rows": (lambda: LazyRows(lambda: ((v,) for v in _abc())), ["a", "b", "c"]),
    "lazy_list_rows": (lambda: LazyRows(lambda: ([v] for v in _abc())), [["a"], ["b"], ["c"]]),
    "lazy_dict_of_generator_function": (lambda: LazyRows({"out1": _abc}, total_num_rows=3), ["a", "b", "c"]),
    "lazy_list_of_generator_function": (lambda: LazyRows([_abc], total_num_rows=3), ["a", "b", "c"]),
    "lazy_tuple_of_generator_function": (lambda: LazyRows((_abc,), total_num_rows=3), ["a", "b", "c"]),
    "batches_dict": (
        lambda: LazyRowBatches(lambda: iter([{"out1": ["a", "b"]}, {"out1": ["c"]}])),
        ["a", "b", "c"],
    ),
    "batches_list_of_dicts": (
        lambda: LazyRowBatches(lambda: iter([[{"out1": "a"}, {"out1": "b"}], [{"out1": "c"}]])),
        ["a", "b", "c"],
    ),
    "batches_tuple_column": (
        lambda: LazyRowBatches(lambda: iter([(["a", "b"],), (["c"],)])),
        ["a", "b", "c"],
    ),
    "batches_list_column": (lambda: LazyRowBatches(lambda: iter([[["a", "b"]], [["c"]]])), ["a", "b", "c"]),
    "batches_empty": (lambda: LazyRowBatches(lambda: iter([{"out1": []}, {"out1": []}])), []),
    "batches_dict_of_generator_function": (
        lambda: LazyRowBatches({"out1": lambda: iter([["a", "b"], ["c"]])}),
        ["a", "b", "c"],
    ),
    "int_and_none": (lambda: {"out1": [5, None]}, [5, None]),
    "int_and_float": (lambda: {"out1": [5, 0.5]}, [5.0, 0.5]),
    "dict_and_none": (lambda: {"out1": [None, {"foo": 5}]}, [None, {"foo": 5}]),
    "list_with_different_lengths": (lambda: {"out1": [[5], [1, 2]]}, [[5], [1, 2]]),
}

TWO = {
    "single_list": (lambda: ["a", 1], (["a"], [1])),
    "single_tuple": (lambda: ("a", 1), (["a"], [1])),
    "single_dict": (lambda: {"out1": "a", "out2": 1}, (["a"], [1])),
    "list_of_tuple": (lambda: [("a", 1), ("b", 2), ("c", 3)], (["a", "b", "c"], [1, 2, 3])),
    "list_of_list_row": (lambda: [["a", 1], ["b", 2], ["c", 3]], (["a", "b", "c"], [1, 2, 3])),
    "list_of_list_column": (lambda: [["a", "b", "c"], [1, 2, 3]], (["a", "b", "c"], [1, 2, 3])),
    "tuple_of_list": (lambda: (["a", "b", "c"], [1, 2, 3]), (["a", "b", "c"], [1, 2, 3])),
    "tuple_of_iterator": (lambda: (iter(range(3)), ["a", "b", "c"]), ([0, 1, 2], ["a", "b", "c"])),
    "dict_of_iterator": (
        lambda: {"out1": iter(range(3)), "out2": ["a", "b", "c"]},
        ([0, 1, 2], ["a", "b", "c"]),
    ),
    "long_generator_of_tuples": (
        lambda: ((f"r{i}", i) for i in range(4)),
        (["r0", "r1", "r2", "r3"], [0, 1, 2, 3]),
    ),
    "list_of_datasets": (
        lambda: [_dataset(out1=["a", "b", "c"]), _dataset(out2=[1, 2, 3])],
        (["a", "b", "c"], [1, 2, 3]),
    ),
    "lazy_list_of_iterable_datasets": (
        lambda: LazyRows([_dataset(out1=["a", "b", "c"]), _iterable(out2=[1, 2, 3])], total_num_rows=3),
        (["a", "b", "c"], [1, 2, 3]),
    ),
    "lazy_tuple_rows": (lambda: LazyRows(lambda: iter([("a", 1), ("b", 2)])), (["a", "b"], [1, 2])),
    "lazy_iterator_rows": (
        lambda: LazyRows(lambda: iter([iter(["a", 1]), iter(["b", 2])])),
        (["a", "b"], [1, 2]),
    ),
    "lazy_list_of_generator_function": (
        lambda: LazyRows([_abc, [1, 2, 3]], total_num_rows=3),
        (["a", "b", "c"], [1, 2, 3]),
    ),
    "lazy_dict_of_generator_function": (
        lambda: LazyRows({"out1": _abc, "out2": [1, 2, 3]}, total_num_rows=3),
        (["a", "b", "c"], [1, 2, 3]),
    ),
    "batches_tuple_row": (
        lambda: LazyRowBatches(lambda: iter([[("a", 1), ("b", 2)], [("c", 3)]])),
        (["a", "b", "c"], [1, 2, 3]),
    ),
    "batches_tuple_column": (
        lambda: LazyRowBatches(lambda: iter([(["a", "b"], [1, 2]), (["c"], [3])])),
        (["a", "b", "c"], [1, 2, 3]),
    ),
    "batches_list_column": (
        lambda: LazyRowBatches(lambda: iter([[["a", "b", "c"], [1, 2, 3]], [["d"], [4]]])),
        (["a", "b", "c", "d"], [1, 2, 3, 4]),
    ),
    "batches_empty": (lambda: LazyRowBatches(lambda: iter([([], []), ([], [])])), ([], [])),
}


class One(Step):
    def setup(self):
        self.register_arg("case")
        self.register_output("out1")

    def run(self):
        return ONE.get(self.args["case"], REFUSED_ONE.get(self.args["case"], (None,)))[0]()


class Two(Step):
    def setup(self):
        self.register_arg("case")
        self.register_output("out1")
        self.register_output("out2")

    def run(self):
        return TWO.get(self.args["case"], REFUSED_TWO.get(self.args["case"], (None,)))[0]()


def test_every_form_datadreamer_accepts_gives_its_rows(tmp_path):
    with Pipeline(str(tmp_path / "output"), run=True):
        ones = {case: One(f"One {case}", args={"case": case}) for case in ONE}
        twos = {case: Two(f"Two {case}", args={"case": case}) for case in TWO}
    for case, step in ones.items():  # data(): the written rows, also of an iterable output
        assert step.output.data().dataset.to_dict() == {"out1": ONE[case][1]}, case
    for case, step in twos.items():
        out1, out2 = TWO[case][1]
        assert step.output.data().dataset.to_dict() == {"out1": out1, "out2": out2}, case


# case -> (run()'s value, DataDreamer's error type)
REFUSED_ONE = {
    "dict_wrong_key": (lambda: {"out2": 5}, StepOutputError),
    "dataset_dict": (lambda: datasets.DatasetDict({"train": _dataset(out1=[5])}), StepOutputError),
    "bare_iterable_dataset": (lambda: _iterable(out1=["a", "b"]), StepOutputError),
    "list_of_dicts_wrong_keys": (lambda: [{"out1": "a"}, {"out2": "b"}], StepOutputError),
    "tuple_wrong_number": (lambda: (["a", "b", "c"], [1, 2, 3]), StepOutputError),
    "dataset_extra_column": (lambda: _dataset(out1=["a"], out2=[1]), StepOutputError),
    "lazy_dataset_extra_column": (lambda: LazyRows(_iterable(out1=["a"], out2=[1])), StepOutputError),
    "lazy_dict_rows_wrong_keys": (lambda: LazyRows(lambda: iter([{"out2": "a"}])), StepOutputError),
    "batches_wrong_keys": (
        lambda: LazyRowBatches(lambda: iter([[{"out1": "a"}, {"out2": "b"}]])),
        StepOutputError,
    ),
    "function": (lambda: {"out1": [lambda x: x]}, StepOutputTypeError),
    "int_and_str": (lambda: {"out1": [5, "a"]}, StepOutputTypeError),
    "str_and_int": (lambda: {"out1": ["a", 5]}, StepOutputTypeError),
    "non_dict_and_dict": (lambda: {"out1": [5, {"foo": 5}]}, StepOutputTypeError),
    "list_with_int_and_str": (lambda: {"out1": [[5, "a"]]}, StepOutputTypeError),
    "list_and_non_list": (lambda: {"out1": [5, [5]]}, StepOutputTypeError),
    "lazy_int_and_str": (lambda: LazyRows(lambda: iter([{"out1": 5}, {"out1": "a"}])), StepOutputTypeError),
    "lazy_str_and_int": (lambda: LazyRows(lambda: iter([{"out1": "a"}, {"out1": 5}])), StepOutputTypeError),
    "lazy_non_dict_and_dict": (
        lambda: LazyRows(lambda: iter([{"out1": 5}, {"out1": {"foo": 5}}])),
        StepOutputTypeError,
    ),
    "lazy_int_and_float": (lambda: LazyRows(lambda: iter([5, 0.5])), StepOutputTypeError),
}
REFUSED_TWO = {
    "single_value": (lambda: 5, StepOutputError),
    "function": (lambda: lambda x: x, StepOutputError),
    "lazy_dataset_and_list": (
        lambda: LazyRows([_iterable(out1=["a", "b", "c"]), [1, 2, 3]]),
        StepOutputError,
    ),
    "lazy_list_rows_too_short": (lambda: LazyRows(lambda: iter([["a"], ["b"]])), StepOutputError),
    "lazy_tuple_rows_too_short": (lambda: LazyRows(lambda: iter([("a",), ("b",)])), StepOutputError),
    "batches_tuple_too_short": (lambda: LazyRowBatches(lambda: iter([(["a", "b"],)])), StepOutputError),
    "batches_list_column_ambiguous": (
        lambda: LazyRowBatches(lambda: iter([[["a", "b"], [1, 2]], [["c"], [3]]])),
        StepOutputTypeError,
    ),
}
REFUSED = [(One, case, error) for case, (_, error) in REFUSED_ONE.items()] + [
    (Two, case, error) for case, (_, error) in REFUSED_TWO.items()
]


@pytest.mark.parametrize(("cls", "case", "error"), REFUSED, ids=[f"{c.__name__}-{k}" for c, k, _ in REFUSED])
def test_every_form_datadreamer_refuses_is_refused_with_its_error_type(tmp_path, cls, case, error):
    with (
        pytest.raises(error, match=f"Step '{cls.__name__} {case}'") as raised,
        Pipeline(str(tmp_path), run=True),
    ):
        step = cls(f"{cls.__name__} {case}", args={"case": case})
        list(step.output)  # an iterable output's type error raises when read, as DataDreamer's
    if error is StepOutputError:
        assert not isinstance(raised.value, StepOutputTypeError), raised.value
    assert "Fix:" in str(raised.value)


def test_list_of_four_rows_for_four_outputs_is_refused(tmp_path):
    class Four(Step):
        def setup(self):
            for name in ("out1", "out2", "out3", "out4"):
                self.register_output(name)

        def run(self):
            return [("a", 1), ("b", 2), ("c", 3)]

    with pytest.raises(StepOutputError, match="Expected 4 outputs"), Pipeline(str(tmp_path), run=True):
        Four("Four")


def test_range_and_other_iterables_are_data_source_columns(tmp_path):
    with Pipeline(str(tmp_path / "output"), run=True):
        source = DataSource("Numbers", {"n": range(3), "s": iter("abc"), "t": (x * 2 for x in range(3))})
        same = DataSource("Numbers Again", {"n": [0, 1, 2], "s": ["a", "b", "c"], "t": [0, 2, 4]})
    assert source.output.dataset.to_dict() == {"n": [0, 1, 2], "s": ["a", "b", "c"], "t": [0, 2, 4]}
    assert source.fingerprint == same.fingerprint


def test_a_pipeline_block_inside_a_running_one_is_refused(tmp_path):
    with Pipeline(str(tmp_path / "outer"), run=True):
        with (
            pytest.raises(RuntimeError, match="Only one DataDreamer context may be active at a time"),
            Pipeline(str(tmp_path / "inner"), run=True),
        ):
            pass  # pragma: no cover
        DataSource("Still Works", {"x": [1]})
    with Pipeline(str(tmp_path / "after"), run=True):  # one block after another is fine
        pass


class NoOutput(Step):
    def setup(self):
        self.register_arg("x", required=False)


def test_declaration_errors_have_datadreamers_types():
    """DataDreamer raises TypeError for an input that is no column and ValueError for a step
    that registers no output (its src/steps/step.py); here too, naming step and fix."""
    source = DataSource("Texts", {"text": ["a"]})
    with pytest.raises(TypeError, match=r"Step 'Bad' \(Prompt\), argument \"inputs\['prompts'\]\".*Fix:"):
        Prompt("Bad", inputs={"prompts": ["a", "b"]}, args={"llm": FakeLLM()})
    with pytest.raises(ValueError, match="must register at least one output. Fix:") as raised:
        NoOutput("Nothing")
    assert not isinstance(raised.value, StepOutputError)
    assert source.output_columns == ["text"]


COLUMN_FORMS = {
    "column": lambda c: c,
    "list_of_column": lambda c: [c],
    "tuple_of_column": lambda c: (c,),
    "dict_of_column": lambda c: {"out1": c},
    "lazy_column": lambda c: LazyRows(c, total_num_rows=3),
    "lazy_tuple_of_column": lambda c: LazyRows((c,), total_num_rows=3),
    "lazy_dict_of_column": lambda c: LazyRows({"out1": c}, total_num_rows=3),
}


class FromColumn(Step):
    def setup(self):
        self.register_input("texts")
        self.register_arg("case")
        self.register_output("out1")

    def run(self):
        return COLUMN_FORMS[self.args["case"]](self.inputs["texts"])


def test_a_column_in_every_form_gives_its_values(tmp_path):
    """DataDreamer's TestColumn: an input column returned bare, in a list, tuple or dict, or
    in LazyRows, is the output column."""
    with Pipeline(str(tmp_path / "output"), run=True):
        source = DataSource("Texts", {"text": ["a", "b", "c"]})
        steps = {
            case: FromColumn(f"Column {case}", inputs={"texts": source.output["text"]}, args={"case": case})
            for case in COLUMN_FORMS
        }
    for case, step in steps.items():
        assert step.output.dataset.to_dict() == {"out1": ["a", "b", "c"]}, case
