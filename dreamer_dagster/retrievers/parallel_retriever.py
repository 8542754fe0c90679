"""ParallelRetriever: one retriever's queries spread over several copies."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from ..task_models.parallel_task_model import ParallelModels
from ..task_models.task_model import DEFAULT_BATCH_SIZE
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

    def run(  # type: ignore[override]
        self,
        queries: Iterable[str],
        *args: Any,
        batch_size: int = DEFAULT_BATCH_SIZE,
        return_generator: bool = False,
        **kwargs: Any,
    ) -> Iterator[Any] | list[Any]:
        """DataDreamer's ``run(queries, *args, **kwargs)``: one retriever's results, searched
        by all the retrievers side by side."""
        return ParallelModels.run(
            self, queries, *args, batch_size=batch_size, return_generator=return_generator, **kwargs
        )
