"""A step's argument values looked into: walked for what they hold (the models among them,
their data card entries) and described for step.json (``describe_args``).

A description is the canonical form of a value, never a secret: a column reference, a
deferred value or a value read in a running script shows as its source and that step's
fingerprint, a step as its name and fingerprint, a list over 1,000 items as its length and
fingerprint, and what has no canonical form as its ``repr``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from ..deferred import ColumnRef, Deferred, Sourced
from ..fingerprint import FingerprintError, canonical, fingerprint

__all__ = ["describe_value", "walk_values"]


def walk_values(value: Any) -> Iterator[Any]:
    """``value`` and, depth first, every value inside its mappings, lists and tuples."""
    yield value
    if isinstance(value, Mapping):
        for item in value.values():
            yield from walk_values(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from walk_values(item)


def describe_value(value: Any) -> Any:
    """``value`` as step.json shows it (see the module's docstring)."""
    from .step import Step

    if isinstance(value, (ColumnRef, Deferred)) or (
        isinstance(value, Sourced) and value.sourced_by() is not None
    ):
        # a value read in a running script shows as its source, as in a file Dagster loads
        return {"deferred": value.describe(), "fingerprint": value.step.fingerprint}
    if isinstance(value, Step):
        return {"step": value.name, "fingerprint": value.fingerprint}
    if isinstance(value, Mapping):
        return {str(k): describe_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)) and len(value) <= 1000:
        return [describe_value(v) for v in value]
    try:
        described = canonical(value)
    except FingerprintError:
        return repr(value)
    if isinstance(described, list) and len(described) > 1000:
        return {"items": len(described), "fingerprint": fingerprint(value)}
    return described
