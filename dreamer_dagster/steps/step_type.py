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
    DataDreamer's, and records where the step was declared (for the web UI)."""

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        settings = {name: kwargs.pop(name) for name in SETTING_NAMES if name in kwargs}
        sharding = {name: kwargs.pop(name) for name in ("shards", "backfill_policy") if name in kwargs}
        partitions = {
            name: kwargs.pop(name) for name in ("partitions_def", "partition_mapping") if name in kwargs
        }
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
        return step

    @property
    def help(cls) -> str:
        """What the step class takes and gives (DataDreamer's ``Step.help``)."""
        return help_text(cls)


def caller_location() -> tuple[str, int] | None:
    """The file and line, outside this package, that declared a step."""
    frame = sys._getframe(2)
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE):
        frame = frame.f_back
    if frame is None or frame.f_code.co_filename.startswith("<"):
        return None
    return str(Path(frame.f_code.co_filename).resolve()), frame.f_lineno
