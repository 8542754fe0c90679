"""The partition key a running partition of a step offers its prompts and functions.

- ``{partition_key}`` in a prompt step's text arguments (an ``instruction``, a label)
  is replaced by the key (a plain replacement: other braces stay as they are);
- a function the user passes (a ``DataSource`` generator, ``map`` / ``filter``
  functions, ``filter_func``...) that has a ``partition_key`` parameter is called
  with ``partition_key=<key>``;
- :func:`current_partition_key` returns it anywhere in the step's run (None outside
  a partitioned run).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

__all__ = [
    "PLACEHOLDER",
    "bind_partition_key",
    "current_partition_key",
    "fill_partition_key",
    "has_placeholder",
    "partition_scope",
]

#: What a text argument writes where the partition key goes.
PLACEHOLDER = "{partition_key}"

_CURRENT: ContextVar[str | None] = ContextVar("dreamer_partition_key", default=None)


def current_partition_key() -> str | None:
    """The partition key of the step partition running in this thread (None: none)."""
    return _CURRENT.get()


@contextmanager
def partition_scope(key: str | None) -> Iterator[None]:
    """Within the block, :func:`current_partition_key` is ``key``."""
    token = _CURRENT.set(key)
    try:
        yield
    finally:
        _CURRENT.reset(token)


def fill_partition_key(value: Any, key: str | None) -> Any:
    """``value`` with :data:`PLACEHOLDER` replaced by ``key`` in every string of it (dicts,
    lists and tuples walked; anything else, such as a model, left alone)."""
    if key is None:
        return value
    if isinstance(value, str):
        return value.replace(PLACEHOLDER, key)
    if isinstance(value, dict):
        return {name: fill_partition_key(item, key) for name, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(fill_partition_key(item, key) for item in value)
    return value


def has_placeholder(value: Any) -> bool:
    """Whether any string in ``value`` (dicts, lists and tuples walked) holds :data:`PLACEHOLDER`."""
    if isinstance(value, str):
        return PLACEHOLDER in value
    if isinstance(value, dict):
        return any(has_placeholder(item) for item in value.values())
    if isinstance(value, (list, tuple)):
        return any(has_placeholder(item) for item in value)
    return False


def bind_partition_key(function: Callable, key: str | None = None) -> Callable:
    """``function`` given ``partition_key=`` (``key``, else the current one) when it has a
    parameter of that name and a partition runs; else ``function`` itself."""
    key = key if key is not None else current_partition_key()
    if key is None or not _takes_partition_key(function):
        return function
    return functools.partial(function, partition_key=key)


def _takes_partition_key(function: Callable) -> bool:
    try:
        parameters = inspect.signature(function).parameters
    except (TypeError, ValueError):
        return False
    parameter = parameters.get("partition_key")
    return parameter is not None and parameter.kind in (
        inspect.Parameter.KEYWORD_ONLY,
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
    )
