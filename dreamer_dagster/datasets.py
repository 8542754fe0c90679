"""DataDreamer's ``datadreamer.datasets`` names: what ``step.output`` is.

``OutputDataset`` (a step's output: column references, and its rows when read),
``OutputDatasetColumn`` (``step.output["col"]``), and for a step whose output is an
iterable dataset (a lazy operation, or ``run()`` returning ``LazyRows``)
``OutputIterableDataset`` / ``OutputIterableDatasetColumn``.

DataDreamer's constructors work too: ``OutputDataset(step, dataset, pickled=False)``,
``OutputIterableDataset(step, iterable_dataset, pickled=False, total_num_rows=None)`` and
``OutputIterableDatasetColumn(step, one_column_iterable_dataset)`` are outputs held in memory
over that dataset (pickled values restored when read), which a step's ``run()`` may return.
"""

from .deferred import ColumnRef as OutputDatasetColumn
from .steps.output_data import OutputColumns as OutputDataset
from .steps.output_iterable import OutputIterableDataset, OutputIterableDatasetColumn

__all__ = ["OutputDataset", "OutputDatasetColumn", "OutputIterableDataset", "OutputIterableDatasetColumn"]
