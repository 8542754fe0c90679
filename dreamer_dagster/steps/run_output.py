"""``run()``'s return value as rows, by DataDreamer 0.46's rules (its ``step_output.py``).

Accepted, with DataDreamer's rows: ``None`` or ``[]`` (no rows); a single value (one
row of a one-output step); a dict of columns, or of single values (one row); a list of
values, of row dicts, of tuples / lists in output order, or of columns (a list of lists
for several outputs); a tuple of columns or of values; an iterator; a
``datasets.Dataset``, or a list / tuple of them (zipped column-wise); another step's
output or column, or one built over a dataset (DataDreamer's ``OutputDataset(step,
dataset, pickled=True)``, ``OutputIterableDataset(...)``, their columns); :class:`~dreamer_dagster.steps.LazyRows` /
:class:`~dreamer_dagster.steps.LazyRowBatches` of those, of an ``IterableDataset``, of a
generator function, or of dicts / tuples / lists whose members are generator functions.

Refused with DataDreamer's error types: a ``DatasetDict``, a bare ``IterableDataset``
(use ``LazyRows``), dict keys or dataset columns other than the registered outputs, the
wrong number of outputs (``StepOutputError``); values Arrow cannot store together, and
streamed rows whose column changes type (``StepOutputTypeError``).

Streamed forms (``LazyRows``, generator functions, iterators) stay streams: rows are
written as they come, a generator is never held in memory.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import StepOutputError, StepOutputTypeError

if TYPE_CHECKING:
    from .step import Step

__all__ = ["normalize_output"]


def normalize_output(step: Step, value: Any) -> Any:
    """``run()``'s value as a ``datasets.Dataset`` or a stream of row dicts under the
    step's registered output names (see the module docstring for the forms)."""
    from .registration import LazyRowBatches, LazyRows

    return _Normalizer(step, isinstance(value, LazyRows)).run(value, LazyRowBatches)


def _is_iterable(value: Any) -> bool:
    return isinstance(value, Iterable) and not isinstance(value, (str, bytes, Mapping))


def _is_row(value: Any) -> bool:
    return isinstance(value, (list, tuple))


def _normalize(value: Any) -> Any:
    """An iterable that is not a sequence (an iterator, a set, a column) as a list."""
    return list(value) if _is_iterable(value) and not isinstance(value, Sequence) else value


def _untuple(value: Any, names: tuple[str, ...]) -> Any:
    return value[0] if isinstance(value, tuple) and len(value) == 1 == len(names) else value


def _is_dataset(value: Any) -> bool:
    return type(value).__name__ in ("Dataset", "IterableDataset") and type(value).__module__.startswith(
        "datasets"
    )


def _is_column_data(value: Any) -> bool:
    from .output_data import ColumnData

    return isinstance(value, ColumnData)


class _Normalizer:
    def __init__(self, step: Step, lazy: bool):
        self.step = step
        self.lazy = lazy
        self.names: tuple[str, ...] = tuple(step.OUTPUTS or ())

    # -- errors ---------------------------------------------------------------------------

    def error(self, problem: str) -> StepOutputError:
        return StepOutputError(
            f"Step {self.step.name!r} ({type(self.step).__name__}): {problem} Its registered outputs "
            f"are {list(self.names)}. Fix: return a dict of columns, rows (dicts, or tuples in that "
            "order), a datasets.Dataset, or LazyRows / LazyRowBatches of those."
        )

    def type_error(self, problem: Any) -> StepOutputTypeError:
        return StepOutputTypeError(
            f"Step {self.step.name!r} ({type(self.step).__name__}): its rows cannot be stored together "
            f"({problem}). Fix: give each output column values of one type (str, number, list of those...)."
        )

    def arrow(self, build: Callable[..., Any], *args: Any) -> Any:
        import pyarrow as pa

        try:
            return build(*args)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as error:
            raise self.type_error(error) from None

    def is_dataset(self, value: Any) -> bool:
        """DataDreamer's ``_is_dataset_type``: a bare IterableDataset needs LazyRows."""
        if _is_dataset(value) and type(value).__name__ == "IterableDataset" and not self.lazy:
            raise self.error("run() returned an IterableDataset; wrap it: LazyRows(dataset).")
        return _is_dataset(value)

    def is_lazy(self, value: Any) -> bool:
        """A value computed on demand: a generator function, an iterator, a step's column."""
        return callable(value) or isinstance(value, Iterator) or (_is_column_data(value) and self.lazy)

    # -- the rules, in DataDreamer's order --------------------------------------------------

    def run(self, value: Any, batches_type: type) -> Any:  # noqa: C901 - DataDreamer's decision list
        import datasets

        from ..deferred import ColumnRef
        from .output_data import OutputColumns, OutputData

        names = self.names
        batched = False
        if self.lazy:
            batched = isinstance(value, batches_type)
            value = value.value
            batched = (
                batched and not _is_dataset(value) and not isinstance(value, (OutputData, OutputColumns))
            )
        if isinstance(value, (datasets.DatasetDict, datasets.IterableDatasetDict)):
            raise self.error("run() returned a DatasetDict; return one of its Datasets.")
        if value is None:
            value = []
        if isinstance(value, Iterator) and not self.lazy:
            value = self.peek(value)
            if isinstance(value, Iterator):  # longer than any ambiguous form: streamed
                return self.eager_stream(value)
        value = self.unwrap(value, ColumnRef, OutputColumns, OutputData)
        value = self.member_columns(value, ColumnRef)
        if isinstance(value, (list, tuple)) and value:
            value = self.zip_datasets(value, ColumnRef, OutputColumns, OutputData)
        if isinstance(value, _ZippedRows) or self.is_dataset(value):
            self.check_columns(value)
            return value if type(value).__name__ == "Dataset" else self.stream(iter(value))
        if (
            isinstance(value, (list, tuple))
            and value
            and isinstance(value[0], dict)
            and set(value[0]) & set(names)
            and all(isinstance(row, dict) for row in value)
        ):
            for row in value:
                self.check_keys(row)
            return self.arrow(datasets.Dataset.from_list, list(value))
        if isinstance(value, dict):
            if set(value) != set(names):
                raise self.error(f"Expected {names} as dict keys instead of {tuple(value)}.")
            columns = [value[name] for name in names]
            if self.lazy and any(self.is_lazy(column) for column in columns):
                return self.stream(self.zip_columns(columns, batched))
            if all(not _is_iterable(column) for column in columns):
                return self.from_dict({name: [_normalize(value[name])] for name in names})
            return self.from_dict({name: _normalize(value[name]) for name in names})
        if isinstance(value, list) and value:
            if len(names) > 1 and _is_row(value[0]) and len(value[0]) == len(names):
                value = tuple(zip(*value))  # rows -> columns
            elif len(names) > 1 and len(value) == len(names):
                value = tuple(value)  # one value, or one column, an output
            elif len(names) == 1 == len(value) and (_is_column_data(value[0]) or self.is_lazy(value[0])):
                value = tuple(value)
        if isinstance(value, list) and len(names) > 1:
            raise self.error(f"Expected {len(names)} outputs {names}.")
        if isinstance(value, tuple) and len(value) != len(names):
            raise self.error(f"Expected {len(names)} outputs {names}.")
        if isinstance(value, tuple) and self.lazy and any(self.is_lazy(column) for column in value):
            return self.stream(self.zip_columns(list(value), batched))
        if self.lazy and self.is_lazy(value):
            return self.stream(self.rows_of(value, batched))
        if isinstance(value, tuple):
            if all(not _is_iterable(v) for v in value):
                return self.from_dict({name: [_normalize(v)] for name, v in zip(names, value)})
            return self.from_dict({name: _normalize(v) for name, v in zip(names, value)})
        if isinstance(value, list):
            return self.from_dict({names[0]: [_normalize(_untuple(v, names)) for v in value]})
        hint = " You may want to use LazyRows() or LazyRowBatches()." if callable(value) else ""
        if len(names) == 1 and callable(value):  # Arrow cannot store a function
            raise self.type_error(f"Invalid output type: {type(value)}.{hint}")
        if len(names) == 1:
            return self.from_dict({names[0]: [_normalize(value)]})
        raise self.error(f"Invalid output type: {type(value)}.{hint}")

    def from_dict(self, columns: dict[str, Any]) -> Any:
        import datasets

        return self.arrow(datasets.Dataset.from_dict, columns)

    def unwrap(self, value: Any, column_ref: type, output_columns: type, output_data: type) -> Any:
        """Another step's output or column as its Dataset / ColumnData; a column read eagerly
        as a list (DataDreamer's ``OutputDatasetColumn``). An output built over a dataset in
        memory (``OutputDataset(step, dataset, pickled=True)``) gives that dataset as it is; its
        pickled values stay bytes and the step records that it pickled (DataDreamer's rule)."""
        if isinstance(value, output_columns) and value.in_memory is not None:
            if value.pickled:
                self.mark_pickled()
            return value.in_memory
        if isinstance(value, output_columns):
            value = value.data(f"{self.step.name!r} returning {value.step.name!r}'s output")
        if isinstance(value, column_ref):
            value = value.data(f"{self.step.name!r} returning {value.describe()}")
        if _is_column_data(value):
            return value if self.lazy else list(value)
        if isinstance(value, output_data):
            return self.renamed(value.dataset)
        return value

    def mark_pickled(self) -> None:
        """The step's rows hold pickled values: its step.json says so and reads restore them."""
        context = getattr(self.step, "_run_context", None)
        if context is not None:
            context.pickled = True

    def member_columns(self, value: Any, column_ref: type) -> Any:
        """Column references inside a list, tuple or dict as their values (DataDreamer's
        ``OutputDatasetColumn`` members: ``[column]``, ``{"out": column}``)."""

        def read(member: Any) -> Any:
            if isinstance(member, column_ref):
                return member.data(f"{self.step.name!r} returning {member.describe()}")
            return member

        if isinstance(value, dict):
            return {key: read(member) for key, member in value.items()}
        if isinstance(value, (list, tuple)) and any(isinstance(member, column_ref) for member in value):
            return type(value)(read(member) for member in value)
        return value

    def renamed(self, dataset: Any) -> Any:
        """Another step's output: a one-column dataset given to a one-output step takes the
        output's name; the registered columns of a wider one are kept."""
        names = list(self.names)
        if len(names) == 1 and dataset.column_names != names and len(dataset.column_names) == 1:
            return dataset.rename_column(dataset.column_names[0], names[0])
        if set(dataset.column_names) > set(names):
            return dataset.select_columns(names)
        return dataset

    def zip_datasets(self, value: Any, column_ref: type, output_columns: type, output_data: type) -> Any:
        """A list / tuple of datasets (or step outputs) zipped column-wise into one."""
        items = [
            self.unwrap(v, column_ref, output_columns, output_data)
            if isinstance(v, (output_columns, output_data)) and not _is_column_data(v)
            else v
            for v in value
        ]
        flags = [self.is_dataset(v) for v in items]
        if not (all(flags) or (len(items) <= len(self.names) and any(flags))):
            return value
        if not all(flags):
            raise self.error(
                f"Invalid output type: all elements in {value} must be of type Dataset or "
                "IterableDataset if one element is."
            )
        if all(type(v).__name__ == "Dataset" for v in items):
            import datasets

            return datasets.concatenate_datasets(items, axis=1) if len(items) > 1 else items[0]
        return _ZippedRows(items)

    def check_columns(self, dataset: Any) -> None:
        columns = dataset.column_names
        if columns is not None and set(columns) != set(self.names):
            raise self.error(f"Expected {len(self.names)} columns {self.names} instead of {tuple(columns)}.")

    def check_keys(self, row: dict) -> None:
        if set(row) != set(self.names):
            raise self.error(f"Expected {self.names} as dict keys instead of {tuple(row)}.")

    # -- streams -----------------------------------------------------------------------------

    def peek(self, iterator: Iterator[Any]) -> Any:
        """An iterator's first items: a list if it ends within ``len(outputs) + 1`` items
        (then every list rule applies), else an iterator over all of them."""
        head = list(itertools.islice(iterator, len(self.names) + 1))
        if len(head) <= len(self.names):
            return head
        return itertools.chain(head, iterator)

    def eager_stream(self, items: Iterator[Any]) -> Iterator[dict]:
        """A long iterator (not ``LazyRows``) read as DataDreamer reads a list, row by row."""
        names = self.names
        first = next(items)
        items = itertools.chain([first], items)
        if isinstance(first, dict) and set(first) & set(names):
            return self.typed(self.checked_dicts(items), promote=True)
        if len(names) > 1:
            if not (_is_row(first) and len(first) == len(names)):
                raise self.error(f"Expected {len(names)} outputs {names}.")
            return self.typed(
                (dict(zip(names, map(_normalize, self.row(item)))) for item in items), promote=True
            )
        return self.typed(({names[0]: _normalize(_untuple(v, names))} for v in items), promote=True)

    def row(self, item: Any) -> Any:
        if not (_is_row(item) and len(item) == len(self.names)):
            raise self.error(f"Expected {len(self.names)} outputs {self.names}, got the row {item!r}.")
        return item

    def checked_dicts(self, rows: Iterable[Any]) -> Iterator[dict]:
        for row in rows:
            if not isinstance(row, dict):
                raise self.error(f"Expected a row dict, got {row!r}.")
            self.check_keys(row)
            yield row

    def items_of(self, value: Any, batched: bool) -> Iterator[Any]:
        """A generator function's, iterator's or iterable's items, unbatched if ``batched``."""
        iterator = iter(value() if callable(value) and not isinstance(value, Iterable) else value)
        return self.unbatch(iterator) if batched else iterator

    def unbatch(self, batches: Iterator[Any]) -> Iterator[Any]:
        """DataDreamer's ``LazyRowBatches`` batches: a dict of columns, a tuple of columns,
        a list of columns (one per output), or a list of rows."""
        names = self.names
        columns_seen = False
        for batch in batches:
            if isinstance(batch, dict):
                keys = list(batch)
                for values in zip(*(batch[k] for k in keys)):
                    yield {k: _normalize(v) for k, v in zip(keys, values)}
            elif isinstance(batch, tuple):
                if len(batch) != len(names):
                    raise self.error(f"Expected {len(names)} outputs {names}.")
                for values in zip(*batch):
                    yield {k: _normalize(v) for k, v in zip(names, values)}
            elif (
                isinstance(batch, list)
                and len(batch) == len(names) > 0
                and (not _is_row(batch[0]) or len(batch[0]) != len(names) or columns_seen)
                and all(_is_iterable(c) for c in batch)
            ):
                columns_seen = True
                yield from zip(*batch)
            else:
                for item in batch:
                    if isinstance(item, dict):
                        self.check_keys(item)
                    yield item

    def zip_columns(self, columns: list[Any], batched: bool) -> Iterator[dict]:
        """Columns (some generator functions) zipped into row dicts."""
        iterators = [self.items_of(column, batched) for column in columns]
        for values in zip(*iterators):
            yield {name: _normalize(v) for name, v in zip(self.names, values)}

    def rows_of(self, value: Any, batched: bool) -> Iterator[dict]:
        """A generator function's (or iterator's, or IterableDataset's) items as row dicts,
        by the shape of the first: a dict, a tuple / list in output order, or one value."""
        names = self.names
        items = self.items_of(value, batched)
        sentinel = object()
        first = next(items, sentinel)
        if first is sentinel:
            return
        first = _normalize(first)
        items = itertools.chain([first], items)
        if isinstance(first, dict):
            yield from self.checked_dicts(items)
        elif _is_row(first) and len(names) > 1 and len(first) == len(names):
            for item in items:
                yield {name: _normalize(v) for name, v in zip(names, self.row(_normalize(item)))}
        elif len(names) == 1:
            for item in items:
                yield {names[0]: _normalize(_untuple(item, names) if _is_row(item) else item)}
        else:
            raise self.error(f"Expected {len(names)} outputs {names} from generator function.")

    def stream(self, rows: Iterator[dict]) -> Iterator[dict]:
        return self.typed(rows, promote=False)

    def typed(self, rows: Iterator[dict], promote: bool) -> Iterator[dict]:
        """DataDreamer's streamed type check: a column's non-None values keep the first one's
        type (``promote``: ints and floats mix, as Arrow allows in a list)."""
        types: dict[str, type] = {}
        for row in rows:
            for key, v in row.items():
                if v is None:
                    continue
                kind = float if promote and type(v) is int else type(v)
                seen = types.setdefault(key, kind)
                if kind is not seen:
                    raise self.type_error(f"column {key!r}: expected {seen} got {type(v)}")
            yield row


class _ZippedRows:
    """Datasets (some IterableDatasets) zipped row by row into one stream of dicts."""

    def __init__(self, datasets: list[Any]):
        self.datasets = datasets

    def __iter__(self) -> Iterator[dict]:
        for rows in zip(*(iter(d) for d in self.datasets)):
            merged: dict = {}
            for row in rows:
                merged.update(row)
            yield merged

    @property
    def column_names(self) -> list[str] | None:
        names: list[str] = []
        for dataset in self.datasets:
            if dataset.column_names is None:
                return None
            names.extend(dataset.column_names)
        return names
