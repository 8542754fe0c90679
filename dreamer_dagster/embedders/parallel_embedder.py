"""ParallelEmbedder: one embedder's runs spread over several copies (e.g. one per GPU)."""

from __future__ import annotations

from ..task_models.parallel_task_model import ParallelModels
from .embedder import Embedder

__all__ = ["ParallelEmbedder"]


class ParallelEmbedder(ParallelModels, Embedder):
    """DataDreamer's ``ParallelEmbedder(*embedders)``: the texts of one ``run`` split over
    embedders of one identity, embedded side by side; vectors, fingerprint and model
    cache are those of one embedder."""

    MEMBER = Embedder

    @property
    def dims(self) -> int:
        return self.models[0].dims

    @property
    def model_max_length(self) -> int:
        return self.models[0].model_max_length

    def count_tokens(self, value: str) -> int:
        return self.models[0].count_tokens(value)
