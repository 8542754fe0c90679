"""``concat`` and ``zipped``: steps built from several steps."""

from __future__ import annotations

from typing import Any

from .base import OperationStep

__all__ = ["Concat", "Zipped"]


class Concat(OperationStep):
    """Rows of several steps one after another (``axis=0``, same columns), or their
    columns side by side (``axis=1``, same row count, distinct column names)."""

    OPERATION = "concat"
    ARGS = {"axis": 0}

    def validate(self) -> None:
        if self.args["axis"] not in (0, 1):
            raise self.error(f"must be 0 (rows) or 1 (columns), got {self.args['axis']!r}.", "axis")
        if len(self._sources) < 2:
            raise self.error("give at least two steps to combine.", "steps")
        known = [s.output_columns for s in self._sources if s.output_columns is not None]
        if self.args["axis"] == 0 and len(known) > 1 and any(sorted(k) != sorted(known[0]) for k in known):
            raise self.error(f"steps with axis=0 must have the same columns; they have {known}.", "steps")
        if self.args["axis"] == 1:
            flat = [c for k in known for c in k]
            duplicated = sorted({c for c in flat if flat.count(c) > 1})
            if duplicated:
                raise self.error(
                    f"steps side by side must have distinct columns; {duplicated} repeat. "
                    "Fix: rename_column on one of them first.",
                    "steps",
                )

    def columns(self, source_columns: list[list[str]]) -> list[str]:
        if self.args["axis"] == 0:
            return list(source_columns[0])
        return [c for columns in source_columns for c in columns]

    def apply(self, datasets: list[Any], context: Any) -> Any:
        import datasets as hf_datasets

        if self.args["axis"] == 1:
            lengths = [len(d) for d in datasets]
            if len(set(lengths)) > 1:
                raise ValueError(f"Step {self.name!r}: steps side by side have different lengths {lengths}.")
        return hf_datasets.concatenate_datasets(list(datasets), axis=self.args["axis"])


class Zipped(Concat):
    """The columns of several steps side by side, row by row (``concat(axis=1)``)."""

    OPERATION = "zipped"
    ARGS = {"axis": 1}
