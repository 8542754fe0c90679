"""Weights loaded once per process, shared by every model object with the same load identity.

Steps get run-time copies of a model (``for_run``); this registry is what lets
those copies, and several steps in one process, share one set of weights.
``unload`` frees them.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["get_or_load", "is_loaded", "unload"]

T = TypeVar("T")

_LOCK = threading.RLock()
_LOADED: dict[str, Any] = {}


def get_or_load(key: str, loader: Callable[[], T]) -> T:
    with _LOCK:
        if key not in _LOADED:
            _LOADED[key] = loader()
        return _LOADED[key]


def is_loaded(key: str) -> bool:
    with _LOCK:
        return key in _LOADED


def unload(key: str) -> bool:
    """Drop what is loaded under ``key``; True if something was."""
    with _LOCK:
        found = _LOADED.pop(key, None) is not None
    if found:
        gc.collect()
        _empty_accelerator_cache()
    return found


def _empty_accelerator_cache() -> None:
    import sys

    torch = sys.modules.get("torch")  # never import torch just to free nothing
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()
