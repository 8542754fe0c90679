"""``step.output`` of a step whose output is an iterable dataset (DataDreamer's
``OutputIterableDataset`` / ``OutputIterableDatasetColumn``).

A lazy operation's output (steps/lazy.py), or a DataDreamer-style step whose ``run()``
returned ``LazyRows``: its rows are computed on demand, ``num_rows`` is None unless
``total_num_rows`` was given (or the operation knows it: ``take(2)`` of 3 rows), and it
has no ``len()``. It is still a declaration: ``step.output["col"]`` is a column
reference another step takes as input (and iterates to the column's values in a script).

DataDreamer's constructors also work: ``OutputIterableDataset(step, iterable_dataset,
pickled=False, total_num_rows=None)`` and ``OutputIterableDatasetColumn(step,
one_column_iterable_dataset, ...)`` are outputs in memory over that
``datasets.IterableDataset`` (rows on demand, pickled values restored when read).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ..deferred import ColumnRef
from .output_data import ColumnData, OutputColumns, OutputData, check_in_memory, not_a_reference

if TYPE_CHECKING:
    from .step import Step

__all__ = ["OutputIterableDataset", "OutputIterableDatasetColumn", "output_for"]


def output_for(step: Step) -> OutputColumns:
    """``step.output``: an :class:`OutputIterableDataset` for a lazy operation, or for a step a
    script ran (in its block or after it) whose ``run()`` gave rows on demand; else
    :class:`OutputColumns`."""
    if getattr(step, "lazy_output", False):
        return OutputIterableDataset(step)
    from .lazy import ITERABLE_RECORD, finished_record

    pipeline = step.pipeline
    if pipeline is not None and pipeline.script_mode:
        record = finished_record(step)  # it ran when declared (script_steps.py), or in the block
        if record and record.get(ITERABLE_RECORD):
            return OutputIterableDataset(step)
    elif getattr(step, "runs_in_memory", False) and type(step).uses_registration():
        # A DataDreamer-style step outside any block: DataDreamer ran it when declared, so its
        # output's kind is known now; here it runs on this first look (script_steps.py).
        step.read_dataset("step.output")
        record = step.finished_record()[1]
        if record.get(ITERABLE_RECORD):
            return OutputIterableDataset(step)
    return OutputColumns(step)


def _total_num_rows(step: Step, what: str) -> int | None:
    from .lazy import ITERABLE_RECORD

    step.read_dataset(what)  # materialized first in a running script
    _, record = step.finished_record()
    return (record.get(ITERABLE_RECORD) or {}).get("total_num_rows")


def _in_memory(step: Step, dataset: Any, owner: str, pickled: bool, total_num_rows: int | None) -> Any:
    """An in-memory iterable output's rows: a ``LazyDataset`` restoring pickled values."""
    from .lazy import LazyDataset

    check_in_memory(step, dataset, owner, "IterableDataset")
    rows = LazyDataset(dataset, total_num_rows, step)
    if pickled:
        from datasets import Value

        rows.pickled = [name for name, feature in rows.features.items() if feature == Value("binary")]
    return rows


def _iterable(dataset: Any) -> Any:
    """The rows as a ``datasets.IterableDataset`` (a lazy step's stream, or a written one's)."""
    from .lazy import iterable_of

    return iterable_of(dataset)


class OutputIterableDataset(OutputColumns):
    """``step.output`` of a step with an iterable output: column references, iteration over
    row dicts, ``num_rows`` (None when unknown), ``dataset`` (a ``datasets.IterableDataset``),
    ``head()``; no ``len()``. ``OutputIterableDataset(step, iterable_dataset, pickled=False,
    total_num_rows=None)`` (DataDreamer's constructor) is one in memory over that dataset."""

    def __init__(
        self, step: Step, dataset: Any = None, pickled: bool = False, total_num_rows: int | None = None
    ):
        super().__init__(step)
        self._pickled = bool(pickled)
        if dataset is not None:
            self._rows = _in_memory(step, dataset, "OutputIterableDataset", self._pickled, total_num_rows)
            self._memory = dataset

    def _read(self, what: str) -> Any:
        return self._rows if self._memory is not None else self._step.read_dataset(what)

    @property
    def column_names(self) -> list[str] | None:
        if self._memory is not None:
            return self._rows.column_names
        return super().column_names

    def __getitem__(self, key: str | int | slice) -> Any:
        if self._memory is not None and isinstance(key, str):
            if key not in self.column_names:
                raise KeyError(
                    f"the in-memory OutputIterableDataset has no column {key!r}; its columns are "
                    f"{self.column_names}."
                )
            return OutputIterableDatasetColumn._over(self._step, self._rows.select_columns([key]))
        ref = super().__getitem__(key)
        if isinstance(ref, ColumnRef):
            return OutputIterableDatasetColumn(ref.step, ref.column)
        return ref

    @property
    def total_num_rows(self) -> int | None:
        if self._memory is not None:
            return self._rows.total_num_rows
        return _total_num_rows(self._step, "step.output.num_rows")

    @property
    def num_rows(self) -> int | None:  # type: ignore[override]
        return self.total_num_rows

    def __len__(self) -> int:
        raise TypeError(
            f"Step {self._step.name!r}: its output is an iterable dataset (computed on demand), which "
            "has no len(); num_rows is its row count when known. Fix: iterate it, or save() it first."
        )

    def __iter__(self) -> Iterator[dict]:
        rows = iter(self._read("iterating step.output"))
        if self._memory is not None:
            return rows
        from .lazy import counting_reads  # DataDreamer's progress: the share of rows read

        return counting_reads(self._step, rows, self.total_num_rows)

    @property
    def dataset(self) -> Any:
        return _iterable(self._read("step.output.dataset"))

    @property
    def info(self) -> Any:
        """The ``datasets`` info of the rows (``info.features``: None when only the rows tell)."""
        return self.dataset.info

    def head(
        self, n: int = 5, shuffle: bool = False, seed: int | None = None, buffer_size: int = 1000
    ) -> Any:
        import pandas

        rows = self.dataset
        if shuffle:
            rows = rows.shuffle(seed=seed, buffer_size=buffer_size)
        return pandas.DataFrame.from_records(list(rows.take(n)))

    def data(self, what: str = "step.output") -> OutputData:
        return OutputData(self._step, self._read(what))

    def __repr__(self) -> str:
        if self._memory is not None:
            rows = "Unknown" if self.num_rows is None else self.num_rows
            return f"OutputIterableDataset(column_names={self.column_names}, num_rows={rows}, in memory)"
        try:  # DataDreamer's ``num_rows=Unknown``; nothing to read before a script ran the step
            rows = f", num_rows={'Unknown' if self.num_rows is None else self.num_rows}"
        except Exception:  # noqa: BLE001 - a declaration only (a file loaded as definitions)
            rows = ""
        return f"OutputIterableDataset({self._step.name!r}, column_names={self._step.output_columns}{rows})"


class OutputIterableDatasetColumn(ColumnRef):
    """One column of an iterable output: a column reference (another step's input) whose
    iteration gives the column's values; ``num_rows`` None when unknown; no ``len()``.
    ``OutputIterableDatasetColumn(step, iterable_dataset, pickled=False, total_num_rows=None)``
    (DataDreamer's constructor, a one-column dataset) is one in memory over that dataset."""

    _rows: Any = None

    def __init__(self, step: Step, column: Any, pickled: bool = False, total_num_rows: int | None = None):
        if isinstance(column, str):
            super().__init__(step, column)
            return
        rows = _in_memory(step, column, "OutputIterableDatasetColumn", pickled, total_num_rows)
        if len(rows.column_names) != 1:
            raise ValueError(
                f"OutputIterableDatasetColumn(step, dataset) for step {step.name!r}: expected a single "
                f"column, got {rows.column_names}. Fix: dataset.select_columns(['column'])."
            )
        super().__init__(step, rows.column_names[0])
        self._rows = rows

    @classmethod
    def _over(cls, step: Step, rows: Any) -> OutputIterableDatasetColumn:
        column = cls(step, rows.column_names[0])
        column._rows = rows
        return column

    def _read(self, what: str) -> Any:
        return self._rows if self._rows is not None else self.step.read_dataset(what)

    @property
    def in_memory(self) -> Any:
        """The one-column ``datasets.IterableDataset`` it was built over, or None for a step's column."""
        return None if self._rows is None else self._rows.iterable

    def describe(self) -> str:
        if self._rows is not None:
            return f"OutputIterableDatasetColumn({self.column!r}) in memory (step {self.step.name!r})"
        return super().describe()

    def data(self, what: str | None = None) -> Any:
        if self._rows is not None:
            return ColumnData(self.step, self._rows)
        return super().data(what)

    def __getitem__(self, index: Any) -> Any:
        if self._rows is None:
            return super().__getitem__(index)
        if index == self.column:  # DataDreamer's: the column's values, on demand
            return iter(self)
        raise TypeError(
            f"{self.describe()} is a column of an iterable dataset: it has no random access. "
            "Fix: iterate it (or index it by its column name)."
        )

    def at(self, index: Any) -> Any:
        if self._rows is not None:
            raise not_a_reference(self)
        return super().at(index)

    def fingerprint_identity(self) -> dict:
        if self._rows is not None:
            raise not_a_reference(self)
        return super().fingerprint_identity()

    def __len__(self) -> int:
        raise TypeError(
            f"{self.describe()} is a column of an iterable dataset, which has no len(); "
            "num_rows is its row count when known."
        )

    def __iter__(self) -> Iterator[Any]:
        for row in self._read(f"iterating over {self.describe()}").select_columns([self.column]):
            yield row[self.column]

    @property
    def total_num_rows(self) -> int | None:
        if self._rows is not None:
            return self._rows.total_num_rows
        return _total_num_rows(self.step, f"{self.describe()}.num_rows")

    @property
    def num_rows(self) -> int | None:  # type: ignore[override]
        return self.total_num_rows

    @property
    def dataset(self) -> Any:
        return _iterable(self._read(f"{self.describe()}.dataset")).select_columns([self.column])

    def __repr__(self) -> str:
        return f"OutputIterableDatasetColumn({self.describe()})"
