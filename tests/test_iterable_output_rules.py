"""DataDreamer's warnings, progress and type rules of iterable outputs (``LazyRows`` /
``LazyRowBatches`` not saved, ``DataSource`` of a generator): the ``UserWarning`` of rows of
unknown count and of a direct ``_pickle``; progress as the rows are read; the first row's
types cast onto later rows, and a row that breaks them raising ``StepOutputTypeError``
when the rows are read (``step.output``, a downstream step), not when the step runs."""

from __future__ import annotations

import warnings

import pytest

from dreamer_dagster import Pipeline
from dreamer_dagster.errors import StepOutputTypeError
from dreamer_dagster.pickling import direct_pickle, pickle_value, unpickle_value
from dreamer_dagster.steps import DataSource, LazyRowBatches, LazyRows, Step, concat


@pytest.fixture(autouse=True)
def _runs_in_the_shared_home(script_home):
    """Script-mode blocks here record their runs in one shared instance."""


def _rows():
    yield {"out1": "a"}
    yield {"out1": "b"}
    yield {"out1": "c"}


def test_rows_of_unknown_count_and_direct_pickle_warn_as_datadreamer():
    with pytest.warns(UserWarning, match=r"LazyRows\(\.\.\., total_num_rows=#\)"):
        LazyRows(_rows)
    with pytest.warns(UserWarning, match=r"LazyRowBatches\(\.\.\., total_num_rows=#\)"):
        LazyRowBatches(lambda: iter([{"out1": ["a"]}]))
    with pytest.warns(UserWarning, match=r"DataSource\(\.\.\., total_num_rows=#\)"):
        DataSource("Generated", _rows)
    with pytest.warns(UserWarning, match=r"\.pickle\(\) method on a Step"):
        assert unpickle_value(direct_pickle({5})) == {5}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a count given, progress off, or the step's own pickle
        assert LazyRows(_rows, total_num_rows=3).total_num_rows == 3
        LazyRows(_rows, auto_progress=False)
        LazyRowBatches(lambda: iter([]), total_num_rows=0)
        DataSource("Listed", {"out1": [1, 2]})
        DataSource("Counted", _rows, total_num_rows=3)
        assert unpickle_value(pickle_value({5})) == {5}


class Emit(Step):
    """Rows given by the ``rows`` arg, as a ``LazyRows`` iterable output."""

    def setup(self):
        self.register_arg("rows")
        self.register_arg("total", required=False, default=None)
        self.register_output("out1")

    def run(self):
        rows = self.args["rows"]
        return LazyRows(lambda: iter(rows), total_num_rows=self.args["total"], auto_progress=False)


class Copy(Step):
    def setup(self):
        self.register_input("values")
        self.register_output("out1")

    def run(self):
        return list(self.inputs["values"])


def test_an_iterable_output_casts_later_rows_to_the_first_rows_types(tmp_path):
    with Pipeline(str(tmp_path / "output"), run=True):
        cast = Emit("Cast", args={"rows": [{"out1": ["a"]}, {"out1": [5]}], "total": 2})
        assert [row["out1"] for row in cast.output] == [["a"], ["5"]]


@pytest.mark.parametrize(
    "rows",
    [
        [{"out1": 5}, {"out1": "a"}],  # a column changing type
        [{"out1": [5]}, {"out1": ["a"]}],  # a value Arrow cannot cast to the first row's type
        [{"out1": {"foo": 5}}, {"out1": {"foo": {"baz": 6}, "bar": 7}}],  # a dict of another shape
    ],
    ids=["int_then_str", "list_int_then_str", "dict_other_shape"],
)
def test_a_row_breaking_the_types_raises_when_the_rows_are_read(tmp_path, rows):
    with Pipeline(str(tmp_path / "output"), run=True):
        step = Emit("Mixed", args={"rows": rows, "total": 2})  # the step runs and finishes
        read = iter(step.output)
        assert next(read) == rows[0]  # the rows before the bad one read
        with pytest.raises(StepOutputTypeError, match="Mixed"):
            next(read)
        with pytest.raises(StepOutputTypeError, match="Mixed"):  # a downstream step's read too
            Copy("Downstream", inputs={"values": step.output["out1"]})


def test_progress_of_an_iterable_output_follows_its_reads(tmp_path):
    with Pipeline(str(tmp_path / "output"), run=True):
        step = Emit("Three", args={"rows": list(_rows()), "total": 3})
        assert step.progress == 0.0  # computed on demand: nothing read yet
        read = iter(step.output)
        next(read)
        assert step.progress == pytest.approx(1 / 3)
        list(read)
        assert step.progress == 1.0
        listed = DataSource("Listed", {"out1": [1]})
        assert listed.progress == 1.0  # a dataset output is done once written


def test_lazy_concat_of_rows_of_unknown_count_warns_and_has_no_num_rows(tmp_path):
    with Pipeline(str(tmp_path / "output"), run=True):
        known = DataSource("Known", {"out1": ["a", "b"]})
        unknown = Emit("Unknown", args={"rows": list(_rows())})
        with pytest.warns(UserWarning, match="total_num_rows"):
            joined = concat(known, unknown)
        assert joined.output.num_rows is None
        assert [row["out1"] for row in joined.output] == ["a", "b", "a", "b", "c"]
        with warnings.catch_warnings():
            warnings.simplefilter("error", UserWarning)
            counted = Emit("Counted", args={"rows": list(_rows()), "total": 3})
            assert concat(known, counted).output.num_rows == 5
