"""Shared by the benchmarks (not one itself): a step's duration from Dagster's event log."""

from __future__ import annotations

import dagster as dg


def step_seconds(instance: dg.DagsterInstance, run_id: str, step_key: str) -> float:
    """Seconds from the step's ``STEP_START`` to its ``STEP_SUCCESS`` event in ``run_id``."""
    times = {}
    for record in instance.all_logs(run_id):
        event = record.dagster_event
        if event is not None and event.step_key == step_key:
            times.setdefault(event.event_type_value, record.timestamp)
    return times["STEP_SUCCESS"] - times["STEP_START"]
