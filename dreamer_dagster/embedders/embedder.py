"""The embedder base: texts in, one vector each out, through the model cache."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any, ClassVar

from ..task_models.task_model import DEFAULT_BATCH_SIZE, TaskModel

__all__ = ["Embedder", "as_matrix"]


def as_matrix(vectors: Any, count: int, name: str) -> Any:
    """``vectors`` (a matrix, or a sequence of vectors) as a ``(count, dims)`` float32 matrix."""
    import numpy as np

    matrix = vectors if isinstance(vectors, np.ndarray) else np.asarray(list(vectors), dtype=np.float32)
    if matrix.ndim != 2 or matrix.shape[0] != count:
        raise RuntimeError(f"{name} returned embeddings of shape {matrix.shape} for {count} texts.")
    return matrix.astype(np.float32, copy=False)


class Embedder(TaskModel):
    """Base of embedders: ``run(texts)`` returns one ``numpy.float32`` vector a text.

    Each text's vector is cached in ``<output>/.cache/<cache_name>.db`` as float32
    bytes (keyed by the model identity, the text with its instruction and the
    extra encode arguments), so a re-run embeds nothing. Subclasses implement
    ``embed_batch(texts, truncate, **kwargs)``; an API embedder may also
    override ``batch_session`` to send several batches at once.
    """

    model_name: Any
    #: Encode arguments a subclass always passes unless ``run`` is given others.
    DEFAULT_RUN_KWARGS: ClassVar[dict[str, Any]] = {}

    def embed_batch(self, texts: list[str], truncate: bool, **kwargs: Any) -> Any:
        """Embed distinct texts: a ``(len(texts), dims)`` matrix, or one vector a text."""
        raise NotImplementedError(f"{type(self).__name__}.embed_batch")

    def batch_session(
        self, truncate: bool, **kwargs: Any
    ) -> AbstractContextManager[Callable[[list[list[str]]], Iterator[tuple[int, Any]]]]:
        """A context for one ``run``: it gives a function that embeds a list of batches and
        yields ``(batch number, vectors)`` as each is done, in any order. Here the
        batches go through ``embed_batch`` one at a time; an API embedder sends them
        concurrently over one connection pool kept for the whole run."""

        @contextmanager
        def session() -> Iterator[Callable[[list[list[str]]], Iterator[tuple[int, Any]]]]:
            def embed(batches: list[list[str]]) -> Iterator[tuple[int, Any]]:
                for number, batch in enumerate(batches):
                    yield number, self.embed_batch(batch, truncate=truncate, **kwargs)

            yield embed

        return session()

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
        batch_scheduler_buffer_size: int | None = None,
        adaptive_batch_size: bool = True,
        progress_interval: int | None = 60,
        force: bool = False,
        cache_only: bool = False,
        verbose: bool | None = None,
        log_level: int | None = None,
        total_num_texts: int | None = None,
        return_generator: bool = False,
        **kwargs: Any,
    ) -> Iterator[Any] | list[Any]:
        """Embed ``texts`` (each prefixed with ``instruction`` when given).

        ``truncate=False`` refuses a text longer than the model's context (with
        a message saying so) instead of silently cutting it. The cache key holds
        the text and the encode arguments, not ``truncate``: a text that fits
        embeds the same either way. DataDreamer's run options are taken in its
        order: ``force`` / ``cache_only`` as in ``LLM.run``; the others change nothing
        here (batches are already bounded, a step reports its own progress).
        """
        matrices = self.run_matrices(
            texts, truncate, instruction, batch_size, force=force, cache_only=cache_only, **kwargs
        )
        results = (vector for matrix in matrices for vector in matrix)
        return self.finish(results, return_generator)

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
        """The embeddings of ``texts`` in order, as ``(rows, dims)`` float32 matrices:
        one per window of inputs looked up in the cache at once (see ``run``)."""
        import numpy as np

        kwargs = {**self.DEFAULT_RUN_KWARGS, **kwargs}
        if instruction is not None and not isinstance(instruction, str):
            raise TypeError(f"instruction must be a string, got {instruction!r}.")
        inputs: Iterable[str] = texts if instruction is None else (instruction + text for text in texts)
        name = type(self).__name__
        with self.batch_session(truncate, **kwargs) as embed:

            def compute_batches(batches: list[list[str]]) -> Iterator[tuple[int, Any]]:
                for number, vectors in embed(batches):
                    yield number, as_matrix(vectors, len(batches[number]), name)

            windows = self.cached_windows(
                inputs,
                request={"task": "embed", "kwargs": kwargs},
                compute_batches=compute_batches,
                batch_size=batch_size,
                force=force,
                cache_only=cache_only,
            )
            for _, vectors in windows:
                # Stored vectors, fresh matrix rows and (in caches written before vectors
                # were stored as bytes) JSON lists all stack into one float32 matrix.
                yield np.asarray(vectors, dtype=np.float32)
