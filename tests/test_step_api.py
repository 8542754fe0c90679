"""DataDreamer's step API beyond operations: ``select``, ``save``, ``copy``, ``head``,
``dataset_path``, ``data_card()``, ``output`` as rows, ``concat`` / ``zipped`` from
``dreamer_dagster.steps``, ``DataSource`` from an ``IterableDataset``, and DataDreamer's
naming rules. Each block runs as a script (``run=True``) into a temporary folder."""

from __future__ import annotations

import json

import datasets
import pytest

import dreamer_dagster
from dreamer_dagster import Pipeline
from dreamer_dagster.steps import DataSource, Step, StepDeclarationError, concat, zipped


@pytest.fixture(autouse=True)
def _runs_in_the_shared_home(script_home):
    """Script-mode blocks record their runs in one shared instance."""


def test_select_save_copy_head_and_output_rows(tmp_path):
    with Pipeline(str(tmp_path / "output"), run=True):
        source = DataSource("Source", {"x": [10, 11, 12, 13], "y": ["a", "b", "c", "d"]})
        picked = source.select([3, 0, 3])
        saved = source.save()
        copied = source.copy(name="My Copy")
        assert picked.name == "Source (select)" and saved.name == "Source (save)"
        assert picked.output["x"][0] == 13  # a deferred value, computed when compared
        assert list(picked.output["x"]) == [13, 10, 13]
        assert picked.output[1] == {"x": 10, "y": "a"}
        assert picked.output[0:2] == {"x": [13, 10], "y": ["d", "a"]}
        assert [row["y"] for row in saved.output] == ["a", "b", "c", "d"]
        assert copied.output.num_rows == 4 and len(copied.output) == 4
        assert copied.output.column_names == ["x", "y"]
        assert source.head(2).to_dict("list") == {"x": [10, 11], "y": ["a", "b"]}
        assert source.output.head(1, shuffle=True, seed=0).shape == (1, 2)
        assert source.dataset.num_rows == 4 and source.output.dataset.column_names == ["x", "y"]
        assert datasets.load_from_disk(source.dataset_path)["y"] == ["a", "b", "c", "d"]
    with pytest.raises(StepDeclarationError, match="every row number must be an integer >= 0"):
        source.select([-1])


def test_concat_and_zipped_from_steps(tmp_path):
    with Pipeline(str(tmp_path / "output"), run=True):
        a = DataSource("A", {"x": [1, 2]})
        b = DataSource("B", {"x": [3]})
        c = DataSource("C", {"z": ["p", "q"]})
        both = concat(a, b)
        again = concat(a, b)
        pairs = zipped(a, c)
        assert (both.name, again.name, pairs.name) == ("concat(A, B)", "concat(A, B) #2", "zipped(A, C)")
        assert list(both.output["x"]) == [1, 2, 3]
        assert pairs.output[1] == {"x": 2, "z": "q"}


def test_data_card_prints_the_card_of_every_step_behind(tmp_path, capsys):
    with Pipeline(str(tmp_path / "output"), run=True):
        source = DataSource("Source", {"x": [1]})
        taken = source.take(1)
        capsys.readouterr()
        taken.data_card()
    card = json.loads(capsys.readouterr().out)
    assert set(card) == {"Source", "Source (take)"}


def test_data_source_from_an_iterable_dataset(tmp_path):
    def rows(n):
        for i in range(n):
            yield {"i": i, "square": i * i}

    def declare(n):
        stream = datasets.IterableDataset.from_generator(rows, gen_kwargs={"n": n})
        return DataSource("Stream", stream, total_num_rows=n)

    with Pipeline(str(tmp_path / "output"), run=True):
        source = declare(4)
        assert source.output.column_names == ["i", "square"]
        assert list(source.output["square"]) == [0, 1, 4, 9]
    # The fingerprint follows the generator and its arguments, without running it.
    assert declare(4).fingerprint == source.fingerprint != declare(5).fingerprint


def test_naming_rules_duplicates_and_derived_names_numbered(tmp_path):
    with Pipeline(str(tmp_path / "output"), run=False) as pipeline:
        source = DataSource("Src", {"x": [1, 2, 3]})
        first, second, third = source.take(1), source.take(2), source.take(3)
        maps = [source.map(lambda row: row), source.map(lambda row: row)]
        splits = source.splits(train_size=0.5, test_size=0.5)
        more = source.splits(train_size=0.5, test_size=0.5)
        # DataDreamer's rule for a name already used: numbered, not refused.
        again = DataSource("Src", {"x": [4]})
        named = source.take(1, name="Src (take)")
        lower = DataSource("src", {"x": [5]})  # the same asset key as "Src"
    assert (again.name, again.key) == ("Src #2", "src_2")
    # "Src (take) #2" and "#3" would share the asset keys of "Src (take #2)" and "(take #3)"
    assert named.name == "Src (take) #4"
    assert lower.name == "src #3"
    assert [s.name for s in (first, second, third)] == ["Src (take)", "Src (take #2)", "Src (take #3)"]
    assert [s.name for s in maps] == ["Src (map)", "Src (map #2)"]
    # DataDreamer's names: "Src (train split)", then "Src (test split #2)" for a second one.
    assert splits["train"].name == "Src (train split)" and more["test"].name == "Src (test split #2)"
    assert len(pipeline.steps) == 1 + 3 + 2 + 4 + 3


class Pickled(Step):
    def setup(self):
        self.register_output("value")
        self.register_output("n")

    def run(self):
        offset = 10
        return {
            "value": [self.pickle({1, 2}), self.pickle(lambda x: x + offset)],  # dill: a closure too
            "n": [1, 2],
        }


class Applied(Step):
    """Reads the pickled column as values, as a DataDreamer step does."""

    def setup(self):
        self.register_input("value")
        self.register_output("kind")

    def run(self):
        return {"kind": [type(value).__name__ for value in self.inputs["value"]]}


def test_pickle_stores_values_arrow_cannot_and_reads_give_them_back(tmp_path):
    import dill

    from dreamer_dagster.pickling import PICKLE_KEY, unpickle_value

    output = tmp_path / "output"
    with Pipeline(str(output), run=True):
        step = Pickled("Pickled")
        first, second = step.output["value"][0], step.output["value"][1]
        assert first == {1, 2} and second(1) == 11  # unpickled on read, as in DataDreamer
        assert step.unpickle(first) == {1, 2}  # a value already restored is returned as is
        assert step.export_to_list()[0] == {"value": {1, 2}, "n": 1}
        assert step.export_to_dict()["value"][0] == {1, 2}
        assert step.dataset[0]["value"] == {1, 2}
        doubled = step.map(lambda row: {"n": row["n"] * 2, "has": 1 in row["value"] if row["n"] == 1 else 0})
        assert list(doubled.output["has"]) == [True, False]
        assert list(Applied("Applied", inputs={"value": step.output["value"]}).output["kind"]) == [
            "set",
            "function",
        ]
    record = json.loads((output / step.folder / "step.json").read_text())
    assert record["pickled"] is True and record["__version__"] == dreamer_dagster.__version__
    assert {"dill", "datasets", "dagster"} <= set(record["req_versions"]) and record["interpreter"]
    assert json.loads((output / doubled.folder / "step.json").read_text())["pickled"] is True
    plain = json.loads((output / "applied" / "step.json").read_text())
    assert plain["pickled"] is False
    stored = datasets.load_from_disk(str(output / step.folder / "_dataset"))["value"][0]
    assert dill.loads(stored) == {PICKLE_KEY: {1, 2}}  # DataDreamer's format, byte for byte
    assert unpickle_value(stored) == {1, 2}
