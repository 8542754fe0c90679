"""``datadreamer.datasets``: ``step.output`` (``OutputColumns``, DataDreamer's ``OutputDataset``),
``step.output["col"]`` (``ColumnRef``) and the iterable (lazy) forms."""

from dreamer_dagster.datasets import (
    OutputDataset,
    OutputDatasetColumn,
    OutputIterableDataset,
    OutputIterableDatasetColumn,
)

__all__ = ["OutputDataset", "OutputDatasetColumn", "OutputIterableDataset", "OutputIterableDatasetColumn"]
