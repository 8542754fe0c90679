"""``datadreamer.retrievers``."""

from dreamer_dagster.retrievers import EmbeddingRetriever, ParallelRetriever, Retriever

__all__ = ["EmbeddingRetriever", "ParallelRetriever", "Retriever"]
