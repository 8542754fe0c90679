"""A Hugging Face Inference Endpoint or text-generation-inference server (its Messages API)."""

from __future__ import annotations

import re
import urllib.parse
from typing import Any

from ..citations import HF_TRANSFORMERS_CITATION
from ..model_info import load_hf_tokenizer
from ..task_models.hf_hub_info import hf_card_found, hf_citations, hf_license, hf_model_card_url
from .openai_compatible import OpenAICompatible

__all__ = ["HFAPIEndpoint"]

#: Hugging Face's router, which serves Hub model names given as the endpoint.
HF_ROUTER_URL = "https://router.huggingface.co/v1"


class HFAPIEndpoint(OpenAICompatible):
    """A model behind a `Hugging Face Inference Endpoint <https://huggingface.co/inference-endpoints>`_
    or any text-generation-inference server, through its OpenAI-compatible
    Messages API (``<endpoint>/v1/chat/completions``); key from ``token`` or ``HF_TOKEN``.

    ``HFAPIEndpoint(endpoint, model_name, chat_prompt_template, system_prompt,
    token, revision, trust_remote_code, retry_on_fail, cache_folder_path,
    **kwargs)`` as in DataDreamer. ``endpoint`` is a URL, or a Hub model name
    (then Hugging Face's router, ``https://router.huggingface.co/v1``, serves it).
    With a ``chat_prompt_template`` the formatted prompt goes to the completions
    endpoint. Writes generations to the model cache.
    """

    PROVIDER = "HFAPIEndpoint"
    API_KEY_ENV = "HF_TOKEN"
    DEFAULT_BASE_URL = HF_ROUTER_URL

    def __init__(
        self,
        endpoint: str,
        model_name: str,
        chat_prompt_template: str | None = None,
        system_prompt: str | None = None,
        token: str | None = None,
        revision: str | None = None,
        trust_remote_code: bool = False,
        retry_on_fail: bool = True,
        cache_folder_path: str | None = None,
        **kwargs: Any,
    ):
        if not isinstance(endpoint, str) or not endpoint:
            raise TypeError(f"HFAPIEndpoint: endpoint must be a URL or a model name, got {endpoint!r}.")
        is_url = endpoint.startswith(("http://", "https://"))
        base_url = endpoint.rstrip("/").removesuffix("/v1") + "/v1" if is_url else HF_ROUTER_URL
        self.endpoint = endpoint
        self.revision = revision
        self.trust_remote_code = trust_remote_code
        super().__init__(
            model_name,
            token,
            retry_on_fail,
            cache_folder_path,
            system_prompt=system_prompt,
            base_url=kwargs.pop("base_url", None) or base_url,
            chat=chat_prompt_template is None,
            **kwargs,
        )
        self.chat_prompt_template = chat_prompt_template

    def identity(self) -> dict:
        return {
            **super().identity(),
            "revision": self.revision,
            "chat_prompt_template": self.chat_prompt_template,
            "system_prompt": self.system_prompt,
        }

    # -- DataDreamer's model properties: those of the Hub model the endpoint serves ----------

    @property
    def model_card(self) -> str | None:
        name = str(self.model_name)
        return hf_model_card_url(name) if hf_card_found(name, self.revision) else None

    @property
    def license(self) -> str | None:
        return hf_license(str(self.model_name), self.revision)

    @property
    def citation(self) -> list[str] | None:
        return [HF_TRANSFORMERS_CITATION, *hf_citations(str(self.model_name), self.revision)]

    @property
    def display_name(self) -> str:
        path = re.sub(r"/(.*)", r"\1", urllib.parse.urlparse(self.endpoint).path).strip()
        return f"HFAPIEndpoint ({path or self.endpoint})"

    @property
    def tokenizer(self) -> Any:
        """The served model's transformers tokenizer (``model_name`` at ``revision``)."""
        return load_hf_tokenizer(self.model_name, self.revision, self.trust_remote_code)
