"""A step's output as Python code sees it: ``step.output``, and a finished step's rows.

``step.output`` (:class:`OutputColumns`) is first a declaration: ``step.output["col"]``
is a column reference for another step's input, checked against the step's columns.
It is also DataDreamer's ``OutputDataset``: ``len(step.output)``, iteration,
``step.output[0]`` (a row), ``step.output[2:4]`` (a dict of columns),
``step.output.num_rows``, ``.dataset`` and ``.head()`` read the step's rows. Where
those rows come from is :func:`~dreamer_dagster.script_mode.require_output`'s rule: a
running script materializes the step first; a file Dagster loads as definitions gets a
clear error; after the block, the finished output folder is read.

:class:`OutputData` and :class:`ColumnData` are those rows once read (DataDreamer's
``OutputDataset`` / ``OutputDatasetColumn``): what ``self.inputs["col"]`` is inside a
DataDreamer-style step's ``run()``, and what data access returns.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from ..deferred import ColumnRef

if TYPE_CHECKING:
    from .step import Step

__all__ = ["ColumnData", "OutputColumns", "OutputData"]


class OutputData:
    """A finished step's rows (DataDreamer's ``OutputDataset``): ``len``, iteration over row
    dicts, ``[i]`` a row, ``[a:b]`` a dict of columns, ``["col"]`` a :class:`ColumnData`,
    ``num_rows``, ``column_names``, ``dataset`` (the ``datasets.Dataset``), ``head()``."""

    def __init__(self, step: Step | None, dataset: Any):
        self.step = step
        self._dataset = dataset

    @property
    def dataset(self) -> Any:
        """The ``datasets.Dataset`` holding the rows."""
        return self._dataset

    @property
    def column_names(self) -> list[str]:
        return list(self._dataset.column_names)

    @property
    def _features(self) -> Any:
        return self._dataset.features

    @property
    def num_columns(self) -> int:
        return len(self.column_names)

    @property
    def num_rows(self) -> int:
        return len(self._dataset)

    def __len__(self) -> int:
        return len(self._dataset)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._dataset)

    def __getitem__(self, key: int | slice | str | Iterable[int]) -> Any:
        if isinstance(key, str):
            if key not in self._dataset.column_names:
                raise KeyError(f"no column {key!r}; the columns are {self.column_names}.")
            return ColumnData(self.step, self._dataset.select_columns([key]))
        if isinstance(key, (int, slice)):
            return self._dataset[key]
        return self._dataset[list(key)]

    def head(
        self, n: int = 5, shuffle: bool = False, seed: int | None = None, buffer_size: int = 1000
    ) -> Any:
        """The first ``n`` rows (of a shuffle, with ``shuffle``) as a pandas ``DataFrame``."""
        dataset = self._dataset.shuffle(seed=seed) if shuffle else self._dataset
        return dataset.select(range(min(n, len(dataset)))).to_pandas()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(column_names={self.column_names}, num_rows={self.num_rows})"


class ColumnData(OutputData):
    """One column of a finished step (DataDreamer's ``OutputDatasetColumn``): iteration and
    ``[i]`` give values, ``[a:b]`` a list, ``len``, ``num_rows``, ``dataset``."""

    @property
    def column_name(self) -> str:
        return self._dataset.column_names[0]

    def __iter__(self) -> Iterator[Any]:
        name = self.column_name
        for row in self._dataset:
            yield row[name]

    def __getitem__(self, key: int | slice | str | Iterable[int]) -> Any:
        name = self.column_name
        if isinstance(key, str):
            if key != name:
                raise KeyError(f"this column is {name!r}, not {key!r}.")
            return self._dataset[:][name]
        if isinstance(key, int):
            return self._dataset[key][name]
        if isinstance(key, slice):
            return self._dataset[key][name]
        return self._dataset[list(key)][name]

    def to_list(self) -> list:
        return self._dataset[:][self.column_name]

    def __repr__(self) -> str:
        return f"ColumnData(column_name={self.column_name!r}, num_rows={self.num_rows})"


class OutputColumns:
    """``step.output``: column references checked against the step's columns, and the
    step's rows when code reads them (see the module docstring for when that works)."""

    def __init__(self, step: Step):
        self._step = step

    @property
    def step(self) -> Step:
        return self._step

    @property
    def column_names(self) -> list[str] | None:
        """The output columns; when only the data knows them, read from the rows where
        reading is possible (None in a file loaded as definitions)."""
        columns = self._step.output_columns
        if columns is None:
            from ..script_mode import can_read_output

            if can_read_output(self._step):
                return self.data("column_names").column_names
        return columns

    @property
    def num_columns(self) -> int | None:
        columns = self.column_names
        return None if columns is None else len(columns)

    def __getitem__(self, key: str | int | slice) -> Any:
        step = self._step
        if isinstance(key, (int, slice)) and not isinstance(key, bool):
            return self.data(f"step.output[{key!r}]")[key]
        if not isinstance(key, str):
            raise step.error(f"output columns are named by strings, got {key!r}.", "output")
        columns = step.output_columns
        if columns is not None and key not in columns:
            raise step.error(f"has no output column {key!r}; its columns are {columns}.", "output")
        return ColumnRef(step, key)

    def __contains__(self, column: str) -> bool:
        return self._step.output_columns is None or column in self._step.output_columns

    # -- the rows -----------------------------------------------------------------------

    def data(self, what: str = "step.output") -> OutputData:
        """The step's rows (see :func:`~dreamer_dagster.script_mode.require_output`)."""
        return OutputData(self._step, self._step.read_dataset(what))

    def __len__(self) -> int:
        return len(self.data("len(step.output)"))

    def __iter__(self) -> Iterator[dict]:
        return iter(self.data("iterating step.output"))

    @property
    def num_rows(self) -> int:
        return self.data("step.output.num_rows").num_rows

    @property
    def dataset(self) -> Any:
        return self.data("step.output.dataset").dataset

    def head(
        self, n: int = 5, shuffle: bool = False, seed: int | None = None, buffer_size: int = 1000
    ) -> Any:
        return self.data("step.output.head()").head(n, shuffle, seed, buffer_size)

    def __repr__(self) -> str:
        return f"OutputColumns({self._step.name!r}, column_names={self._step.output_columns})"
