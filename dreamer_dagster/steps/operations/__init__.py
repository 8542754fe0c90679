"""Operations: steps that transform whole steps (select, filter, map, splits...)."""

from .base import OperationStep
from .column_operations import RemoveColumns, RenameColumns, SelectColumns
from .combine import Concat, Zipped
from .functions import concat, zipped
from .row_operations import AddItem, Copy, Filter, Map, Reverse, Select, Shard, Shuffle, Skip, Sort, Take
from .splits import Split

__all__ = [
    "AddItem",
    "Concat",
    "Copy",
    "Filter",
    "Map",
    "OperationStep",
    "RemoveColumns",
    "RenameColumns",
    "Reverse",
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
