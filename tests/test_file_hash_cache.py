"""Data-file fingerprints kept between processes (``dreamer_dagster/file_hashes.py``): a
second code-location load reuses a large data file's content hash without reading the
file; a changed file (same size, new mtime) is read again; a broken cache entry is
ignored and rewritten; a just-written file is not remembered."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from dreamer_dagster import file_hashes
from dreamer_dagster.fingerprint import _FILE_HASHES, hash_file
from tests.support.waiting import HANG_S

REPO = Path(__file__).resolve().parents[1]

# One code-location load: declare a JSON data source on the file and report its
# fingerprint and how many times a file's content was read to hash it.
LOAD = """
import json, sys
import dreamer_dagster.fingerprint as fingerprint

reads = []
read = fingerprint._read_sha256

def counting(path, chunk_size):
    reads.append(str(path))
    return read(path, chunk_size)

fingerprint._read_sha256 = counting
from dreamer_dagster.steps import JSONDataSource

step = JSONDataSource("Rows", data_files=sys.argv[1])
print(json.dumps({"fingerprint": step.fingerprint, "reads": reads}))
"""


def load(data: Path, local: Path) -> dict:
    env = {**os.environ, "DREAMER_LOCAL_FOLDER": str(local)}
    result = subprocess.run(
        [sys.executable, "-c", LOAD, str(data)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=HANG_S,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def write_rows(path: Path, letter: str, mtime: float) -> None:
    """About 4 MB of JSON Lines (above ``MIN_SIZE``), its mtime set to ``mtime``."""
    line = json.dumps({"text": letter * 100}) + "\n"
    path.write_text(line * 40_000)
    os.utime(path, (mtime, mtime))


def test_a_second_load_reuses_the_hash_and_a_changed_file_is_read_again(tmp_path):
    data, local = tmp_path / "rows.jsonl", tmp_path / "local"
    write_rows(data, "a", time.time() - 60)
    first = load(data, local)
    assert first["reads"] == [str(data.resolve())]
    second = load(data, local)
    assert second == {"fingerprint": first["fingerprint"], "reads": []}  # not read again

    # Same size, new content, new mtime: read again, and the fingerprint follows the content.
    size = data.stat().st_size
    write_rows(data, "b", time.time() - 30)
    assert data.stat().st_size == size
    changed = load(data, local)
    assert changed["reads"] == [str(data.resolve())]
    assert changed["fingerprint"] != first["fingerprint"]
    assert load(data, local) == {"fingerprint": changed["fingerprint"], "reads": []}

    # A broken entry is ignored (the file is read) and rebuilt.
    (entry,) = (local / "file_hashes").glob("*.json")
    entry.write_text('{"sha256": "../../etc", "path"')
    assert load(data, local) == {"fingerprint": changed["fingerprint"], "reads": [str(data.resolve())]}
    assert load(data, local)["reads"] == []
    # A planted hash for another stat of the file is not taken.
    planted = json.loads(entry.read_text())
    entry.write_text(json.dumps({**planted, "mtime_ns": planted["mtime_ns"] + 1, "sha256": "0" * 64}))
    assert load(data, local) == {"fingerprint": changed["fingerprint"], "reads": [str(data.resolve())]}


def test_a_just_written_or_small_file_is_not_remembered(tmp_path, monkeypatch):
    monkeypatch.setenv("DREAMER_LOCAL_FOLDER", str(tmp_path / "local"))
    fresh, small = tmp_path / "fresh.jsonl", tmp_path / "small.jsonl"
    write_rows(fresh, "a", time.time())  # changed just now: its stat may not show the next change
    small.write_text('{"text": "a"}\n')
    os.utime(small, (time.time() - 60, time.time() - 60))
    _FILE_HASHES.clear()
    hash_file(fresh), hash_file(small)
    for path in (fresh, small):
        resolved = path.resolve()
        assert file_hashes.lookup(resolved, resolved.stat()) is None
    assert not list((tmp_path / "local" / "file_hashes").glob("*.json"))
    # Once its mtime is older, it is remembered.
    os.utime(fresh, (time.time() - 60, time.time() - 60))
    digest = hash_file(fresh)
    assert file_hashes.lookup(fresh.resolve(), fresh.resolve().stat()) == digest


def test_an_unwritable_cache_folder_only_costs_the_reads(tmp_path, monkeypatch):
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("a file where the cache folder would go")
    monkeypatch.setenv("DREAMER_LOCAL_FOLDER", str(blocker))
    data = tmp_path / "rows.jsonl"
    write_rows(data, "a", time.time() - 60)
    _FILE_HASHES.clear()
    assert len(hash_file(data)) == 64
    assert file_hashes.lookup(data.resolve(), data.resolve().stat()) is None
