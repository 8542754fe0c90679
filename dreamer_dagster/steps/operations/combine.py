"""``concat`` and ``zipped``: steps built from several steps."""

from __future__ import annotations

from typing import Any

from ...errors import StepOutputTypeError
from .base import OperationStep

__all__ = ["Concat", "Zipped"]


class Concat(OperationStep):
    """Rows of one or more steps one after another (``axis=0``: the union of their
    columns, a column a step lacks filled with None, as ``datasets.concatenate_datasets``
    does), or their columns side by side (``axis=1``, same row count, distinct column
    names). Writes the combined rows as its ``_dataset``."""

    OPERATION = "concat"
    ARGS = {"axis": 0}
    LAZY_RULE = "always"

    def __init__(self, sources: Any, *args: Any, **options: Any):
        from ..lazy import rows_unknown
        from ..step import Step

        # A source whose output is iterable with no row count (known in a running script):
        # its written rows are not counted, so the result's num_rows is None, as DataDreamer's.
        listed = [sources] if isinstance(sources, Step) else list(sources)
        self._rows_unknown = [isinstance(s, Step) and rows_unknown(s) for s in listed]
        super().__init__(sources, *args, **options)
        if self.lazy_output and any(self._rows_unknown):
            import warnings

            warnings.warn(  # DataDreamer's LazyRows warning: a lazy result of unknown length
                "You did not specify `total_num_rows`, so we cannot automatically update the progress % "
                f"for this step: {self.OPERATION}() of steps whose num_rows is unknown.",
                stacklevel=3,
            )

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
                raise StepOutputTypeError(
                    f"Step {self.name!r}: steps side by side have different lengths {lengths}. Fix: "
                    "take() the same number of rows from each, or zip them lazily (lazy=True: the "
                    "shorter ones end in None)."
                )
        try:
            return hf_datasets.concatenate_datasets(list(datasets), axis=self.args["axis"])
        except ValueError as error:  # a column with one type in a step and another in the next
            raise StepOutputTypeError(
                f"Step {self.name!r}: {error} Fix: give the column one type in every step "
                "(map or rename_column first)."
            ) from error

    def lazy_rows(self, iterables: list[Any], counts: list[int | None]) -> tuple[Any, int | None]:

        axis = self.args["axis"]
        unknown = getattr(self, "_rows_unknown", [])
        counts = [None if i < len(unknown) and unknown[i] else count for i, count in enumerate(counts)]
        known = None if any(count is None for count in counts) else counts
        total = None if known is None else (sum(known) if axis == 0 else max(known))
        if axis == 1:  # side by side: a shorter step ends in None, as DataDreamer's
            return self._side_by_side(iterables), total
        return self._union_rows(iterables), total

    def _side_by_side(self, iterables: list[Any]) -> Any:
        """Row ``i`` of every step merged into one row; a step out of rows gives None."""
        import itertools

        import datasets as hf_datasets

        features = [iterable.features for iterable in iterables]
        known = all(f is not None for f in features)
        union = hf_datasets.Features({k: v for f in features for k, v in f.items()}) if known else None
        columns = [list(f) if f is not None else None for f in features]

        def rows() -> Any:
            for parts in itertools.zip_longest(*iterables):
                row: dict = {}
                for index, part in enumerate(parts):
                    if part is None:
                        row.update(dict.fromkeys(columns[index] or []))
                    else:
                        columns[index] = columns[index] or list(part)
                        row.update(part)
                yield row

        return hf_datasets.IterableDataset.from_generator(rows, features=union)

    def _union_rows(self, iterables: list[Any]) -> Any:
        """The rows one step after another, each with the union of their columns (None where a
        step lacks one); columns of one name and two types fail as the written concat does."""
        import datasets as hf_datasets
        from datasets.features.features import _check_if_features_can_be_aligned

        features = [iterable.features for iterable in iterables]
        union = None
        if all(f is not None for f in features):
            try:
                _check_if_features_can_be_aligned(features)
            except ValueError as error:
                raise StepOutputTypeError(
                    f"Step {self.name!r}: {error} Fix: give the column one type in every step "
                    "(map or rename_column first)."
                ) from None
            union = hf_datasets.Features({k: v for f in features for k, v in f.items()})
        columns = list(union) if union is not None else None

        def rows() -> Any:
            for iterable in iterables:
                for row in iterable:
                    yield row if columns is None else {column: row.get(column) for column in columns}

        return hf_datasets.IterableDataset.from_generator(rows, features=union)


class Zipped(Concat):
    """The columns of several steps side by side, row by row (``concat(axis=1)``)."""

    OPERATION = "zipped"
    ARGS = {"axis": 1}
