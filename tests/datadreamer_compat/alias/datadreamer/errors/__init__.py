"""``datadreamer.errors``."""

from dreamer_dagster.errors import StepOutputError, StepOutputTypeError

__all__ = ["StepOutputError", "StepOutputTypeError"]
