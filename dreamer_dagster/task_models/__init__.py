"""Task models: deterministic per-text models (classifiers), every answer through the model cache."""

from .hf_classification_task_model import HFClassificationTaskModel
from .task_model import TaskModel

__all__ = ["HFClassificationTaskModel", "TaskModel"]
