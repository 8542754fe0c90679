"""How a step is declared before its own ``__init__`` runs: the metaclass that takes the
Dagster settings (``pool=``, ``shards=``, ``partitions_def=``...) off any step's constructor
call, where the step was declared, and DataDreamer's rule for a name already used."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from .registration import help_text
from .settings import SETTING_NAMES

__all__ = ["StepType", "caller_location", "unused_name"]

_PACKAGE = str(Path(__file__).resolve().parents[1])
_PACKAGE_NAME = __name__.split(".")[0]


def unused_name(name: Any) -> Any:
    """DataDreamer's rule for a name the open block already has: ``"A"``, then ``"A #2"``,
    ``"A #3"``... (compared by asset key, so ``"Word Count"`` and ``"word_count"`` are one)."""
    if not isinstance(name, str):
        return name  # declaring the step says why it is not a name
    from ..pipeline import Pipeline

    return Pipeline.derived_name(name)


class StepType(type):
    """Takes the Dagster settings (``pool=``, ``checks=``...) off any step's or trainer's
    constructor call, so every one accepts them while its own signature stays
    DataDreamer's, records where the step was declared (for the web UI), and, in a
    running script, runs the step once it is declared (see script_steps.py).

    As DataDreamer's ``StepMeta``: a step class written outside this package may not
    override ``__init__`` (``setup()`` is the place), except a data source's."""

    def __new__(mcs, name: str, bases: tuple[type, ...], attrs: dict[str, Any]) -> StepType:
        if "__init__" in attrs and not _may_override_init(attrs.get("__module__", ""), bases):
            raise AttributeError(
                f'Step class {name!r}: overriding of "__init__" not allowed, override setup() instead '
                "(as in DataDreamer). Fix: register inputs, args and outputs in setup(); a data "
                "source (a DataSource subclass) may take its own constructor arguments."
            )
        return super().__new__(mcs, name, bases, attrs)

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        settings = {name: kwargs.pop(name) for name in SETTING_NAMES if name in kwargs}
        sharding = {name: kwargs.pop(name) for name in ("shards", "backfill_policy") if name in kwargs}
        partitions = {
            name: kwargs.pop(name) for name in ("partitions_def", "partition_mapping") if name in kwargs
        }
        _refuse_unimplemented(cls)
        declared_at = caller_location()
        step = super().__call__(*args, **kwargs)
        step.declared_at = declared_at
        if settings:
            step.configure(**settings)
        if sharding:
            from .shards import set_shards

            set_shards(step, sharding.get("shards"), sharding.get("backfill_policy"))
        if partitions:  # see steps/partitions.py
            from .partitions import set_partitions

            set_partitions(step, **partitions)
        step.__dict__["_constructed"] = True
        if step.__dict__.get("_declared"):  # a trainer is declared later, by train()
            from ..script_steps import declared

            declared(step)  # in a running script, the step runs now (script_steps.py)
        return step

    @property
    def help(cls) -> str:
        """What the step class takes and gives (DataDreamer's ``Step.help``)."""
        return help_text(cls)


def _may_override_init(module: str, bases: tuple[type, ...]) -> bool:
    """This package's classes, trainers and data sources may take their own constructor."""
    if module == _PACKAGE_NAME or module.startswith(_PACKAGE_NAME + "."):
        return True
    return any(
        getattr(base, "KIND", None) == "trainer"
        or any(
            klass.__name__ == "DataSource" and klass.__module__.startswith(_PACKAGE_NAME + ".")
            for klass in base.__mro__
        )
        for base in bases
    )


def _refuse_unimplemented(cls: type) -> None:
    """``Step(...)`` itself, or a class with neither ``setup()`` nor ``run()``: DataDreamer's
    ``NotImplementedError``."""
    from .step import Step

    if cls.uses_registration() or cls.run is not Step.run or cls.execute is not Step.execute:
        return
    raise NotImplementedError(
        f"You must implement the .setup() method in {cls.__name__}: a step class registers its "
        "inputs, args and outputs in setup() and computes its rows in run() (or declares INPUTS / "
        "ARGS / OUTPUTS and run(context))."
    )


def caller_location() -> tuple[str, int] | None:
    """The file and line, outside this package, that declared a step."""
    frame = sys._getframe(2)
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE):
        frame = frame.f_back
    if frame is None or frame.f_code.co_filename.startswith("<"):
        return None
    return str(Path(frame.f_code.co_filename).resolve()), frame.f_lineno
