"""Google AI Studio's Gemini models (OpenAI-compatible endpoint)."""

from __future__ import annotations

from ..citations import GEMINI_CITATION
from .openai_compatible import OpenAICompatible

__all__ = ["GoogleAIStudio"]


class GoogleAIStudio(OpenAICompatible):
    """A Gemini model from `Google AI Studio <https://aistudio.google.com>`_:
    ``https://generativelanguage.googleapis.com/v1beta/openai``, key from ``GEMINI_API_KEY``
    (``GOOGLE_API_KEY`` when that is unset). ``GoogleAIStudio(model_name, api_key,
    retry_on_fail, cache_folder_path, **kwargs)`` as in DataDreamer. Writes generations to the model cache.
    """

    PROVIDER = "GoogleAIStudio"
    API_KEY_ENV = "GEMINI_API_KEY"
    API_KEY_ENV_FALLBACKS = ("GOOGLE_API_KEY",)
    DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com/v1beta/openai"
    MODEL_CARD = "https://arxiv.org/abs/2312.11805"
    LICENSE = "https://ai.google.dev/gemini-api/terms"
    CITATIONS = (GEMINI_CITATION,)
