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
        splits = words.splits(train_size=3, validation_size=2, test_size=1)
        stratified = words.splits(train_size=0.5, test_size=0.5, stratify_by_column="group", name="Strat")

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
    assert parts == {"train": WORDS[:3], "validation": WORDS[3:5], "test": WORDS[5:]}  # in order
    assert [step.name for step in splits.values()] == [
        "Words (train split)",
        "Words (validation split)",
        "Words (test split)",
    ]
    strat = {name: rows(output, step) for name, step in stratified.items()}
    # Each group's rows in order: x is delta, echo, charlie; y is alpha, bravo, foxtrot.
    assert strat["train"]["word"] == ["delta", "alpha"]
    assert strat["test"]["word"] == ["echo", "bravo", "charlie", "foxtrot"]
    assert "seed" not in step_json(output, splits["train"])["args"]


def test_split_indices_cut_in_order_as_datadreamer():
    # DataDreamer 0.46 on rows [3, 1, 2, 5, 4]: train [3, 1, 2], validation [5], test [4].
    cut = split_indices(5, {"train": 0.6, "validation": 0.2, "test": 0.2})
    assert cut == {"train": [0, 1, 2], "validation": [3], "test": [4]}
    # Its own test: 0.7 / 0.1 / 0.2 of 10 rows is 7 / 1 / 2 (train_test_split's ceil on each cut).
    cut = split_indices(10, {"train": 0.7, "validation": 0.1, "test": 0.2})
    assert cut == {"train": list(range(7)), "validation": [7], "test": [8, 9]}
    assert split_indices(10, {"validation": 0.3, "test": 0.7}) == {
        "validation": [0, 1, 2],
        "test": list(range(3, 10)),
    }
    assert split_indices(10, {"validation": 3, "test": 7}) == {
        "validation": [0, 1, 2],
        "test": list(range(3, 10)),
    }
    assert split_indices(4, {"train": None, "validation": 1.0}) == {"validation": [0, 1, 2, 3]}
    assert split_indices(4, {}) == {"train": [0, 1, 2, 3]}  # no size: one train split
    assert split_indices(3, {"train": 1.0, "test": 0}) == {"train": [0, 1, 2]}  # a 0 leaves it out
    with pytest.raises(ValueError, match=r"must sum up to 1.0 or the number of rows \(5\).*total of: 7"):
        split_indices(5, {"train": 3, "test": 4})
    with pytest.raises(ValueError, match="train set will be empty"):
        split_indices(1, {"train": 0.5, "test": 0.5})
    assert check_split_sizes({"train": 0.5, "test": 0}) is not None  # 0.5 alone does not make 1.0
    assert check_split_sizes({"train": 0.7, "validation": 0.1, "test": 0.2}) is None  # exact decimals
    assert check_split_sizes({"train": 0.5, "test": 2}) is not None
    assert check_split_sizes({"train": 0.5, "test": 0.4}) is not None
    assert check_split_sizes({"train": 3, "test": 4}) is None  # counts: checked against the rows


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
        (lambda s: s.splits(train_size=0.9, test_size=0.2), "train_size", ["add up to 1.1"]),
        (lambda s: s.splits(train_size=0.5, seed=1), "seed", ["shuffle first", "shuffle(seed=1)"]),
        (lambda s: s.splits(train_size=1, stratify_by_column="word"), "stratify_by_column", ["fractions"]),
        (lambda s: s.splits(train_size=1.5), "train_size", ["at most 1"]),
        (lambda s: s.splits(train_size=-1), "train_size", [">= 0"]),
        (lambda s: s.splits(train_size=0.5, test_size=3), "train_size", ["not a mix"]),
        (
            lambda s: s.splits(train_size=0.5, test_size=0.5, stratify_by_column="nope"),
            "stratify_by_column",
            [],
        ),
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
