"""``JSONDataSource``: rows from local JSON or JSON Lines files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar

from .file_data_source import FileDataSource

__all__ = ["JSONDataSource"]

# Files up to this size are read whole at declaration to learn every column;
# a larger file is peeked at (its first row).
_READ_WHOLE_BYTES = 8 << 20


class JSONDataSource(FileDataSource):
    """Rows from JSON files (a list of objects, or one object per line); writes ``_dataset``.

    ``JSONDataSource(name, data_folder=None, data_files=None, **config_kwargs)``;
    ``config_kwargs`` (such as ``field="data"``) go to ``datasets.load_dataset("json")``.
    The columns are read from the files when the step is declared.
    """

    BUILDER: ClassVar[str] = "json"
    EXTENSIONS: ClassVar[tuple[str, ...]] = (".json", ".jsonl")

    def peek_columns(self, path: Path) -> list[str] | None:
        field = (self.args["config_kwargs"] or {}).get("field")
        small = path.stat().st_size <= _READ_WHOLE_BYTES
        if small:
            try:
                with open(path, encoding="utf-8") as handle:
                    document = json.load(handle)
            except ValueError:
                document = None  # not one document: JSON Lines
            if document is not None:
                if field is not None:
                    document = document.get(field) if isinstance(document, dict) else None
                return _columns_of(document)
        if field is not None:
            return None
        columns: list[str] = []
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except ValueError:
                    return None
                if not isinstance(row, dict):
                    return None
                columns.extend(key for key in row if key not in columns)
                if not small:
                    break
        return columns or None


def _columns_of(document: object) -> list[str] | None:
    if isinstance(document, list) and all(isinstance(row, dict) for row in document):
        columns: list[str] = []
        for row in document:
            columns.extend(key for key in row if key not in columns)
        return columns or None
    if isinstance(document, dict) and all(isinstance(value, list) for value in document.values()):
        return list(document) or None
    return None
