"""Dagster Components for ``dg``: ``DreamerPipelineComponent`` (``dg scaffold defs
dreamer_dagster.DreamerPipelineComponent NAME``) and its ``translation:`` block."""

from .pipeline_component import DreamerPipelineComponent
from .scaffolder import DreamerPipelineScaffolder
from .translation import ComponentTranslator, PipelineTranslation, StepTranslation

__all__ = [
    "ComponentTranslator",
    "DreamerPipelineComponent",
    "DreamerPipelineScaffolder",
    "PipelineTranslation",
    "StepTranslation",
]
