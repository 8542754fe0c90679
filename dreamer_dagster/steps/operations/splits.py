"""``splits``: train / validation / test splits, each its own step."""

from __future__ import annotations

from typing import Any

from .base import OperationStep

__all__ = ["SPLIT_NAMES", "Split", "check_split_sizes", "split_indices", "split_steps"]

SPLIT_NAMES = ("train", "validation", "test")


class Split(OperationStep):
    """One split (``train``, ``validation`` or ``test``) of its source step's rows.

    Rows are shuffled with ``seed`` and cut by the sizes: fractions (summing to
    at most 1) or row counts. With ``stratify_by_column``, each value of that
    column is cut in the same proportions.
    """

    OPERATION = "split"
    ARGS = {
        "split": None,
        "train_size": None,
        "validation_size": None,
        "test_size": None,
        "stratify_by_column": None,
        "seed": 42,
    }

    def validate(self) -> None:
        sizes = {split: self.args[f"{split}_size"] for split in SPLIT_NAMES}
        problem = check_split_sizes(sizes)
        if problem is not None:
            raise self.error(problem[1], problem[0])
        if self.args["stratify_by_column"] is not None:
            self.check_column(self.args["stratify_by_column"], "stratify_by_column")
        if isinstance(self.args["seed"], bool) or not isinstance(self.args["seed"], int):
            raise self.error(f"must be an integer, got {self.args['seed']!r}.", "seed")

    def apply(self, datasets: list[Any], context: Any) -> Any:
        dataset = datasets[0]
        column = self.args["stratify_by_column"]
        indices = split_indices(
            len(dataset),
            {split: self.args[f"{split}_size"] for split in SPLIT_NAMES},
            dataset[column] if column is not None else None,
            self.args["seed"],
        )
        return dataset.select(indices[self.args["split"]])


def check_split_sizes(sizes: dict[str, Any], whole: bool = False) -> tuple[str, str] | None:
    """``(argument, problem)`` if the split sizes are unusable, else None.

    Sizes are fractions (floats in [0, 1] summing to at most 1; exactly 1 with
    ``whole``) or row counts (ints); a 0 goes with either.
    """
    given = {split: size for split, size in sizes.items() if size is not None}
    if not given:
        return "train_size", "give at least one of train_size, validation_size, test_size."
    for split, size in given.items():
        if isinstance(size, bool) or not isinstance(size, (int, float)) or size < 0:
            return f"{split}_size", f"must be a fraction or a row count >= 0, got {size!r}."
        if isinstance(size, float) and size > 1:
            return f"{split}_size", f"a fraction must be at most 1, got {size!r}."
    fractions = [size for size in given.values() if isinstance(size, float)]
    counts = [size for size in given.values() if isinstance(size, int) and size != 0]
    first = next(iter(given))
    if fractions and counts:
        return f"{first}_size", "give all sizes as fractions or all as row counts, not a mix."
    if fractions and sum(fractions) > 1.0 + 1e-9:
        return (
            f"{first}_size",
            f"the split fractions add up to {sum(fractions):g}, which is over 1. "
            "Fix: make train_size + validation_size + test_size <= 1.",
        )
    if whole and fractions and abs(sum(fractions) - 1.0) > 1e-9:
        return (
            f"{first}_size",
            f"the split fractions add up to {sum(fractions):g}; they must add up to 1 so that "
            "every row is exported.",
        )
    return None


def split_indices(
    num_rows: int, sizes: dict[str, Any], stratify_values: list | None = None, seed: int = 42
) -> dict[str, list[int]]:
    """The row indices of each split: rows shuffled with ``seed``, then cut by ``sizes``.

    Fractions are rounded per split; row counts over the rows available are cut
    from the last split first. With ``stratify_values`` each value's rows are cut
    in the same proportions and each split keeps the original row order.
    """
    import random

    names = [split for split in SPLIT_NAMES if sizes.get(split) is not None]
    given = [sizes[split] for split in names]
    if stratify_values is None:
        groups = [list(range(num_rows))]
    else:
        by_value: dict[str, list[int]] = {}
        for index, value in enumerate(stratify_values):
            by_value.setdefault(repr(value), []).append(index)
        groups = [by_value[key] for key in sorted(by_value)]
    fractional = any(isinstance(size, float) for size in given) or stratify_values is not None
    fractions = [size if isinstance(size, float) else size / max(num_rows, 1) for size in given]
    chosen: dict[str, list[int]] = {split: [] for split in names}
    for group in groups:
        order = list(group)
        random.Random(seed).shuffle(order)
        counts = [int(round(f * len(order))) for f in fractions] if fractional else list(given)
        while sum(counts) > len(order):
            last = max(i for i, count in enumerate(counts) if count > 0)
            counts[last] -= 1
        start = 0
        for split, count in zip(names, counts):
            chosen[split].extend(order[start : start + count])
            start += count
    if stratify_values is not None:
        chosen = {split: sorted(indices) for split, indices in chosen.items()}
    return chosen


def split_steps(
    source: Any,
    train_size: float | int | None = None,
    validation_size: float | int | None = None,
    test_size: float | int | None = None,
    stratify_by_column: str | None = None,
    seed: int = 42,
    name: str | None = None,
    options: dict[str, Any] | None = None,
) -> dict[str, Split]:
    from ...pipeline import Pipeline

    sizes = {"train": train_size, "validation": validation_size, "test": test_size}
    parts = tuple(split for split, size in sizes.items() if size is not None)
    base = name or Pipeline.derived_name(source.name.split(" / ")[-1], "splits", parts)
    steps = {}
    for split, size in sizes.items():
        if size is None:
            continue
        steps[split] = Split(
            source,
            name=f"{base} ({split})",
            args={
                "split": split,
                **{f"{s}_size": sizes[s] for s in SPLIT_NAMES},
                "stratify_by_column": stratify_by_column,
                "seed": seed,
            },
            **(options or {}),
        )
    if not steps:
        raise source.error(
            "splits() needs at least one of train_size, validation_size, test_size.", "train_size"
        )
    return steps
