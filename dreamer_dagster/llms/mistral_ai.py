"""Mistral AI's hosted models (OpenAI-compatible endpoint)."""

from __future__ import annotations

from typing import Any

from ..citations import MISTRAL_CITATION
from .openai_compatible import OpenAICompatible

__all__ = ["MistralAI"]


class MistralAI(OpenAICompatible):
    """A model on `Mistral AI <https://mistral.ai>`_: ``https://api.mistral.ai/v1``, key from
    ``MISTRAL_API_KEY``. ``MistralAI(model_name, api_key, retry_on_fail,
    cache_folder_path, **kwargs)`` as in DataDreamer (context length 32,758
    tokens unless ``max_context_length=`` says otherwise). Writes generations to the model cache.
    """

    PROVIDER = "MistralAI"
    API_KEY_ENV = "MISTRAL_API_KEY"
    DEFAULT_BASE_URL = "https://api.mistral.ai/v1"
    MODEL_CARD = "https://docs.mistral.ai/models"
    LICENSE = "https://mistral.ai/terms-of-use/"
    CITATIONS = (MISTRAL_CITATION,)

    def __init__(
        self,
        model_name: str,
        api_key: str | None = None,
        retry_on_fail: bool = True,
        cache_folder_path: str | None = None,
        **kwargs: Any,
    ):
        kwargs.setdefault("max_context_length", 32768 - 10)
        super().__init__(model_name, api_key, retry_on_fail, cache_folder_path, **kwargs)
