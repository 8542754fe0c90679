"""The exact formats of values read back from the output folder that end up in a path.

Anyone who can write the output folder (a shared disk, a bucket, an unpacked
archive) can plant values in it; a value read from there is data until it is
checked here. A fingerprint from ``step.json`` or ``_in_progress.json`` names a
``_backups/<step>/<fingerprint>`` folder, a data version a download folder, a
lease file's number the next lease, a published cache file's name a download:
each is used only when it has exactly the format this library writes, so no
planted value (``/etc``, ``../..``, a long string) ever becomes a path.
"""

from __future__ import annotations

import math
import re
from typing import Any

from .fingerprint import FINGERPRINT_LENGTH

__all__ = [
    "DATA_VERSION_LENGTH",
    "is_data_version",
    "is_fingerprint",
    "is_lease_name",
    "is_worker_cache_name",
    "lease_problem",
    "untrusted",
]

#: A data version is the first 16 hex digits of a SHA-256 (see data_versions.py).
DATA_VERSION_LENGTH = 16

_FINGERPRINT = re.compile(rf"[0-9a-f]{{{FINGERPRINT_LENGTH}}}")
_DATA_VERSION = re.compile(rf"[0-9a-f]{{{DATA_VERSION_LENGTH}}}")
#: ``.locks/<step>/<n>.json``: the lease number zero-padded to 12 digits (step_lock.py).
_LEASE_NAME = re.compile(r"[0-9]{12,24}\.json")
#: ``.cache/<cache name>/<host>-<pid>-<12 hex>.db``: a worker's published calls (cache.py).
_WORKER_CACHE_NAME = re.compile(r"[A-Za-z0-9_]{1,255}-[0-9]{1,10}-[0-9a-f]{12}\.db")


def is_fingerprint(value: Any) -> bool:
    """Whether ``value`` is a fingerprint: ``FINGERPRINT_LENGTH`` lowercase hex digits."""
    return isinstance(value, str) and _FINGERPRINT.fullmatch(value) is not None


def is_data_version(value: Any) -> bool:
    """Whether ``value`` is a data version: 16 lowercase hex digits."""
    return isinstance(value, str) and _DATA_VERSION.fullmatch(value) is not None


def is_lease_name(name: Any) -> bool:
    """Whether ``name`` is a lease file's name: ``<number, zero-padded to 12 digits>.json``."""
    if not isinstance(name, str) or _LEASE_NAME.fullmatch(name) is None:
        return False
    return name == f"{int(name.removesuffix('.json')):012d}.json"


def is_worker_cache_name(name: Any) -> bool:
    """Whether ``name`` is a published cache file's name: ``<host>-<pid>-<12 hex>.db``."""
    return isinstance(name, str) and _WORKER_CACHE_NAME.fullmatch(name) is not None


def lease_problem(record: dict) -> str | None:
    """Why a lease record is not one this library writes (``owner``, a finite ``expires``,
    ``released`` a bool when there); None when it is."""
    if not isinstance(record.get("owner"), str):
        return "its owner is not a string"
    expires = record.get("expires")
    if isinstance(expires, bool) or not isinstance(expires, (int, float)) or not math.isfinite(expires):
        return "its expiry is not a finite number"
    if not isinstance(record.get("released", False), bool):
        return "its released flag is not true or false"
    return None


def untrusted(source: Any, field: str, value: Any) -> str:
    """Why a ``field`` read from ``source`` (a file) is not used: it has not the format this
    library writes (the value shown cut short)."""
    text = repr(value)
    text = text if len(text) <= 80 else text[:77] + "..."
    return f"{source} names the {field} {text}, not one this library writes: not trusted (planted or hand-edited?)"
