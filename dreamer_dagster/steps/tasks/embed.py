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
    (float32 lists); every vector goes through the embedder's model cache. The
    texts are read a chunk at a time and the vectors written a window at a time,
    straight from the embedder's matrices.
    """

    INPUTS = {"texts": True}
    ARGS = {"embedder": REQUIRED, "truncate": False, "instruction": None, "batch_size": 10, "lazy": False}
    OUTPUTS = ("texts", "embeddings")
    UNFINGERPRINTED_ARGS = frozenset({"batch_size", "lazy"})
    MODEL_ARG = "embedder"

    def model_class(self) -> type:
        from ...embedders.embedder import Embedder

        return Embedder

    def run(self, context: Any) -> Iterator[Any] | dict[str, list]:
        import pyarrow as pa

        embedder = context.model(self.args["embedder"])
        ref = self.inputs["texts"]
        total = context.column_length(ref)
        read: list[str] = []  # texts read ahead of their vectors

        def texts() -> Iterator[str]:
            for text in context.iter_column(ref):
                read.append(text)
                yield text

        matrices = embedder.run_matrices(
            texts(),
            truncate=self.args["truncate"],
            instruction=self.args["instruction"],
            batch_size=self.args["batch_size"],
            **self.extra_args(),
        )

        def tables() -> Iterator[Any]:
            # One Arrow table a window of vectors: the matrix becomes the list column as
            # it is, with no Python list a row.
            for matrix in matrices:
                chunk = read[: len(matrix)]
                del read[: len(matrix)]
                yield pa.table({"texts": pa.array(chunk, pa.string()), "embeddings": _list_array(matrix)})

        return self.stream(context, tables(), total)


def _list_array(matrix: Any) -> Any:
    """A ``(rows, dims)`` float32 matrix as an Arrow list<float32> array (no copy of the values)."""
    import numpy as np
    import pyarrow as pa

    rows, dims = matrix.shape
    offsets = pa.array(np.arange(0, rows * dims + 1, dims, dtype=np.int32))
    return pa.ListArray.from_arrays(offsets, pa.array(np.ascontiguousarray(matrix).reshape(-1)))
