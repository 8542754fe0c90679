"""One run at a time in a step folder: an exclusive lock a dead process cannot leave behind.

Used only by :mod:`~dreamer_dagster.output_folder` (``StepFolder.lock``). The
lock is ``fcntl.flock`` on a lock file: the kernel drops it when the holding
process exits, however it exits (SIGKILL included), so there is no stale lock
to clean up. While held, the file names its holder (a run id, a process), so a
run that waits, or gives up, can say which run holds the step.

A storage without flock (an object store) swaps this class for one with the
same three methods: ``acquire``, ``holder``, ``release``.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable
from pathlib import Path

__all__ = ["StepLock", "StepLocked"]


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
