"""dreamer_dagster: DataDreamer's reproducible LLM workflows as Dagster assets."""

from typing import TYPE_CHECKING

from .automation import stale_schedule
from .checks import CheckThresholds
from .deferred import ColumnRef, Deferred
from .definitions import dreamer_definitions
from .errors import NonRetryableError
from .io_manager import DreamerIOManager
from .lazy_exports import lazy_exports
from .pipeline import Pipeline
from .steps.operations.functions import concat, zipped
from .translator import DreamerTranslator, StepOpSettings, build_step_spec

if TYPE_CHECKING:
    from .components import DreamerPipelineComponent
    from .resources import AnthropicResource, BedrockResource, HFTokenResource, OpenAIResource

# Imported when first used: the resource classes (pydantic models) take tens of milliseconds
# to build, and a definitions file that names none of them should not pay for them.
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "AnthropicResource": ".resources",
        "BedrockResource": ".resources",
        "HFTokenResource": ".resources",
        "OpenAIResource": ".resources",
        "DreamerPipelineComponent": ".components",
    },
)

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
