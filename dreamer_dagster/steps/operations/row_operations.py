"""Operations that choose, order or change rows."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, ClassVar

from ...dataset_io import rows_between
from ..user_code import with_row_index
from .base import OperationStep

__all__ = [
    "AddItem",
    "Copy",
    "Filter",
    "Map",
    "Reverse",
    "Save",
    "Select",
    "Shard",
    "Shuffle",
    "Skip",
    "Sort",
    "Take",
]


def _non_negative_int(step: OperationStep, argument: str) -> None:
    value = step.args[argument]
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise step.error(f"must be an integer >= 0, got {value!r}.", argument)


class _FirstRows(OperationStep):
    """``Take`` and ``Skip``: the first ``n`` rows kept (``KEEP``) or dropped."""

    ARGS = {"n": None}
    LAZY_RULE = "iterable_source"
    KEEP: ClassVar[bool] = True

    def validate(self) -> None:
        _non_negative_int(self, "n")

    def apply(self, datasets: list[Any], context: Any) -> Any:
        dataset, n = datasets[0], self.args["n"]
        return rows_between(dataset, 0, n) if self.KEEP else rows_between(dataset, n, len(dataset))

    def lazy_rows(self, iterables: list[Any], counts: list[int | None]) -> tuple[Any, int | None]:
        n, count = self.args["n"], counts[0]
        if self.KEEP:
            return iterables[0].take(n), None if count is None else min(n, count)
        return iterables[0].skip(n), None if count is None else max(count - n, 0)


class Take(_FirstRows):
    """Keeps the first ``n`` rows."""

    OPERATION = "take"


class Select(OperationStep):
    """Keeps the rows at ``indices``, in that order (DataDreamer's ``select``)."""

    OPERATION = "select"
    ARGS = {"indices": None}

    def validate(self) -> None:
        indices = self.args["indices"]
        if isinstance(indices, (str, bytes)) or not isinstance(indices, Iterable):
            raise self.error(f"give the row numbers to keep (a list of ints), got {indices!r}.", "indices")
        indices = list(indices)
        if any(isinstance(i, bool) or not isinstance(i, int) or i < 0 for i in indices):
            raise self.error(f"every row number must be an integer >= 0, got {indices!r}.", "indices")
        self.args["indices"] = indices

    def apply(self, datasets: list[Any], context: Any) -> Any:
        dataset = datasets[0]
        beyond = [i for i in self.args["indices"] if i >= len(dataset)]
        if beyond:
            raise IndexError(
                f"Step {self.name!r}: rows {beyond[:5]} do not exist; {self.source.name!r} has "
                f"{len(dataset)} rows."
            )
        return dataset.select(self.args["indices"])


class Copy(OperationStep):
    """The rows unchanged, as a step of its own (DataDreamer's ``copy`` and ``save``)."""

    OPERATION = "copy"
    LAZY_DEFAULT = None  # DataDreamer: lazy when the source's output is iterable
    LAZY_RULE = "always"

    def apply(self, datasets: list[Any], context: Any) -> Any:
        return datasets[0]

    def lazy_rows(self, iterables: list[Any], counts: list[int | None]) -> tuple[Any, int | None]:
        return iterables[0], counts[0]


class Save(Copy):
    """The rows written as a step of its own (``save()``: a lazy step's rows computed and saved)."""

    OPERATION = "save"
    LAZY_RULE = "never"


class Skip(_FirstRows):
    """Drops the first ``n`` rows."""

    OPERATION = "skip"
    KEEP = False


class Shuffle(OperationStep):
    """Shuffles the rows with a fixed ``seed`` (42 when none is given), so a re-run
    gives the same order."""

    OPERATION = "shuffle"
    ARGS = {"seed": 42, "buffer_size": 1000}
    UNFINGERPRINTED_ARGS = frozenset({"buffer_size"})
    LAZY_RULE = "iterable_source"

    def validate(self) -> None:
        if self.args["seed"] is None:
            self.args["seed"] = 42
        if not isinstance(self.args["seed"], int):
            raise self.error(f"must be an integer, got {self.args['seed']!r}.", "seed")

    def apply(self, datasets: list[Any], context: Any) -> Any:
        return datasets[0].shuffle(seed=self.args["seed"], keep_in_memory=True)

    def lazy_rows(self, iterables: list[Any], counts: list[int | None]) -> tuple[Any, int | None]:
        """A buffered shuffle of the stream (``buffer_size`` rows at a time), as DataDreamer's."""
        return iterables[0].shuffle(seed=self.args["seed"], buffer_size=self.args["buffer_size"]), counts[0]


class Sort(OperationStep):
    """Sorts the rows by one or more columns."""

    OPERATION = "sort"
    ARGS = {"column_names": None, "reverse": False, "null_placement": "at_end"}

    def validate(self) -> None:
        names = self.args["column_names"]
        names = [names] if isinstance(names, str) else list(names or [])
        if not names:
            raise self.error("give one or more column names to sort by.", "column_names")
        for name in names:
            self.check_column(name, "column_names")
        self.args["column_names"] = names
        if self.args["null_placement"] not in ("at_start", "at_end"):
            raise self.error("must be 'at_start' or 'at_end'.", "null_placement")

    def apply(self, datasets: list[Any], context: Any) -> Any:
        return datasets[0].sort(
            self.args["column_names"],
            reverse=self.args["reverse"],
            null_placement=self.args["null_placement"],
            # The indices go to the staging folder, never beside the upstream step's files.
            indices_cache_file_name=str(context.staged / "sort-indices.arrow"),
        )


class Shard(OperationStep):
    """Keeps shard ``index`` of ``num_shards`` (every ``num_shards``-th row, or a
    contiguous block with ``contiguous=True``)."""

    OPERATION = "shard"
    ARGS = {"num_shards": None, "index": None, "contiguous": False}

    def validate(self) -> None:
        num_shards, index = self.args["num_shards"], self.args["index"]
        if not isinstance(num_shards, int) or num_shards < 1:
            raise self.error(f"must be an integer >= 1, got {num_shards!r}.", "num_shards")
        if not isinstance(index, int) or not 0 <= index < num_shards:
            raise self.error(f"must be an integer in [0, num_shards={num_shards}), got {index!r}.", "index")

    def apply(self, datasets: list[Any], context: Any) -> Any:
        return datasets[0].shard(
            num_shards=self.args["num_shards"],
            index=self.args["index"],
            contiguous=self.args["contiguous"],
            keep_in_memory=True,
        )


class Reverse(OperationStep):
    """Reverses the order of the rows."""

    OPERATION = "reverse"
    LAZY_RULE = "always"

    def apply(self, datasets: list[Any], context: Any) -> Any:
        dataset = datasets[0]
        return dataset.select(range(len(dataset) - 1, -1, -1))

    def apply_lazy(self, loaded: list[Any]) -> Any:
        """The rows last to first: a lazy source is read into a dataset first (as DataDreamer does)."""
        import datasets

        from ..lazy import LazyDataset, as_dataset, without_torch

        dataset = as_dataset(loaded[0])

        def reversed_rows() -> Any:
            for index in range(len(dataset) - 1, -1, -1):
                yield dataset[index]

        with without_torch():
            iterable = datasets.IterableDataset.from_generator(reversed_rows, features=dataset.features)
        return LazyDataset(iterable, len(dataset), self)


class AddItem(OperationStep):
    """Appends one row (a dict with a value for every column)."""

    OPERATION = "add_item"
    ARGS = {"item": None}
    LAZY_RULE = "iterable_source"

    def validate(self) -> None:
        item = self.args["item"]
        if not isinstance(item, dict):
            raise self.error(f"must be a dict of column -> value, got {item!r}.", "item")
        columns = self.source.output_columns
        if columns is not None and sorted(item) != sorted(columns):
            raise self.error(f"must have exactly the columns {columns}, got {sorted(item)}.", "item")

    def apply(self, datasets: list[Any], context: Any) -> Any:
        return datasets[0].add_item(self.args["item"])

    def lazy_rows(self, iterables: list[Any], counts: list[int | None]) -> tuple[Any, int | None]:
        import datasets

        source, item = iterables[0], self.args["item"]

        def with_item() -> Any:
            yield from source
            yield item

        iterable = datasets.IterableDataset.from_generator(with_item, features=source.features)
        return iterable, None if counts[0] is None else counts[0] + 1


def _check_function(step: OperationStep) -> None:
    function = step.args["function"]
    if not callable(function):
        raise step.error(f"must be a function, got {function!r}.", "function")
    for column in step.args.get("input_columns") or []:
        step.check_column(column, "input_columns")


class Filter(OperationStep):
    """Keeps the rows for which ``function`` returns true (``datasets.Dataset.filter``)."""

    OPERATION = "filter"
    FILTERS_ROWS = True
    LAZY_RULE = "always"
    WARNS_WITHOUT_TOTAL = True
    ARGS = {
        "function": None,
        "with_indices": False,
        "input_columns": None,
        "batched": False,
        "batch_size": 1000,
    }
    UNFINGERPRINTED_ARGS = frozenset({"batch_size"})

    def validate(self) -> None:
        _check_function(self)

    def apply(self, datasets: list[Any], context: Any) -> Any:
        kept = datasets[0].filter(
            with_row_index(
                self, "function", self.args["function"], self.args["batched"], self.args["with_indices"]
            ),
            with_indices=True,
            input_columns=self.args["input_columns"],
            batched=self.args["batched"],
            batch_size=self.args["batch_size"],
            keep_in_memory=True,
            new_fingerprint=self.fingerprint,
        )
        context.stats["rows_kept"] += len(kept)
        context.stats["rows_removed"] += len(datasets[0]) - len(kept)
        return kept

    def lazy_rows(self, iterables: list[Any], counts: list[int | None]) -> tuple[Any, int | None]:
        filtered = iterables[0].filter(
            self.lazy_function(),
            with_indices=True,
            input_columns=self.args["input_columns"],
            batched=self.args["batched"],
            batch_size=self.args["batch_size"],
        )
        return filtered, self.total_num_rows


class Map(OperationStep):
    """Applies ``function`` to every row or batch (``datasets.Dataset.map``).

    The output columns are known only when it runs, unless ``output_columns``
    names them (then references to them are checked at declaration).
    """

    OPERATION = "map"
    LAZY_RULE = "always"
    WARNS_WITHOUT_TOTAL = True
    ARGS = {
        "function": None,
        "with_indices": False,
        "input_columns": None,
        "batched": False,
        "batch_size": 1000,
        "remove_columns": None,
        "output_columns": None,
    }
    UNFINGERPRINTED_ARGS = frozenset({"batch_size"})

    def validate(self) -> None:
        _check_function(self)
        remove = self.args["remove_columns"]
        if isinstance(remove, str):
            self.args["remove_columns"] = [remove]
        for column in self.args["remove_columns"] or []:
            self.check_column(column, "remove_columns")

    def columns(self, source_columns: list[list[str]]) -> list[str] | None:
        declared = self.args["output_columns"]
        return list(declared) if declared is not None else None

    def apply(self, datasets: list[Any], context: Any) -> Any:
        function: Callable = self.args["function"]
        return datasets[0].map(
            with_row_index(self, "function", function, self.args["batched"], self.args["with_indices"]),
            with_indices=True,
            input_columns=self.args["input_columns"],
            batched=self.args["batched"],
            batch_size=self.args["batch_size"],
            remove_columns=self.args["remove_columns"],
            cache_file_name=str(context.staged / "map-cache.arrow"),
            new_fingerprint=self.fingerprint,
            desc=self.name,
        )

    def lazy_rows(self, iterables: list[Any], counts: list[int | None]) -> tuple[Any, int | None]:
        mapped = iterables[0].map(
            self.lazy_function(),
            with_indices=True,
            input_columns=self.args["input_columns"],
            batched=self.args["batched"],
            batch_size=self.args["batch_size"],
            remove_columns=self.args["remove_columns"],
        )
        return mapped, self.total_num_rows
