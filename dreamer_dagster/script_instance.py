"""The Dagster instance a script run records its runs in, made under a file lock.

``DagsterInstance`` creates its SQLite storage (tables, the alembic version stamp, the
event log index) the first time it opens a home, and two processes doing that at once
fail (``table alembic_version already exists``). So the home is opened while holding an
exclusive ``flock`` on ``<home>/.dreamer-init.lock``: scripts started together on a fresh
output folder wait a moment for the first one to create the storage, then open it. The
kernel drops the lock when its process ends, however it ends.

A script's runs do not capture stdout/stderr into compute-log files (the instance's
compute log manager is Dagster's ``NoOpComputeLogManager``; runs, events and
materializations go to the home's storage as before). Dagster's capture swaps the
whole process's file descriptors 1 and 2 and mirrors each file through a ``tail -F``
child that it stops with SIGTERM and then waits 30 s for. A script runs steps in threads
(``background=True``, ``concurrent()``) beside code that keeps printing, and a run in a
thread gets no Dagster SIGTERM handler: where the process ignores SIGTERM, its ``tail``
did too, each file cost 30 s, ``subprocess.TimeoutExpired`` replaced the step's own error
and the ``tail`` lived on. The web UI shows no stdout/stderr for these runs (their event
log and step logs are there); the terminal is where a script's output belongs.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import dagster as dg

__all__ = ["INIT_LOCK", "script_instance", "without_log_capture"]

#: The lock file, inside the instance's home.
INIT_LOCK = ".dreamer-init.lock"


def script_instance(output_folder: Any, storage_options: dict | None = None) -> dg.DagsterInstance:
    """The instance of ``DAGSTER_HOME`` when it is set, else the one in ``<output>/.dagster``
    (made the first time); its storage is created or migrated under the home's lock."""
    import dagster as dg

    home = os.environ.get("DAGSTER_HOME")
    if home:
        Path(home).mkdir(parents=True, exist_ok=True)
        with _locked(Path(home) / INIT_LOCK):
            return without_log_capture(dg.DagsterInstance.get())
    from .output_folder import OutputFolder

    folder_home = OutputFolder(output_folder, storage_options).dagster_home()  # race-free itself
    with _locked(folder_home / INIT_LOCK):
        return without_log_capture(dg.DagsterInstance.from_config(str(folder_home)))


def without_log_capture(instance: dg.DagsterInstance) -> dg.DagsterInstance:
    """``instance``'s home and storage with Dagster's ``NoOpComputeLogManager``: its runs
    leave the process's stdout/stderr alone (no descriptor swap, no ``tail -F`` child)."""
    import dagster as dg
    from dagster._serdes import ConfigurableClassData

    if not instance.is_persistent:  # an ephemeral instance has no home to reopen
        return instance
    ref = instance.get_ref()
    no_capture = ConfigurableClassData(
        "dagster._core.storage.noop_compute_log_manager", "NoOpComputeLogManager", "{}\n"
    )
    instance.dispose()
    return dg.DagsterInstance.from_ref(ref._replace(compute_logs_data=no_capture))


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (waiting for it); a folder where no lock file can
    be made (a read-only ``DAGSTER_HOME`` whose storage is a database server) is not locked."""
    try:
        handle: int | None = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        handle = None
    try:
        if handle is not None:
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield
    finally:
        if handle is not None:
            os.close(handle)  # closing the descriptor drops the lock
