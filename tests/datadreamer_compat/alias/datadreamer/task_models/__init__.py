"""``datadreamer.task_models``."""

from dreamer_dagster.task_models import HFClassificationTaskModel, ParallelTaskModel, TaskModel

__all__ = ["HFClassificationTaskModel", "ParallelTaskModel", "TaskModel"]
