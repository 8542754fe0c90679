"""The step lock, in one process: ``StepLock`` (flock on a local file: two open descriptions
conflict even in one process) and ``LeaseLock`` (numbered lease objects on an fsspec memory
filesystem, the object-store path without a server). Written to kill the mutants ``make mutants``
found alive in ``step_lock.py`` (see docs/mutants.md). Waits are bounded by generous deadlines,
never asserted on elapsed time."""

from __future__ import annotations

import json
import logging
import os
import stat
import threading
import time
import uuid

import pytest

from dreamer_dagster.step_lock import LeaseLock, StepLock, StepLocked

FIX = (
    "two runs never write one step folder at once. Fix: wait for that run to finish, then materialize "
    "again (the finished output is reused), or raise the IO manager's lock_timeout to wait for it."
)


@pytest.fixture(autouse=True)
def quick_polls(monkeypatch):
    """Poll every 20 ms (not 200 / 500 ms): the same rules, in less time."""
    monkeypatch.setattr(StepLock, "POLL_SECONDS", 0.02)
    monkeypatch.setattr(LeaseLock, "POLL_SECONDS", 0.02)


def test_the_locked_error_names_the_step_the_holder_and_the_wait():
    error = StepLocked("Tweets", "run 1 (pid 7)", 2.4)
    assert (error.step, error.holder) == ("Tweets", "run 1 (pid 7)")
    assert str(error) == f"Step 'Tweets' is locked by another run (run 1 (pid 7)) after waiting 2 s: {FIX}"
    assert str(StepLocked("Tweets", None, 1.0)) == (
        f"Step 'Tweets' is locked by another run (holder unknown) after waiting 1 s: {FIX}"
    )
    assert (
        str(StepLocked("Tweets", None, 0.99))
        == f"Step 'Tweets' is locked by another run (holder unknown): {FIX}"
    )


# -- StepLock (flock) ------------------------------------------------------------------------


def test_a_step_lock_is_exclusive_and_names_its_holder(tmp_path):
    path = tmp_path / "out" / ".locks" / "tweets.lock"
    first, second = StepLock(path, "Tweets"), StepLock(path, "Tweets")
    assert first.path == path and first.step == "Tweets" and first.holder() is None  # no file yet
    path.parent.mkdir(parents=True)
    path.write_text("a stale name left by a killed run")
    first.acquire("run-1")
    assert first.holder() == "run-1" and second.holder() == "run-1"
    waits: list = []
    with pytest.raises(StepLocked) as raised:
        second.acquire("run-2", timeout=0, on_wait=waits.append)
    assert str(raised.value) == f"Step 'Tweets' is locked by another run (run-1): {FIX}"
    assert raised.value.holder == "run-1" and waits == []
    with pytest.raises(StepLocked):
        second.acquire("run-2", timeout=0.2)  # no on_wait: nothing to tell
    with pytest.raises(StepLocked) as raised:
        second.acquire("run-2", timeout=0.2, on_wait=waits.append)
    assert waits == ["run-1"] and raised.value.step == "Tweets"  # told once, however long it waits
    with pytest.raises(RuntimeError, match=r"^The lock on step 'Tweets' is already held by this object\.$"):
        first.acquire("run-1 again")
    first.release()
    assert first.holder() is None and path.read_text() == ""
    first.release()  # releasing twice is harmless
    second.acquire("")  # an empty owner leaves no stale name behind
    assert second.holder() is None
    second.release()
    first.acquire("r")  # the same folder again (it exists now)
    assert first.holder() == "r"
    first.release()


def test_a_step_lock_makes_its_folder_and_a_file_others_can_read(tmp_path):
    path = tmp_path / "new" / "out" / ".locks" / "tweets.lock"
    lock = StepLock(path, "Tweets")
    lock.acquire("run-1")
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644 & ~umask
    lock.release()


def test_a_waiting_step_lock_gets_it_once_the_holder_releases(tmp_path):
    path = tmp_path / "tweets.lock"
    first, second = StepLock(path, "Tweets"), StepLock(path, "Tweets")
    first.acquire("run-1")
    releaser = threading.Timer(0.3, first.release)
    releaser.start()
    waits: list = []
    second.acquire("run-2", timeout=60, on_wait=waits.append)
    assert second.holder() == "run-2" and waits == ["run-1"]
    second.release()
    releaser.join()
    # And without a timeout at all.
    first.acquire("run-1")
    releaser = threading.Timer(0.3, first.release)
    releaser.start()
    second.acquire("run-3")
    assert second.holder() == "run-3"
    second.release()
    releaser.join()


# -- LeaseLock (an object store) -------------------------------------------------------------


@pytest.fixture
def folder():
    from upath import UPath

    root = UPath(f"memory://leases-{uuid.uuid4().hex}/out")
    yield root / ".locks" / "tweets"
    root.fs.rm(root.path, recursive=True) if root.fs.exists(root.path) else None


def leases(folder) -> dict[str, dict]:
    names = sorted(path.name for path in folder.iterdir()) if folder.exists() else []
    return {name: json.loads((folder / name).read_text()) for name in names if name.endswith(".json")}


def wait_for(condition, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the condition did not hold in time"
        time.sleep(0.05)


def test_lease_seconds_from_the_argument_the_environment_or_the_default(folder, monkeypatch):
    monkeypatch.delenv("DREAMER_LEASE_SECONDS", raising=False)
    assert LeaseLock(folder, "Tweets").ttl == 60.0
    monkeypatch.setenv("DREAMER_LEASE_SECONDS", "7")
    lock = LeaseLock(folder, "Tweets")
    assert lock.ttl == 7.0 and lock.folder == folder and lock.step == "Tweets"
    assert LeaseLock(folder, "Tweets", ttl=3).ttl == 3.0


def test_a_lease_is_exclusive_numbered_and_released(folder):
    first, second = LeaseLock(folder, "Tweets", ttl=30), LeaseLock(folder, "Tweets", ttl=30)
    assert first.holder() is None
    before = time.time()
    first.acquire("run-1", timeout=0)
    [(name, lease)] = leases(folder).items()
    assert name == "000000000000.json" and lease["owner"] == "run-1"
    assert before + 30 <= lease["expires"] <= time.time() + 30 and len(lease["token"]) == 32
    assert first.holder() == "run-1" and second.holder() == "run-1"
    waits: list = []
    with pytest.raises(StepLocked) as raised:
        second.acquire("run-2", timeout=0, on_wait=waits.append)
    assert str(raised.value) == f"Step 'Tweets' is locked by another run (run-1): {FIX}" and waits == []
    with pytest.raises(StepLocked):
        second.acquire("run-2", timeout=0.2)  # no on_wait: nothing to tell
    with pytest.raises(StepLocked) as raised:
        second.acquire("run-2", timeout=0.2, on_wait=waits.append)
    assert waits == ["run-1"] and raised.value.holder == "run-1"  # told once
    with pytest.raises(RuntimeError, match=r"^The lock on step 'Tweets' is already held by this object\.$"):
        first.acquire("again")

    first.release()
    assert leases(folder)["000000000000.json"] == {**lease, "released": True}
    assert first.holder() is None and first._renewer is None
    first.release()  # harmless
    second.acquire("run-2", timeout=0)
    assert list(leases(folder)) == ["000000000001.json"]  # the lease before it is deleted
    assert second.holder() == "run-2"
    second.release()


def test_a_waiting_lease_gets_it_once_released(folder):
    first, second = LeaseLock(folder, "Tweets", ttl=30), LeaseLock(folder, "Tweets", ttl=30)
    first.acquire("run-1", timeout=0)
    releaser = threading.Timer(0.3, first.release)
    releaser.start()
    second.acquire("run-2", timeout=60)
    assert second.holder() == "run-2"
    second.release()
    releaser.join()


def test_an_expired_lease_is_free_and_a_held_one_is_renewed(folder):
    from dreamer_dagster.filesystem import files_for

    files = files_for(folder)
    files.write_json(folder / "000000000004.json", {"owner": "dead run", "expires": time.time() - 1})
    lock = LeaseLock(folder, "Tweets", ttl=2.0)
    assert lock.holder() is None  # expired
    lock.acquire("run-1", timeout=0)
    first_expiry = leases(folder)["000000000005.json"]["expires"]
    assert list(leases(folder)) == ["000000000005.json"]
    assert "lease-Tweets" in {thread.name for thread in threading.enumerate()}  # the renewer, by step
    # A daemon: a lease never keeps a finished process alive (it expires a ttl later).
    assert all(thread.daemon for thread in threading.enumerate() if thread.name == "lease-Tweets")
    # Renewed every ttl / 3 while held, well before it would expire (the bound is the lease
    # time, 2 s, for a renewal due after 0.67 s): its new expiry is a lease time ahead.
    wait_for(lambda: leases(folder)["000000000005.json"]["expires"] > first_expiry, seconds=2.0)
    assert leases(folder)["000000000005.json"]["expires"] > time.time()
    assert leases(folder)["000000000005.json"]["owner"] == "run-1"
    lock.release()
    assert "lease-Tweets" not in {thread.name for thread in threading.enumerate()}
    released = leases(folder)["000000000005.json"]
    assert released["released"] is True


def test_a_lease_record_without_an_expiry_counts_as_expired(folder):
    from dreamer_dagster.filesystem import files_for

    files_for(folder).write_json(folder / "000000000000.json", {"owner": "old", "expires": 0})
    lock = LeaseLock(folder, "Tweets", ttl=30)
    lock.acquire("run-1", timeout=0)
    assert list(leases(folder)) == ["000000000001.json"]
    lock.release()


def test_files_that_are_no_lease_are_ignored_or_unreadable_and_named_once(folder, caplog):
    from dreamer_dagster.filesystem import files_for

    files = files_for(folder)
    files.write_json(folder / "notes.json", {"owner": "x", "expires": time.time() + 999})
    files.write_json(folder / "7.json", {"owner": "x", "expires": time.time() + 999})
    files.write_bytes(folder / "README", b"not json at all")
    lock = LeaseLock(folder, "Tweets", ttl=30)
    with caplog.at_level(logging.WARNING, logger="dreamer_dagster.step_lock"):
        assert lock.holder() is None and lock.holder() is None
        lock.acquire("run-1", timeout=0)
    assert "000000000000.json" in leases(folder)
    assert {record.name for record in caplog.records} == {"dreamer_dagster.step_lock"}
    warned = [record.getMessage() for record in caplog.records]
    assert warned == [
        f"Step 'Tweets': 7.json in the lock folder {folder} is not a lease file (<12-digit number>.json); "
        "ignored; not trusted.",
        f"Step 'Tweets': notes.json in the lock folder {folder} is not a lease file (<12-digit number>.json); "
        "ignored; not trusted.",
    ]
    lock.release()


def test_a_malformed_lease_is_free_only_after_a_whole_lease_time(folder, caplog):
    from dreamer_dagster.filesystem import files_for

    files_for(folder).write_json(folder / "000000000000.json", {"owner": 5, "expires": time.time() + 999})
    lock = LeaseLock(folder, "Tweets", ttl=0.3)
    with caplog.at_level(logging.WARNING, logger="dreamer_dagster.step_lock"):
        assert lock.holder() is None
        with pytest.raises(StepLocked) as raised:
            lock.acquire("run-1", timeout=0)
        assert raised.value.holder is None
        lock.acquire("run-1", timeout=5)  # after the lease time, an unreadable lease is free
    assert list(leases(folder)) == ["000000000001.json"] and lock.holder() == "run-1"
    assert [record.getMessage() for record in caplog.records] == [
        f"Step 'Tweets': 000000000000.json in the lock folder {folder} is not a lease (its owner is not a "
        "string); it counts as unreadable; not trusted."
    ]
    lock.release()


def test_a_lease_that_does_not_parse_is_unreadable(folder):
    from dreamer_dagster.filesystem import files_for

    files_for(folder).write_bytes(folder / "000000000003.json", b'{"owner": "half written')
    lock = LeaseLock(folder, "Tweets", ttl=0.3)
    assert lock.holder() is None
    lock.acquire("run-1", timeout=5)
    assert list(leases(folder)) == ["000000000004.json"]
    lock.release()


def test_a_held_lease_is_never_taken_however_long_a_waiter_waits(folder):
    holder = LeaseLock(folder, "Tweets", ttl=60)
    holder.acquire("run-1", timeout=0)
    impatient = LeaseLock(folder, "Tweets", ttl=0.1)  # its own short lease time changes nothing
    with pytest.raises(StepLocked):
        impatient.acquire("run-2", timeout=0.5)
    assert holder.holder() == "run-1" and list(leases(folder)) == ["000000000000.json"]
    holder.release()
