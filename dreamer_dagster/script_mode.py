"""What a ``Pipeline`` block does when it runs as a script, and when a step's data can be read.

One file, two modes. **Definitions mode** (Dagster imports the file: ``dagster dev``,
``dagster asset materialize -f``, ``dagster definitions validate``, a code server):
the block only declares; nothing runs. **Script mode** (``python script.py``, a
notebook): the steps materialize as under DataDreamer, through Dagster, so every
run is in the instance (``DAGSTER_HOME`` when set, else ``<output>/.dagster``) with
reuse, backups and the model cache exactly as under ``dagster asset materialize``.

The rule: a block runs as a script when the code executing it is the ``__main__``
module. ``Pipeline(..., run=True|False)`` forces a mode; so does the environment
variable ``DREAMER_RUN`` (``1`` / ``0``), which ``run=`` overrides.

In script mode each step materializes when its declaration ends, as DataDreamer runs it
(see :mod:`~dreamer_dagster.script_steps`): one Dagster run of the pipeline's job a step
(the web UI lists them), or, with ``background=True``, that run in a thread of its own that
``wait()`` or the block's end joins. What is left when the block ends is materialized
then. A step's failure is raised to the script as the step's own exception (the user's,
the provider's, ``StepOutputError``...) with Dagster's error as its ``__cause__``; a
failure the script caught is not raised again at the block's end. A progress line a step
goes to the terminal.

:func:`require_output` is the rule every data access goes through: inside a block in
definitions mode it raises :class:`~dreamer_dagster.errors.OutputNotAvailableError`
naming the step and what works instead; inside a running script it materializes the
step (if not done yet); a step declared outside any block in a script runs in the
process's in-memory session; otherwise it lets the caller read the finished output folder.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from contextlib import ExitStack
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import stop_signals
from .errors import OutputNotAvailableError, error_chain
from .logs import report_session, terminal

if TYPE_CHECKING:
    import dagster as dg

    from .deferred import Deferred
    from .pipeline import Pipeline
    from .steps.step import Step

__all__ = [
    "RUN_VARIABLE",
    "ScriptSession",
    "can_read_output",
    "caller_module_name",
    "deferred_value",
    "require_output",
    "resolve_run_mode",
]

#: ``DREAMER_RUN=1`` runs every ``Pipeline`` block; ``DREAMER_RUN=0`` only declares.
RUN_VARIABLE = "DREAMER_RUN"
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
_PACKAGE = str(Path(__file__).resolve().parent)
#: Dagster's own console log, silenced in a script: the library prints a line a step.
_QUIET_RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}

#: True while this thread (or a ``concurrent()`` thread it started) runs a script's Dagster run.
_RUNNING: ContextVar[bool] = ContextVar("dreamer_script_run", default=False)


_RUN_LOCK = threading.RLock()


class _Flight:
    """Steps one thread is materializing now; others needing them wait on ``done``."""

    def __init__(self, owner: int):
        self.owner = owner
        self.done = threading.Event()
        self.error: BaseException | None = None


def in_script_run() -> bool:
    """Whether code runs inside a step that a script's session is materializing."""
    return _RUNNING.get()


def step_error(error: BaseException) -> BaseException:
    """The step's own exception behind Dagster's wrappers (``DagsterExecutionStepExecutionError``,
    ``DagsterMaxRetriesExceededError``, a retry request, ``dg.Failure``): the first error of
    the chain raised by no Dagster module, with Dagster's error as its ``__cause__`` when it
    has none of its own. ``error`` itself when the chain holds no other."""
    for current in error_chain(error):
        if not _is_dagsters(current):
            wrapper = error if current is not error else current.__context__
            if current.__cause__ is None and wrapper is not None and _is_dagsters(wrapper):
                current.__cause__ = wrapper
            return current
    return error


def _is_dagsters(error: BaseException) -> bool:
    return type(error).__module__.startswith("dagster")


def resolve_run_mode(run: bool | None, module_name: str | None) -> bool:
    """True (script mode) or False (definitions mode): ``run`` when given, else
    ``DREAMER_RUN``, else whether the block's module is ``__main__``."""
    if run is not None:
        if not isinstance(run, bool):
            raise TypeError(f"Pipeline, argument 'run': must be True, False or None, got {run!r}.")
        return run
    value = os.environ.get(RUN_VARIABLE, "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    if value:
        raise ValueError(
            f"{RUN_VARIABLE}={os.environ[RUN_VARIABLE]!r}: use 1 (run the steps) or 0 (only declare them)."
        )
    return module_name == "__main__"


def caller_module_name() -> str | None:
    """The ``__name__`` of the first module outside this package on the call stack."""
    frame = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE):
        frame = frame.f_back
    return None if frame is None else frame.f_globals.get("__name__")


def can_read_output(step: Step) -> bool:
    """False only inside a block that Dagster is loading as definitions."""
    pipeline = step.pipeline
    return not (pipeline is not None and pipeline.is_active and not pipeline.script_mode)


def require_output(step: Step, what: str) -> None:
    """Make sure the step's output can be read now, or raise saying why not.

    Inside its block in definitions mode: :class:`OutputNotAvailableError`. Inside its
    block in a running script: the step (and what it needs) is materialized through
    Dagster. Otherwise nothing happens here: the caller reads the finished output
    folder, which says itself when the step is not materialized.
    """
    pipeline = step.pipeline
    if pipeline is None and getattr(step, "runs_in_memory", False):
        from .script_steps import run_in_memory

        run_in_memory([step])  # declared outside any block in a script: DataDreamer's in-memory run
        return
    if pipeline is None or not pipeline.is_active:
        return
    if not pipeline.script_mode:
        raise OutputNotAvailableError(not_available_message(step, what))
    pipeline.session.ensure([step])


def not_available_message(step: Step, what: str) -> str:
    declared = getattr(step, "declared_at", None)
    script = f"python {Path(declared[0]).name}" if declared else _script_hint()
    return (
        f"Step {step.name!r} ({type(step).__name__}): {what} needs the step's data, but this file is "
        "being loaded as Dagster definitions, where nothing runs. Fix: pass step.output['column'] or "
        "step.output['column'][i] (a deferred value, resolved when the pipeline runs) to the next "
        "step instead of its value; export with export_to_json / export_to_csv / "
        "export_to_hf_dataset / publish_to_hf_hub (each becomes an export asset); or run the "
        f"file as a script ({script}), or pass Pipeline(..., run=True), to work with the data here."
    )


def _script_hint() -> str:
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    return f"python {Path(path).name}" if path else "python your_script.py"


def _stopped_message(code: int) -> str:
    name = signal.Signals(code - 128).name
    return (
        f"Stopped by {name}: the run ended, not retried; every answer received is in the model cache. "
        f"Run {_script_hint()} again to go on: only the calls not yet answered are made."
    )


def deferred_value(deferred: Deferred, what: str) -> Any:
    """A deferred value computed now, from the step's finished output (see
    :func:`require_output` for when that is possible)."""
    step = deferred.step
    if deferred.source[0] == "column":
        base = step.read_dataset(what).select_columns([deferred.source[1]])[:][deferred.source[1]]
    else:
        require_output(step, what)
        base = str(step.finished_model_dir())
    return deferred.evaluate(base)


class ScriptSession:
    """A ``Pipeline`` block running as a script: a Dagster instance, the steps
    materialized so far, and the terminal log.

    :meth:`ensure` materializes steps (and every step upstream of them) not yet
    materialized in this session, in one run of the pipeline's job; :meth:`close`
    materializes the rest when the block ends without an error, except the steps
    whose failure was raised to the script (which caught it, as a DataDreamer
    script catches a step's error) and the steps that need them.
    """

    def __init__(self, pipeline: Pipeline):
        self.pipeline = pipeline
        #: asset key -> the step materialized under it in this session
        self.materialized: dict[str, Step] = {}
        self.runs: list[str] = []
        self.failed: set[str] = set()
        self._instance: dg.DagsterInstance | None = None
        self._stack = ExitStack()
        self._lock = threading.RLock()
        self._flights: dict[str, _Flight] = {}
        #: ``background=True`` steps running in their threads (see script_steps.py)
        self.background: dict[str, threading.Thread] = {}

    def open(self) -> None:
        self._stack.enter_context(terminal(self.pipeline.log_date))
        stop_signals.watch()
        where = (
            "in-memory (a temporary folder, removed when the process ends)"
            if self.pipeline.in_memory
            else f"to folder: {self.pipeline.output_folder}"
        )
        report_session(self.pipeline, f"Initialized. Dreaming {where}")

    @property
    def instance(self) -> dg.DagsterInstance:
        """The Dagster instance of ``DAGSTER_HOME``, else one in ``<output>/.dagster``."""
        with self._lock:
            if self._instance is None:
                from .script_instance import script_instance  # made under a lock (concurrent scripts)

                self._instance = script_instance(self.pipeline.output_folder, self.pipeline.storage_options)
            return self._instance

    def ensure(self, steps: list[Step]) -> None:
        """Materialize ``steps`` and what they need, unless this session already did.

        Thread-safe: a step another thread is materializing now (a ``background=True``
        step, a ``concurrent()`` function) is waited for, never run twice; its failure is
        raised here too. A step's failure is raised as the step's own exception (the
        user's, the provider's, :class:`~dreamer_dagster.errors.StepOutputError`...), with
        Dagster's error as its ``__cause__``.
        """
        from .definitions import all_steps

        while True:
            with self._lock:
                needed = [step for step in all_steps(steps) if not self._done(step)]
                if not needed:
                    return
                mine = threading.get_ident()
                others = {
                    id(flight): flight
                    for step in needed
                    if (flight := self._flights.get(step.key)) is not None and flight.owner != mine
                }
                if not others:
                    needed = [step for step in needed if step.key not in self._flights]
                    if not needed:
                        return  # this thread materializes them now (a read from inside a run)
                    flight = _Flight(mine)
                    for step in needed:
                        self._flights[step.key] = flight
                    break
            for other in others.values():
                other.done.wait()
                if other.error is not None:
                    raise other.error
        try:
            self._materialize(needed)
        except BaseException as error:
            flight.error = error
            raise
        finally:
            with self._lock:
                for step in needed:
                    self._flights.pop(step.key, None)
            flight.done.set()

    def _done(self, step: Step) -> bool:
        """Whether this session materialized this step (this very step, in memory)."""
        done = self.materialized.get(step.key)
        return done is not None and (done is step or not self.pipeline.in_memory)

    def _materialize(self, needed: list[Step]) -> None:
        from . import metadata as keys
        from .definitions import pipeline_job_name

        if self.pipeline.in_memory:  # DataDreamer never resumes a step in memory
            for step in needed:
                step.force = True
        definitions = self.pipeline.definitions_for_run(needed)
        _refuse_partitioned(needed, definitions)
        by_folder = {}
        for asset in definitions.assets or []:
            for spec in asset.specs:
                by_folder[spec.metadata.get(keys.FOLDER)] = spec.key
        selection = [by_folder[step.folder] for step in needed]
        # The pipeline's own job, as `dagster job execute` runs it: the web UI lists the
        # script's runs under that job, with the steps each run materialized.
        job = definitions.resolve_job_def(
            pipeline_job_name(self.pipeline.io_manager_key, self.pipeline.job_name)
        )
        started = time.monotonic()
        code = None
        token = _RUNNING.set(True)
        try:
            # One Dagster run at a time in a process: Dagster's in-process runs set up logging
            # (dictConfig) and deadlock when two run at once in threads.
            with (
                _RUN_LOCK,
                stop_signals.running(),
                stop_signals.keep_sigterm(),  # a `cmd &` script still stops on SIGTERM
            ):  # SIGTERM / SIGINT stop the run; a second one exits at once
                try:
                    result = job.execute_in_process(
                        instance=self.instance,
                        asset_selection=selection,
                        run_config=_QUIET_RUN_CONFIG,
                        tags={"dreamer/script": _script_hint().removeprefix("python ")},
                    )
                except BaseException as error:
                    code = stop_signals.exit_code(error)
                    if code is None:
                        with self._lock:
                            self.failed.update(step.key for step in needed)
                        raise step_error(error)  # noqa: B904 (Dagster's error is its __cause__)
        finally:
            _RUNNING.reset(token)
        if code is not None:
            report_session(self.pipeline, _stopped_message(code), logging.WARNING)
            raise SystemExit(code)
        with self._lock:
            self.runs.append(result.run_id)
            for step in needed:
                self.materialized[step.key] = step
                self.failed.discard(step.key)
        report_session(
            self.pipeline,
            f"Materialized {len(needed)} step(s) in Dagster run {result.run_id[:8]} "
            f"({time.monotonic() - started:.1f}s).",
            logging.DEBUG,
        )

    def join_background(self, raise_errors: bool = True) -> None:
        """Wait for every ``background=True`` step still running (at the block's end)."""
        from .script_steps import join

        for key, thread in list(self.background.items()):
            join(self, key, thread, raise_errors)

    def left_to_run(self) -> list[Step]:
        """The block's steps not materialized yet (those a script catches the failure of
        excluded): those declared not to run when declared are left to code that asks."""
        return [
            step
            for step in self.pipeline.steps
            if getattr(step, "RUNS_WHEN_DECLARED", True) and not self._done(step)
        ]

    def _not_blocked(self, steps: list[Step]) -> list[Step]:
        """``steps`` less those that failed in this block, or need one that did."""
        if not self.failed:
            return steps
        from .definitions import all_steps

        kept = [step for step in steps if not {s.key for s in all_steps([step])} & self.failed]
        if len(kept) == len(steps):
            return steps
        report_session(
            self.pipeline,
            f"{len(steps) - len(kept)} step(s) not run at the end of the block: they failed earlier "
            "in it (the error was raised to the script), or need a step that did.",
            logging.WARNING,
        )
        return kept

    def close(self, failed: bool) -> None:
        """The block ended: materialize what is left (unless it failed), then clean up."""
        try:
            self.join_background(raise_errors=not failed)
            if not failed:
                self.ensure(self._not_blocked(self.left_to_run()))
                where = (
                    "" if self.pipeline.in_memory else f" Results in folder: {self.pipeline.output_folder}"
                )
                report_session(self.pipeline, f"Done.{where}")
        finally:
            if self._instance is not None:
                self._instance.dispose()
                self._instance = None
            self._stack.close()


def _refuse_partitioned(steps: list[Step], definitions: dg.Definitions) -> None:
    """A script materializes whole steps: a partitioned one (steps/partitions.py) is refused."""
    from . import metadata as keys

    for asset in definitions.assets or []:
        for spec in asset.specs:
            folder = spec.metadata.get(keys.FOLDER)
            step = next((step for step in steps if step.folder == folder and not step.shards), None)
            if step is not None and asset.partitions_def is not None:
                script = _script_hint().removeprefix("python ")
                raise RuntimeError(
                    f"Step {step.name!r} is partitioned, and a script run materializes whole steps. Fix: "
                    f"materialize its partitions in Dagster (`dagster asset materialize -f {script} "
                    f"--select {spec.key.to_user_string()} --partition <key>`, or a backfill), or declare "
                    "the pipeline with Pipeline(..., run=False)."
                )
