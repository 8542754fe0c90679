"""Data sources: steps that bring rows into a pipeline."""

from .data_source import DataSource

__all__ = ["DataSource"]
