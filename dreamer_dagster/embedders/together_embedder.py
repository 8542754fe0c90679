"""TogetherEmbedder: embeddings from Together AI (its OpenAI-compatible embeddings endpoint)."""

from __future__ import annotations

from typing import Any

from ..llms.openai_compatible import OpenAICompatible
from ..llms.together import Together
from .openai_embedder import OpenAIEmbedder

__all__ = ["TogetherEmbedder"]


class TogetherEmbedder(OpenAIEmbedder):
    """Embeds texts with a `Together AI <https://www.together.ai>`_ model:
    ``https://api.together.xyz/v1/embeddings``, key from ``TOGETHER_API_KEY`` (read at run time,
    never stored).

    DataDreamer's order: ``TogetherEmbedder(model_name, api_key,
    max_context_length, tokenizer_model_name, tokenizer_revision,
    tokenizer_trust_remote_code, retry_on_fail, cache_folder_path, ...)``; the
    ``tokenizer_*`` and ``warn_*`` arguments are accepted and kept (the server
    counts and refuses over-long texts). Writes the model cache
    ``<output>/.cache/TogetherEmbedder-<name>-<hash>.db``.
    """

    API_KEY_ENV = "TOGETHER_API_KEY"
    DEFAULT_BASE_URL = "https://api.together.xyz/v1"
    # DataDreamer's: Together's card, licence, citations and stand-in tokenizer.
    MODEL_CARD = Together.MODEL_CARD
    LICENSE = Together.LICENSE
    model_card = Together.model_card
    license = Together.license
    citation = Together.citation
    tokenizer = OpenAICompatible.tokenizer

    def __init__(
        self,
        model_name: str,
        api_key: str | None = None,
        max_context_length: int | None = None,
        tokenizer_model_name: str | None = None,
        tokenizer_revision: str | None = None,
        tokenizer_trust_remote_code: bool = False,
        retry_on_fail: bool = True,
        cache_folder_path: str | None = None,
        warn_tokenizer_model_name: bool | None = True,
        warn_max_context_length: bool | None = True,
        *,
        base_url: str | None = None,
        **kwargs: Any,
    ):
        super().__init__(
            model_name,
            api_key=api_key,
            base_url=base_url,
            retry_on_fail=retry_on_fail,
            cache_folder_path=cache_folder_path,
            **kwargs,
        )
        self.max_context_length = max_context_length
        self.tokenizer_model_name = tokenizer_model_name
        self.tokenizer_revision = tokenizer_revision
        self.tokenizer_trust_remote_code = tokenizer_trust_remote_code

    @property
    def model_max_length(self) -> int:
        return self.max_context_length or 8192
