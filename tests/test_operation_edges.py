"""Operation edge cases behave as DataDreamer's: past the end, zero or one step, other columns."""

from __future__ import annotations

import pytest

from dreamer_dagster import Pipeline, concat, zipped
from dreamer_dagster.steps import DataSource


def test_edges_of_take_skip_select_concat_and_zipped(tmp_path):
    with Pipeline(str(tmp_path / "output"), run=True):
        three = DataSource("Three", {"x": [1, 2, 3]})
        other = DataSource("Other", {"y": ["p"], "x": [4]})
        assert list(three.skip(5).output["x"]) == []  # DataDreamer: 0 rows, not an error
        assert three.skip(5).output.num_rows == 0
        assert list(three.take(10).output["x"]) == [1, 2, 3]
        assert list(three.take(0).output["x"]) == []
        # concat of steps with other columns: the union, None where a step lacks a column
        union = concat(three, other)
        assert union.output_columns == ["x", "y"]  # known at declaration
        assert list(union.output["x"]) == [1, 2, 3, 4]
        assert list(union.output["y"]) == [None, None, None, "p"]
        # one step is enough for either
        alone = concat(three, name="Alone")
        assert list(alone.output["x"]) == [1, 2, 3]
        assert list(zipped(three).output["x"]) == [1, 2, 3]
        with pytest.raises(IndexError, match=r"rows \[7\] do not exist; 'Three' has 3 rows"):
            three.select([0, 7]).output.num_rows  # noqa: B018
        words = DataSource("Words", {"x": ["one"]})
        # A step runs when declared in a script (as in DataDreamer): the error raises here.
        with pytest.raises(Exception, match="Step 'Clash'.*can't be aligned.*Fix: give the column one type"):
            concat(three, words, name="Clash")


@pytest.mark.parametrize("combine", [concat, zipped])
def test_no_step_or_not_a_step_is_refused_with_datadreamers_errors(combine):
    name = combine.__name__
    with pytest.raises(ValueError, match=rf"^You must provide at least one step to {name}\(\)\.$"):
        combine()
    with pytest.raises(TypeError, match=rf"^All arguments to {name}\(\) must be of type Step\.$"):
        combine(DataSource("A", {"x": [1]}), [1, 2])
