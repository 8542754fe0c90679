"""The SQLite model cache: JSON values, batched reads, WAL, several processes at once."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from dreamer_dagster.cache import ModelCache, key_for, request_prefix
from tests.support.waiting import HANG_S

IDENTITY = {"model": "OpenAI", "model_name": "m", "base_url": None}


def test_put_and_get_many_keep_order_and_json_values(tmp_path):
    with ModelCache(tmp_path, "model-a", IDENTITY) as cache:
        prefix = cache.prefix({"temperature": 1.0})
        keys = [cache.key(prefix, f"prompt {i}") for i in range(2000)]
        values = [{"texts": [f"answer {i}"], "n": i} if i % 3 else [f"answer {i}"] for i in range(2000)]
        cache.put_many(zip(keys[:1500], values[:1500]))
        found = cache.get_many(list(reversed(keys)))
        assert found[::-1][:1500] == values[:1500]
        assert found[::-1][1500:] == [None] * 500
        assert len(cache) == 1500
    with sqlite3.connect(tmp_path / "model-a.db") as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        stored = connection.execute("SELECT value FROM cache LIMIT 1").fetchone()[0]
        assert stored.startswith(("{", "["))  # JSON text, never a pickle


def test_vectors_are_stored_as_float32_bytes_and_read_back_bit_for_bit(tmp_path):
    rng = np.random.default_rng(0)
    vectors = (rng.normal(size=(50, 384)) * 10.0 ** rng.integers(-30, 30, (50, 384))).astype(np.float32)
    with ModelCache(tmp_path, "embedder", IDENTITY) as cache:
        prefix = cache.prefix({"task": "embed"})
        keys = [cache.key(prefix, f"text {i}") for i in range(50)]
        cache.put_many(zip(keys, vectors))
        cache.put_many([(cache.key(prefix, "json"), {"label": 0.5})])
        found = cache.get_many(keys)
        assert all(vector.dtype == np.float32 and not vector.flags.writeable for vector in found)
        assert np.array_equal(np.stack(found), vectors)
        assert cache.get(cache.key(prefix, "json")) == {"label": 0.5}
        with pytest.raises(ValueError, match="1-D vectors"):
            cache.put_many([(keys[0], vectors[:2])])
    with sqlite3.connect(tmp_path / "embedder.db") as connection:
        kinds = dict(connection.execute("SELECT typeof(value), COUNT(*) FROM cache GROUP BY 1").fetchall())
        assert kinds == {"blob": 50, "text": 1}
        [blob] = connection.execute("SELECT value FROM cache WHERE key = ?", (keys[3],)).fetchone()
        assert blob == vectors[3].astype("<f4").tobytes()  # four bytes a number, nothing else


def test_keys_depend_on_identity_request_input_and_occurrence():
    base = request_prefix(IDENTITY, {"temperature": 1.0, "seed": None})
    assert request_prefix(dict(IDENTITY), {"seed": None, "temperature": 1.0}) == base
    assert request_prefix({**IDENTITY, "base_url": "http://x"}, {"temperature": 1.0, "seed": None}) != base
    assert request_prefix(IDENTITY, {"temperature": 0.5, "seed": None}) != base
    keys = {key_for(base, "p", 0), key_for(base, "p", 1), key_for(base, "q", 0)}
    assert len(keys) == 3
    assert key_for(base, "p", 0) == key_for(
        request_prefix(IDENTITY, {"temperature": 1.0, "seed": None}), "p", 0
    )


WRITER = textwrap.dedent(
    """
    import sys
    from dreamer_dagster.cache import ModelCache
    folder, worker, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    cache = ModelCache(folder, "shared", {"model": "x"})
    prefix = cache.prefix({})
    for start in range(0, count, 5):
        batch = [(cache.key(prefix, f"{worker}-{i}"), {"worker": worker, "i": i}) for i in range(start, start + 5)]
        cache.put_many(batch)
        # Reads interleaved with the other process's writes.
        assert cache.get_many([key for key, _ in batch]) == [value for _, value in batch]
    cache.close()
    print("done")
    """
)


def test_two_processes_write_one_cache_at_once_without_losing_entries(tmp_path):
    count = 400
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(tmp_path), worker, str(count)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).resolve().parents[1],
        )
        for worker in ("a", "b")
    ]
    for process in processes:
        out, err = process.communicate(timeout=HANG_S)
        assert process.returncode == 0, err
        assert "database is locked" not in err
        assert out.strip() == "done"
    with ModelCache(tmp_path, "shared") as cache:
        assert len(cache) == 2 * count
        prefix = request_prefix({"model": "x"}, {})
        for worker in ("a", "b"):
            values = cache.get_many([key_for(prefix, f"{worker}-{i}") for i in range(count)])
            assert values == [{"worker": worker, "i": i} for i in range(count)]
