"""Retrieve: the k most relevant indexed texts for each query."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ..step import REQUIRED
from .task_step import TaskStep

__all__ = ["Retrieve"]


class Retrieve(TaskStep):
    """Retrieves results for a column of queries with a :class:`~dreamer_dagster.retrievers.Retriever`.

    Inputs ``queries``; args ``retriever``, ``k`` (default 5), ``batch_size``, and
    any other arg for the retriever's ``run()``. Writes ``_dataset`` with the
    columns ``queries`` and ``results``: each result is ``{"indices": [...],
    "texts": [...], "scores": [...]}``, best first. A retriever over another
    step's column makes that step an upstream dependency.
    """

    INPUTS = {"queries": True}
    ARGS = {"retriever": REQUIRED, "k": 5, "batch_size": 10, "lazy": False}
    OUTPUTS = ("queries", "results")
    UNFINGERPRINTED_ARGS = frozenset({"batch_size", "lazy"})
    MODEL_ARG = "retriever"

    def model_class(self) -> type:
        from ...retrievers.retriever import Retriever

        return Retriever

    def validate(self) -> None:
        super().validate()
        k = self.args["k"]
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise self.error(f"must be a positive int, got {k!r}.", "k")

    def run(self, context: Any) -> Iterator[dict] | dict[str, list]:
        retriever = context.model(self.args["retriever"])
        ref = self.inputs["queries"]
        results = retriever.run(
            context.iter_column(ref),
            k=self.args["k"],
            batch_size=self.args["batch_size"],
            return_generator=True,
            **self.extra_args(),
        )
        rows = (
            {"queries": query, "results": result} for query, result in zip(context.iter_column(ref), results)
        )
        return self.stream(context, rows, context.column_length(ref))
