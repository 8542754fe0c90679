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

In script mode a step materializes (with every step upstream of it not yet
materialized in this session) the first time code needs its data
(``len(step.output)``, ``step.output["col"][i]`` formatted into text, an export...);
the rest materialize when the block ends, in one Dagster run. A progress line a step
goes to the terminal.

:func:`require_output` is the rule every data access goes through: inside a block in
definitions mode it raises :class:`~dreamer_dagster.errors.OutputNotAvailableError`
naming the step and what works instead; inside a running script it materializes the
step; outside any block it lets the caller read the finished output folder.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import stop_signals
from .errors import OutputNotAvailableError
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
        self.materialized: set[str] = set()
        self.runs: list[str] = []
        self.failed: set[str] = set()
        self._instance: dg.DagsterInstance | None = None
        self._stack = ExitStack()

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
        if self._instance is None:
            from .script_instance import script_instance  # made under a lock (concurrent scripts)

            self._instance = script_instance(self.pipeline.output_folder, self.pipeline.storage_options)
        return self._instance

    def ensure(self, steps: list[Step]) -> None:
        """Materialize ``steps`` and what they need, unless this session already did."""
        from .definitions import all_steps

        needed = [step for step in all_steps(steps) if step.key not in self.materialized]
        if not needed:
            return
        from . import metadata as keys
        from .definitions import pipeline_job_name

        definitions = self.pipeline.definitions_for_run(needed)
        _refuse_partitioned(needed, definitions)
        by_folder = {}
        for asset in definitions.assets or []:
            for spec in asset.specs:
                by_folder[spec.metadata.get(keys.FOLDER)] = spec.key
        selection = [by_folder[step.key] for step in needed]
        # The pipeline's own job, as `dagster job execute` runs it: the web UI lists the
        # script's runs under that job, with the steps each run materialized.
        job = definitions.resolve_job_def(
            pipeline_job_name(self.pipeline.io_manager_key, self.pipeline.job_name)
        )
        started = time.monotonic()
        code = None
        with stop_signals.running():  # SIGTERM / SIGINT stop the run; a second one exits at once
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
                    self.failed.update(step.key for step in needed)
                    raise
        if code is not None:
            report_session(self.pipeline, _stopped_message(code), logging.WARNING)
            raise SystemExit(code)
        self.runs.append(result.run_id)
        self.materialized.update(step.key for step in needed)
        report_session(
            self.pipeline,
            f"Materialized {len(needed)} step(s) in Dagster run {result.run_id[:8]} "
            f"({time.monotonic() - started:.1f}s).",
            logging.DEBUG,
        )

    def _not_blocked(self, steps: list[Step]) -> list[Step]:
        """``steps`` less those that failed in this block, or need one that did."""
        if not self.failed:
            return steps
        from .definitions import all_steps

        kept = [step for step in steps if not {s.key for s in all_steps([step])} & self.failed]
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
            if not failed:
                self.ensure(self._not_blocked(list(self.pipeline.steps)))
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
            step = next((step for step in steps if step.key == folder and not step.shards), None)
            if step is not None and asset.partitions_def is not None:
                script = _script_hint().removeprefix("python ")
                raise RuntimeError(
                    f"Step {step.name!r} is partitioned, and a script run materializes whole steps. Fix: "
                    f"materialize its partitions in Dagster (`dagster asset materialize -f {script} "
                    f"--select {spec.key.to_user_string()} --partition <key>`, or a backfill), or declare "
                    "the pipeline with Pipeline(..., run=False)."
                )
