"""Embedders: texts to vectors, every vector through the model cache."""

from .default_embedder import default_embedder
from .embedder import Embedder
from .openai_embedder import OpenAIEmbedder
from .sentence_transformers_embedder import SentenceTransformersEmbedder

__all__ = ["Embedder", "OpenAIEmbedder", "SentenceTransformersEmbedder", "default_embedder"]
