"""Cohere's models (Cohere's OpenAI compatibility API)."""

from __future__ import annotations

from .openai_compatible import OpenAICompatible

__all__ = ["Cohere"]


class Cohere(OpenAICompatible):
    """A model on `Cohere <https://cohere.com>`_: ``https://api.cohere.ai/compatibility/v1``,
    key from ``CO_API_KEY`` (``COHERE_API_KEY`` when that is unset).
    ``Cohere(model_name, api_key, retry_on_fail, cache_folder_path, **kwargs)``
    as in DataDreamer. Writes generations to the model cache.
    """

    PROVIDER = "Cohere"
    API_KEY_ENV = "CO_API_KEY"
    API_KEY_ENV_FALLBACKS = ("COHERE_API_KEY",)
    DEFAULT_BASE_URL = "https://api.cohere.ai/compatibility/v1"
    MODEL_CARD = "https://docs.cohere.com/docs/models"
    LICENSE = "https://cohere.com/saas-agreement"
