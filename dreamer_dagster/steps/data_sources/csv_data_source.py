"""``CSVDataSource``: rows from local CSV files."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from .file_data_source import FileDataSource

__all__ = ["CSVDataSource"]


class CSVDataSource(FileDataSource):
    """Rows from CSV files (the first line is the header); writes ``_dataset``.

    ``CSVDataSource(name, data_folder=None, data_files=None, sep=",", **config_kwargs)``;
    the columns are read from the header when the step is declared.
    """

    BUILDER: ClassVar[str] = "csv"
    EXTENSIONS: ClassVar[tuple[str, ...]] = (".csv", ".tsv")
    ARGS: ClassVar = {**FileDataSource.ARGS, "sep": ","}

    def __init__(
        self,
        name: str,
        data_folder: str | None = None,
        data_files: str | Sequence[str] | None = None,
        sep: str = ",",
        **kwargs: Any,
    ):
        self._sep = sep
        super().__init__(name, data_folder=data_folder, data_files=data_files, **kwargs)

    def extra_args(self) -> dict[str, Any]:
        return {"sep": self._sep}

    def validate(self) -> None:
        if not isinstance(self.args["sep"], str) or not self.args["sep"]:
            raise self.error(f"must be a non-empty string, got {self.args['sep']!r}.", "sep")
        super().validate()

    def peek_columns(self, path: Path) -> list[str] | None:
        config = self.args["config_kwargs"] or {}
        if any(key in config for key in ("header", "names", "usecols", "index_col")):
            return None  # pandas decides these columns
        sep = self.args["sep"]
        with open(path, encoding="utf-8", newline="") as handle:
            if len(sep) == 1:
                header = next(csv.reader(handle, delimiter=sep), None)
            else:
                line = handle.readline().rstrip("\r\n")
                header = line.split(sep) if line else None
        return list(header) if header else None

    def builder_kwargs(self) -> dict[str, Any]:
        return {"sep": self.args["sep"], **super().builder_kwargs()}
