"""Every operation produces the right rows and checks its arguments when declared."""

from __future__ import annotations

import pytest

from dreamer_dagster import Pipeline, concat, zipped
from dreamer_dagster.steps import DataSource, StepDeclarationError
from dreamer_dagster.steps.operations.splits import check_split_sizes, split_indices
from tests.support.foundation import materialize, rows, step_json

WORDS = ["delta", "alpha", "echo", "bravo", "charlie", "foxtrot"]
GROUPS = ["x", "y", "x", "y", "x", "y"]


def test_every_operation_produces_its_rows(tmp_path, instance):
    output = tmp_path / "output"
    with Pipeline(str(output)) as pipeline:
        words = DataSource("Words", {"word": WORDS, "group": GROUPS, "n": list(range(6))})
        other = DataSource("Other", {"word": ["golf"], "group": ["z"], "n": [6]})
        extra = DataSource("Extra", {"flag": [True, False, True, False, True, False]})
        ops = {
            "select": words.select_columns(["word"]),
            "select_one": words.select_columns("n", name="Select One"),
            "remove": words.remove_columns(["group", "n"]),
            "rename": words.rename_column("word", "token"),
            "renames": words.rename_columns({"word": "w", "n": "i"}),
            "map": words.map(lambda row: {"length": len(row["word"])}, name="Lengths"),
            "map_batched": words.map(
                lambda batch: {"word": [w.upper() for w in batch["word"]]},
                batched=True,
                batch_size=4,
                input_columns=None,
                name="Upper",
                output_columns=["word", "group", "n"],
            ),
            "map_indices": words.map(
                lambda row, index: {"slot": index * 10},
                with_indices=True,
                remove_columns=["group"],
                name="Slots",
            ),
            "filter": words.filter(lambda row: row["group"] == "x"),
            "filter_batched": words.filter(
                lambda ns: [n % 3 == 0 for n in ns], input_columns="n", batched=True, name="Every Third"
            ),
            "shuffle": words.shuffle(seed=3),
            "shuffle_same": words.shuffle(seed=3, name="Shuffled Again"),
            "shuffle_other": words.shuffle(seed=4, name="Shuffled Otherwise"),
            "take": words.take(2),
            "take_all": words.take(100, name="Take All"),
            "skip": words.skip(4),
            "sort": words.sort("word"),
            "sort_reverse": words.sort(["group", "word"], reverse=True, name="Sorted Backwards"),
            "shard": words.shard(num_shards=3, index=1),
            "shard_contiguous": words.shard(num_shards=3, index=1, contiguous=True, name="Block"),
            "reverse": words.reverse(),
            "add_item": words.add_item({"word": "golf", "group": "z", "n": 6}),
            "concat": concat(words, other),
            "concat_columns": concat(words, extra, axis=1, name="Side by Side"),
            "zipped": zipped(words.select_columns("word", name="Only Words"), extra),
        }
        splits = words.splits(train_size=0.5, validation_size=2 / 6, test_size=1 / 6, seed=1)
        stratified = words.splits(train_size=2 / 3, test_size=1 / 3, stratify_by_column="group", name="Strat")

    assert ops["select"].output_columns == ["word"]
    assert ops["remove"].output_columns == ["word"]
    assert ops["rename"].output_columns == ["token", "group", "n"]
    assert ops["renames"].output_columns == ["w", "group", "i"]
    assert ops["map"].output_columns is None
    assert ops["concat_columns"].output_columns == ["word", "group", "n", "flag"]
    assert sorted(splits) == ["test", "train", "validation"]
    assert ops["rename"].name == "Words (rename_column)"
    assert ops["take"].name == "Words (take)"

    materialize(pipeline.steps, instance, output)
    got = {name: rows(output, step) for name, step in ops.items()}

    assert got["select"] == {"word": WORDS}
    assert got["select_one"] == {"n": list(range(6))}
    assert got["remove"] == {"word": WORDS}
    assert got["rename"]["token"] == WORDS
    assert sorted(got["renames"]) == ["group", "i", "w"]
    assert got["map"]["length"] == [len(w) for w in WORDS]
    assert got["map"]["word"] == WORDS
    assert got["map_batched"]["word"] == [w.upper() for w in WORDS]
    assert got["map_indices"] == {"word": WORDS, "n": list(range(6)), "slot": [0, 10, 20, 30, 40, 50]}
    assert got["filter"]["word"] == ["delta", "echo", "charlie"]
    assert got["filter_batched"]["n"] == [0, 3]
    assert sorted(got["shuffle"]["word"]) == sorted(WORDS)
    assert got["shuffle"]["word"] != WORDS
    assert got["shuffle"] == got["shuffle_same"]
    assert got["shuffle_other"]["word"] != got["shuffle"]["word"]
    assert got["take"]["word"] == WORDS[:2]
    assert got["take_all"]["word"] == WORDS
    assert got["skip"]["word"] == WORDS[4:]
    assert got["sort"]["word"] == sorted(WORDS)
    assert list(zip(got["sort_reverse"]["group"], got["sort_reverse"]["word"])) == sorted(
        zip(GROUPS, WORDS), reverse=True
    )
    assert got["shard"]["word"] == WORDS[1::3]
    assert got["shard_contiguous"]["word"] == WORDS[2:4]
    assert got["reverse"]["word"] == WORDS[::-1]
    assert got["add_item"]["word"] == [*WORDS, "golf"]
    assert got["concat"]["word"] == [*WORDS, "golf"]
    assert got["concat_columns"]["flag"] == [True, False] * 3
    assert got["concat_columns"]["word"] == WORDS
    assert got["zipped"] == {"word": WORDS, "flag": [True, False] * 3}

    parts = {name: rows(output, step)["word"] for name, step in splits.items()}
    assert [len(parts[s]) for s in ("train", "validation", "test")] == [3, 2, 1]
    assert sorted(parts["train"] + parts["validation"] + parts["test"]) == sorted(WORDS)
    strat = {name: rows(output, step) for name, step in stratified.items()}
    assert sorted(strat["train"]["group"]) == ["x", "x", "y", "y"]
    assert sorted(strat["test"]["group"]) == ["x", "y"]
    assert step_json(output, splits["train"])["args"]["seed"] == 1


def test_split_indices_cut_every_row_once():
    cut = split_indices(10, {"train": 0.7, "validation": 0.2, "test": 0.1}, seed=5)
    assert [len(cut[s]) for s in ("train", "validation", "test")] == [7, 2, 1]
    assert sorted(cut["train"] + cut["validation"] + cut["test"]) == list(range(10))
    assert cut == split_indices(10, {"train": 0.7, "validation": 0.2, "test": 0.1}, seed=5)
    assert cut != split_indices(10, {"train": 0.7, "validation": 0.2, "test": 0.1}, seed=6)
    counts = split_indices(5, {"train": 3, "test": 4})
    assert len(counts["train"]) == 3
    assert len(counts["test"]) == 2
    assert check_split_sizes({"train": 0.5, "test": 0}) is None
    assert check_split_sizes({"train": 0.5, "test": 2}) is not None
    assert check_split_sizes({"train": 0.5, "test": 0.4}, whole=True) is not None


@pytest.mark.parametrize(
    ("declare_bad", "argument", "words"),
    [
        (lambda s: s.select_columns([]), "column_names", ["one or more"]),
        (lambda s: s.remove_columns("nope"), "column_names", ["'nope'"]),
        (lambda s: s.rename_column("nope", "new"), "column_mapping", ["'nope'"]),
        (lambda s: s.rename_columns({"word": ""}), "column_mapping", ["non-empty"]),
        (lambda s: s.map("not a function"), "function", ["must be a function"]),
        (lambda s: s.map(lambda r: r, remove_columns=["nope"]), "remove_columns", ["'nope'"]),
        (lambda s: s.filter(lambda r: True, input_columns="nope"), "input_columns", ["'nope'"]),
        (lambda s: s.take(-3), "n", [">= 0", "-3"]),
        (lambda s: s.skip(1.5), "n", ["integer"]),
        (lambda s: s.shuffle(seed="x"), "seed", ["integer"]),
        (lambda s: s.sort("nope"), "column_names", ["'nope'"]),
        (lambda s: s.sort("word", null_placement="middle"), "null_placement", []),
        (lambda s: s.shard(num_shards=0, index=0), "num_shards", [">= 1"]),
        (lambda s: s.add_item({"word": "x"}), "item", ["exactly the columns"]),
        (lambda s: s.splits(), "train_size", ["at least one"]),
        (lambda s: s.splits(train_size=0.9, test_size=0.2), "train_size", ["over 1"]),
        (lambda s: s.splits(train_size=1.5), "train_size", ["at most 1"]),
        (lambda s: s.splits(train_size=-1), "train_size", [">= 0"]),
        (lambda s: s.splits(train_size=0.5, test_size=3), "train_size", ["not a mix"]),
        (
            lambda s: s.splits(train_size=0.5, test_size=0.5, stratify_by_column="nope"),
            "stratify_by_column",
            [],
        ),
        (lambda s: concat(s), "steps", ["at least two"]),
        (lambda s: concat(s, DataSource("B", {"other": [1]})), "steps", ["same columns"]),
        (lambda s: zipped(s, DataSource("C", {"word": ["x"]})), "steps", ["distinct columns"]),
        (lambda s: concat(s, s, axis=2), "axis", []),
    ],
)
def test_bad_operations_fail_when_declared(declare_bad, argument, words):
    source = DataSource("Words", {"word": ["a"], "n": [1]})
    with pytest.raises(StepDeclarationError) as caught:
        declare_bad(source)
    message = str(caught.value)
    assert message.startswith("Step '")
    assert f"argument {argument!r}" in message
    for word in words:
        assert word in message
