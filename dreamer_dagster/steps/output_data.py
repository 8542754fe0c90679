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

DataDreamer's own constructor also works: ``OutputDataset(step, dataset, pickled=False)``
(``OutputColumns`` here) is an output held in memory over that ``datasets.Dataset``, not a
step's stored one: its rows read as above (pickled values restored when ``pickled``), and
``output["col"]`` is an :class:`InMemoryColumn` (an ``OutputDatasetColumn`` with values, not
a reference). A step's ``run()`` may return either (see ``run_output.py``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from ..deferred import ColumnRef

if TYPE_CHECKING:
    from .step import Step

__all__ = ["ColumnData", "InMemoryColumn", "OutputColumns", "OutputData", "check_in_memory"]


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
    def info(self) -> Any:
        """The ``datasets.DatasetInfo`` of the rows (``info.features``)."""
        return self._dataset.info

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


def check_in_memory(step: Any, dataset: Any, owner: str, expected: str) -> None:
    """DataDreamer's constructor checks: ``step`` a step, ``dataset`` a ``datasets.<expected>``."""
    from .step import Step

    if not isinstance(step, Step):
        raise ValueError(f"{owner}(step, dataset): expected a Step, got {type(step).__name__}.")
    kind = type(dataset)
    if kind.__name__ != expected or not kind.__module__.startswith("datasets"):
        raise ValueError(
            f"{owner}(step, dataset) for step {step.name!r}: expected a datasets.{expected}, got "
            f"{kind.__name__}. Fix: pass a datasets.{expected} (Dataset.from_dict(...)"
            f"{'.to_iterable_dataset()' if expected == 'IterableDataset' else ''})."
        )


def not_a_reference(column: Any) -> TypeError:
    """The error of an in-memory column used where a step's column reference is needed."""
    return TypeError(
        f"{column.describe()} holds rows in memory; it is not a step's output column, so it cannot "
        "be another step's input or a deferred value. Fix: return it from the step's run(), or "
        "use step.output['column'] of a declared step."
    )


class InMemoryColumn(ColumnRef):
    """``OutputDataset(step, dataset)["col"]`` (DataDreamer's ``OutputDatasetColumn`` built
    over a dataset in memory): iteration, ``[i]``, ``[a:b]``, ``len`` give its values now."""

    def __init__(self, step: Step, column: str, dataset: Any, pickled: bool = False):
        super().__init__(step, column)
        self._memory = dataset.select_columns([column])
        self._pickled = bool(pickled)

    @property
    def in_memory(self) -> Any:
        """The one-column ``datasets.Dataset`` it holds (pickled values as bytes)."""
        return self._memory

    def describe(self) -> str:
        return f"OutputDatasetColumn({self.column!r}) in memory (step {self.step.name!r})"

    def data(self, what: str | None = None) -> ColumnData:
        from ..pickling import unpickled

        return ColumnData(self.step, unpickled(self._memory) if self._pickled else self._memory)

    def __getitem__(self, index: Any) -> Any:
        return self.data()[index]

    def at(self, index: Any) -> Any:
        raise not_a_reference(self)

    def fingerprint_identity(self) -> dict:
        raise not_a_reference(self)

    def __repr__(self) -> str:
        return f"OutputDatasetColumn(column_name={self.column!r}, num_rows={len(self._memory)})"


class OutputColumns:
    """``step.output``: column references checked against the step's columns, and the
    step's rows when code reads them (see the module docstring for when that works).

    ``OutputColumns(step, dataset, pickled=False)`` (DataDreamer's ``OutputDataset``
    constructor) is an output in memory over that ``datasets.Dataset``."""

    def __init__(self, step: Step, dataset: Any = None, pickled: bool = False):
        self._step = step
        self._memory: Any = None
        self._pickled = bool(pickled)
        if dataset is not None:
            check_in_memory(step, dataset, "OutputDataset", "Dataset")
            self._memory = dataset

    @property
    def step(self) -> Step:
        return self._step

    @property
    def in_memory(self) -> Any:
        """The ``datasets`` dataset this output was built over (pickled values as bytes), or
        None for a step's stored output."""
        return self._memory

    @property
    def pickled(self) -> bool:
        """Whether the in-memory rows hold pickled values (the constructor's ``pickled``)."""
        return self._pickled

    @property
    def column_names(self) -> list[str] | None:
        """The output columns; when only the data knows them, read from the rows where
        reading is possible (None in a file loaded as definitions)."""
        if self._memory is not None:
            return list(self._memory.column_names or ())
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
        if self._memory is not None:
            return self._memory_column(key)
        columns = step.output_columns
        if columns is not None and key not in columns:
            raise step.error(f"has no output column {key!r}; its columns are {columns}.", "output")
        return ColumnRef(step, key)

    def _memory_column(self, key: str) -> Any:
        if key not in self.column_names:
            raise KeyError(
                f"the in-memory OutputDataset has no column {key!r}; its columns are {self.column_names}."
            )
        return InMemoryColumn(self._step, key, self._memory, self._pickled)

    def __contains__(self, column: str) -> bool:
        if self._memory is not None:
            return column in self.column_names
        return self._step.output_columns is None or column in self._step.output_columns

    # -- the rows -----------------------------------------------------------------------

    def data(self, what: str = "step.output") -> OutputData:
        """The step's rows (see :func:`~dreamer_dagster.script_mode.require_output`), or
        the in-memory ones (pickled values restored)."""
        if self._memory is not None:
            from ..pickling import unpickled

            return OutputData(self._step, unpickled(self._memory) if self._pickled else self._memory)
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

    @property
    def info(self) -> Any:
        """The ``datasets.DatasetInfo`` of the rows (DataDreamer's ``OutputDataset.info``)."""
        return self.data("step.output.info").info

    def head(
        self, n: int = 5, shuffle: bool = False, seed: int | None = None, buffer_size: int = 1000
    ) -> Any:
        return self.data("step.output.head()").head(n, shuffle, seed, buffer_size)

    def __repr__(self) -> str:
        if self._memory is not None:
            return f"OutputDataset(column_names={self.column_names}, num_rows={len(self._memory)}, in memory)"
        return f"OutputColumns({self._step.name!r}, column_names={self._step.output_columns})"
