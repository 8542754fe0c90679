"""ParallelRetriever: one retriever's queries spread over several copies."""

from __future__ import annotations

from typing import Any

from ..task_models.parallel_task_model import ParallelModels
from .retriever import Retriever

__all__ = ["ParallelRetriever"]


class ParallelRetriever(ParallelModels, Retriever):
    """DataDreamer's ``ParallelRetriever(*retrievers)``: the queries of one ``run`` split over
    retrievers of one identity (each with its own index, e.g. on its own GPU), searched
    side by side; results, fingerprint and model cache are those of one retriever."""

    MEMBER = Retriever

    @property
    def index(self) -> Any:
        return self.models[0].index
