"""``concat(...)`` and ``zipped(...)``, DataDreamer's step-combining functions."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..step import Step

__all__ = ["concat", "zipped"]


def concat(*steps: Step, axis: int = 0, name: str | None = None, **options: Any) -> Step:
    """A step with the rows of ``steps`` one after another (``axis=1``: side by side)."""
    from ..operation_methods import check_options
    from .combine import Concat

    _check_steps("concat", steps)
    check_options(steps[0], "concat", options)

    name = name or _derived("concat", steps)
    return Concat(list(steps), name=name, args={"axis": axis}, **options)


def zipped(*steps: Step, name: str | None = None, **options: Any) -> Step:
    """A step with the columns of ``steps`` side by side, row by row."""
    from ..operation_methods import check_options
    from .combine import Zipped

    _check_steps("zipped", steps)
    check_options(steps[0], "zipped", options)

    name = name or _derived("zipped", steps)
    return Zipped(list(steps), name=name, **options)


def _check_steps(operation: str, steps: tuple[Any, ...]) -> None:
    """DataDreamer's errors: no step at all, or an argument that is not a step."""
    from ..step import Step

    if len(steps) == 0:
        raise ValueError(f"You must provide at least one step to {operation}().")
    if not all(isinstance(step, Step) for step in steps):
        raise TypeError(f"All arguments to {operation}() must be of type Step.")


def _derived(operation: str, steps: tuple[Step, ...]) -> str:
    """``"concat(A, B)"``, numbered ``"concat(A, B) #2"`` when the block already has it."""
    from ...pipeline import Pipeline

    return Pipeline.derived_name(operation + "(" + ", ".join(s.name.split(" / ")[-1] for s in steps) + ")")
