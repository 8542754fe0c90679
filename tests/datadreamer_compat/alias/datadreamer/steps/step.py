"""``datadreamer.steps.step``: the operation step classes under DataDreamer's names."""

from dreamer_dagster.steps import Step
from dreamer_dagster.steps.operations import (
    AddItem as AddItemStep,
)
from dreamer_dagster.steps.operations import (
    Concat as ConcatStep,
)
from dreamer_dagster.steps.operations import (
    Copy as CopyStep,
)
from dreamer_dagster.steps.operations import (
    Filter as FilterStep,
)
from dreamer_dagster.steps.operations import (
    Map as MapStep,
)
from dreamer_dagster.steps.operations import (
    RemoveColumns as RemoveColumnsStep,
)
from dreamer_dagster.steps.operations import (
    RenameColumn as RenameColumnStep,
)
from dreamer_dagster.steps.operations import (
    RenameColumns as RenameColumnsStep,
)
from dreamer_dagster.steps.operations import (
    Reverse as ReverseStep,
)
from dreamer_dagster.steps.operations import (
    Save as SaveStep,
)
from dreamer_dagster.steps.operations import (
    Select as SelectStep,
)
from dreamer_dagster.steps.operations import (
    SelectColumns as SelectColumnsStep,
)
from dreamer_dagster.steps.operations import (
    Shard as ShardStep,
)
from dreamer_dagster.steps.operations import (
    Shuffle as ShuffleStep,
)
from dreamer_dagster.steps.operations import (
    Skip as SkipStep,
)
from dreamer_dagster.steps.operations import (
    Sort as SortStep,
)
from dreamer_dagster.steps.operations import (
    Split as SplitStep,
)
from dreamer_dagster.steps.operations import (
    Take as TakeStep,
)
from dreamer_dagster.steps.operations import (
    Zipped as ZippedStep,
)

__all__ = [
    "AddItemStep",
    "ConcatStep",
    "CopyStep",
    "FilterStep",
    "MapStep",
    "RemoveColumnsStep",
    "RenameColumnStep",
    "RenameColumnsStep",
    "ReverseStep",
    "SaveStep",
    "SelectColumnsStep",
    "SelectStep",
    "ShardStep",
    "ShuffleStep",
    "SkipStep",
    "SortStep",
    "SplitStep",
    "Step",
    "TakeStep",
    "ZippedStep",
]
