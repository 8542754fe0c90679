"""Retrievers: the k most relevant texts of an index for each query, through the model cache."""

from .embedding_retriever import EmbeddingRetriever
from .parallel_retriever import ParallelRetriever
from .retriever import Retriever

__all__ = ["ParallelRetriever", "EmbeddingRetriever", "Retriever"]
