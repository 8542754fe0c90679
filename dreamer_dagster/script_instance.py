"""The Dagster instance a script run records its runs in, made under a file lock.

``DagsterInstance`` creates its SQLite storage (tables, the alembic version stamp, the
event log index) the first time it opens a home, and two processes doing that at once
fail (``table alembic_version already exists``). So the home is opened while holding an
exclusive ``flock`` on ``<home>/.dreamer-init.lock``: scripts started together on a fresh
output folder wait a moment for the first one to create the storage, then open it. The
kernel drops the lock when its process ends, however it ends.
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

__all__ = ["INIT_LOCK", "script_instance"]

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
            return dg.DagsterInstance.get()
    from .output_folder import OutputFolder

    folder_home = OutputFolder(output_folder, storage_options).dagster_home()  # race-free itself
    with _locked(folder_home / INIT_LOCK):
        return dg.DagsterInstance.from_config(str(folder_home))


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
