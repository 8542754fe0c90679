"""``dreamer_definitions``: steps -> a ``dg.Definitions`` with everything they need."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dagster as dg

from .io_manager import IO_MANAGER_KEY, DreamerIOManager

if TYPE_CHECKING:
    from .steps.step import Step

__all__ = ["PIPELINE_JOB_NAME", "all_steps", "dreamer_definitions"]

PIPELINE_JOB_NAME = "dreamer_pipeline"


def all_steps(steps: Iterable[Step]) -> list[Step]:
    """``steps`` and every step upstream of them, upstream first.

    Two different steps with one asset key are an error; the same declaration
    repeated (equal fingerprints) counts once.
    """
    ordered: list[Step] = []
    by_key: dict[str, Step] = {}
    visiting: set[int] = set()

    def visit(step: Step) -> None:
        existing = by_key.get(step.key)
        if existing is not None:
            if existing is not step and existing.fingerprint != step.fingerprint:
                raise step.error(
                    f"another step, {existing.name!r}, has the same asset key {step.key!r}. "
                    "Fix: give one of them a different name.",
                    "name",
                )
            return
        if id(step) in visiting:
            raise step.error("the step depends on itself.")
        visiting.add(id(step))
        for parent in step.upstream():
            visit(parent)
        visiting.discard(id(step))
        by_key[step.key] = step
        ordered.append(step)

    for step in steps:
        visit(step)
    return ordered


def dreamer_definitions(
    steps: Iterable[Step], output_folder: str = "./output", **kwargs: Any
) -> dg.Definitions:
    """A ``dg.Definitions`` holding ``steps``, every step upstream of them, the IO manager
    (``DreamerIOManager(output_folder=...)``) and a ``dreamer_pipeline`` job that
    materializes them all. Other kwargs (``schedules``, ``sensors``, ``executor``,
    ``resources``, more ``assets`` or ``jobs``) pass through to ``dg.Definitions``.
    """
    from .steps.step import Step

    steps = list(steps)
    for step in steps:
        if not isinstance(step, Step):
            raise TypeError(f"dreamer_definitions: {step!r} is not a step.")
    folder = Path(str(output_folder)).expanduser()
    if folder.exists() and not folder.is_dir():
        raise ValueError(
            f"dreamer_definitions: output_folder {str(folder.resolve())!r} is a file, not a folder. Fix: "
            "pass a folder path (it is made when a step first runs), or move the file away."
        )
    collected = all_steps(steps)
    assets = [step.asset for step in collected] + list(kwargs.pop("assets", None) or [])
    resources = {IO_MANAGER_KEY: DreamerIOManager(output_folder=str(output_folder))}
    resources.update(kwargs.pop("resources", None) or {})
    job = dg.define_asset_job(
        PIPELINE_JOB_NAME,
        selection=dg.AssetSelection.assets(*[step.asset_key for step in collected]),
        description="Materialize every step of the pipeline.",
    )
    jobs = [job] + list(kwargs.pop("jobs", None) or [])
    return dg.Definitions(assets=assets, resources=resources, jobs=jobs, **kwargs)
