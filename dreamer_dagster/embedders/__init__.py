"""Embedders: texts to vectors, every vector through the model cache."""

from .default_embedder import default_embedder
from .embedder import Embedder
from .openai_embedder import OpenAIEmbedder
from .parallel_embedder import ParallelEmbedder
from .sentence_transformers_embedder import SentenceTransformersEmbedder
from .together_embedder import TogetherEmbedder

__all__ = [
    "ParallelEmbedder",
    "Embedder",
    "OpenAIEmbedder",
    "SentenceTransformersEmbedder",
    "TogetherEmbedder",
    "default_embedder",
]
