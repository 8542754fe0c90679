"""DataDreamer's ``wait`` and ``concurrent``.

DataDreamer runs a ``background=True`` step in a process of its own and ``wait(step)``
blocks until it is done; ``concurrent(f, g)`` runs functions that declare steps in
threads. Here Dagster runs steps: independent steps run in parallel under the
multiprocess executor (``dagster asset materialize``, the job), whatever ``background``
says. So ``wait(*steps)`` makes sure the steps are materialized where data can be
read (a running script materializes them now; in a file Dagster loads it returns at
once), and ``concurrent(*funcs)`` calls the functions one after another and returns
their results: declaring is instant, and the steps they declare run as Dagster
schedules them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .step import Step

__all__ = ["concurrent", "wait"]


def wait(*steps: Step, poll_interval: float = 1.0) -> None:
    """Return once ``steps`` are materialized (a running script materializes them now)."""
    from .step import Step

    if not all(isinstance(step, Step) for step in steps):
        raise TypeError("All arguments to wait() must be steps.")
    by_pipeline: dict[int, list[Step]] = {}
    for step in steps:
        pipeline = step.pipeline
        if pipeline is not None and pipeline.is_active and pipeline.script_mode:
            by_pipeline.setdefault(id(pipeline), []).append(step)
    for chosen in by_pipeline.values():
        chosen[0].pipeline.session.ensure(chosen)


def concurrent(*funcs: Callable[[], Any]) -> list[Any]:
    """Call ``funcs`` (which declare steps) and return their results, in order."""
    if not all(callable(func) for func in funcs):
        raise TypeError("All arguments to concurrent() must be functions.")
    return [func() for func in funcs]
