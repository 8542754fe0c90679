"""Anthropic's Claude models through the official ``anthropic`` SDK (the Messages API)."""

from __future__ import annotations

import os
from typing import Any

from ..errors import NonRetryableError
from ..model import ClientSettings
from ..model_info import stand_in_tokenizer
from .api_retry import MalformedResponse, RetryPolicy, call_with_retries, malformed_body_errors
from .async_stream import AsyncStream
from .generation_result import GenerationResult
from .llm import LLM
from .request import GenerationRequest
from .token_estimate import estimate_tokens
from .urls import Endpoint, sdk_client_options, secrets_of, sending_endpoint, split_url

__all__ = ["Anthropic"]

#: ``max_tokens`` is required by the Messages API; used when a step sets no ``max_new_tokens``.
DEFAULT_MAX_TOKENS = 4096
#: Every current Claude model reads at least this many tokens.
DEFAULT_CONTEXT_LENGTH = 200_000


class Anthropic(ClientSettings, LLM):
    """A Claude model behind Anthropic's Messages API (``anthropic.AsyncAnthropic``).

    ``Anthropic(model_name, api_key, retry_on_fail, cache_folder_path, **kwargs)``
    as in DataDreamer; ``kwargs`` go to the client. The key is ``api_key`` or, read
    when a step runs, ``ANTHROPIC_API_KEY``; the base URL is ``base_url=`` or
    ``ANTHROPIC_BASE_URL`` (read by the SDK); an ``AnthropicResource`` gives the key and
    timeout at run time instead (see :mod:`~dreamer_dagster.resources`). The key is never part of the
    identity, a fingerprint, step.json, the cache or a log line; nor is a
    credential inside ``base_url`` (see :mod:`~dreamer_dagster.llms.urls`).

    It keeps ``OpenAI``'s rules: at most ``max_concurrency`` requests in flight
    (one shared :class:`~dreamer_dagster.llms.async_stream.AsyncStream`), the one
    retry rule of :mod:`~dreamer_dagster.llms.api_retry` (429, 529 "overloaded"
    and other 5xx retried with backoff honouring ``Retry-After``; any other 4xx
    fails at once as a :class:`~dreamer_dagster.errors.NonRetryableError` naming
    the model), every answer through the model cache. Greedy decoding
    (``temperature`` or ``top_p`` 0, DataDreamer's default) is sent as
    ``temperature=0``; ``n > 1`` makes ``n`` requests; ``stop`` becomes
    ``stop_sequences``. Writes generations to the model cache.
    """

    PROVIDER = "Anthropic"
    API_KEY_ENV = "ANTHROPIC_API_KEY"
    _endpoint: Endpoint | None = None  # the URL as given, secrets included; never shown

    def __init__(
        self,
        model_name: str,
        api_key: str | None = None,
        retry_on_fail: bool = True,
        cache_folder_path: str | None = None,
        *,
        system_prompt: str | None = None,
        base_url: str | None = None,
        max_concurrency: int = 16,
        timeout: float = 600.0,
        max_context_length: int | None = None,
        max_retries: int = 8,
        retry_initial_delay: float = 0.5,
        retry_max_delay: float = 60.0,
        **kwargs: Any,
    ):
        if not isinstance(model_name, str) or not model_name:
            raise TypeError(f"Anthropic: model_name must be a model name, got {model_name!r}.")
        if api_key is not None and not isinstance(api_key, str):
            raise TypeError(
                "Anthropic: api_key (the 2nd positional argument, as in DataDreamer) must be a string."
            )
        super().__init__(model_name, system_prompt=system_prompt)
        self._endpoint = split_url(base_url) if base_url else None
        self.base_url = self._endpoint.public if self._endpoint else None
        self.retry_on_fail = retry_on_fail
        self.cache_folder_path = cache_folder_path
        self.max_concurrency = int(max_concurrency)
        self.timeout = timeout
        self.max_context_length = max_context_length
        self.max_retries = max_retries
        self.retry_initial_delay = retry_initial_delay
        self.retry_max_delay = retry_max_delay
        self._api_key = api_key
        self._client_kwargs = dict(kwargs)
        if self.max_concurrency < 1:
            raise ValueError(f"Anthropic: max_concurrency must be >= 1 (got {max_concurrency}).")

    def identity(self) -> dict:
        return {"model_name": self.model_name, "base_url": self.base_url, "system_prompt": self.system_prompt}

    # DataDreamer's licence; its model card is AI21's page (a slip), so Anthropic's models page here.
    MODEL_CARD = "https://docs.anthropic.com/en/docs/about-claude/models"
    LICENSE = "https://console.anthropic.com/legal/terms"

    @property
    def client(self) -> Any:
        """The anthropic SDK's synchronous client for this model's endpoint (key read now)."""
        from anthropic import Anthropic as AnthropicClient

        options = {"api_key": self._resolve_api_key(), "timeout": self.timeout, "max_retries": 0}
        endpoint = sending_endpoint(self.base_url, self._endpoint)
        return AnthropicClient(**sdk_client_options(endpoint, {**options, **self._client_kwargs}))

    @property
    def tokenizer(self) -> Any:
        """DataDreamer's stand-in tokenizer for an API model (GPT-2's)."""
        return stand_in_tokenizer(self.model_name)

    def __repr__(self) -> str:
        return f"Anthropic(model_name={self.model_name!r}, base_url={self.base_url!r})"

    # -- tokens and context -------------------------------------------------------------

    def count_tokens(self, value: str) -> int:
        return estimate_tokens(value)

    def _count_text_tokens(self, text: str) -> int:
        return estimate_tokens(text) + estimate_tokens(self.system_prompt or "") + 7

    def _context_length(self) -> int | None:
        return self.max_context_length or DEFAULT_CONTEXT_LENGTH

    def _lookahead(self, batch_size: int) -> int:
        return max(8 * max(batch_size, 64), 8 * self.max_concurrency)

    # -- requests ---------------------------------------------------------------------

    def _label(self) -> str:
        return f"Anthropic model {self.model_name!r}" + (f" at {self.base_url}" if self.base_url else "")

    def _resolve_api_key(self) -> str:
        key = self._api_key or os.environ.get(self.API_KEY_ENV)
        if not key:
            raise NonRetryableError(
                f"{self._label()}: no API key. Fix: set the ANTHROPIC_API_KEY environment variable "
                "where the pipeline runs (or pass api_key=...)."
            )
        return key

    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(
            self.retry_on_fail, self.max_retries, self.retry_initial_delay, self.retry_max_delay
        )

    def _open_stream(self, params: dict, batch_size: int) -> AsyncStream:
        for name, fix in (
            ("repetition_penalty", "remove it"),
            ("logit_bias", "remove it"),
        ):
            if params[name]:
                raise NonRetryableError(f"{self._label()} takes no {name}. Fix: {fix}.")
        api_key = self._resolve_api_key()
        body = self._request_arguments(params)
        endpoint = sending_endpoint(self.base_url, self._endpoint)
        secrets = secrets_of(api_key, endpoint)

        def make_client() -> Any:
            from anthropic import AsyncAnthropic

            options = {"api_key": api_key, "timeout": self.timeout, "max_retries": 0, **self._client_kwargs}
            return AsyncAnthropic(**sdk_client_options(endpoint, options))

        async def close_client(client: Any) -> None:
            await client.close()

        async def call(client: Any, request: GenerationRequest) -> GenerationResult:
            return await self._call(client, request, params, body, secrets)

        return AsyncStream(call, self.max_concurrency, make_client, close_client)

    def _request_arguments(self, params: dict) -> dict:
        body: dict[str, Any] = {
            "model": self.model_name,
            "max_tokens": params["max_new_tokens"] or DEFAULT_MAX_TOKENS,
        }
        # The SDK no longer lists the sampling parameters (newer models fix them);
        # they still go in the body for the models that take them.
        sampling: dict[str, Any] = {}
        if self.is_greedy(params):
            sampling["temperature"] = 0.0
        else:
            sampling["temperature"] = params["temperature"]
            if params["top_p"] < 1.0:
                sampling["top_p"] = params["top_p"]
        if params["stop"]:
            body["stop_sequences"] = list(params["stop"])
        if self.system_prompt:
            body["system"] = self.system_prompt
        body["extra_body"] = {**sampling, **(params["kwargs"] or {})}
        return body

    async def _call(
        self,
        client: Any,
        request: GenerationRequest,
        params: dict,
        body: dict,
        secrets: tuple[str, ...] = (),
    ) -> GenerationResult:
        import anthropic

        texts: list[str] = []
        prompt_tokens = completion_tokens = 0
        for _ in range(params["n"]):

            async def attempt() -> Any:
                response = await client.messages.create(
                    messages=[{"role": "user", "content": request.text}], **body
                )
                parts = [block.text for block in response.content or [] if block.type == "text"]
                if not parts:
                    raise MalformedResponse(f"no text content in {response.content!r}")
                return response, "".join(parts)

            response, text = await call_with_retries(
                attempt,
                self.retry_policy(),
                self._label(),
                (anthropic.APIError, MalformedResponse, *malformed_body_errors()),
                secrets=secrets,
                url=self.base_url or "https://api.anthropic.com",
            )
            texts.append(self._apply_stop(text, params["stop"]))
            usage = getattr(response, "usage", None)
            reported = usage is not None
            prompt_tokens += int(getattr(usage, "input_tokens", 0) or request.prompt_tokens)
            completion_tokens += int(getattr(usage, "output_tokens", 0) or estimate_tokens(text))
        return GenerationResult(texts, prompt_tokens, completion_tokens, usage_reported=reported)
