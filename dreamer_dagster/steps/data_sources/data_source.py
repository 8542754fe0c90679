"""``DataSource``: rows given in Python (a dict, a list of dicts, a generator, a Dataset,
an IterableDataset)."""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

from ...cards import CITATION, DATASET_NAME, LICENSE, URL
from ..step import Step
from ..user_code import call_user, user_rows

__all__ = ["DataSource"]


class DataSource(Step):
    """Rows given in Python; writes them as ``_dataset``.

    ``data`` is a dict of columns, a list of row dicts, a ``datasets.Dataset``,
    an ``IterableDataset`` (streamed to disk row by row), or a generator function
    yielding row dicts (then ``columns=`` names its columns so they can be referenced
    before it runs; an ``IterableDataset`` without features needs it too).
    """

    ARGS: ClassVar = {"data": None, "total_num_rows": None, "columns": None}
    UNFINGERPRINTED_ARGS: ClassVar = frozenset({"total_num_rows"})
    OUTPUTS: ClassVar = None
    KIND: ClassVar[str] = "source"

    def __init__(
        self,
        name: str,
        data: Any = None,
        total_num_rows: int | None = None,
        auto_progress: bool = True,
        columns: list[str] | None = None,
        **kwargs: Any,
    ):
        if (
            auto_progress
            and total_num_rows is None
            and (callable(data) or type(data).__name__ == "IterableDataset")
        ):
            warnings.warn(  # DataDreamer's warning: progress of rows of unknown count
                "You did not specify `total_num_rows`, so we cannot automatically update the progress % "
                "for this step. Either specify DataSource(..., total_num_rows=#) or, to disable this "
                "warning, specify DataSource(.., auto_progress = False)",
                stacklevel=2,
            )
        super().__init__(
            name,
            args={"data": _columns_as_lists(data), "total_num_rows": total_num_rows, "columns": columns},
            **kwargs,
        )

    def validate(self) -> None:
        data = self.args["data"]
        if type(data).__name__ in _DATASET_DICTS:
            raise self.error(
                f"You supplied a {type(data).__name__}, supply a Dataset instead (as DataDreamer "
                "requires). Fix: pass one split, e.g. data=dataset_dict['train'].",
                "data",
            )
        if isinstance(data, Mapping):
            lengths = {str(k): len(v) if isinstance(v, (list, tuple)) else None for k, v in data.items()}
            bad = [k for k, n in lengths.items() if n is None]
            if bad:
                raise self.error(
                    f"every column must be a list (or a range, tuple, iterable); {bad} are not.", "data"
                )
            if len(set(lengths.values())) > 1:
                raise self.error(f"the columns have different lengths: {lengths}.", "data")
        elif isinstance(data, list):
            if not all(isinstance(row, Mapping) for row in data):
                raise self.error("a list must hold one dict per row.", "data")
        elif callable(data):
            if not inspect.isgeneratorfunction(data) and not inspect.isfunction(data):
                raise self.error("a callable must be a generator function yielding row dicts.", "data")
        elif type(data).__name__ not in ("Dataset", "IterableDataset"):
            raise self.error(
                f"got {type(data).__name__}; give a dict of columns, a list of row dicts, a "
                "generator function, a datasets.Dataset or an IterableDataset.",
                "data",
            )

    def declared_columns(self) -> list[str] | None:
        data = self.args["data"]
        if self.args["columns"] is not None:
            return list(self.args["columns"])
        if isinstance(data, Mapping):
            return [str(k) for k in data]
        if isinstance(data, list):
            columns: dict[str, None] = {}
            for row in data:
                columns.update(dict.fromkeys(row))
            return list(columns)
        if type(data).__name__ in ("Dataset", "IterableDataset") and data.column_names is not None:
            return list(data.column_names)
        return None

    def run(self, context: Any) -> Any:
        data = self.args["data"]
        if isinstance(data, Mapping):
            return {str(k): list(v) for k, v in data.items()}
        if isinstance(data, list):
            # Rows may leave out columns (as JSON rows do): each gets every column.
            columns = self.declared_columns() or []
            padded = ({column: row.get(column) for column in columns} for row in data)
            return context.with_progress(padded, len(data))
        if type(data).__name__ == "IterableDataset":
            return context.with_progress(iter(data), self.args["total_num_rows"])
        if callable(data):
            rows = user_rows(self, "data", call_user(self, "data", None, data))
            return context.with_progress(rows, self.args["total_num_rows"])
        return data

    def execute(self, context: Any) -> dict:
        """The rows written; a generator function's or an ``IterableDataset``'s output is an
        iterable dataset (``num_rows`` is ``total_num_rows``), as DataDreamer's."""
        fields = super().execute(context)
        data = self.args.get("data")  # a subclass (JSONDataSource...) reads files instead
        if callable(data) or type(data).__name__ == "IterableDataset":
            from ..lazy import ITERABLE_RECORD

            fields[ITERABLE_RECORD] = {"total_num_rows": self.args["total_num_rows"]}
        return fields

    def card_entries(self, context: Any) -> dict[str, list[str]]:
        """A given ``datasets.Dataset`` brings its own name, license, citation and homepage."""
        entries = super().card_entries(context)
        info = (
            getattr(self.args["data"], "info", None)
            if type(self.args["data"]).__name__ in ("Dataset", "IterableDataset")
            else None
        )
        if info is None:
            return entries
        for key, value in (
            (DATASET_NAME, info.dataset_name),
            (LICENSE, info.license),
            (CITATION, info.citation),
            (URL, info.homepage),
        ):
            if value:
                entries.setdefault(key, []).append(str(value).strip())
        return entries


_DATASET_DICTS = ("DatasetDict", "IterableDatasetDict")


def _columns_as_lists(data: Any) -> Any:
    """DataDreamer's ``Dataset.from_dict`` columns: a ``range`` or any other iterable (not a
    str, bytes or dict) is its list of values, read once at declaration (so the fingerprint
    is the values'); lists and tuples stay as given (their fingerprints unchanged)."""
    if not isinstance(data, Mapping) or type(data).__name__ in _DATASET_DICTS:
        return data  # a DatasetDict is refused by validate(), as DataDreamer refuses it
    return {
        key: list(column)
        if isinstance(column, Iterable) and not isinstance(column, (str, bytes, Mapping, list, tuple))
        else column
        for key, column in data.items()
    }
