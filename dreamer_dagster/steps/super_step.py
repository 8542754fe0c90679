"""``SuperStep``: DataDreamer's step whose ``run()`` runs other steps.

A SuperStep is one asset. When it runs, its ``run()`` may declare steps, exactly as
DataDreamer allows: each is named ``"<SuperStep> / <step>"``, takes the SuperStep's
inputs (``self.inputs["a"]``) or another inner step's columns as its inputs, and
runs at once, in the SuperStep's run, into its own folder of the output folder
(``<superstep>/<step>/``, DataDreamer's nesting, with reuse, backups and the model cache as for any step);
its output is then readable (``inner.output["col"]``, iteration, ``len``). The
inner steps are no assets of their own. ``run()`` returns the SuperStep's rows in
any form a step's ``run()`` may, or an inner step's output (``return
inner.output``); the inner steps' data cards join the SuperStep's.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from ..logs import report
from ..names import SUPER_STEP_PREFIXES
from ..output_folder import Preparation
from .step import Step

if TYPE_CHECKING:
    from .run_context import StepRunContext

__all__ = ["InnerRun", "SuperStep", "inner_run"]


class SuperStep(Step):
    """A step made of steps: ``setup()`` registers as for any step; ``run()`` runs inner
    steps (each into its own folder) and returns the rows to write as ``_dataset``."""

    KIND = "super_step"

    def execute(self, context: StepRunContext) -> dict:
        from .registration import execute_registered

        token = _INNER_RUNS.set((*_INNER_RUNS.get(), InnerRun(self, context)))
        SUPER_STEP_PREFIXES.append(self.name.split(" / ")[-1])
        try:
            return execute_registered(self, context)
        finally:
            SUPER_STEP_PREFIXES.pop()
            _INNER_RUNS.reset(token)

    @property
    def background(self) -> bool:
        """Always False: a SuperStep runs at once (as in DataDreamer), whatever ``background=``."""
        return False

    @background.setter
    def background(self, value: bool) -> None:
        pass


class InnerRun:
    """A running SuperStep: the steps declared in its ``run()`` run here, at once."""

    def __init__(self, parent: SuperStep, context: StepRunContext):
        self.parent = parent
        self.context = context
        self.steps: dict[str, Step] = {}

    @property
    def keys(self) -> dict[str, Step]:
        return self.steps

    def add(self, step: Step) -> None:
        """Run ``step`` (declared in the SuperStep's ``run()``) into its folder, or reuse it."""
        existing = self.steps.get(step.key)
        if existing is not None and existing is not step:
            raise step.error(
                f"another step, {existing.name!r}, has the same name in SuperStep {self.parent.name!r}. "
                "Fix: give one of them a different name.",
                "name",
            )
        self.steps[step.key] = step
        output_folder = self.context.output_folder
        step.pipeline_output_folder = str(output_folder.root)
        step.verbose = step.verbose if step.verbose is not None else self.parent.verbose
        step.log_level = step.log_level if step.log_level is not None else self.parent.log_level
        step_folder = output_folder.step(step.folder)
        lock = step_folder.lock()
        lock.acquire(f"SuperStep {self.parent.name!r}")
        try:
            preparation = step_folder.prepare(step.fingerprint, verify=not step.force)
            if preparation in (Preparation.FINISHED, Preparation.RESTORED) and not step.force:
                report(
                    step,
                    f"Reused the finished output of {step.name!r}: results loaded from the output folder.",
                    run_log=self.context.log,
                )
            else:
                report(step, f"Step {step.name!r} is running.", run_log=self.context.log)
                from .asset_factory import run_staged

                upstream = {parent.key: _finished(output_folder, parent) for parent in step.upstream()}
                record, staged = run_staged(
                    step, output_folder, step_folder, upstream, self.context.log, self.context.resources
                )
                step_folder.commit(staged, record)
                report(step, f"Step {step.name!r} finished and is saved to disk.", run_log=self.context.log)
        finally:
            lock.release()
        record = step_folder.step_json() or {}
        self.context.inner_cards.append(record.get("data_card") or {})


def _finished(output_folder: Any, step: Step) -> Any:
    """A finished step's output for a step that reads it: its Dataset, or its ``_model`` path."""
    folder = output_folder.step(step.folder)
    record = folder.step_json()
    if record is None or record.get("fingerprint") != step.fingerprint:
        raise FileNotFoundError(
            f"Step {step.name!r} has no finished output in {folder.path} for an inner step of a SuperStep "
            "to read. Fix: run it inside the SuperStep before the steps that read it."
        )
    # Either is checked against its step.json first (see integrity.py).
    return str(folder.local_model_path(record)) if record.get("model") else folder.load_dataset(record)


#: The running SuperSteps of this thread (a ``concurrent()`` thread inherits its caller's;
#: a background step's thread starts with none).
_INNER_RUNS: ContextVar[tuple[InnerRun, ...]] = ContextVar("dreamer_inner_runs", default=())


def inner_run() -> InnerRun | None:
    """The running SuperStep whose ``run()`` is declaring steps now, if any."""
    runs = _INNER_RUNS.get()
    return runs[-1] if runs else None
