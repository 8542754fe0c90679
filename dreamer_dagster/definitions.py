"""``dreamer_definitions``: steps -> a ``dg.Definitions`` with everything they need."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import dagster as dg

from .automation import DEFAULT_SCHEDULE_NAME, stale_schedule
from .filesystem import is_remote, resolve_location
from .io_manager import IO_MANAGER_KEY, DreamerIOManager
from .partition_jobs import partition_jobs
from .translator import DreamerTranslator, SpecFunctionTranslator

if TYPE_CHECKING:
    from .steps.step import Step

__all__ = [
    "PIPELINE_JOB_NAME",
    "all_steps",
    "check_folders",
    "dreamer_definitions",
    "make_translator",
    "output_folder_config",
    "pipeline_job_name",
]

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
    check_folders(ordered)
    return ordered


def check_folders(steps: Iterable[Step]) -> None:
    """Each step's folder is its own: two steps whose names give one folder (``"a.b"`` and
    ``"ab"`` both give ``ab``), or a folder inside another step's, are refused."""
    by_folder: dict[str, Step] = {}
    for step in steps:
        existing = by_folder.setdefault(step.folder, step)
        if existing is not step and existing.fingerprint != step.fingerprint:
            raise step.error(
                f"another step, {existing.name!r}, has the same folder {step.folder!r} in the output "
                "folder (DataDreamer's folder names keep only letters, digits, '-' and '_'). Fix: give "
                "one of them a different name.",
                "name",
            )
    for folder, step in by_folder.items():
        parts = folder.split("/")
        for depth in range(1, len(parts)):
            outer = by_folder.get("/".join(parts[:depth]))
            if outer is not None:
                raise step.error(
                    f"its folder {folder!r} lies inside the folder of step {outer.name!r} (' / ' in a "
                    "name nests its folder, as for a step run inside a SuperStep). Fix: give the step "
                    "a name without ' / '.",
                    "name",
                )


def output_folder_config(
    output_folder: Any, storage_options: dict[str, Any] | None = None
) -> tuple[str, dict[str, Any]]:
    """``(output_folder as a string, storage options)`` for the IO manager's config: a
    ``upath.UPath`` gives its URL and its storage options (``storage_options`` win)."""
    options = (
        dict(getattr(output_folder, "storage_options", None) or {})
        if not isinstance(output_folder, str)
        else {}
    )
    options.update(storage_options or {})
    if isinstance(output_folder, os.PathLike) and not is_remote(output_folder):
        return os.fspath(output_folder), options
    return str(output_folder), options


def make_translator(
    translator: DreamerTranslator | None = None,
    asset_spec: Callable[[Step, dg.AssetSpec], dg.AssetSpec] | None = None,
) -> DreamerTranslator:
    """``translator`` (default: ``DreamerTranslator()``), with ``asset_spec(step, spec)`` applied
    to its specs when given."""
    if translator is not None and not isinstance(translator, DreamerTranslator):
        raise TypeError(f"translator must be a DreamerTranslator (or a subclass), got {translator!r}.")
    base = translator or DreamerTranslator()
    if asset_spec is None:
        return base
    if not callable(asset_spec):
        raise TypeError(f"asset_spec must be a function (step, spec) -> spec, got {asset_spec!r}.")
    return SpecFunctionTranslator(base=base, function=asset_spec)


def dreamer_definitions(
    steps: Iterable[Step],
    output_folder: str | os.PathLike | Any = "./output",
    *,
    storage_options: dict[str, Any] | None = None,
    translator: DreamerTranslator | None = None,
    asset_spec: Callable[[Step, dg.AssetSpec], dg.AssetSpec] | None = None,
    io_manager_key: str = IO_MANAGER_KEY,
    job_name: str | None = None,
    schedule: str | dg.ScheduleDefinition | None = None,
    pipes_client: Any = None,
    **kwargs: Any,
) -> dg.Definitions:
    """A ``dg.Definitions`` holding ``steps``, every step upstream of them, the IO manager
    (``DreamerIOManager(output_folder=...)`` under ``io_manager_key``) and a job that
    materializes them all (``dreamer_pipeline``, or ``dreamer_pipeline_<io_manager_key>``
    for another IO manager key, so two pipelines with two output folders fit one code
    location: ``dg.Definitions.merge(a.definitions(), b.definitions())``).

    ``output_folder`` is a local path, any fsspec URL (``s3://bucket/prefix``,
    ``file:///shared/disk``) or a ``upath.UPath``; ``storage_options`` go to its
    fsspec filesystem (never into a fingerprint).

    ``translator`` / ``asset_spec`` set each step's asset spec and op settings (see
    :mod:`~dreamer_dagster.translator`); ``schedule`` (a cron string) adds a
    :func:`~dreamer_dagster.stale_schedule` over the steps; ``pipes_client`` (a Dagster Pipes
    client) runs the steps that set none of their own out of this process (see
    :mod:`~dreamer_dagster.pipes`). Other kwargs
    (``schedules``, ``sensors``, ``executor``, ``resources`` such as an
    ``OpenAIResource``, more ``assets`` or ``jobs``) pass through to ``dg.Definitions``.
    """
    from .steps.asset_factory import build_step_asset
    from .steps.step import Step
    from .stop_signals import watch_dagster_command

    watch_dagster_command()  # in `dagster asset materialize` / a run worker: a second signal exits
    steps = list(steps)
    for step in steps:
        if not isinstance(step, Step):
            raise TypeError(f"dreamer_definitions: {step!r} is not a step.")
    output_folder, storage_options = output_folder_config(output_folder, storage_options)
    if not is_remote(output_folder):
        folder = resolve_location(output_folder)
        if folder.exists() and not folder.is_dir():
            raise ValueError(
                f"dreamer_definitions: output_folder {str(folder)!r} is a file, not a folder. Fix: "
                "pass a folder path (it is made when a step first runs), or move the file away."
            )
    translator = make_translator(translator, asset_spec)
    if pipes_client is not None:
        from .pipes.launch import with_default_pipes_client

        translator = with_default_pipes_client(translator, pipes_client)
    io_manager = DreamerIOManager(output_folder=output_folder, storage_options=storage_options)
    resources: dict[str, Any] = {io_manager_key: io_manager}
    resources.update(kwargs.pop("resources", None) or {})
    client_keys = sorted(key for key, resource in resources.items() if _is_client_resource(resource))

    collected = all_steps(steps)
    upstream_keys: dict[str, dg.AssetKey] = {}
    step_assets = []
    for step in collected:
        asset = build_step_asset(step, translator, io_manager_key, upstream_keys, client_keys, output_folder)
        upstream_keys[step.key] = asset.key
        step_assets.append(asset)
        if step.shards:
            from .steps.shards import build_shards_asset

            step_assets.append(
                build_shards_asset(
                    step, translator, io_manager_key, upstream_keys, client_keys, output_folder
                )
            )
    assets = step_assets + list(kwargs.pop("assets", None) or [])
    # A partitioned step runs one partition a run (a backfill): outside the pipeline's job.
    partitioned = {asset.key for asset in step_assets if asset.partitions_def is not None}
    job_keys = [key for key in upstream_keys.values() if key not in partitioned]

    default_names = io_manager_key == IO_MANAGER_KEY
    job = dg.define_asset_job(
        pipeline_job_name(io_manager_key, job_name),
        selection=dg.AssetSelection.assets(*job_keys),
        description="Materialize every unpartitioned step of the pipeline (partitioned steps: in the jobs "
        "named after their partitions definitions, one partition a run, by backfills).",
    )
    # A backfill over a range of partitions: one job per partitions definition (partition_jobs.py).
    step_keys = set(upstream_keys.values())
    by_partitions = partition_jobs(
        job.name, [asset for asset in step_assets if asset.key in step_keys and asset.key in partitioned]
    )
    jobs = [job, *by_partitions] + list(kwargs.pop("jobs", None) or [])
    schedules = list(kwargs.pop("schedules", None) or [])
    if schedule is not None:
        if isinstance(schedule, str):
            name = DEFAULT_SCHEDULE_NAME if default_names else f"{DEFAULT_SCHEDULE_NAME}_{io_manager_key}"
            schedule = stale_schedule(schedule, selection=dg.AssetSelection.assets(*job_keys), name=name)
        if not isinstance(schedule, dg.ScheduleDefinition):
            raise TypeError(
                f"schedule must be a cron string (such as '0 3 * * *') or a dg.ScheduleDefinition, got {schedule!r}."
            )
        schedules.append(schedule)
    return dg.Definitions(
        assets=assets, resources=resources, jobs=jobs, schedules=schedules or None, **kwargs
    )


def pipeline_job_name(io_manager_key: str = IO_MANAGER_KEY, job_name: str | None = None) -> str:
    """The name of the job that materializes a pipeline's steps: ``job_name`` when given,
    else ``dreamer_pipeline`` (``dreamer_pipeline_<io_manager_key>`` for another key)."""
    if job_name:
        return job_name
    return PIPELINE_JOB_NAME if io_manager_key == IO_MANAGER_KEY else f"{PIPELINE_JOB_NAME}_{io_manager_key}"


def _is_client_resource(resource: Any) -> bool:
    """A resource that gives models their run-time client settings (``OpenAIResource``,
    ``AnthropicResource``..., ``dagster_openai.OpenAIResource``; see resources.py)."""
    if isinstance(resource, DreamerIOManager):
        return False  # without importing the resource classes (see __init__.py)
    from .resources import is_client_resource

    return is_client_resource(resource)
