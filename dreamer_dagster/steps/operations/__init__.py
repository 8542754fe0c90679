"""Operations: steps that transform whole steps (select, filter, map, splits...)."""

from .base import OperationStep
from .column_operations import RemoveColumns, RenameColumn, RenameColumns, SelectColumns
from .combine import Concat, Zipped
from .functions import concat, zipped
from .row_operations import (
    AddItem,
    Copy,
    Filter,
    Map,
    Reverse,
    Save,
    Select,
    Shard,
    Shuffle,
    Skip,
    Sort,
    Take,
)
from .splits import Split

__all__ = [
    "AddItem",
    "Concat",
    "Copy",
    "Filter",
    "Map",
    "OperationStep",
    "RemoveColumns",
    "RenameColumn",
    "RenameColumns",
    "Reverse",
    "Save",
    "Select",
    "SelectColumns",
    "Shard",
    "Shuffle",
    "Skip",
    "Sort",
    "Split",
    "Take",
    "Zipped",
    "concat",
    "zipped",
]
