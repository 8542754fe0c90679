"""``TextDataSource``: one row per line of local text files."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from .file_data_source import FileDataSource

__all__ = ["TextDataSource"]


class TextDataSource(FileDataSource):
    """One row per line of text files, in the column ``text``; writes ``_dataset``.

    ``TextDataSource(name, data_folder=None, data_files=None, **config_kwargs)``.
    """

    BUILDER: ClassVar[str] = "text"
    EXTENSIONS: ClassVar[tuple[str, ...]] = (".txt", ".text")

    def peek_columns(self, path: Path) -> list[str] | None:
        return ["text"]
