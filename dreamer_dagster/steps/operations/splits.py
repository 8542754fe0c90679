"""``splits``: train / validation / test splits, each its own step, cut in row order."""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

from .base import OperationStep

__all__ = ["SPLIT_NAMES", "Split", "check_split_sizes", "split_indices", "split_steps"]

SPLIT_NAMES = ("train", "validation", "test")


class Split(OperationStep):
    """One split (``train``, ``validation`` or ``test``) of its source step's rows.

    Rows are cut in order, as DataDreamer cuts them (``train_test_split`` with
    ``shuffle=False``): the test rows are the last ones, the validation rows the
    ones before them, the train rows the first ones. Sizes are fractions summing
    to 1 or row counts summing to the number of rows. With
    ``stratify_by_column`` each value's rows are cut the same way (an addition:
    DataDreamer refuses it). Shuffle first (``step.shuffle(seed=...)``) for a
    random split. Writes the split's rows as its ``_dataset``.
    """

    OPERATION = "split"
    ARGS = {
        "split": None,
        "train_size": None,
        "validation_size": None,
        "test_size": None,
        "stratify_by_column": None,
    }

    def validate(self) -> None:
        sizes = {split: self.args[f"{split}_size"] for split in SPLIT_NAMES}
        problem = check_split_sizes(sizes)
        if problem is not None:
            raise self.error(problem[1], problem[0])
        if self.args["stratify_by_column"] is not None:
            self.check_column(self.args["stratify_by_column"], "stratify_by_column")
            if _counts(sizes):
                raise self.error(STRATIFY_COUNTS, "stratify_by_column")

    def apply(self, datasets: list[Any], context: Any) -> Any:
        dataset = datasets[0]
        column = self.args["stratify_by_column"]
        try:
            indices = split_indices(
                len(dataset),
                {split: self.args[f"{split}_size"] for split in SPLIT_NAMES},
                dataset[column] if column is not None else None,
            )
        except ValueError as error:
            raise self.error(str(error), "train_size") from None
        return dataset.select(indices[self.args["split"]])


STRATIFY_COUNTS = (
    "a stratified split cuts each value's rows by the same fractions, so it takes fractions "
    "(train_size=0.8, test_size=0.2), not row counts."
)


def _counts(sizes: dict[str, Any]) -> bool:
    return any(isinstance(size, int) and not isinstance(size, bool) and size != 0 for size in sizes.values())


def _given(sizes: dict[str, Any]) -> dict[str, Any]:
    """The sizes DataDreamer keeps: given and not 0, fractions as exact decimals."""
    return {
        split: Decimal(str(size)) if isinstance(size, float) else size
        for split, size in sizes.items()
        if size is not None and size != 0
    }


def check_split_sizes(sizes: dict[str, Any], whole: bool = True) -> tuple[str, str] | None:
    """``(argument, problem)`` if the split sizes are unusable whatever the rows, else None.

    Sizes are fractions (floats in [0, 1]) summing to 1, or row counts (ints)
    whose sum is checked against the rows when they are known; a 0 or None
    leaves that split out. ``whole`` is kept for callers: every split uses every row.
    """
    for split, size in sizes.items():
        if size is None:
            continue
        if isinstance(size, bool) or not isinstance(size, (int, float)) or size < 0:
            return f"{split}_size", f"must be a fraction or a row count >= 0, got {size!r}."
        if isinstance(size, float) and size > 1:
            return f"{split}_size", f"a fraction must be at most 1, got {size!r}."
    given = _given(sizes)
    if not given:
        return None  # DataDreamer: one train split of every row
    first = next(iter(given))
    fractions = [size for size in given.values() if isinstance(size, Decimal)]
    if fractions and len(fractions) < len(given):
        return f"{first}_size", "give all sizes as fractions or all as row counts, not a mix."
    if fractions and sum(fractions) != Decimal("1.0"):
        return (
            f"{first}_size",
            f"the split fractions add up to {sum(fractions)}; they must add up to 1.0 (DataDreamer's "
            "rule: every row lands in a split). Fix: make train_size + validation_size + test_size "
            "equal 1.0, or give row counts.",
        )
    return None


def _cut(rows: list[int], sizes: dict[str, Any]) -> dict[str, list[int]]:
    """DataDreamer's cut of ``rows``: each split from the end, by ``train_test_split``'s
    rounding with ``shuffle=False`` (``ceil`` for the split cut off, the rest remains)."""
    given = _given(sizes) or {"train": Decimal("1.0")}
    names, proportions = list(given), list(given.values())
    total = sum(proportions)
    if total != Decimal("1.0") and total != len(rows):
        raise ValueError(
            "If not None, train_size, validation_size, test_size must sum up to 1.0 or the number "
            f"of rows ({len(rows)}) in the dataset. Instead, got a total of: {total}."
        )
    cut: dict[str, list[int]] = {}
    remainder, left = rows, Decimal("1.0")
    while len(proportions) > 1:
        name, proportion = names.pop(), proportions.pop()
        test_size: float | int = float(proportion / left) if total == Decimal("1.0") else int(proportion)
        count = len(remainder)
        if count == 0:
            cut[name] = []
            continue
        if (isinstance(test_size, int) and not 0 < test_size < count) or (
            isinstance(test_size, float) and not 0 < test_size < 1
        ):
            raise ValueError(
                f"test_size={test_size} should be either positive and smaller than the number of "
                f"samples {count} or a float in the (0, 1) range"
            )
        n_test = math.ceil(test_size * count) if isinstance(test_size, float) else test_size
        n_train = count - n_test
        if n_train <= 0:
            raise ValueError(
                f"With n_samples={count}, test_size={test_size} and train_size=None, the resulting "
                "train set will be empty. Adjust any of the aforementioned parameters."
            )
        cut[name], remainder = remainder[n_train:], remainder[:n_train]
        if total == Decimal("1.0"):
            left -= proportion
    cut[names.pop()] = remainder
    return {split: cut[split] for split in SPLIT_NAMES if split in cut}


def split_indices(
    num_rows: int, sizes: dict[str, Any], stratify_values: list | None = None
) -> dict[str, list[int]]:
    """The row indices of each split, in row order (DataDreamer's cut, see ``_cut``).

    With ``stratify_values`` each value's rows (in order) are cut the same way
    and each split keeps the original row order.
    """
    if stratify_values is None:
        return _cut(list(range(num_rows)), sizes)
    if _counts(sizes):
        raise ValueError(STRATIFY_COUNTS)
    by_value: dict[str, list[int]] = {}
    for index, value in enumerate(stratify_values):
        by_value.setdefault(repr(value), []).append(index)
    chosen: dict[str, list[int]] = {}
    for key in sorted(by_value):
        for split, indices in _cut(by_value[key], sizes).items():
            chosen.setdefault(split, []).extend(indices)
    return {split: sorted(indices) for split, indices in chosen.items()}


def split_steps(
    source: Any,
    train_size: float | int | None = None,
    validation_size: float | int | None = None,
    test_size: float | int | None = None,
    stratify_by_column: str | None = None,
    name: str | None = None,
    options: dict[str, Any] | None = None,
) -> dict[str, Split]:
    """One ``Split`` step a split, named as DataDreamer names them: ``"Src (train split)"``,
    or ``"<name> (train)"`` with ``name``."""
    sizes = {"train": train_size, "validation": validation_size, "test": test_size}
    given = [split for split in SPLIT_NAMES if sizes[split] is not None and sizes[split] != 0]
    steps = {}
    for split in given or ["train"]:
        steps[split] = Split(
            source,
            name=f"{name} ({split})" if name else None,
            operation=f"{split} split",
            args={
                "split": split,
                **{f"{s}_size": sizes[s] for s in SPLIT_NAMES},
                "stratify_by_column": stratify_by_column,
            },
            **(options or {}),
        )
    return steps
