"""Dagster concurrency pool names derived from where a model runs.

A step that calls a model runs in one pool per place the calls go: one per API
endpoint (``openai_api_openai_com``, ``openai_127_0_0_1_8000``), one per local
device (``local_cpu``, ``local_cuda_0``; ``local`` for a model on the default
device), and trainers in ``gpu`` or ``cpu``. With a pool limit of N, at most N
steps of that pool run at once across all runs of the instance
(``dagster instance concurrency set <pool> N``), so the requests in flight to
an endpoint stay at most N x the model's ``max_concurrency``.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

__all__ = ["check_pool", "device_pool", "endpoint_pool", "pool_name", "trainer_pool"]

_UNSAFE = re.compile(r"[^a-z0-9]+")
_VALID = re.compile(r"^\S+$")  # Dagster's own rule: no whitespace


def pool_name(*parts: Any) -> str:
    """``pool_name("openai", "127.0.0.1:8000")`` -> ``openai_127_0_0_1_8000``."""
    text = "_".join(str(part) for part in parts if part not in (None, ""))
    return _UNSAFE.sub("_", text.lower()).strip("_")


def endpoint_pool(provider: str, base_url: str | None, default_host: str) -> str:
    """One pool per API endpoint: the provider and the host (and port, when given)."""
    if not base_url:
        return pool_name(provider, default_host)
    parts = urlsplit(base_url if "://" in base_url else f"//{base_url}")
    host = parts.hostname or base_url
    return pool_name(provider, host, parts.port)


def device_pool(device: Any) -> str:
    """One pool per local device: ``local_cpu``, ``local_cuda_0``; ``local`` for the default one."""
    if device is None:
        return "local"
    if isinstance(device, (list, tuple)):
        return pool_name("local", *[_device_text(item) for item in device])
    return pool_name("local", _device_text(device))


def trainer_pool(device: Any) -> str:
    """``cpu`` for a trainer pinned to the CPU, else ``gpu`` (the default device is the GPU where there is one)."""
    return "cpu" if device is not None and _device_text(device) == "cpu" else "gpu"


def check_pool(pool: Any) -> str:
    """``pool`` if Dagster accepts it as a pool name; else a ValueError that says why."""
    if not isinstance(pool, str) or not _VALID.match(pool):
        raise ValueError(
            f"{pool!r} is not a pool name: give a non-empty string without spaces, "
            "such as 'openai_api' or 'local_cuda_0'."
        )
    return pool


def _device_text(device: Any) -> str:
    if isinstance(device, bool):
        return str(device)
    if isinstance(device, int):
        return "cpu" if device < 0 else f"cuda_{device}"
    text = str(device).lower()
    if text == "cuda":
        return "cuda_0"
    return text.replace(":", "_")
