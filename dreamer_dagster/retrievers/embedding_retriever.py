"""EmbeddingRetriever: nearest-neighbour search over embedded texts (FAISS when installed, else NumPy)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from ..citations import FAISS_CITATION
from ..deferred import ColumnRef, running_script
from ..fingerprint import fingerprint
from ..model_info import card_model_name
from ..task_models.task_model import DEFAULT_BATCH_SIZE
from .retriever import Retriever

__all__ = ["EmbeddingRetriever", "exact_top_k", "faiss_available"]

# Index rows scored at once (bounds memory: batch x block floats).
SEARCH_BLOCK = 65_536


def faiss_available() -> bool:
    """Whether the ``faiss`` module (``faiss-cpu``) can be imported."""
    import importlib.util

    return importlib.util.find_spec("faiss") is not None


class EmbeddingRetriever(Retriever):
    """Retrieves the ``k`` texts whose embeddings score highest (inner product) for each query.

    ``texts`` is a column of another step (``step.output["text"]``: a dependency
    edge; the index is built from its rows when the step using the retriever
    runs) or a list of strings. With normalized embeddings (the default for
    sentence-transformers) the score is the cosine similarity.

    DataDreamer's order: ``EmbeddingRetriever(texts, embedder, truncate,
    index_type, index_batch_size, index_instruction, query_instruction,
    cache_folder_path, device, **kwargs)``. ``index_type=None`` searches
    exactly: with a FAISS ``IndexFlatIP`` when ``faiss-cpu`` is installed, else
    with NumPy (or torch on ``device``); both give the same neighbours. A FAISS
    ``index_factory`` string (``"IVF256,Flat"``, ``"HNSW32"``...) builds that
    approximate index instead (it needs ``faiss-cpu``; it enters the identity,
    since an approximate index can return other neighbours).

    The index is built lazily, only when a query misses the retrieval cache,
    by embedding the texts through the embedder (and so its model cache).
    Writes the model caches of the embedder and of the retriever itself
    (``<output>/.cache/EmbeddingRetriever-<hash>.db``, one result per query and k).
    """

    def __init__(
        self,
        texts: ColumnRef | list[str],
        embedder: Any,
        truncate: bool = False,
        index_type: str | None = None,
        index_batch_size: int = DEFAULT_BATCH_SIZE,
        index_instruction: str | None = None,
        query_instruction: str | None = None,
        cache_folder_path: str | None = None,
        device: Any = None,
        **kwargs: Any,
    ):
        from ..embedders.embedder import Embedder

        if not isinstance(texts, ColumnRef):
            if isinstance(texts, (str, bytes)) or not isinstance(texts, (list, tuple)):
                raise TypeError(
                    "EmbeddingRetriever: texts must be a column of a step (step.output['column']) "
                    f"or a list of strings, got {type(texts).__name__}."
                )
            if not all(isinstance(text, str) for text in texts):
                raise TypeError("EmbeddingRetriever: every text to index must be a string.")
            texts = list(texts)
        if not isinstance(embedder, Embedder):
            raise TypeError(
                f"EmbeddingRetriever: embedder must be an Embedder (e.g. default_embedder()), got {embedder!r}."
            )
        if not isinstance(index_batch_size, int) or index_batch_size < 1:
            raise ValueError(f"EmbeddingRetriever: index_batch_size must be >= 1, got {index_batch_size!r}.")
        if index_type is not None:
            if not isinstance(index_type, str) or not index_type:
                raise TypeError(
                    f"EmbeddingRetriever: index_type must be a FAISS index_factory string, got {index_type!r}."
                )
            if not faiss_available():
                raise ImportError(
                    f"EmbeddingRetriever: index_type={index_type!r} is a FAISS index and faiss is not "
                    "installed. Fix: pip install faiss-cpu (or leave index_type=None for exact search)."
                )
        self.texts = texts
        self.embedder = embedder
        self.truncate = truncate
        self.index_type = index_type
        self.cache_folder_path = cache_folder_path
        self.index_batch_size = index_batch_size
        self.index_instruction = index_instruction
        self.query_instruction = query_instruction
        self.device = device
        self.kwargs = kwargs
        self._index: Any = None
        self._faiss: Any = None

    def identity(self) -> dict:
        texts = self.texts if isinstance(self.texts, ColumnRef) else {"texts": fingerprint(self.texts)}
        return {
            "texts": texts,
            "embedder": self.embedder,
            "truncate": self.truncate,
            "index_instruction": self.index_instruction,
            "query_instruction": self.query_instruction,
            "kwargs": self.kwargs,
            **({"index_type": self.index_type} if self.index_type is not None else {}),
        }

    @property
    def model_name(self) -> Any:
        return self.embedder.model_name

    def for_run(self, cache_folder: Any, stats: Any) -> EmbeddingRetriever:
        bound = super().for_run(cache_folder, stats)
        bound.embedder = self.embedder.for_run(cache_folder, bound.stats)
        if not isinstance(bound.texts, ColumnRef):
            bound.texts = list(bound.texts)  # a resolved column: random access by index
        bound._index = None
        bound._faiss = None
        return bound

    # -- the index ---------------------------------------------------------------------

    def _texts(self) -> list[str]:
        if isinstance(self.texts, ColumnRef) and running_script(self.texts.step):
            # Called directly in a running script (DataDreamer's way): the column's rows, read
            # now; ``texts`` stays the reference, so the identity is the same in both modes.
            if getattr(self, "_column_texts", None) is None:
                self._column_texts = list(self.texts.data(f"indexing {self.texts.describe()}"))
            return self._column_texts
        if isinstance(self.texts, ColumnRef):
            raise TypeError(
                "EmbeddingRetriever: its texts column was not resolved; pass the retriever to a "
                "step (Retrieve, RAGPrompt), which loads the column when it runs."
            )
        return self.texts

    @property
    def index(self) -> Any:
        """The ``(number of texts, dims)`` float32 matrix of the texts' embeddings."""
        if self._index is None:
            import numpy as np

            texts = self._texts()
            vectors = self.embedder.run(
                texts,
                truncate=self.truncate,
                instruction=self.index_instruction,
                batch_size=self.index_batch_size,
                **self.kwargs,
            )
            self._index = (
                np.vstack(vectors).astype(np.float32, copy=False)
                if vectors
                else np.zeros((0, 0), dtype=np.float32)
            )
        return self._index

    @property
    def uses_faiss(self) -> bool:
        """Whether searches run on FAISS (an ``index_type``, or exact search with faiss installed)."""
        return self.index_type is not None or (self.device is None and faiss_available())

    def faiss_index(self) -> Any:
        """The FAISS index over :attr:`index` (built, and trained if it must be, on first use)."""
        if self._faiss is None:
            import faiss
            import numpy as np

            matrix = np.ascontiguousarray(self.index, dtype=np.float32)
            dims = matrix.shape[1] if matrix.size else int(self.embedder.dims)
            if self.index_type is None:
                index = faiss.IndexFlatIP(dims)
            else:
                index = faiss.index_factory(dims, self.index_type, faiss.METRIC_INNER_PRODUCT)
            if not index.is_trained and len(matrix):
                index.train(matrix)
            if len(matrix):
                index.add(matrix)
            self._faiss = index
        return self._faiss

    def search(self, query_vectors: Any, k: int) -> tuple[list[list[float]], list[list[int]]]:
        """Top-``k`` by inner product (exact unless ``index_type`` names an approximate index)."""
        import numpy as np

        matrix = self.index
        queries = np.asarray(query_vectors, dtype=np.float32)
        if self.uses_faiss:
            return self._faiss_search(queries, min(k, matrix.shape[0]))
        return self._exact_search(matrix, queries, k)

    def _faiss_search(self, queries: Any, k: int) -> tuple[list[list[float]], list[list[int]]]:
        import numpy as np

        if k == 0:
            return [[] for _ in queries], [[] for _ in queries]
        index = self.faiss_index()
        # A few more than k, re-sorted by (score, index): ties go to the lower index, as in
        # the NumPy search, whatever order FAISS returned them in.
        wanted = min(index.ntotal, k + 8)
        scores, ids = index.search(np.ascontiguousarray(queries), wanted)
        found_scores, found_ids = [], []
        for row_scores, row_ids in zip(scores, ids):
            pairs = sorted(
                ((float(s), int(i)) for s, i in zip(row_scores, row_ids) if i >= 0),
                key=lambda p: (-p[0], p[1]),
            )[:k]
            found_scores.append([s for s, _ in pairs])
            found_ids.append([i for _, i in pairs])
        return found_scores, found_ids

    def _exact_search(self, matrix: Any, queries: Any, k: int) -> tuple[list[list[float]], list[list[int]]]:
        return exact_top_k(matrix, queries, k, self._scores)

    def _scores(self, queries: Any, block: Any) -> Any:
        if self.device is None:
            return queries @ block.T
        import torch

        with torch.inference_mode():
            on_device = (
                torch.as_tensor(queries, device=self.device) @ torch.as_tensor(block, device=self.device).T
            )
        return on_device.float().cpu().numpy()

    # -- running ----------------------------------------------------------------------

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
        """For each query: ``{"indices": [...], "texts": [...], "scores": [...]}``, best first.

        ``kwargs`` go to the embedder when it embeds the queries. ``force`` / ``cache_only``
        apply to the retrieval cache, as in DataDreamer.
        """
        if not isinstance(k, int) or k < 1:
            raise ValueError(f"EmbeddingRetriever: k must be a positive int, got {k!r}.")

        def compute(batch: list[str]) -> list[dict[str, Any]]:
            vectors = self.embedder.run(
                batch,
                truncate=self.truncate,
                instruction=self.query_instruction,
                batch_size=len(batch),
                **{**self.kwargs, **kwargs},
            )
            scores, indices = self.search(vectors, k)
            texts = self._texts()
            return [
                {"indices": row, "texts": [texts[i] for i in row], "scores": row_scores}
                for row, row_scores in zip(indices, scores)
            ]

        results = self.cached_map(
            queries,
            request={"task": "retrieve", "k": k, "kwargs": kwargs},
            compute=compute,
            batch_size=batch_size,
            # A query answered from the retrieval cache is a cache hit like an embedding's.
            counters=("retrievals", "retrieval_cache_hits", "cache_hits"),
            force=force,
            cache_only=cache_only,
        )
        return self.finish(results, return_generator)

    def unload_model(self) -> None:
        self._index = None
        self._faiss = None
        self.embedder.unload_model()

    # -- DataDreamer's model properties: FAISS's; the card adds the embedder's ---------------

    LICENSE = "https://github.com/facebookresearch/faiss/blob/main/LICENSE"
    CITATIONS = (FAISS_CITATION,)

    def card_name(self) -> str | None:
        return None  # the model named on the card is the embedder

    @property
    def display_name(self) -> str:
        column = self.texts.column if isinstance(self.texts, ColumnRef) else "texts"
        return f"EmbeddingRetriever ({card_model_name(self.embedder.model_name)}) ({column})"

    def card_entries(self) -> dict[str, list[str]]:
        entries = super().card_entries()
        for key, values in self.embedder.card_entries().items():
            entries.setdefault(key, []).extend(v for v in values if v not in entries[key])
        return entries


def exact_top_k(
    matrix: Any, queries: Any, k: int, scores_of: Any = None
) -> tuple[list[list[float]], list[list[int]]]:
    """Exact top-``k`` rows of ``matrix`` by inner product with each query, best first; ties go
    to the lower index. ``scores_of(queries, block)`` scores a block (NumPy's ``@`` by default)."""
    import numpy as np

    scores_of = scores_of or (lambda q, block: q @ block.T)
    count = matrix.shape[0]
    k = min(k, count)
    if k == 0:
        return [[] for _ in queries], [[] for _ in queries]
    best_scores = np.empty((len(queries), 0), dtype=np.float32)
    best_indices = np.empty((len(queries), 0), dtype=np.int64)
    for start in range(0, count, SEARCH_BLOCK):
        block = scores_of(queries, matrix[start : start + SEARCH_BLOCK])
        take = min(k, block.shape[1])
        top = np.argpartition(-block, take - 1, axis=1)[:, :take]
        best_scores = np.concatenate([best_scores, np.take_along_axis(block, top, axis=1)], axis=1)
        best_indices = np.concatenate([best_indices, top + start], axis=1)
    scores: list[list[float]] = []
    indices: list[list[int]] = []
    for row_scores, row_indices in zip(best_scores, best_indices):
        order = np.lexsort((row_indices, -row_scores))[:k]
        scores.append([float(value) for value in row_scores[order]])
        indices.append([int(value) for value in row_indices[order]])
    return scores, indices
