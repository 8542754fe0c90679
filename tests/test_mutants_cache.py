"""The model cache file pinned down: its key format, what a file records, each refusal and its
message, a file deleted under a run, and calls published and merged through a shared folder
(a local folder standing for a shared disk). Written to kill the mutants ``make mutants`` found
alive in ``cache.py`` (see docs/mutants.md)."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import socket
import sqlite3
import threading
from contextlib import closing

import numpy as np
import pytest

from dreamer_dagster.cache import (
    ModelCache,
    key_for,
    merge_cache_files,
    publish_calls,
    request_prefix,
    share_cache_folder,
)
from dreamer_dagster.errors import CacheFileError, OutputFolderError

IDENTITY = {"model": "OpenAI", "model_name": "m", "base_url": None}


def rows(path) -> dict:
    with closing(sqlite3.connect(path)) as connection:
        return dict(connection.execute("SELECT key, value FROM cache").fetchall())


def table(path, name: str) -> list:
    with closing(sqlite3.connect(path)) as connection:
        return sorted(connection.execute(f"SELECT * FROM {name}").fetchall())


# -- keys and values -------------------------------------------------------------------------


def test_the_key_format_is_pinned():
    # A change here orphans every cache file users have: the prefix is the SHA-256 of the
    # canonical JSON of schema version, identity and request; a key adds the input and its repeat.
    text = '{"identity":{"base_url":null,"model":"OpenAI","model_name":"m"},"request":{"t":"é"},"v":"1"}'
    prefix = request_prefix(IDENTITY, {"t": "é"})
    assert prefix == hashlib.sha256(text.replace("é", "\\u00e9").encode()).digest()
    expected = hashlib.sha256(prefix + "p\ud800".encode("utf-8", "surrogatepass") + b"\x0012").hexdigest()
    assert key_for(prefix, "p\ud800", 12) == expected
    assert key_for(prefix, "p") == hashlib.sha256(prefix + b"p\x000").hexdigest()
    with ModelCache("/tmp", "unused-key-test", IDENTITY) as cache:
        assert cache.prefix({"t": "é"}) == prefix
        assert cache.key(prefix, "p\ud800", 12) == expected and cache.key(prefix, "p") == key_for(prefix, "p")
    with ModelCache("/tmp", "unused-key-test") as anonymous:
        assert anonymous.prefix({}) == request_prefix({}, {})


def test_values_are_json_text_or_float32_vectors(tmp_path):
    with ModelCache(tmp_path, "m", IDENTITY) as cache:
        assert not ModelCache.exists(tmp_path, "other") and ModelCache.exists(tmp_path, "m")
        cache.put_many([("text", {"answer": "é", "n": [1, 2]}), ("vector", np.array([1.5, -2.0]))])
        cache.put_many([])  # nothing to store
        assert rows(cache.path) == {
            "text": '{"answer": "é", "n": [1, 2]}',
            "vector": np.array([1.5, -2.0], dtype="<f4").tobytes(),
        }
        found = cache.get("vector")
        assert found.dtype == np.float32 and found.tolist() == [1.5, -2.0] and not found.flags.writeable
        assert cache.get_many(["vector", "missing", "text", "text"])[1:] == [
            None,
            {"answer": "é", "n": [1, 2]},
            {"answer": "é", "n": [1, 2]},
        ]
        assert len(cache) == 2
        with pytest.raises(ValueError) as raised:
            cache.put_many([("matrix", np.zeros((2, 3)))])
        assert str(raised.value) == "The model cache stores 1-D vectors; got an array of shape (2, 3)."
        cache.put_many([("text", ["replaced"])])
        assert cache.get("text") == ["replaced"]
    cache.close()  # closing twice is harmless


def test_lookups_cross_the_chunk_boundary_with_repeated_keys(tmp_path):
    with ModelCache(tmp_path, "m") as cache:
        cache.put_many((f"k{i}", i) for i in range(1000))
        keys = [f"k{i}" for i in range(1001)] * 2  # 1,001 distinct keys, each asked twice
        assert cache.get_many(keys) == [*range(1000), None] * 2


def test_a_cache_file_records_its_identity_and_schema(tmp_path):
    with ModelCache(tmp_path, "m", IDENTITY) as cache:
        cache.put_many([("k", 1)])
    assert table(tmp_path / "m.db", "meta") == [
        ("identity", json.dumps(IDENTITY, sort_keys=True)),
        ("schema_version", "1"),
    ]
    with sqlite3.connect(tmp_path / "m.db") as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        names = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert names == {"cache", "meta"}  # pending / merged only where the folder is shared
    ModelCache(tmp_path, "anonymous").close()
    assert table(tmp_path / "anonymous.db", "meta") == []


def test_a_file_without_a_schema_version_is_adopted(tmp_path):
    with sqlite3.connect(tmp_path / "old.db") as connection:
        connection.execute("CREATE TABLE cache (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        connection.execute("CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)")
        connection.execute("INSERT INTO cache VALUES ('k', '[1.0, 2.0]')")  # a vector as a JSON list
    with ModelCache(tmp_path, "old", IDENTITY) as cache:
        assert cache.get("k") == [1.0, 2.0]
    assert ("schema_version", "1") in table(tmp_path / "old.db", "meta")


# -- files that cannot be used ---------------------------------------------------------------


@pytest.mark.parametrize("version", ["2", "next"])
def test_a_file_of_a_newer_schema_is_refused_and_left_alone(tmp_path, version):
    path = tmp_path / "m.db"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)")
        connection.execute("INSERT INTO meta VALUES ('schema_version', ?)", (version,))
    before = path.read_bytes()
    with pytest.raises(CacheFileError) as raised:
        ModelCache(tmp_path, "m", IDENTITY)
    assert str(raised.value) == (
        f"The model cache file {path} was written by a newer dreamer_dagster (cache schema {version}; "
        "this version reads schema 1). The file was not changed. Fix: upgrade dreamer_dagster, or give "
        "this pipeline another output folder."
    )
    assert path.read_bytes() == before


def test_a_damaged_file_is_refused_with_the_way_out(tmp_path):
    path = tmp_path / "m.db"
    path.write_bytes(b"this is not a database, it only has the name of one" * 100)
    with pytest.raises(CacheFileError) as raised:
        ModelCache(tmp_path, "m", IDENTITY)
    assert str(raised.value) == (
        f"The model cache file {path} cannot be used: file is not a database. It is damaged, truncated, "
        "or not a dreamer_dagster cache; it was not changed. Fix: move it aside "
        f"(mv '{path}' '{path}.corrupt') and run again: a new cache is made, and the calls the old one "
        f"held are paid again (`sqlite3 '{path}.corrupt' .recover` may save them)."
    )


def test_a_cache_that_cannot_be_written_says_why(tmp_path):
    (tmp_path / "m.db").mkdir()  # a folder where the file should be
    with pytest.raises(OutputFolderError) as raised:
        ModelCache(tmp_path, "m")
    path = tmp_path / "m.db"
    assert str(raised.value) == (
        f"The model cache file {path} cannot be written: the file cannot be opened (unable to open "
        f"database file). Fix: free space or make {tmp_path} writable, then run again; the answers "
        "already in the cache are kept."
    )
    with ModelCache(tmp_path, "usable") as cache:
        for message, reason in (
            ("database or disk is full", "the disk is full"),
            ("attempt to write a readonly database", "the folder cannot be written"),
        ):
            error = cache._unusable(sqlite3.OperationalError(message))
            assert isinstance(error, OutputFolderError)
            assert str(error).startswith(
                f"The model cache file {cache.path} cannot be written: {reason} ({message})."
            )


def test_a_lock_sqlite_would_not_wait_for_is_waited_for(tmp_path):
    with ModelCache(tmp_path, "m") as cache:
        connection = cache._connection
        attempts = []

        def locked_twice():
            connection.execute("BEGIN IMMEDIATE")  # left open by a failed attempt: rolled back
            attempts.append(1)
            if len(attempts) < 3:
                raise sqlite3.OperationalError(
                    "database is locked" if len(attempts) == 1 else "database is busy"
                )
            connection.execute("COMMIT")
            return "done"

        assert cache._retry(locked_twice) == "done" and len(attempts) == 3
        assert not connection.in_transaction

        def broken():
            raise sqlite3.DatabaseError("database disk image is malformed")

        with pytest.raises(CacheFileError, match="cannot be used: database disk image is malformed"):
            cache._retry(broken)

        def other():
            raise sqlite3.OperationalError("no such table: nothing")

        with pytest.raises(CacheFileError, match="cannot be used: no such table: nothing"):
            cache._retry(other)


def test_a_file_deleted_during_a_run_is_made_again(tmp_path, caplog):
    cache = ModelCache(tmp_path, "m", IDENTITY)
    cache.put_many([("before", 1)])
    for suffix in ("", "-wal", "-shm"):
        (tmp_path / f"m.db{suffix}").unlink(missing_ok=True)
    with caplog.at_level(logging.WARNING, logger="dreamer_dagster.cache"):
        cache.put_many([("after", 2)])
        cache.put_many([("later", 3)])  # warned once: the file is there again
    assert [r.name for r in caplog.records] == ["dreamer_dagster.cache"]
    assert [r.getMessage() for r in caplog.records] == [
        f"The model cache file {tmp_path / 'm.db'} was deleted or replaced while a run was using it; it is "
        "made again, and answers received from now on are kept in it."
    ]
    cache.close()
    with ModelCache(tmp_path, "m", IDENTITY) as again:
        assert again.get_many(["before", "after", "later"]) == [None, 2, 3]
    cache.put_many([])  # a closed cache with nothing to write does nothing


# -- many workers: publish and merge -------------------------------------------------------


def test_calls_are_published_once_and_merged_by_every_other_worker(tmp_path, monkeypatch, caplog):
    shared = tmp_path / "shared" / ".cache"
    first, second = tmp_path / "worker-1", tmp_path / "worker-2"
    share_cache_folder(first, shared)
    share_cache_folder(second, shared)
    monkeypatch.setattr(socket, "gethostname", lambda: "node.é-1")

    with ModelCache(first, "m", IDENTITY) as cache:
        assert cache.merge_published() == 0  # nothing published yet
        cache.put_many([("a", 1), ("b", [2])])
        assert table(cache.path, "pending") == [("a",), ("b",)]
    with ModelCache(first, ".m-work") as work:  # a work file (a dot first): never published
        work.put_many([("w", 0)])
    ModelCache(first, "b-quiet").close()  # a cache with nothing pending (sorted before m.db)
    with sqlite3.connect(first / "a-unshared.db") as connection:  # a cache file without a pending table
        connection.execute("CREATE TABLE cache (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    with ModelCache(first, "z", IDENTITY) as cache:  # a second model's cache
        cache.put_many([("z", 26)])
    assert publish_calls(first) == 3  # every call of every cache file, once
    assert [path.name for path in (shared / "z").iterdir()] and not (shared / ".m-work").exists()
    [published] = sorted((shared / "m").iterdir())
    host, pid, rest = published.name.split("-")
    assert host == "node___1" and pid == str(os.getpid()) and len(rest) == len("0123456789ab.db")
    assert rows(published) == {"a": "1", "b": "[2]"}
    assert table(published, "meta") == table(first / "m.db", "meta")
    assert table(first / "m.db", "pending") == [] and table(first / "m.db", "merged") == [(published.name,)]
    assert publish_calls(first) == 0  # each call is published once
    assert not any(path.name.startswith(".outgoing-") for path in first.iterdir())
    assert sorted(path.name for path in (shared / "m").iterdir()) == [published.name]

    (shared / "m" / "planted.db").write_bytes(b"anything")
    with caplog.at_level(logging.WARNING, logger="dreamer_dagster.cache"):
        with ModelCache(second, "m", IDENTITY) as other:  # merges what the first published
            assert other.get_many(["a", "b"]) == [1, [2]]
            assert table(other.path, "merged") == [(published.name,)]
            assert other.merge_published() == 0  # merged already
        with ModelCache(second, "m", IDENTITY) as again:
            assert again.merge_published() == 0
    assert {r.name for r in caplog.records} == {"dreamer_dagster.cache"}
    assert [r.getMessage() for r in caplog.records] == [
        f"planted.db in the shared model cache folder {shared / 'm'} is not a published cache file's name "
        "(<host>-<pid>-<12 hex>.db); not trusted, not merged (planted?)."
    ]
    assert not any(path.name.startswith(".incoming-") for path in second.iterdir())

    # Files published since are merged on the next open, each once, whatever their order.
    published.rename(shared / "m" / "node-1-aaaaaaaaaaaa.db")  # (names chosen to sort around it)
    for key, name in (("c", "node-1-bbbbbbbbbbbb.db"), ("d", "node-1-cccccccccccc.db")):
        with ModelCache(first, "m", IDENTITY) as cache:
            cache.put_many([(key, key)])
        assert publish_calls(first) == 1
        [new] = [path for path in (shared / "m").iterdir() if path.name.startswith("node___1")]
        new.rename(shared / "m" / name)
    with ModelCache(tmp_path / "worker-3", "m", IDENTITY) as third:  # not shared: merges nothing
        assert third.get("c") is None
    share_cache_folder(tmp_path / "worker-4", shared)
    with ModelCache(tmp_path / "worker-4", "m", IDENTITY) as fourth:
        assert fourth.get_many(["a", "c", "d"]) == [1, "c", "d"]
    with sqlite3.connect(second / "m.db") as connection:
        connection.execute("INSERT INTO merged VALUES ('node-1-aaaaaaaaaaaa.db')")
    with ModelCache(second, "m", IDENTITY) as other:  # two new files after one it has merged
        assert other.get_many(["c", "d"]) == ["c", "d"] and len(table(other.path, "merged")) == 4
        assert other.merge_published() == 0
    share_cache_folder(tmp_path / "worker-5", shared)
    (tmp_path / "worker-5").mkdir()
    with ModelCache(tmp_path / "worker-5", "m", IDENTITY) as fifth:
        assert len(table(fifth.path, "merged")) == 3
        with sqlite3.connect(fifth.path) as connection:
            connection.execute("DELETE FROM merged")
        assert fifth.merge_published() == 3  # each file merged counts once
    assert publish_calls(tmp_path / "not-shared") == 0
    share_cache_folder(tmp_path / "gone", shared)
    assert publish_calls(tmp_path / "gone") == 0  # a shared folder with no local folder yet


def test_merging_keeps_the_answer_already_there(tmp_path):
    target = tmp_path / "target"
    with ModelCache(target, "m") as cache:
        cache.put_many([("k", "mine")])
    sources = []
    for index, value in enumerate(("theirs", "third")):
        with ModelCache(tmp_path / f"source-{index}", "m") as source:
            source.put_many([("k", value), (f"new-{index}", index)])
            sources.append(source.path)
    merge_cache_files(target / "m.db", sources[:1])
    merge_cache_files(target / "m.db", sources[1:], names=["named.db"])
    assert rows(target / "m.db") == {"k": '"mine"', "new-0": "0", "new-1": "1"}
    assert table(target / "m.db", "merged") == [("m.db",), ("named.db",)]
    with sqlite3.connect(target / "m.db") as connection:  # the database was left detached and closed
        assert [row[1] for row in connection.execute("PRAGMA database_list")] == ["main"]


def test_a_folder_not_shared_publishes_nothing_even_with_calls_pending(tmp_path):
    folder = tmp_path / "restarted-worker"
    folder.mkdir()
    with sqlite3.connect(folder / "m.db") as connection:  # pending calls of an earlier process
        connection.execute("CREATE TABLE cache (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        connection.execute("CREATE TABLE pending (key TEXT PRIMARY KEY)")
        connection.execute("INSERT INTO cache VALUES ('k', '1')")
        connection.execute("INSERT INTO pending VALUES ('k')")
    assert publish_calls(folder) == 0 and table(folder / "m.db", "pending") == [("k",)]


def test_a_cache_in_a_new_folder_from_another_thread_closes_cleanly(tmp_path):
    folder = tmp_path / "new" / "out" / ".cache"
    cache = ModelCache(folder, "m")
    assert cache._connection.execute("PRAGMA busy_timeout").fetchone()[0] == 60_000
    writer = threading.Thread(target=cache.put_many, args=([("k", "from a thread")],))
    writer.start()
    writer.join()
    assert cache.get("k") == "from a thread" and (folder / "m.db-wal").exists()
    cache.close()
    assert not (folder / "m.db-wal").exists()  # the last connection closed: the WAL is folded in
    # Its whole folder deleted while open: made again, parents included.
    cache = ModelCache(folder, "m")
    shutil.rmtree(tmp_path / "new")
    cache.put_many([("after", 1)])
    assert cache.get("after") == 1 and (folder / "m.db").exists()
    cache.close()


def test_a_failed_write_leaves_the_cache_usable(tmp_path):
    with ModelCache(tmp_path, "m") as cache:
        with pytest.raises(CacheFileError, match="Error binding parameter"):
            cache.put_many([(["not", "a", "key"], 1)])
        assert not cache._connection.in_transaction  # rolled back
        cache.put_many([("k", 1)])
        assert cache.get("k") == 1


def test_merging_a_file_that_is_no_cache_changes_nothing(tmp_path):
    with ModelCache(tmp_path / "target", "m") as cache:
        cache.put_many([("k", "mine")])
    with sqlite3.connect(tmp_path / "other.db") as connection:
        connection.execute("CREATE TABLE notes (text TEXT)")
    with pytest.raises(sqlite3.OperationalError, match="no such table: incoming.cache"):
        merge_cache_files(tmp_path / "target" / "m.db", [tmp_path / "other.db"])
    assert rows(tmp_path / "target" / "m.db") == {"k": '"mine"'}
    assert table(tmp_path / "target" / "m.db", "merged") == []
