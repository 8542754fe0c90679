"""One run at a time in a step folder: an exclusive lock a dead process cannot leave behind.

Used only by :mod:`~dreamer_dagster.output_folder` (``StepFolder.lock``). The
lock is ``fcntl.flock`` on a lock file: the kernel drops it when the holding
process exits, however it exits (SIGKILL included), so there is no stale lock
to clean up. While held, the file names its holder (a run id, a process), so a
run that waits, or gives up, can say which run holds the step.

An object store has no flock: there :class:`LeaseLock`, with the same three
methods (``acquire``, ``holder``, ``release``), holds a lease object instead.
Leases are numbered objects ``.locks/<step>/<n>.json`` naming their holder and an
expiry; taking the lock is creating the next number, which the store lets only
one writer do (S3's conditional ``If-None-Match: *`` PUT). The holder renews
its lease every ``ttl / 3`` seconds from a background thread; a dead worker
stops renewing, and its lease is free ``ttl`` seconds later. A file in that folder
whose name or content is not a lease this library writes (see record_formats.py)
is not trusted: a misnamed one is ignored, a malformed one counts as unreadable
(free after a whole ``ttl``); each is named once in a warning.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .record_formats import is_lease_name, lease_problem

__all__ = ["LeaseLock", "StepLock", "StepLocked"]


class StepLocked(RuntimeError):
    """Another run holds the step folder, and this one would not wait (longer)."""

    def __init__(self, step: str, holder: str | None, waited: float):
        self.step = step
        self.holder = holder
        waited_text = f" after waiting {waited:.0f} s" if waited >= 1 else ""
        super().__init__(
            f"Step {step!r} is locked by another run ({holder or 'holder unknown'}){waited_text}: "
            "two runs never write one step folder at once. Fix: wait for that run to finish, "
            "then materialize again (the finished output is reused), or raise the IO manager's "
            "lock_timeout to wait for it."
        )


class StepLock:
    """An exclusive ``flock`` on ``path``, held across one whole materialization of the
    step (prepare, run, commit) and then released; not re-entrant, even in one process."""

    POLL_SECONDS = 0.2

    def __init__(self, path: Path, step: str):
        self.path = path
        self.step = step
        self._handle: int | None = None

    def acquire(
        self,
        owner: str,
        timeout: float | None = None,
        on_wait: Callable[[str | None], None] | None = None,
    ) -> None:
        """Take the lock, writing ``owner`` into the lock file.

        ``timeout`` None waits as long as it takes, 0 fails at once; while
        another run holds it, ``on_wait(holder)`` is called once.
        """
        if self._handle is not None:
            raise RuntimeError(f"The lock on step {self.step!r} is already held by this object.")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        started = time.monotonic()
        told = False
        try:
            while True:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    waited = time.monotonic() - started
                    if timeout is not None and waited >= timeout:
                        raise StepLocked(self.step, self.holder(), waited) from None
                    if not told and on_wait is not None:
                        on_wait(self.holder())
                        told = True
                    time.sleep(self.POLL_SECONDS)
            os.ftruncate(handle, 0)
            os.pwrite(handle, owner.encode(), 0)
        except BaseException:
            os.close(handle)
            raise
        self._handle = handle

    def holder(self) -> str | None:
        """Who holds the lock (as its holder wrote it), or None when that is not known."""
        try:
            text = self.path.read_text().strip()
        except OSError:
            return None
        return text or None

    def release(self) -> None:
        if self._handle is None:
            return
        handle, self._handle = self._handle, None
        try:
            os.ftruncate(handle, 0)
        finally:
            os.close(handle)  # closing the last descriptor drops the flock


class LeaseLock:
    """An exclusive lease on a step, kept as numbered objects in ``folder`` on a remote
    output folder: ``<n>.json`` = ``{"owner", "expires", "released"}``. The lease with the
    highest number decides: while it is neither released nor expired, the step is held.
    Taking the lock creates number ``n + 1`` exclusively (one winner); older numbers
    are then deleted. Not re-entrant."""

    POLL_SECONDS = 0.5
    #: Seconds a lease lasts without renewal (a dead worker's lease frees this long after);
    #: ``$DREAMER_LEASE_SECONDS`` or the IO manager's ``lease_seconds`` change it.
    TTL_SECONDS = 60.0

    def __init__(self, folder: Any, step: str, ttl: float | None = None):
        from .filesystem import files_for

        self.folder = folder
        self.step = step
        self.ttl = float(ttl or os.environ.get("DREAMER_LEASE_SECONDS") or self.TTL_SECONDS)
        self.files = files_for(folder)
        self._mine: Any = None
        self._record: dict | None = None
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None
        self._warned: set[str] = set()

    def _warn(self, name: str, why: str) -> None:
        if name not in self._warned:
            self._warned.add(name)
            logging.getLogger(__name__).warning(
                "Step %r: %s in the lock folder %s is %s; not trusted.", self.step, name, self.folder, why
            )

    def _leases(self) -> list[int]:
        numbers = []
        for name in self.files.list_names(self.folder):
            if is_lease_name(name):
                numbers.append(int(name.removesuffix(".json")))
            elif name.endswith(".json"):  # (a nested step's lock folder is no lease)
                self._warn(name, "not a lease file (<12-digit number>.json); ignored")
        return sorted(numbers)

    def _path(self, number: int) -> Any:
        return self.folder / f"{number:012d}.json"

    def _current(self) -> tuple[int, dict | None]:
        """The highest lease number (-1: none) and its record (None: unreadable or gone)."""
        numbers = self._leases()
        if not numbers:
            return -1, None
        record = self.files.read_json(self._path(numbers[-1]))
        problem = lease_problem(record) if record is not None else None
        if problem is not None:
            self._warn(self._path(numbers[-1]).name, f"not a lease ({problem}); it counts as unreadable")
            record = None
        return numbers[-1], record

    @staticmethod
    def _free(record: dict | None) -> bool:
        if record is None:
            return False  # being written or just deleted: look again
        return bool(record.get("released")) or float(record.get("expires", 0)) < time.time()

    def acquire(
        self,
        owner: str,
        timeout: float | None = None,
        on_wait: Callable[[str | None], None] | None = None,
    ) -> None:
        """Take the lease, naming ``owner`` in it (``timeout`` and ``on_wait`` as for
        :meth:`StepLock.acquire`)."""
        if self._mine is not None:
            raise RuntimeError(f"The lock on step {self.step!r} is already held by this object.")
        started = time.monotonic()
        told = False
        unreadable_since: float | None = None
        while True:
            number, record = self._current()
            if record is None and number >= 0:
                # A lease that cannot be read for a whole ttl counts as free.
                unreadable_since = unreadable_since or time.monotonic()
                if time.monotonic() - unreadable_since > self.ttl:
                    record = {"released": True}
            if number < 0 or self._free(record):
                mine = self._path(number + 1)
                lease = {"owner": owner, "expires": time.time() + self.ttl, "token": uuid.uuid4().hex}
                created = self.files.create_exclusive(mine, json.dumps(lease).encode())
                if created and (self.files.read_json(mine) or {}).get("token") == lease["token"]:
                    self._hold(mine, lease, number)
                    return
            else:
                waited = time.monotonic() - started
                if timeout is not None and waited >= timeout:
                    raise StepLocked(self.step, (record or {}).get("owner"), waited)
                if not told and on_wait is not None:
                    on_wait((record or {}).get("owner"))
                    told = True
            time.sleep(self.POLL_SECONDS)

    def _hold(self, mine: Any, lease: dict, previous: int) -> None:
        self._mine, self._record = mine, lease
        for number in self._leases():
            if number <= previous:
                self.files.remove_file(self._path(number))
        self._stop.clear()
        self._renewer = threading.Thread(target=self._renew, name=f"lease-{self.step}", daemon=True)
        self._renewer.start()

    def _renew(self) -> None:
        while not self._stop.wait(self.ttl / 3):
            mine, record = self._mine, self._record
            if mine is None or record is None:
                return
            try:
                self.files.write_json(mine, {**record, "expires": time.time() + self.ttl})
            except Exception:  # noqa: BLE001 - renewing is retried on the next tick
                continue

    def holder(self) -> str | None:
        """Who holds the lease (as its holder wrote it), or None when it is free or unknown."""
        _, record = self._current()
        if record is None or self._free(record):
            return None
        return record.get("owner")

    def release(self) -> None:
        if self._mine is None:
            return
        mine, record = self._mine, self._record
        self._mine = self._record = None
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join(timeout=5)
            self._renewer = None
        self.files.write_json(mine, {**(record or {}), "released": True})
