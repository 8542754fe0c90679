"""Rows streamed to an Arrow file, batch by batch: a step never holds all its rows in memory."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

__all__ = ["stream_rows"]


def stream_rows(
    staged: Path, rows: Iterable[dict], batch_size: int, features: Any, columns: list[str] | None
) -> Any:
    import datasets
    from datasets.arrow_writer import ArrowWriter

    path = staged / f"rows-{uuid.uuid4().hex}.arrow"
    count = 0
    with ArrowWriter(path=str(path), writer_batch_size=batch_size, features=features) as writer:
        for row in _rows(rows):
            writer.write(row)
            count += 1
        if count == 0 and features is None:
            if not columns:
                raise ValueError(
                    "The step produced no rows, and its columns are not known before it runs, "
                    "so there is no table to save. Fix: name its columns (e.g. map(..., "
                    "output_columns=[...])) or make sure it yields rows."
                )
            return datasets.Dataset.from_dict({column: [] for column in columns})
        writer.finalize()
    return datasets.Dataset.from_file(str(path))


def _rows(rows: Iterable[dict]) -> Iterator[dict]:
    """The rows, checked: every row has the first row's columns (a missing one is None);
    a column the first row lacks is an error, since the Arrow writer would drop it."""
    columns: dict[str, None] | None = None
    for number, row in enumerate(rows, start=1):
        if not isinstance(row, dict):
            raise TypeError(f"A step produced a row that is not a dict: {row!r}")
        if columns is None:
            columns = dict.fromkeys(row)
        elif row.keys() != columns.keys():
            extra = [key for key in row if key not in columns]
            if extra:
                raise ValueError(
                    f"Row {number} has the columns {extra}, which the first row lacks; every row "
                    f"must have the same columns (the first row has {list(columns)})."
                )
            row = {key: row.get(key) for key in columns}
        yield row
