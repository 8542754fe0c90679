"""Together AI's hosted models (OpenAI-compatible endpoint)."""

from __future__ import annotations

from typing import Any

from ..task_models.hf_hub_info import hf_card_found, hf_citations, hf_license, hf_model_card_url
from .openai_compatible import OpenAICompatible

__all__ = ["Together"]


class Together(OpenAICompatible):
    """A model on `Together AI <https://www.together.ai>`_: ``https://api.together.xyz/v1``, key from
    ``TOGETHER_API_KEY``.

    DataDreamer's order: ``Together(model_name, chat_prompt_template,
    system_prompt, api_key, max_context_length, tokenizer_model_name,
    tokenizer_revision, tokenizer_trust_remote_code, retry_on_fail,
    cache_folder_path, **kwargs)``. With a ``chat_prompt_template`` the prompt
    is formatted with it and sent to the completions endpoint; otherwise to chat
    completions. The ``tokenizer_*`` arguments are accepted and kept; token
    counts are the offline estimate. Writes generations to the model cache.
    """

    PROVIDER = "Together"
    API_KEY_ENV = "TOGETHER_API_KEY"
    DEFAULT_BASE_URL = "https://api.together.xyz/v1"
    MODEL_CARD = "https://docs.together.ai/docs/inference-models"
    LICENSE = "https://together.ai/terms-of-service"

    def __init__(
        self,
        model_name: str,
        chat_prompt_template: str | None = None,
        system_prompt: str | None = None,
        api_key: str | None = None,
        max_context_length: int | None = None,
        tokenizer_model_name: str | None = None,
        tokenizer_revision: str | None = None,
        tokenizer_trust_remote_code: bool = False,
        retry_on_fail: bool = True,
        cache_folder_path: str | None = None,
        **kwargs: Any,
    ):
        super().__init__(
            model_name,
            api_key,
            retry_on_fail,
            cache_folder_path,
            system_prompt=system_prompt,
            max_context_length=max_context_length,
            chat=chat_prompt_template is None,
            **kwargs,
        )
        self.chat_prompt_template = chat_prompt_template
        self.tokenizer_model_name = tokenizer_model_name
        self.tokenizer_revision = tokenizer_revision
        self.tokenizer_trust_remote_code = tokenizer_trust_remote_code

    @property
    def model_card(self) -> str | None:
        """The Hub card of the model Together serves, where it has one; else Together's model list."""
        name = str(self.model_name)
        return (hf_card_found(name) and hf_model_card_url(name)) or self.MODEL_CARD

    @property
    def license(self) -> str | None:
        return hf_license(str(self.model_name)) or self.LICENSE

    @property
    def citation(self) -> list[str] | None:
        return hf_citations(str(self.model_name)) or None

    def identity(self) -> dict:
        return {
            **super().identity(),
            "chat_prompt_template": self.chat_prompt_template,
            "system_prompt": self.system_prompt,
        }
