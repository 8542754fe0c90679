"""When a step declared in a script runs: as DataDreamer runs it.

- In a ``Pipeline`` block running as a script, a step runs when its declaration ends
  (:func:`declared`, called by the step metaclass, or by a trainer's ``train()``): one
  Dagster run of the pipeline's job (the web UI lists it). With ``background=True`` that
  run goes on in a thread of its own, and ``wait(step)`` (or the block's end) joins it.
  Operations are steps too: each runs when it is made. A class with
  ``RUNS_WHEN_DECLARED = False`` runs only when code asks for it (``wait(step)``, a read
  of its data), never at the block's end.
- A step declared outside any block in a script (``__main__``, or ``DREAMER_RUN=1``) is
  a declaration, as DataDreamer's are; when code reads its data (or waits for it), it
  runs in the process's in-memory session (:func:`run_in_memory`: a ``Pipeline(":memory:")``
  of its own, a temporary folder removed at exit, where nothing is ever reused).
- In a file Dagster loads as definitions, nothing here runs anything.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .pipeline import Pipeline
    from .script_mode import ScriptSession
    from .steps.step import Step

__all__ = ["Background", "declared", "join", "memory_pipeline", "run_in_memory", "start_background"]

_MEMORY: list[Pipeline] = []
_MEMORY_LOCK = threading.Lock()


def declared(step: Step) -> None:
    """``step``'s declaration is complete: run it now where DataDreamer would."""
    from .steps.super_step import inner_run

    if inner_run() is not None:
        return  # declared in a running SuperStep's run(): it ran already (super_step.py)
    pipeline = step.pipeline
    if pipeline is not None:
        session = pipeline.session
        if not (pipeline.is_active and pipeline.script_mode and session is not None):
            return  # a file Dagster loads: a declaration
        if not getattr(step, "RUNS_WHEN_DECLARED", True):
            return
        if step.background:
            start_background(session, step)
        else:
            session.ensure([step])
        return
    from .pipeline import Pipeline
    from .script_mode import caller_module_name, resolve_run_mode

    if not Pipeline._active and resolve_run_mode(None, caller_module_name()):
        step.runs_in_memory = True


class Background(threading.Thread):
    """A ``background=True`` step's run; ``error`` holds its failure."""

    def __init__(self, session: ScriptSession, step: Step):
        super().__init__(name=f"dreamer-background-{step.key}", daemon=True)
        self.session = session
        self.step = step
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.session.ensure([self.step])
        except BaseException as error:  # handed to wait() or the block's end
            self.error = error


def start_background(session: ScriptSession, step: Step) -> None:
    """Run ``step`` in a thread of its own (DataDreamer's ``background=True``)."""
    thread = Background(session, step)
    with session._lock:
        session.background[step.key] = thread
    thread.start()


def join(session: ScriptSession, key: str, thread: threading.Thread, raise_errors: bool = True) -> None:
    """Wait for a background step's run; raise its failure (once) when ``raise_errors``."""
    thread.join()
    with session._lock:
        if session.background.get(key) is thread:
            del session.background[key]
    error = getattr(thread, "error", None)
    if error is not None and raise_errors:
        thread.error = None
        raise error


def memory_pipeline() -> Pipeline:
    """The process's in-memory session of the steps declared outside any block."""
    from .pipeline import Pipeline
    from .script_mode import ScriptSession

    with _MEMORY_LOCK:
        if not _MEMORY:
            pipeline = Pipeline(":memory:", run=True)
            pipeline.session = ScriptSession(pipeline)
            _MEMORY.append(pipeline)
        return _MEMORY[0]


def run_in_memory(steps: list[Any]) -> None:
    """Run ``steps`` (and what they need) in the in-memory session, unless it ran these very
    steps already; their data is then read from its folder."""
    from .definitions import all_steps

    pipeline = memory_pipeline()
    for step in all_steps(steps):
        if step.pipeline is None:
            step.pipeline_output_folder = pipeline.output_folder
    pipeline.session.ensure(list(steps))
