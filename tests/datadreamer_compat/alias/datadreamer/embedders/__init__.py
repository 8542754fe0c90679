"""``datadreamer.embedders``."""

from dreamer_dagster.embedders import (
    Embedder,
    OpenAIEmbedder,
    ParallelEmbedder,
    SentenceTransformersEmbedder,
    TogetherEmbedder,
)

__all__ = [
    "Embedder",
    "OpenAIEmbedder",
    "ParallelEmbedder",
    "SentenceTransformersEmbedder",
    "TogetherEmbedder",
]
