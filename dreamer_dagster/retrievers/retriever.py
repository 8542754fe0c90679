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

    DISPLAY_ICON = " 🔎 "  # DataDreamer's (model properties: ``model_info.ModelInfo``)

    def run(
        self,
        queries: Iterable[str],
        k: int = 5,
        batch_size: int = DEFAULT_BATCH_SIZE,
        batch_scheduler_buffer_size: int | None = None,
        adaptive_batch_size: bool = False,
        progress_interval: int | None = 60,
        force: bool = False,
        cache_only: bool = False,
        verbose: bool | None = None,
        log_level: int | None = None,
        total_num_queries: int | None = None,
        return_generator: bool = False,
        **kwargs: Any,
    ) -> Iterator[dict[str, Any]] | list[dict[str, Any]]:
        raise NotImplementedError(f"{type(self).__name__}.run")
