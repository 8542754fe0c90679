"""dreamer_dagster: DataDreamer's reproducible LLM workflows as Dagster assets."""

from .automation import stale_schedule
from .checks import CheckThresholds
from .components import DreamerPipelineComponent
from .deferred import ColumnRef, Deferred
from .definitions import dreamer_definitions
from .errors import NonRetryableError
from .io_manager import DreamerIOManager
from .pipeline import Pipeline
from .resources import AnthropicResource, BedrockResource, HFTokenResource, OpenAIResource
from .steps.operations.functions import concat, zipped
from .translator import DreamerTranslator, StepOpSettings, build_step_spec

__version__ = "0.1.0"

__all__ = [
    "AnthropicResource",
    "BedrockResource",
    "CheckThresholds",
    "ColumnRef",
    "Deferred",
    "DreamerIOManager",
    "DreamerPipelineComponent",
    "DreamerTranslator",
    "HFTokenResource",
    "NonRetryableError",
    "OpenAIResource",
    "Pipeline",
    "StepOpSettings",
    "__version__",
    "build_step_spec",
    "concat",
    "dreamer_definitions",
    "stale_schedule",
    "zipped",
]
