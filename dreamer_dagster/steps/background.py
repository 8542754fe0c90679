"""DataDreamer's ``wait`` and ``concurrent``.

In a running script a step runs when it is declared; ``background=True`` runs it in a
thread of its own instead (see :mod:`~dreamer_dagster.script_steps`). ``wait(*steps)``
returns once the steps are done: it joins a background step's thread (raising its
failure), and runs now a step that has not run yet (one declared outside any block, or
whose class runs only when asked). In a file Dagster loads it returns at once: Dagster
runs independent steps in parallel under the multiprocess executor.

``concurrent(f, g)`` calls functions (that declare steps) in threads, as DataDreamer does,
and returns their results in order; each thread sees the context of its caller (a
running SuperStep's, so steps it declares run inside it).
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .step import Step

__all__ = ["concurrent", "wait"]


def wait(*steps: Step, poll_interval: float = 1.0) -> None:
    """Return once ``steps`` are done (a background step's failure is raised here)."""
    from ..script_steps import join, run_in_memory
    from .step import Step

    if not all(isinstance(step, Step) for step in steps):
        raise TypeError("All arguments to wait() must be steps.")
    for step in steps:
        pipeline = step.pipeline
        if pipeline is not None and pipeline.is_active and pipeline.script_mode:
            session = pipeline.session
            thread = session.background.get(step.key)
            if thread is not None:
                join(session, step.key, thread)
            session.ensure([step])
        elif pipeline is None and getattr(step, "runs_in_memory", False):
            run_in_memory([step])


def concurrent(*funcs: Callable[[], Any]) -> list[Any]:
    """Call ``funcs`` (which declare steps) in threads; their results, in order."""
    if not all(callable(func) for func in funcs):
        raise TypeError("All arguments to concurrent() must be functions.")
    if not funcs:
        return []
    with ThreadPoolExecutor(max_workers=len(funcs), thread_name_prefix="dreamer-concurrent") as pool:
        futures = [pool.submit(contextvars.copy_context().run, func) for func in funcs]
        return [future.result() for future in futures]
