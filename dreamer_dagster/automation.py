"""Running a pipeline on a clock: a schedule that materializes only what is stale.

``stale_schedule("0 3 * * *")`` asks, at each tick, for a run of its selection
with ``RunRequest(stale_assets_only=True)``: Dagster's scheduler narrows the
run to the steps that are unsynced (a step whose fingerprint changed, whose
upstream data changed) or never materialized, and launches nothing at all
when every step is in sync. ``pipeline.definitions(schedule="0 3 * * *")``
adds one. Like every Dagster schedule it starts stopped; turn it on in the
web UI or with ``dagster schedule start``, with the daemon running.

Automation conditions (``automation_condition=`` on a step or on
``Pipeline``) are Dagster's own ``dg.AutomationCondition``s; see docs/how-to/schedules.md
for the ones that fit a generation pipeline.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import dagster as dg

from .step_like import StepLike

__all__ = ["DEFAULT_SCHEDULE_NAME", "stale_schedule"]

DEFAULT_SCHEDULE_NAME = "dreamer_stale_schedule"


def stale_schedule(
    cron_schedule: str,
    selection: str | dg.AssetSelection | Sequence[StepLike | dg.AssetKey | str] = "*",
    name: str = DEFAULT_SCHEDULE_NAME,
    **kwargs: Any,
) -> dg.ScheduleDefinition:
    """A schedule whose ticks materialize only the stale or never-materialized steps of
    ``selection`` (Dagster selection syntax such as ``"*"`` or ``"key:abstracts+"``,
    an ``AssetSelection``, or a list of steps / asset keys). ``kwargs`` pass to
    ``dg.ScheduleDefinition`` (``execution_timezone``, ``default_status``, ``tags``...)."""
    if not isinstance(cron_schedule, str) or not cron_schedule.strip():
        raise ValueError(
            f"stale_schedule: cron_schedule must be a cron string such as '0 3 * * *', got {cron_schedule!r}."
        )
    tags = dict(kwargs.pop("tags", None) or {})

    def request_stale_run(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
        return dg.RunRequest(stale_assets_only=True, tags=tags)

    return dg.ScheduleDefinition(
        name=name,
        cron_schedule=cron_schedule,
        target=_selection(selection),
        execution_fn=request_stale_run,
        description=kwargs.pop(
            "description",
            "Materializes the stale and never-materialized steps; nothing when all are in sync.",
        ),
        **kwargs,
    )


def _selection(selection: Any) -> dg.AssetSelection:
    if isinstance(selection, dg.AssetSelection):
        return selection
    if isinstance(selection, str):
        return dg.AssetSelection.from_string(selection)
    keys = []
    for item in selection:
        if isinstance(item, dg.AssetKey):
            keys.append(item)
        elif isinstance(item, str):
            keys.append(dg.AssetKey.from_user_string(item))
        elif hasattr(item, "asset_key"):
            keys.append(item.asset_key)
        else:
            raise TypeError(f"stale_schedule: {item!r} is not a step, an asset key or a selection string.")
    return dg.AssetSelection.assets(*keys)
