"""What the core rooms know of a step, without importing ``steps/``.

The core (``fingerprint``, ``cache``, ``output_folder``, ``deferred``, ``model``,
``llms/``, ``embedders/``, ``retrievers/``, ``checks``, ``cost``) lies below the
steps: it never imports ``steps/``, ``pipeline``, ``script_mode`` or
``definitions`` (CONTRIBUTING.md, "Layers"; the import-linter contract in
pyproject.toml). Where it handles a step it reads it through :class:`StepLike`,
and tells a step from other values by :func:`is_step` (:class:`StepNode` is a
base of every ``Step``). What a step does for the core (its column's values, a
deferred value computed now, an estimate-only run) it offers through the methods
of :class:`StepLike`, implemented in ``steps/step_services.py``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Protocol

__all__ = ["StepLike", "StepNode", "is_step"]


class StepNode:
    """A base of :class:`~dreamer_dagster.steps.Step` (and so of every trainer): marks a
    step for the core rooms, which cannot import the class. No behaviour of its own."""

    __slots__ = ()


def is_step(value: Any) -> bool:
    """Whether ``value`` is a step (or a trainer), not a model, reference or plain value."""
    return isinstance(value, StepNode)


class StepLike(Protocol):
    """A step as the core rooms read it (``checks``, ``cost``, ``deferred``, ``llms``)."""

    #: ``"trainer"`` for a trainer, ``"super_step"`` for a SuperStep...
    KIND: ClassVar[str]
    #: the internal output column names (None where the data decides them)
    OUTPUTS: ClassVar[Sequence[str] | None]

    name: str
    key: str
    folder: str
    fingerprint: str
    force: bool
    args: Mapping[str, Any]
    inputs: Mapping[str, Any]
    output_mapping: Mapping[str, str]
    budget_usd: float | None

    def upstream(self) -> list[Any]:
        """The steps this one reads (each a :class:`StepLike`)."""
        ...

    def column_data(self, column: str, what: str) -> Any:
        """One column of the step's finished output (a running script materializes it first;
        definitions raise the clear error naming ``what``)."""
        ...

    def compute_deferred(self, deferred: Any, what: str) -> Any:
        """A deferred value of this step computed now, by the same rule as ``column_data``."""
        ...
