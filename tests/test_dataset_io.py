"""A `_dataset` folder written row by row and table by table, read back batch by batch."""

from __future__ import annotations

import json

import datasets
import numpy as np
import pyarrow as pa
import pytest

from dreamer_dagster import dataset_io
from dreamer_dagster.dataset_io import record_batches, stream_dataset


def rows_and_tables(count: int):
    """Row dicts and Arrow tables of the same columns, interleaved (row i has text "t<i>")."""
    i = 0
    while i < count:
        if (i // 7) % 2 == 0:  # seven rows as one table (the first: it sets the column types)
            size = min(7, count - i)
            vectors = np.arange(i, i + size, dtype=np.float32)[:, None].repeat(3, axis=1)
            offsets = pa.array(np.arange(0, 3 * size + 1, 3, dtype=np.int32))
            yield pa.table(
                {
                    "text": pa.array([f"t{j}" for j in range(i, i + size)]),
                    "vector": pa.ListArray.from_arrays(offsets, pa.array(vectors.reshape(-1))),
                }
            )
            i += size
        else:
            yield {"text": f"t{i}", "vector": [float(i)] * 3}
            i += 1


def expected(count: int) -> dict[str, list]:
    return {"text": [f"t{i}" for i in range(count)], "vector": [[float(i)] * 3 for i in range(count)]}


def test_rows_and_tables_stream_into_a_folder_load_from_disk_reads(tmp_path):
    summary = stream_dataset(tmp_path / "_dataset", rows_and_tables(100), writer_batch_size=10)
    assert summary.num_rows == 100 and summary.column_names == ["text", "vector"]
    assert str(summary.features["vector"]) == "List(Value('float32'))"
    assert sorted(p.name for p in (tmp_path / "_dataset").iterdir()) == [
        "data-00000-of-00001.arrow",
        "dataset_info.json",
        "state.json",
    ]
    loaded = datasets.load_from_disk(str(tmp_path / "_dataset"))
    assert loaded.to_dict() == expected(100)
    assert loaded.features == summary.features
    batches = list(record_batches(tmp_path / "_dataset"))
    assert pa.Table.from_batches(batches).to_pydict() == expected(100)


def test_a_large_output_is_split_into_files_as_save_to_disk_shards(tmp_path, monkeypatch):
    monkeypatch.setattr(dataset_io, "MAX_SHARD_BYTES", 2_000)
    stream_dataset(tmp_path / "_dataset", rows_and_tables(300), writer_batch_size=20)
    files = sorted(p.name for p in (tmp_path / "_dataset").glob("*.arrow"))
    assert len(files) > 3 and files[0] == f"data-00000-of-{len(files):05d}.arrow"
    state = json.loads((tmp_path / "_dataset" / "state.json").read_text())
    assert [entry["filename"] for entry in state["_data_files"]] == files
    assert datasets.load_from_disk(str(tmp_path / "_dataset")).to_dict() == expected(300)
    assert pa.Table.from_batches(list(record_batches(tmp_path / "_dataset"))).to_pydict() == expected(300)


def test_a_new_file_started_after_the_last_row_is_dropped(tmp_path, monkeypatch):
    monkeypatch.setattr(dataset_io, "MAX_SHARD_BYTES", 1)  # a new file after every batch
    stream_dataset(tmp_path / "_dataset", ({"n": i} for i in range(40)), writer_batch_size=10)
    assert len(list((tmp_path / "_dataset").glob("*.arrow"))) == 4
    assert datasets.load_from_disk(str(tmp_path / "_dataset"))["n"] == list(range(40))


def test_empty_outputs_and_rows_that_do_not_match(tmp_path):
    summary = stream_dataset(tmp_path / "empty" / "_dataset", iter(()), columns=["a", "b"])
    assert summary.num_rows == 0
    assert datasets.load_from_disk(str(tmp_path / "empty" / "_dataset")).column_names == ["a", "b"]
    with pytest.raises(ValueError, match="no rows"):
        stream_dataset(tmp_path / "unknown" / "_dataset", iter(()))
    with pytest.raises(ValueError, match=r"Row 2 has the columns \['c'\]"):
        stream_dataset(tmp_path / "bad" / "_dataset", iter([{"a": 1}, {"a": 2, "c": 3}]))
    assert record_batches(tmp_path / "nowhere") is None


def test_counts_and_samples_taken_while_writing_match_a_read_back(tmp_path):
    from dreamer_dagster.checks import GenerationCounter, generation_counts
    from dreamer_dagster.metadata import SampleCollector, sample_rows

    def rows():
        texts = ["same", "", None, "same", "other " * 30, "  "]
        for i, text in enumerate(texts * 3):
            yield {"id": i, "generations": text}
        yield pa.table({"id": [100, 101], "generations": ["same", "new"]})

    def lists():  # n > 1: a list of generations a row
        for i in range(5):
            yield {"id": i, "generations": ["a", "b" if i % 2 else None]}

    for name, source in [("texts", rows), ("lists", lists)]:
        counter, sample = GenerationCounter(["generations", "absent"]), SampleCollector(count=3)
        stream_dataset(tmp_path / name, source(), writer_batch_size=4, observers=(counter.add, sample.add))
        written = datasets.load_from_disk(str(tmp_path / name))
        assert counter.counts() == generation_counts(written, ["generations", "absent"])
        assert sample.rows == sample_rows(written, count=3)
    assert generation_counts(written, ["generations"]) == {
        "generations": 10,  # two a row
        "empty_generations": 3,  # the three None
        "duplicate_generations": 5,  # "a" four more times, "b" once more
    }
    nothing = GenerationCounter(["absent"])
    nothing.add({"id": 1})
    assert nothing.counts() == {}
