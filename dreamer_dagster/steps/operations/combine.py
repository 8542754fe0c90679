"""``concat`` and ``zipped``: steps built from several steps."""

from __future__ import annotations

from typing import Any

from .base import OperationStep

__all__ = ["Concat", "Zipped"]


class Concat(OperationStep):
    """Rows of one or more steps one after another (``axis=0``: the union of their
    columns, a column a step lacks filled with None, as ``datasets.concatenate_datasets``
    does), or their columns side by side (``axis=1``, same row count, distinct column
    names). Writes the combined rows as its ``_dataset``."""

    OPERATION = "concat"
    ARGS = {"axis": 0}

    def validate(self) -> None:
        if self.args["axis"] not in (0, 1):
            raise self.error(f"must be 0 (rows) or 1 (columns), got {self.args['axis']!r}.", "axis")
        known = [s.output_columns for s in self._sources if s.output_columns is not None]
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
            return list(dict.fromkeys(c for columns in source_columns for c in columns))  # the union
        return [c for columns in source_columns for c in columns]

    def apply(self, datasets: list[Any], context: Any) -> Any:
        import datasets as hf_datasets

        if self.args["axis"] == 1:
            lengths = [len(d) for d in datasets]
            if len(set(lengths)) > 1:
                raise ValueError(f"Step {self.name!r}: steps side by side have different lengths {lengths}.")
        try:
            return hf_datasets.concatenate_datasets(list(datasets), axis=self.args["axis"])
        except ValueError as error:  # a column with one type in a step and another in the next
            raise ValueError(
                f"Step {self.name!r}: {error} Fix: give the column one type in every step "
                "(map or rename_column first)."
            ) from error


class Zipped(Concat):
    """The columns of several steps side by side, row by row (``concat(axis=1)``)."""

    OPERATION = "zipped"
    ARGS = {"axis": 1}
