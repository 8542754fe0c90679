"""Task models: deterministic per-text models (classifiers), every answer through the model cache."""

from .hf_classification_task_model import HFClassificationTaskModel
from .parallel_task_model import ParallelTaskModel
from .task_model import TaskModel

__all__ = ["ParallelTaskModel", "HFClassificationTaskModel", "TaskModel"]
