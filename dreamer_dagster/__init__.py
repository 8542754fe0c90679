"""dreamer_dagster: DataDreamer's reproducible LLM workflows as Dagster assets."""

from .deferred import ColumnRef, Deferred
from .definitions import dreamer_definitions
from .io_manager import DreamerIOManager
from .pipeline import Pipeline
from .steps.operations.functions import concat, zipped

__version__ = "0.1.0"

__all__ = [
    "ColumnRef",
    "Deferred",
    "DreamerIOManager",
    "Pipeline",
    "__version__",
    "concat",
    "dreamer_definitions",
    "zipped",
]
