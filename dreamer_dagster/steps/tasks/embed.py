"""Embed: one embedding per input text."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ..step import REQUIRED
from .task_step import TaskStep

__all__ = ["Embed"]


class Embed(TaskStep):
    """Embeds a column of texts with an :class:`~dreamer_dagster.embedders.Embedder`.

    Inputs ``texts``; args ``embedder``, ``truncate``, ``instruction`` (a prefix
    for every text), ``batch_size``, and any other arg for the embedder's
    ``run()``. Writes ``_dataset`` with the columns ``texts`` and ``embeddings``
    (float32 lists); every vector goes through the embedder's model cache.
    """

    INPUTS = {"texts": True}
    ARGS = {"embedder": REQUIRED, "truncate": False, "instruction": None, "batch_size": 10, "lazy": False}
    OUTPUTS = ("texts", "embeddings")
    UNFINGERPRINTED_ARGS = frozenset({"batch_size", "lazy"})
    MODEL_ARG = "embedder"

    def model_class(self) -> type:
        from ...embedders.embedder import Embedder

        return Embedder

    def run(self, context: Any) -> Iterator[dict] | dict[str, list]:
        embedder = context.model(self.args["embedder"])
        texts = context.column(self.inputs["texts"])
        vectors = embedder.run(
            texts,
            truncate=self.args["truncate"],
            instruction=self.args["instruction"],
            batch_size=self.args["batch_size"],
            return_generator=True,
            **self.extra_args(),
        )
        rows = ({"texts": text, "embeddings": vector} for text, vector in zip(texts, vectors))
        return self.stream(context, rows, len(texts))
