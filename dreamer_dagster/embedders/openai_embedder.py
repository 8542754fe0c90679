"""OpenAIEmbedder: embeddings from OpenAI's API or any OpenAI-compatible server, cached."""

from __future__ import annotations

import os
from typing import Any, ClassVar

from ..cards import CITATION, LICENSE, MODEL_CARD, MODEL_NAME
from ..citations import OPENAI_EMBEDDINGS_CITATION
from ..model import ClientSettings
from ..pools import endpoint_pool
from .embedder import Embedder

__all__ = ["OpenAIEmbedder"]


class OpenAIEmbedder(ClientSettings, Embedder):
    """Embeds texts with the OpenAI embeddings API (``/v1/embeddings``).

    ``base_url`` points it at any OpenAI-compatible server (vLLM, Ollama, a
    proxy). The API key is ``api_key`` or, at run time, ``OPENAI_API_KEY``; it is
    never part of the identity, fingerprints, ``step.json`` or the cache. Failed
    requests (429, 5xx, timeouts, lost connections) are retried with exponential
    back-off up to ``max_retries`` times, honouring ``Retry-After`` (none with
    ``retry_on_fail=False``). DataDreamer's order: ``(model_name, dimensions,
    organization, api_key, base_url, api_version, retry_on_fail,
    cache_folder_path, **kwargs)``. One request
    embeds one batch. ``truncate`` is left to the server (counting OpenAI tokens
    needs tables fetched from the internet), which refuses over-long texts. Writes the model cache
    ``<output>/.cache/OpenAIEmbedder-<name>-<hash>.db``.
    """

    #: The key's environment variable and the default base URL (a provider's subclass sets its own).
    API_KEY_ENV: ClassVar[str] = "OPENAI_API_KEY"
    DEFAULT_BASE_URL: ClassVar[str | None] = None
    KINDS = ("openai",)

    def __init__(
        self,
        model_name: str,
        dimensions: int | None = None,
        organization: str | None = None,
        api_key: str | None = None,
        base_url: str | None = None,
        api_version: str | None = None,
        retry_on_fail: bool = True,
        cache_folder_path: str | None = None,
        *,
        max_retries: int = 8,
        timeout: float | None = 120.0,
        **kwargs: Any,
    ):
        if not isinstance(model_name, str) or not model_name:
            raise ValueError(f"OpenAIEmbedder: model_name must be a non-empty string, got {model_name!r}.")
        if dimensions is not None and (not isinstance(dimensions, int) or dimensions < 1):
            raise ValueError(f"OpenAIEmbedder: dimensions must be a positive int, got {dimensions!r}.")
        self.model_name = model_name
        self.dimensions = dimensions
        self.organization = organization
        base_url = base_url or self.DEFAULT_BASE_URL
        self.base_url = base_url.rstrip("/") if base_url else None
        self.api_version = api_version
        self.retry_on_fail = retry_on_fail
        self.cache_folder_path = cache_folder_path
        self.max_retries = max_retries if retry_on_fail else 0
        self.timeout = timeout
        self.kwargs = kwargs
        self._api_key = api_key

    def identity(self) -> dict:
        return {
            "model_name": self.model_name,
            "base_url": self.base_url,
            "api_version": self.api_version,
            "dimensions": self.dimensions,
            "kwargs": self.kwargs,
        }

    def default_pool(self) -> str:
        """One Dagster pool per endpoint, shared with the ``OpenAI`` LLMs on it."""
        return endpoint_pool(getattr(self, "PROVIDER", "OpenAI"), self.base_url, "api.openai.com")

    @property
    def client(self) -> Any:
        """The ``openai.OpenAI`` client (made on first use; the key read then)."""
        client = self.__dict__.get("_client")
        if client is None:
            import openai

            api_key = self._api_key or os.environ.get(self.API_KEY_ENV)
            if not api_key:
                if self.base_url is None or self.DEFAULT_BASE_URL is not None:
                    raise RuntimeError(
                        f"{type(self).__name__} needs an API key. Fix: set the {self.API_KEY_ENV} environment "
                        "variable where the pipeline runs (or pass api_key=...)."
                    )
                api_key = "no-key"  # an OpenAI-compatible server that wants none
            options: dict[str, Any] = {
                "api_key": api_key,
                "base_url": self.base_url,
                "organization": self.organization,
                "max_retries": self.max_retries,
                "timeout": self.timeout,
            }
            if self.api_version is not None:
                client = openai.AzureOpenAI(api_version=self.api_version, **options)
            else:
                client = openai.OpenAI(**options)
            self._client = client
        return client

    @property
    def dims(self) -> int:
        if self.dimensions is not None:
            return self.dimensions
        return 3072 if "-large" in self.model_name else 1536

    @property
    def model_max_length(self) -> int:
        return 8191

    def embed_batch(self, texts: list[str], truncate: bool, **kwargs: Any) -> list[list[float]]:
        options = {**self.kwargs, **kwargs}
        if self.dimensions is not None:
            options["dimensions"] = self.dimensions
        response = self.client.embeddings.create(model=self.model_name, input=list(texts), **options)
        data = sorted(response.data, key=lambda item: item.index)
        if len(data) != len(texts):
            raise RuntimeError(
                f"OpenAIEmbedder({self.model_name}): the server returned {len(data)} embeddings "
                f"for {len(texts)} texts."
            )
        if self.stats is not None and getattr(response, "usage", None) is not None:
            self.stats["prompt_tokens"] += int(getattr(response.usage, "prompt_tokens", 0) or 0)
        return [[float(value) for value in item.embedding] for item in data]

    def unload_model(self) -> None:
        client = self.__dict__.pop("_client", None)
        if client is not None:
            client.close()

    def card_entries(self) -> dict[str, list[str]]:
        entries: dict[str, list[str]] = {MODEL_NAME: [self.model_name]}
        if self.base_url is None:
            entries[MODEL_CARD] = ["https://platform.openai.com/docs/guides/embeddings"]
            entries[LICENSE] = ["https://openai.com/policies/terms-of-use"]
            entries[CITATION] = [OPENAI_EMBEDDINGS_CITATION]
        return entries
