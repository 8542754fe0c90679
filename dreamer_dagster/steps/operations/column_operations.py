"""Operations that choose or rename columns."""

from __future__ import annotations

from typing import Any

from .base import OperationStep

__all__ = ["RemoveColumns", "RenameColumn", "RenameColumns", "SelectColumns"]


def _column_list(step: OperationStep, value: Any, argument: str) -> list[str]:
    columns = [value] if isinstance(value, str) else list(value)
    if not columns or not all(isinstance(c, str) for c in columns):
        raise step.error("give one or more column names (strings).", argument)
    for column in columns:
        step.check_column(column, argument)
    return columns


class SelectColumns(OperationStep):
    """Keeps only the named columns; writes them as ``_dataset``."""

    OPERATION = "select_columns"
    ARGS = {"column_names": None}
    LAZY_RULE = "iterable_source"

    def validate(self) -> None:
        self.args["column_names"] = _column_list(self, self.args["column_names"], "column_names")

    def columns(self, source_columns: list[list[str]]) -> list[str]:
        return list(self.args["column_names"])

    def apply(self, datasets: list[Any], context: Any) -> Any:
        return datasets[0].select_columns(self.args["column_names"])

    def lazy_rows(self, iterables: list[Any], counts: list[int | None]) -> tuple[Any, int | None]:
        return iterables[0].select_columns(self.args["column_names"]), counts[0]


class RemoveColumns(OperationStep):
    """Drops the named columns; writes the rest as ``_dataset``."""

    OPERATION = "remove_columns"
    ARGS = {"column_names": None}
    LAZY_RULE = "iterable_source"

    def validate(self) -> None:
        self.args["column_names"] = _column_list(self, self.args["column_names"], "column_names")

    def columns(self, source_columns: list[list[str]]) -> list[str]:
        return [c for c in source_columns[0] if c not in self.args["column_names"]]

    def apply(self, datasets: list[Any], context: Any) -> Any:
        return datasets[0].remove_columns(self.args["column_names"])

    def lazy_rows(self, iterables: list[Any], counts: list[int | None]) -> tuple[Any, int | None]:
        return iterables[0].remove_columns(self.args["column_names"]), counts[0]


class RenameColumns(OperationStep):
    """Renames columns by a ``{old: new}`` mapping; writes the result as ``_dataset``."""

    OPERATION = "rename_columns"
    ARGS = {"column_mapping": None}
    LAZY_RULE = "iterable_source"

    def validate(self) -> None:
        mapping = self.args["column_mapping"]
        if not isinstance(mapping, dict) or not mapping:
            raise self.error("give a non-empty {old_name: new_name} dict.", "column_mapping")
        for old, new in mapping.items():
            if not isinstance(new, str) or not new:
                raise self.error(f"the new name for {old!r} must be a non-empty string.", "column_mapping")
            self.check_column(old, "column_mapping")

    def columns(self, source_columns: list[list[str]]) -> list[str]:
        mapping = self.args["column_mapping"]
        return [mapping.get(c, c) for c in source_columns[0]]

    def apply(self, datasets: list[Any], context: Any) -> Any:
        return datasets[0].rename_columns(self._changed())

    def lazy_rows(self, iterables: list[Any], counts: list[int | None]) -> tuple[Any, int | None]:
        changed = self._changed()
        return (iterables[0].rename_columns(changed) if changed else iterables[0]), counts[0]

    def _changed(self) -> dict[str, str]:
        """The mapping without the names kept as they are (DataDreamer renames those to themselves)."""
        return {old: new for old, new in self.args["column_mapping"].items() if old != new}


class RenameColumn(RenameColumns):
    """Renames one column (``rename_column(old, new)``: DataDreamer's ``RenameColumnStep``)."""

    OPERATION = "rename_column"
