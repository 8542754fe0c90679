"""Data sources: steps that bring rows into a pipeline."""

from .csv_data_source import CSVDataSource
from .data_source import DataSource
from .file_data_source import FileDataSource
from .hf_dataset_data_source import HFDatasetDataSource
from .hf_hub_data_source import HFHubDataSource
from .json_data_source import JSONDataSource
from .text_data_source import TextDataSource

__all__ = [
    "CSVDataSource",
    "DataSource",
    "FileDataSource",
    "HFDatasetDataSource",
    "HFHubDataSource",
    "JSONDataSource",
    "TextDataSource",
]
