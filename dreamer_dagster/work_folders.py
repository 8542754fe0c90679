"""Work folders (``.staging/``) named after their owner, so a killed run's are removed and
another live run's, or another host's, never are."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import socket
import tempfile
from pathlib import Path

__all__ = ["new_work_folder"]


def new_work_folder(base: Path, name: str, run_id: str | None = None) -> Path:
    """A fresh work folder for step folder ``name`` under ``base``.

    Its name carries the host, the process id and the run id: work folders of
    this step left by a process of this host that no longer runs (a killed run)
    are removed first; another host's are never touched. A step name too long to
    fit beside them in one file name (255 bytes) is shortened, the same way on
    every run of this host.
    """
    base.mkdir(parents=True, exist_ok=True)
    host = _host()
    stem = _stem(name, host)
    for leftover in base.glob(f"{stem}-*"):
        owner = _staging_owner(leftover.name[len(stem) + 1 :])
        if owner is not None and owner[0] in (host, None) and not _process_alive(owner[1]):
            shutil.rmtree(leftover, ignore_errors=True)
    run = re.sub(r"[^A-Za-z0-9]", "", run_id or "")[:8] or "norun"
    return Path(tempfile.mkdtemp(prefix=f"{stem}-{host}--{os.getpid()}--{run}-", dir=base))


#: The longest file name the usual filesystems take (bytes).
NAME_MAX = 255
#: What a work folder's name adds after ``<step>``: ``-<host>--<pid>--<run>-`` and the 8
#: random characters of ``mkdtemp``, with the longest pid (7 digits) and run id (8).
_SUFFIX_WITHOUT_HOST = len("-" + "--" + "9" * 7 + "--" + "r" * 8 + "-") + 8


def _stem(name: str, host: str) -> str:
    """The step part of a work folder's name: ``name`` with ``/`` as ``__``, cut to fit
    (a prefix, ``_`` and a hash of the whole) when the folder name would pass 255 bytes."""
    stem = name.replace("/", "__")
    room = NAME_MAX - _SUFFIX_WITHOUT_HOST - len(host.encode())
    if len(stem.encode()) <= room:
        return stem
    digest = hashlib.sha256(stem.encode()).hexdigest()[:8]
    prefix = stem.encode()[: max(room - len(digest) - 1, 0)].decode("utf-8", "ignore")
    return f"{prefix}_{digest}"


def _host() -> str:
    """This machine's name as it appears in work folder names (no ``--``)."""
    return re.sub(r"[^A-Za-z0-9.]", "_", socket.gethostname()) or "host"


def _staging_owner(rest: str) -> tuple[str | None, int] | None:
    """``(host, pid)`` from a work folder's name after ``<step>-``: ``<host>--<pid>--<run>-...``,
    or the older ``<pid>-...`` (host unknown: this host's)."""
    parts = rest.split("--")
    if len(parts) >= 3 and parts[1].isdigit():
        return parts[0], int(parts[1])
    pid = rest.split("-", 1)[0]
    return (None, int(pid)) if pid.isdigit() else None


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, owned by someone else
    return True
