"""Task steps: run embedders, retrievers and task models over a column."""

from .cosine_similarity import CosineSimilarity
from .embed import Embed
from .retrieve import Retrieve
from .run_task_model import RunTaskModel
from .task_step import TaskStep

__all__ = ["CosineSimilarity", "Embed", "Retrieve", "RunTaskModel", "TaskStep"]
