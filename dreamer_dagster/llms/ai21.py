"""AI21 Labs' Jamba models (AI21 Studio's OpenAI-style chat completions)."""

from __future__ import annotations

from .openai_compatible import OpenAICompatible

__all__ = ["AI21"]


class AI21(OpenAICompatible):
    """A model on `AI21 Studio <https://studio.ai21.com>`_: ``https://api.ai21.com/studio/v1``,
    key from ``AI21_API_KEY``. ``AI21(model_name, api_key, retry_on_fail,
    cache_folder_path, **kwargs)`` as in DataDreamer. Writes generations to the model cache.
    """

    PROVIDER = "AI21"
    API_KEY_ENV = "AI21_API_KEY"
    DEFAULT_BASE_URL = "https://api.ai21.com/studio/v1"
    MODEL_CARD = "https://www.ai21.com/blog/introducing-j2"
    LICENSE = "https://www.ai21.com/terms-of-use"
