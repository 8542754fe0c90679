"""The retriever base: queries in, the k best texts of an index out."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from ..task_models.task_model import DEFAULT_BATCH_SIZE, TaskModel

__all__ = ["Retriever"]


class Retriever(TaskModel):
    """Base of retrievers: ``run(queries, k)`` returns, for each query, a dict of
    ``indices`` (row numbers in the indexed texts), ``texts`` and ``scores``, best first.

    Results are cached per query (and ``k``) in ``<output>/.cache/<cache_name>.db``.
    """

    def run(
        self,
        queries: Iterable[str],
        k: int = 5,
        batch_size: int = DEFAULT_BATCH_SIZE,
        return_generator: bool = False,
        **kwargs: Any,
    ) -> Iterator[dict[str, Any]] | list[dict[str, Any]]:
        raise NotImplementedError(f"{type(self).__name__}.run")
