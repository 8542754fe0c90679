"""The operation methods every step has (``step.take(10)``, ``step.splits(...)``...).

Each returns a new step (its own asset) whose name defaults to
``"<step name> (<operation>)"``, numbered as DataDreamer numbers it when the block
already has one (``"<step name> (<operation> #2)"``). DataDreamer's execution
options pass to the new step where they mean something here (``force``,
``progress_interval``, ``save_num_proc``, ``save_num_shards``; ``background`` is
accepted: Dagster runs independent steps in parallel); ``writer_batch_size`` is accepted
and changes nothing (every step streams its rows to its ``_dataset``).

``lazy=`` has DataDreamer's defaults and meaning (see steps/lazy.py): ``select_columns``,
``take``, ``skip``, ``shuffle``, ``add_item``, ``rename_column(s)``, ``remove_columns``
are lazy over an iterable source; ``map``, ``filter``, ``reverse``, ``concat``, ``zipped``
always (``total_num_rows=`` gives their row count); ``copy`` when its source is
iterable. A lazy step's output is an iterable dataset computed on demand: it writes no
dataset of its own (``save()`` writes one). ``select``, ``sort``, ``shard``, ``splits``
and ``save`` write a dataset.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .step import Step

__all__ = ["OperationMethods"]

# DataDreamer's keyword arguments that tune only its own execution.
EXECUTION_OPTIONS = frozenset(
    {
        "lazy",
        "progress_interval",
        "force",
        "writer_batch_size",
        "save_num_proc",
        "save_num_shards",
        "background",
        "total_num_rows",
        "auto_progress",
        "buffer_size",
    }
)


def check_options(step: Step, operation: str, options: dict[str, Any]) -> None:
    """Refuse a keyword argument that is neither the operation's nor an execution option."""
    unknown = sorted(set(options) - EXECUTION_OPTIONS - {"partitions_def", "partition_mapping"})
    if unknown:
        raise step.error(
            f"{operation}() got unexpected keyword arguments {unknown}. Besides its own arguments it "
            f"takes DataDreamer's execution options {sorted(EXECUTION_OPTIONS)}.",
            unknown[0],
        )


class OperationMethods:
    """Mixin: DataDreamer's step operations."""

    def select_columns(
        self: Step, column_names: str | Sequence[str], name: str | None = None, **options: Any
    ) -> Step:
        check_options(self, "select_columns", options)
        from .operations.column_operations import SelectColumns

        return SelectColumns(self, name=name, args={"column_names": column_names}, **options)

    def remove_columns(
        self: Step, column_names: str | Sequence[str], name: str | None = None, **options: Any
    ) -> Step:
        check_options(self, "remove_columns", options)
        from .operations.column_operations import RemoveColumns

        return RemoveColumns(self, name=name, args={"column_names": column_names}, **options)

    def rename_column(
        self: Step, original_column_name: str, new_column_name: str, name: str | None = None, **options: Any
    ) -> Step:
        check_options(self, "rename_column", options)
        from .operations.column_operations import RenameColumn

        return RenameColumn(
            self,
            name=name,
            args={"column_mapping": {original_column_name: new_column_name}},
            operation="rename_column",
            **options,
        )

    def rename_columns(
        self: Step, column_mapping: dict[str, str], name: str | None = None, **options: Any
    ) -> Step:
        check_options(self, "rename_columns", options)
        from .operations.column_operations import RenameColumns

        return RenameColumns(self, name=name, args={"column_mapping": column_mapping}, **options)

    def take(self: Step, n: int, name: str | None = None, **options: Any) -> Step:
        check_options(self, "take", options)
        from .operations.row_operations import Take

        return Take(self, name=name, args={"n": n}, **options)

    def skip(self: Step, n: int, name: str | None = None, **options: Any) -> Step:
        check_options(self, "skip", options)
        from .operations.row_operations import Skip

        return Skip(self, name=name, args={"n": n}, **options)

    def shuffle(
        self: Step, seed: int | None = None, buffer_size: int = 1000, name: str | None = None, **options: Any
    ) -> Step:
        check_options(self, "shuffle", options)
        from .operations.row_operations import Shuffle

        return Shuffle(self, name=name, args={"seed": seed, "buffer_size": buffer_size}, **options)

    def sort(
        self: Step,
        column_names: str | Sequence[str],
        reverse: bool = False,
        null_placement: str = "at_end",
        name: str | None = None,
        **options: Any,
    ) -> Step:
        check_options(self, "sort", options)
        from .operations.row_operations import Sort

        return Sort(
            self,
            name=name,
            args={"column_names": column_names, "reverse": reverse, "null_placement": null_placement},
            **options,
        )

    def shard(
        self: Step,
        num_shards: int,
        index: int,
        contiguous: bool = False,
        name: str | None = None,
        **options: Any,
    ) -> Step:
        check_options(self, "shard", options)
        from .operations.row_operations import Shard

        return Shard(
            self,
            name=name,
            args={"num_shards": num_shards, "index": index, "contiguous": contiguous},
            **options,
        )

    def reverse(self: Step, name: str | None = None, **options: Any) -> Step:
        check_options(self, "reverse", options)
        from .operations.row_operations import Reverse

        return Reverse(self, name=name, **options)

    def add_item(self: Step, item: dict, name: str | None = None, **options: Any) -> Step:
        check_options(self, "add_item", options)
        from .operations.row_operations import AddItem

        return AddItem(self, name=name, args={"item": item}, **options)

    def filter(
        self: Step,
        function: Callable,
        with_indices: bool = False,
        input_columns: str | Sequence[str] | None = None,
        batched: bool = False,
        batch_size: int = 1000,
        name: str | None = None,
        **options: Any,
    ) -> Step:
        check_options(self, "filter", options)
        from .operations.row_operations import Filter

        if isinstance(input_columns, str):
            input_columns = [input_columns]
        return Filter(
            self,
            name=name,
            args={
                "function": function,
                "with_indices": with_indices,
                "input_columns": input_columns,
                "batched": batched,
                "batch_size": batch_size,
            },
            **options,
        )

    def map(
        self: Step,
        function: Callable,
        with_indices: bool = False,
        input_columns: str | Sequence[str] | None = None,
        batched: bool = False,
        batch_size: int = 1000,
        remove_columns: str | Sequence[str] | None = None,
        output_columns: Sequence[str] | None = None,
        name: str | None = None,
        **options: Any,
    ) -> Step:
        check_options(self, "map", options)
        from .operations.row_operations import Map

        if isinstance(input_columns, str):
            input_columns = [input_columns]
        return Map(
            self,
            name=name,
            args={
                "function": function,
                "with_indices": with_indices,
                "input_columns": input_columns,
                "batched": batched,
                "batch_size": batch_size,
                "remove_columns": remove_columns,
                "output_columns": output_columns,
            },
            **options,
        )

    def splits(
        self: Step,
        train_size: float | int | None = None,
        validation_size: float | int | None = None,
        test_size: float | int | None = None,
        stratify_by_column: str | None = None,
        name: str | None = None,
        **options: Any,
    ) -> dict[str, Step]:
        """Train / validation / test splits, cut in row order as DataDreamer cuts them (the
        last rows are the test split); each split is its own step. Shuffle first for a
        random split: ``step.shuffle(seed=42).splits(...)``."""
        if "seed" in options:
            raise self.error(
                "splits() cuts the rows in order, as DataDreamer does, and takes no seed. Fix: "
                f"shuffle first, e.g. step.shuffle(seed={options['seed']!r}).splits(...).",
                "seed",
            )
        check_options(self, "splits", options)
        from .operations.splits import split_steps

        return split_steps(self, train_size, validation_size, test_size, stratify_by_column, name, options)

    def select(self: Step, indices: Iterable[int], name: str | None = None, **options: Any) -> Step:
        """The rows at ``indices``, in that order."""
        check_options(self, "select", options)
        from .operations.row_operations import Select

        return Select(self, name=name, args={"indices": indices}, **options)

    def save(self: Step, name: str | None = None, **options: Any) -> Step:
        """The rows written as a step of its own (a lazy step's rows computed and saved)."""
        check_options(self, "save", options)
        from .operations.row_operations import Save

        return Save(self, name=name, operation="save", **options)

    def copy(self: Step, name: str | None = None, **options: Any) -> Step:
        """A copy of the rows as a step of its own."""
        check_options(self, "copy", options)
        from .operations.row_operations import Copy

        return Copy(self, name=name, operation="copy", **options)
