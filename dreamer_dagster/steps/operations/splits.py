"""``splits``: train / validation / test splits, each its own step."""

from __future__ import annotations

from typing import Any

from .base import OperationStep

__all__ = ["SPLIT_NAMES", "Split", "split_steps"]

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
        sizes = [self.args[f"{s}_size"] for s in SPLIT_NAMES]
        given = [s for s in sizes if s is not None]
        if not given:
            raise self.error("give at least one of train_size, validation_size, test_size.", "train_size")
        for split, size in zip(SPLIT_NAMES, sizes):
            if size is None:
                continue
            if isinstance(size, bool) or not isinstance(size, (int, float)) or size < 0:
                raise self.error(f"must be a fraction or a row count >= 0, got {size!r}.", f"{split}_size")
        fractions = [s for s in given if isinstance(s, float)]
        if fractions and len(fractions) != len(given):
            raise self.error("give all sizes as fractions or all as row counts, not a mix.", "train_size")
        if fractions and sum(fractions) > 1.0 + 1e-9:
            raise self.error(
                f"the split fractions add up to {sum(fractions):g}, which is over 1. "
                "Fix: make train_size + validation_size + test_size <= 1.",
                "train_size",
            )
        if self.args["stratify_by_column"] is not None:
            self.check_column(self.args["stratify_by_column"], "stratify_by_column")
        if not isinstance(self.args["seed"], int):
            raise self.error(f"must be an integer, got {self.args['seed']!r}.", "seed")

    def apply(self, datasets: list[Any], context: Any) -> Any:
        dataset = datasets[0]
        column = self.args["stratify_by_column"]
        if column is None:
            groups = [list(range(len(dataset)))]
        else:
            by_value: dict[str, list[int]] = {}
            for index, value in enumerate(dataset[column]):
                by_value.setdefault(repr(value), []).append(index)
            groups = [by_value[key] for key in sorted(by_value)]
        chosen: list[int] = []
        for group in groups:
            chosen.extend(self._cut(group, total=len(dataset), stratified=column is not None))
        return dataset.select(sorted(chosen) if column is not None else chosen)

    def _cut(self, indices: list[int], total: int, stratified: bool) -> list[int]:
        import random

        order = list(indices)
        random.Random(self.args["seed"]).shuffle(order)
        sizes = [self.args[f"{s}_size"] or 0 for s in SPLIT_NAMES]
        if any(isinstance(s, float) for s in sizes) or stratified:
            if not any(isinstance(s, float) for s in sizes):
                sizes = [s / total for s in sizes]
            counts = [int(round(s * len(order))) for s in sizes]
        else:
            counts = list(sizes)
        while sum(counts) > len(order):
            counts[counts.index(max(counts))] -= 1
        position = SPLIT_NAMES.index(self.args["split"])
        start = sum(counts[:position])
        return order[start : start + counts[position]]


def split_steps(
    source: Any,
    train_size: float | int | None = None,
    validation_size: float | int | None = None,
    test_size: float | int | None = None,
    stratify_by_column: str | None = None,
    seed: int = 42,
    name: str | None = None,
) -> dict[str, Split]:
    sizes = {"train": train_size, "validation": validation_size, "test": test_size}
    base = name or f"{source.name} (splits)"
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
        )
    if not steps:
        raise ValueError(
            f"Step {source.name!r}, splits(): give at least one of train_size, validation_size, test_size."
        )
    return steps
