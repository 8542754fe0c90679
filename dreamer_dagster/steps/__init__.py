"""Steps: data sources, prompt steps, task steps and operations."""

from .data_sources import DataSource
from .step import Step, StepDeclarationError

__all__ = ["DataSource", "Step", "StepDeclarationError"]
