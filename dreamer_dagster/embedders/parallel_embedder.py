"""ParallelEmbedder: one embedder's runs spread over several copies (e.g. one per GPU)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import islice
from typing import Any

from ..task_models.parallel_task_model import ParallelModels
from ..task_models.task_model import DEFAULT_BATCH_SIZE, LOOKUP_WINDOW
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

    def run_matrices(
        self,
        texts: Iterable[str],
        truncate: bool = False,
        instruction: str | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        *,
        force: bool = False,
        cache_only: bool = False,
        **kwargs: Any,
    ) -> Iterator[Any]:
        """The parallel run's vectors in order, stacked into float32 matrices a window at a time."""
        import numpy as np

        vectors = self.run(
            texts,
            truncate=truncate,
            instruction=instruction,
            batch_size=batch_size,
            return_generator=True,
            force=force,
            cache_only=cache_only,
            **kwargs,
        )
        while window := list(islice(vectors, LOOKUP_WINDOW)):
            yield np.asarray(window, dtype=np.float32)
