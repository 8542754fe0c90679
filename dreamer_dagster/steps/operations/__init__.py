"""Operations: steps that transform whole steps (select, filter, map, splits...)."""

from .base import OperationStep
from .column_operations import RemoveColumns, RenameColumns, SelectColumns
from .combine import Concat, Zipped
from .functions import concat, zipped
from .row_operations import AddItem, Filter, Map, Reverse, Shard, Shuffle, Skip, Sort, Take
from .splits import Split

__all__ = [
    "AddItem",
    "Concat",
    "Filter",
    "Map",
    "OperationStep",
    "RemoveColumns",
    "RenameColumns",
    "Reverse",
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
