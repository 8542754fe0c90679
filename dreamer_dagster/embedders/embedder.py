"""The embedder base: texts in, one vector each out, through the model cache."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, ClassVar

from ..task_models.task_model import DEFAULT_BATCH_SIZE, TaskModel

__all__ = ["Embedder", "float32_list"]


def float32_list(vector: Any) -> list[float]:
    """A float32 vector as the shortest floats that read back as the same float32 values
    (9 significant digits round-trip float32): a third smaller in the cache and faster to read."""
    return [float(format(value, ".9g")) for value in vector.tolist()]


class Embedder(TaskModel):
    """Base of embedders: ``run(texts)`` returns one ``numpy.float32`` vector a text.

    Each text's vector is cached in ``<output>/.cache/<cache_name>.db`` as a JSON
    list of floats (keyed by the model identity, the text with its instruction
    and the extra encode arguments), so a re-run embeds nothing. Subclasses
    implement ``embed_batch(texts, truncate, **kwargs)``.
    """

    model_name: Any
    #: Encode arguments a subclass always passes unless ``run`` is given others.
    DEFAULT_RUN_KWARGS: ClassVar[dict[str, Any]] = {}

    def embed_batch(self, texts: list[str], truncate: bool, **kwargs: Any) -> list[list[float]]:
        """Embed distinct texts; one list of floats a text."""
        raise NotImplementedError(f"{type(self).__name__}.embed_batch")

    @property
    def dims(self) -> int:
        """The number of dimensions of this embedder's vectors."""
        raise NotImplementedError(f"{type(self).__name__}.dims")

    def run(
        self,
        texts: Iterable[str],
        truncate: bool = False,
        instruction: str | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        return_generator: bool = False,
        **kwargs: Any,
    ) -> Iterator[Any] | list[Any]:
        """Embed ``texts`` (each prefixed with ``instruction`` when given).

        ``truncate=False`` refuses a text longer than the model's context (with
        a message saying so) instead of silently cutting it. The cache key holds
        the text and the encode arguments, not ``truncate``: a text that fits
        embeds the same either way.
        """
        import numpy as np

        kwargs = {**self.DEFAULT_RUN_KWARGS, **kwargs}
        if instruction is not None and not isinstance(instruction, str):
            raise TypeError(f"instruction must be a string, got {instruction!r}.")
        inputs: Iterable[str] = texts if instruction is None else (instruction + text for text in texts)

        def compute(batch: list[str]) -> list[list[float]]:
            return self.embed_batch(batch, truncate=truncate, **kwargs)

        results = self.cached_map(
            inputs,
            request={"task": "embed", "kwargs": kwargs},
            compute=compute,
            batch_size=batch_size,
            decode=lambda vector: np.asarray(vector, dtype=np.float32),
        )
        return self.finish(results, return_generator)
