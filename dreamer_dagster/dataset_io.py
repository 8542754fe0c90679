"""Writing and reading a ``_dataset`` folder (``datasets``' ``save_to_disk`` format) in bounded memory.

A step's rows are streamed straight into the folder's Arrow files: row dicts
are buffered a batch at a time, and ``pyarrow`` tables (a step that builds its
columns from numpy, such as ``Embed``) are written as they come. Nothing is
copied or read back afterwards, so writing a step of any size adds no memory
per row, and ``datasets.load_from_disk`` reads the folder as one written by
``save_to_disk``.

Reading streams the same way: :func:`record_batches` reads a folder's Arrow
files a record batch at a time with plain reads (not a memory map, whose
touched pages would stay in the process's resident memory).
"""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["DatasetSummary", "record_batches", "rows_between", "save_dataset", "stream_dataset"]

STATE_JSON = "state.json"
#: A new Arrow file is started past this size, as ``save_to_disk`` shards at 500 MB.
MAX_SHARD_BYTES = 500 << 20
_SHARD = "data-{index:05d}-of-{count:05d}.arrow"
_DATA_FILE = re.compile(r"data-\d{5}-of-\d{5}\.arrow")
#: Called with each row dict or ``pyarrow`` table as it is written.
Observer = Callable[[Any], None]


@dataclass(frozen=True)
class DatasetSummary:
    """What a written ``_dataset`` holds: its row count and features (column types)."""

    num_rows: int
    features: Any

    @property
    def column_names(self) -> list[str]:
        return list(self.features)


def rows_between(dataset: Any, start: int, stop: int) -> Any:
    """Rows ``start`` to ``stop`` of a ``datasets.Dataset``, clamped to the rows there are
    (none past the end, as ``dataset[n:]``), the column types kept."""
    start, stop = min(start, len(dataset)), min(stop, len(dataset))
    if start >= stop:
        return dataset.select([])  # select(range(len, len)) raises IndexError in datasets
    return dataset.select(range(start, stop))


def save_dataset(
    dataset: Any,
    target: Path,
    num_proc: int | None = None,
    num_shards: int | None = None,
    observers: Sequence[Observer] = (),
) -> DatasetSummary:
    """``dataset.save_to_disk(target)``, keeping an empty dataset loadable; ``num_proc`` /
    ``num_shards`` go to ``save_to_disk`` (DataDreamer's ``save_num_proc`` / ``save_num_shards``);
    each observer sees the rows as ``pyarrow`` tables."""
    # datasets writes no shard at all for zero rows, and then cannot load the folder
    # back; one (empty) shard keeps an empty output loadable.
    if len(dataset) == 0:
        num_proc, num_shards = None, 1
    elif num_shards is not None:
        num_shards = min(num_shards, len(dataset))
    if num_proc is not None:
        num_proc = max(1, min(num_proc, len(dataset), num_shards or len(dataset)))
    dataset = dataset.with_format(None)  # the stored rows, never a read transform (pickling.py)
    dataset.save_to_disk(str(target), num_shards=num_shards, num_proc=num_proc)
    if observers and len(dataset):
        for table in dataset.with_format("arrow").iter(batch_size=1000):
            for observe in observers:
                observe(table)
    return DatasetSummary(len(dataset), dataset.features)


def stream_dataset(
    target: Path,
    rows: Iterable[Any],
    writer_batch_size: int = 1000,
    features: Any = None,
    columns: list[str] | None = None,
    observers: Sequence[Observer] = (),
) -> DatasetSummary:
    """Write ``rows`` (row dicts and/or ``pyarrow`` tables, in order) as a ``_dataset`` folder.

    ``columns`` names the columns of an iterable that turns out to be empty. Each
    observer is called with every row dict and table as it is written (counts and
    samples taken on the way, so the output is never read back).
    """
    import datasets
    from datasets.arrow_writer import ArrowWriter

    target.mkdir(parents=True, exist_ok=True)
    shards: list[Path] = []
    shard_rows: list[int] = []
    writer: Any = None
    count = 0
    since_check = 0

    def open_shard(shard_features: Any) -> Any:
        path = target / f".shard-{len(shards):05d}.arrow"
        shards.append(path)
        shard_rows.append(0)
        return ArrowWriter(
            path=str(path),
            writer_batch_size=writer_batch_size,
            features=shard_features,
            embed_local_files=True,
        )

    try:
        writer = open_shard(features)
        for item in _checked(rows):
            if isinstance(item, dict):
                writer.write(item)
                written = 1
            else:
                item = _as_table(item)
                writer.write_examples_on_file()  # rows buffered before the table come first
                writer.write_table(item)
                written = item.num_rows
            for observe in observers:
                observe(item)
            count += written
            shard_rows[-1] += written
            since_check += written
            if since_check >= writer_batch_size:
                since_check = 0
                if writer.stream.tell() > MAX_SHARD_BYTES:  # bytes written, buffered ones included
                    writer.finalize()
                    writer = open_shard(datasets.Features.from_arrow_schema(writer.schema))
        if count == 0:
            writer.close()
            writer = None
            for shard in shards:
                shard.unlink(missing_ok=True)
            if features is None and not columns:
                raise ValueError(
                    "The step produced no rows, and its columns are not known before it runs, "
                    "so there is no table to save. Fix: name its columns (e.g. map(..., "
                    "output_columns=[...])) or make sure it yields rows."
                )
            empty = datasets.Dataset.from_dict(
                {column: [] for column in columns or features}, features=features
            )
            return save_dataset(empty, target)
        writer.finalize()
        final_features = datasets.Features.from_arrow_schema(writer.schema)
        writer = None
    except BaseException:
        if writer is not None:
            writer.close()
        raise
    if shard_rows[-1] == 0:
        shards.pop().unlink()  # a new file was started right after the last row
    _write_metadata(target, final_features, len(shards))
    for index, shard in enumerate(shards):
        os.replace(shard, target / _SHARD.format(index=index, count=len(shards)))
    return DatasetSummary(count, final_features)


def _write_metadata(target: Path, features: Any, shard_count: int) -> None:
    """``dataset_info.json`` (written by ``datasets``) and ``state.json`` (the fields
    ``save_to_disk`` writes and ``load_from_disk`` reads), listing ``shard_count`` files."""
    import datasets

    datasets.DatasetInfo(features=features).write_to_directory(str(target))
    state = {
        "_data_files": [
            {"filename": _SHARD.format(index=index, count=shard_count)} for index in range(shard_count)
        ],
        "_fingerprint": uuid.uuid4().hex[:16],  # as random as an unsaved dataset's
        "_format_columns": None,
        "_format_kwargs": {},
        "_format_type": None,
        "_output_all_columns": False,
        "_split": None,
    }
    (target / STATE_JSON).write_text(json.dumps(state, indent=2, sort_keys=True))


def record_batches(dataset_path: Path) -> Iterator[Any] | None:
    """The record batches of a ``_dataset`` folder's Arrow files in order, read with plain
    reads a batch at a time; None when the folder does not list its files."""
    import pyarrow as pa

    try:
        state = json.loads((dataset_path / STATE_JSON).read_text())
        names = [entry["filename"] for entry in state["_data_files"]]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not all(isinstance(name, str) and _DATA_FILE.fullmatch(name) for name in names):
        return None

    def read() -> Iterator[Any]:
        for name in names:
            with pa.OSFile(str(dataset_path / name)) as handle:
                yield from pa.ipc.open_stream(handle)

    return read()


def _checked(rows: Iterable[Any]) -> Iterator[Any]:
    """The rows, checked: every row dict has the first row's columns (a missing one is
    None); a column the first row lacks is an error, since the Arrow writer would drop
    it. ``pyarrow`` tables pass through (the writer checks their schema)."""
    columns: dict[str, None] | None = None
    for number, row in enumerate(rows, start=1):
        if not isinstance(row, dict):
            if _is_table(row):
                yield row
                continue
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


def _as_table(value: Any) -> Any:
    import pyarrow as pa

    return value if isinstance(value, pa.Table) else pa.Table.from_batches([value])


def _is_table(value: Any) -> bool:
    import pyarrow as pa

    return isinstance(value, (pa.Table, pa.RecordBatch))
