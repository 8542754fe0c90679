"""The shared base of the thin provider classes: OpenAI's machinery on a provider's OpenAI-compatible endpoint."""

from __future__ import annotations

from typing import Any, ClassVar

from ..model_info import ModelInfo, stand_in_tokenizer
from .openai import OpenAI

__all__ = ["OpenAICompatible", "unavailable"]


class OpenAICompatible(OpenAI):
    """Base of providers served through an OpenAI-compatible Chat Completions endpoint.

    A subclass names its ``PROVIDER``, the ``DEFAULT_BASE_URL`` its documentation
    gives and the ``API_KEY_ENV`` variable its key is read from at run time; the
    rest is :class:`~dreamer_dagster.llms.OpenAI`'s: bounded concurrency, the one
    retry rule, fail fast on 4xx, every answer through the model cache, the key
    never stored. ``base_url=`` points it elsewhere (a proxy, a test server).
    Chat models get no default system prompt. Writes generations to the model cache.
    """

    DEFAULT_SYSTEM_PROMPT: ClassVar[str | None] = None
    # DataDreamer's card, licence and citations of the provider's models (class attributes).
    model_card = ModelInfo.model_card
    license = ModelInfo.license
    citation = ModelInfo.citation

    def __init__(
        self,
        model_name: str,
        api_key: str | None = None,
        retry_on_fail: bool = True,
        cache_folder_path: str | None = None,
        *,
        system_prompt: str | None = None,
        base_url: str | None = None,
        **options: Any,
    ):
        if not isinstance(model_name, str) or not model_name:
            raise TypeError(f"{type(self).__name__}: model_name must be a model name, got {model_name!r}.")
        if api_key is not None and not isinstance(api_key, str):
            raise TypeError(
                f"{type(self).__name__}: api_key (the 2nd positional argument, as in DataDreamer) "
                f"must be a string, got {type(api_key).__name__}."
            )
        options.setdefault("chat", True)
        super().__init__(
            model_name,
            system_prompt=system_prompt,
            api_key=api_key,
            base_url=base_url or self.DEFAULT_BASE_URL,
            retry_on_fail=retry_on_fail,
            cache_folder_path=cache_folder_path,
            **options,
        )

    @property
    def tokenizer(self) -> Any:
        """DataDreamer's stand-in tokenizer for an API model: ``tokenizer_model_name``'s
        transformers tokenizer where given, else GPT-2's (Llama-2's for Llama-2 chat models)."""
        return stand_in_tokenizer(
            self.model_name,
            getattr(self, "tokenizer_model_name", None),
            revision=getattr(self, "tokenizer_revision", None),
            trust_remote_code=getattr(self, "tokenizer_trust_remote_code", False),
        )


def unavailable(name: str, why: str, instead: str) -> NotImplementedError:
    """The error a DataDreamer class that cannot work here raises when it is declared."""
    return NotImplementedError(f"{name} is not available in dreamer_dagster: {why} Fix: {instead}")
