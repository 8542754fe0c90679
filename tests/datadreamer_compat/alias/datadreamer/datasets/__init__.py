"""``datadreamer.datasets``: ``step.output`` (``OutputColumns``, DataDreamer's ``OutputDataset``)
and ``step.output["col"]`` (``ColumnRef``); no iterable (lazy) form here."""

from dreamer_dagster.deferred import ColumnRef as OutputDatasetColumn
from dreamer_dagster.steps.output_data import OutputColumns as OutputDataset

from .._missing import missing

OutputIterableDataset = missing("datasets.OutputIterableDataset")
OutputIterableDatasetColumn = missing("datasets.OutputIterableDatasetColumn")

__all__ = ["OutputDataset", "OutputDatasetColumn", "OutputIterableDataset", "OutputIterableDatasetColumn"]
