"""``DreamerPipelineComponent``: a ``Pipeline`` (or a list of steps) declared in YAML for ``dg``.

::

    # src/my_project/defs/tweets/defs.yaml  (dg scaffold defs dreamer_dagster.DreamerPipelineComponent tweets)
    type: dreamer_dagster.DreamerPipelineComponent
    attributes:
      module: .pipeline                # a module beside this file (or a dotted module name)
      attribute: pipeline              # a Pipeline, a list of steps or one step
      output_folder: "{{ env('TWEETS_OUTPUT', 'output/tweets') }}"   # relative: to the project root
      storage_options: {key: "{{ env.AWS_ACCESS_KEY_ID }}"}          # kept as the variable's name
      schedule: "0 3 * * *"            # a stale-only schedule over the pipeline's steps
      translation: {group_name: tweets, key_prefix: tweets}

The component only resolves YAML into what ``Pipeline.definitions`` /
``dreamer_definitions`` already take. Each component gets its own IO manager key, job
and schedule names, derived from its folder in ``defs/`` (``tweets`` ->
``dreamer_io_manager_tweets``, ``dreamer_pipeline_tweets``,
``dreamer_stale_schedule_tweets``), so several pipelines load together in one project.
"""

import importlib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

import dagster as dg

from ..automation import DEFAULT_SCHEDULE_NAME, stale_schedule
from ..definitions import PIPELINE_JOB_NAME, dreamer_definitions
from ..filesystem import is_remote
from ..io_manager import IO_MANAGER_KEY
from ..names import safe_name
from .scaffolder import DreamerPipelineScaffolder
from .translation import ComponentTranslator, PipelineTranslation

if TYPE_CHECKING:
    from ..pipeline import Pipeline
    from ..steps.step import Step

__all__ = ["DreamerPipelineComponent", "component_name"]

#: ``{{ env.NAME }}`` / ``{{ env('NAME') }}``, a whole storage option's value.
_ENV_TEMPLATE = re.compile(r"^\{\{\s*env(?:\.(\w+)|\(\s*['\"](\w+)['\"]\s*\))\s*\}\}$")


def _resolve_storage_options(context: dg.ResolutionContext, value: Any) -> dict[str, Any] | None:
    """Storage options from YAML: a whole value ``{{ env.NAME }}`` becomes ``{"env": NAME}``
    (read from the environment when the output folder is opened, never stored); other
    templates render as usual."""
    if value is None:
        return None

    def walk(item: Any, at: dg.ResolutionContext) -> Any:
        if isinstance(item, str):
            match = _ENV_TEMPLATE.match(item.strip())
            if match:
                return {"env": match.group(1) or match.group(2)}
            return at.resolve_value(item)
        if isinstance(item, Mapping):
            if set(item) == {"env"}:
                return dict(item)
            return {key: walk(inner, at.at_path(key)) for key, inner in item.items()}
        if isinstance(item, (list, tuple)):
            return [walk(inner, at.at_path(index)) for index, inner in enumerate(item)]
        return item

    options = walk(value, context)
    if not isinstance(options, dict):
        raise ValueError(f"DreamerPipelineComponent, storage_options: must be a mapping, got {value!r}.")
    return options


def component_name(context: dg.ComponentLoadContext) -> str:
    """The component's folder under ``defs/`` as a name (``pipelines/tweets`` ->
    ``pipelines_tweets``): the suffix of its IO manager key, job and schedule."""
    path = context.path
    try:
        relative = path.absolute().relative_to(context.defs_module_path.absolute())
    except ValueError:
        relative = path
    parts = relative.with_suffix("").parts if relative.suffix == ".py" else relative.parts
    return safe_name("_".join(parts) or path.name or "pipeline")


@dg.scaffold_with(DreamerPipelineScaffolder)
@dataclass
class DreamerPipelineComponent(dg.Component, dg.Resolvable):
    """A dreamer_dagster ``Pipeline`` (or a list of steps) as Dagster assets, from YAML.

    ``module`` / ``attribute`` name the pipeline (a module starting with ``.`` is
    relative to the component's folder); ``output_folder`` (relative: to the project
    root; default: the pipeline's own) and ``storage_options`` replace the pipeline's;
    ``translation`` sets group, key prefix, owners, tags, kinds, automation condition,
    pool and op tags, for every step and per step name; ``schedule`` adds a
    stale-only schedule; ``io_manager_key`` / ``job_name`` override the names derived
    from the component's folder.
    """

    module: str
    attribute: str = "pipeline"
    output_folder: str | None = None
    storage_options: Annotated[
        dict[str, Any] | None,
        dg.Resolver(
            _resolve_storage_options,
            model_field_type=dict[str, Any] | None,
            inject_before_resolve=False,
            description="fsspec options; '{{ env.NAME }}' values are read at run time, never stored.",
        ),
    ] = None
    translation: PipelineTranslation | None = None
    schedule: str | None = None
    io_manager_key: str | None = None
    job_name: str | None = None

    def __post_init__(self) -> None:
        if self.io_manager_key is not None and not self.io_manager_key.isidentifier():
            raise ValueError(
                "DreamerPipelineComponent, io_manager_key: must be a Python identifier, got "
                f"{self.io_manager_key!r}. Fix: use letters, digits and '_', or leave it out."
            )

    # -- what the YAML names ------------------------------------------------------------

    def module_name(self, context: dg.ComponentLoadContext) -> str:
        """``module`` as an absolute module name (``.pipeline`` -> ``<project>.defs.tweets.pipeline``)."""
        if self.module.startswith("."):
            return context.defs_relative_module_name(context.path) + self.module
        return self.module

    def load_pipeline(self, context: dg.ComponentLoadContext) -> tuple[list["Step"], "Pipeline | None"]:
        """The steps ``module.attribute`` holds, and the ``Pipeline`` when it is one."""
        from ..pipeline import Pipeline
        from ..steps.step import Step

        where = self.where(context)
        name = self.module_name(context)
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as error:
            if error.name and name.startswith(error.name):
                raise ValueError(
                    f"DreamerPipelineComponent {where}, module: no module {name!r}. Fix: name a module "
                    f"of the project (a dotted name, or '.pipeline' for pipeline.py beside defs.yaml)."
                ) from error
            raise
        if not hasattr(module, self.attribute):
            found = [key for key, value in vars(module).items() if isinstance(value, Pipeline)]
            raise ValueError(
                f"DreamerPipelineComponent {where}, attribute: module {name!r} has no {self.attribute!r}. "
                f"Fix: name the Pipeline (or list of steps) it declares"
                + (f"; its Pipeline objects are {found}." if found else ".")
            )
        value = getattr(module, self.attribute)
        if isinstance(value, Pipeline):
            steps, pipeline = list(value.steps), value
        elif isinstance(value, Step):
            steps, pipeline = [value], None
        elif isinstance(value, (list, tuple)) and all(isinstance(item, Step) for item in value):
            steps, pipeline = list(value), None
        else:
            raise TypeError(
                f"DreamerPipelineComponent {where}, attribute: {name}.{self.attribute} is "
                f"{type(value).__name__}, not a Pipeline or a list of steps. Fix: name the object "
                "made by `with Pipeline(...) as pipeline:` (or a list of steps)."
            )
        if not steps:
            raise ValueError(
                f"DreamerPipelineComponent {where}, attribute: {name}.{self.attribute} holds no step. "
                "Fix: declare the steps inside its `with Pipeline(...)` block."
            )
        return steps, pipeline

    def where(self, context: dg.ComponentLoadContext) -> str:
        """The component's folder, for error messages."""
        try:
            return repr(str(context.path.relative_to(context.project_root)))
        except ValueError:
            return repr(str(context.path))

    def resolved_output_folder(self, context: dg.ComponentLoadContext, pipeline: "Pipeline | None") -> str:
        """``output_folder`` (a relative path is under the project root), else the pipeline's."""
        if self.output_folder is None:
            return pipeline.output_folder if pipeline is not None else str(context.project_root / "output")
        folder = str(self.output_folder).strip()
        if not folder:
            raise ValueError(
                f"DreamerPipelineComponent {self.where(context)}, output_folder: is empty. Fix: give a "
                "path (relative to the project root) or an fsspec URL, or leave it out."
            )
        if is_remote(folder) or os.path.isabs(folder):
            return folder
        return str(context.project_root / folder)

    # -- Dagster ------------------------------------------------------------------------

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        steps, pipeline = self.load_pipeline(context)
        if self.translation is not None:
            from ..definitions import all_steps

            self.translation.check_step_names(all_steps(steps), self.where(context))
        suffix = component_name(context)
        io_manager_key = self.io_manager_key or f"{IO_MANAGER_KEY}_{suffix}"
        job_name = self.job_name or f"{PIPELINE_JOB_NAME}_{suffix}"
        base = pipeline.translator if pipeline is not None else None
        translator = ComponentTranslator(translation=self.translation, **({"base": base} if base else {}))
        storage_options = {**(pipeline.storage_options if pipeline is not None else {})}
        storage_options.update(self.storage_options or {})
        defs = dreamer_definitions(
            steps,
            self.resolved_output_folder(context, pipeline),
            storage_options=storage_options or None,
            translator=translator,
            io_manager_key=io_manager_key,
            job_name=job_name,
            resources=dict(pipeline.resources) if pipeline is not None else None,
        )
        if self.schedule is None:
            return defs
        job = next(job for job in defs.jobs or [] if getattr(job, "name", None) == job_name)
        schedule = stale_schedule(
            self.schedule, selection=job.selection, name=f"{DEFAULT_SCHEDULE_NAME}_{suffix}"
        )
        return dg.Definitions.merge(defs, dg.Definitions(schedules=[schedule]))
