"""CosineSimilarity: the cosine similarity of each pair of rows of two columns."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import islice
from typing import Any

from .task_step import TaskStep

__all__ = ["CosineSimilarity"]


class CosineSimilarity(TaskStep):
    """Computes the cosine similarity between two columns ``a`` and ``b``, row by row.

    Each input is a column of embeddings (lists of floats, e.g. an ``Embed``
    step's ``embeddings``) or of texts; texts are embedded with the ``embedder``
    arg (through its model cache), which is then required — and refused when
    both columns already hold embeddings. Other args (``truncate``,
    ``instruction``...) go to the embedder's ``run()``. ``similarity_batch_size``
    rows are compared at once, with numpy, or with torch on ``device``. Writes
    ``_dataset`` with the columns ``a``, ``b`` (the inputs as given) and
    ``similarities``.
    """

    INPUTS = {"a": True, "b": True}
    ARGS = {"similarity_batch_size": 100, "device": None, "embedder": None, "batch_size": 10, "lazy": False}
    OUTPUTS = ("a", "b", "similarities")
    UNFINGERPRINTED_ARGS = frozenset({"similarity_batch_size", "device", "batch_size", "lazy"})
    MODEL_ARG = "embedder"

    def model_class(self) -> type:
        from ...embedders.embedder import Embedder

        return Embedder

    def validate(self) -> None:
        super().validate()
        size = self.args["similarity_batch_size"]
        if not isinstance(size, int) or size < 1:
            raise self.error(f"must be a positive int, got {size!r}.", "similarity_batch_size")
        if self.extra_args() and self.args["embedder"] is None:
            raise self.error(
                f"args {sorted(self.extra_args())} are for the embedder, but no embedder was given.",
                "embedder",
            )

    def run(self, context: Any) -> Iterator[dict] | dict[str, list]:
        lengths = {name: context.column_length(ref) for name, ref in self.inputs.items()}
        if lengths["a"] != lengths["b"]:
            raise ValueError(
                f"Step {self.name!r}: 'a' has {lengths['a']} rows but 'b' has {lengths['b']}; "
                "cosine similarities compare row by row."
            )
        texts = {name: _holds_texts(context, ref) for name, ref in self.inputs.items()}
        embedder = self.args["embedder"]
        if any(texts.values()) and embedder is None:
            raise ValueError(
                f"Step {self.name!r}: {[n for n, t in texts.items() if t]} hold texts. Fix: pass "
                "args={'embedder': ...} to embed them, or give columns of embeddings."
            )
        if embedder is not None and not any(texts.values()):
            raise ValueError(
                f"Step {self.name!r}: 'a' and 'b' already hold embeddings, so the embedder would not be "
                "used. Fix: remove the 'embedder' arg."
            )
        if embedder is not None:
            embedder = context.model(embedder)
        vectors = {
            name: (
                embedder.run(
                    context.iter_column(ref),
                    batch_size=self.args["batch_size"],
                    return_generator=True,
                    **self.extra_args(),
                )
                if texts[name]
                else context.iter_column(ref)
            )
            for name, ref in self.inputs.items()
        }
        similarities = self._similarities(vectors["a"], vectors["b"])
        rows = (
            {"a": a, "b": b, "similarities": similarity}
            for a, b, similarity in zip(
                context.iter_column(self.inputs["a"]), context.iter_column(self.inputs["b"]), similarities
            )
        )
        return self.stream(context, rows, lengths["a"])

    def _similarities(self, a: Iterator[Any], b: Iterator[Any]) -> Iterator[float]:
        import numpy as np

        size = self.args["similarity_batch_size"]
        while batch_a := list(islice(a, size)):
            batch_b = list(islice(b, len(batch_a)))
            left = np.asarray(batch_a, dtype=np.float64)
            right = np.asarray(batch_b, dtype=np.float64)
            if left.ndim != 2 or left.shape != right.shape:
                raise ValueError(
                    f"Step {self.name!r}: embeddings must be equal-length vectors; got shapes "
                    f"{left.shape} and {right.shape}."
                )
            yield from (float(value) for value in self._cosine(left, right))

    def _cosine(self, left: Any, right: Any) -> Any:
        eps = 1e-8
        device = self.args["device"]
        if device is not None:
            import torch

            with torch.inference_mode():
                result = torch.nn.functional.cosine_similarity(
                    torch.as_tensor(left, device=device),
                    torch.as_tensor(right, device=device),
                    dim=1,
                    eps=eps,
                )
            return result.cpu().numpy()
        import numpy as np

        norms = np.maximum(np.linalg.norm(left, axis=1), eps) * np.maximum(np.linalg.norm(right, axis=1), eps)
        return np.einsum("ij,ij->i", left, right) / norms


def _holds_texts(context: Any, ref: Any) -> bool:
    import datasets

    feature = context.dataset(ref.step).features[ref.column]
    return isinstance(feature, datasets.Value) and feature.dtype in {"string", "large_string"}
