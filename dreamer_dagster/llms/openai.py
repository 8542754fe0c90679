"""OpenAI and any OpenAI-compatible server (vLLM, Ollama, llama.cpp...) by ``base_url``."""

from __future__ import annotations

import asyncio
import os
import random
import re
from email.utils import parsedate_to_datetime
from typing import Any

from .async_stream import AsyncStream
from .generation_result import GenerationResult
from .llm import LLM
from .pricing import estimate_cost
from .request import GenerationRequest
from .token_estimate import estimate_tokens

__all__ = ["OpenAI"]

DEFAULT_SYSTEM_PROMPT = "You are a helpful assistant."

_COMPLETION_MODELS = re.compile(r"^(gpt-3\.5-turbo-instruct|davinci-002|babbage-002|text-)")

# Context lengths of OpenAI's models, longest prefix first.
_CONTEXT_LENGTHS = (
    ("gpt-4.1", 1_047_576),
    ("gpt-4o", 128_000),
    ("gpt-4-turbo", 128_000),
    ("gpt-4-32k", 32_768),
    ("gpt-4-1106", 128_000),
    ("gpt-4-0125", 128_000),
    ("gpt-4", 8_192),
    ("gpt-3.5-turbo-instruct", 4_096),
    ("gpt-3.5-turbo", 16_385),
    ("o1-mini", 128_000),
    ("o1", 200_000),
    ("o3", 200_000),
    ("o4", 200_000),
    ("davinci-002", 16_384),
    ("babbage-002", 16_384),
)


class OpenAI(LLM):
    """A model behind the OpenAI API, chat or completion.

    Requests run on an event loop with at most ``max_concurrency`` in flight and
    no batch barrier; results are still returned in input order. 429s (honouring
    ``Retry-After``), 5xx, timeouts, dropped connections and malformed bodies are
    retried with exponential backoff and jitter; 400/401/403/404 fail at once,
    naming the model. The API key is read from ``OPENAI_API_KEY`` when a run
    starts (or taken from ``api_key``) and is never part of the identity, a
    fingerprint, step.json or the cache. Tokens are counted offline by estimate
    (see ``token_estimate``); the server's ``usage`` figures are used where given.
    ``max_concurrency``, ``timeout`` and the retry settings change how results
    are fetched, not what they are, so they are not part of the identity.
    Writes generations to the model cache.
    """

    def __init__(
        self,
        model_name: str,
        base_url: str | None = None,
        api_key: str | None = None,
        organization: str | None = None,
        max_concurrency: int = 16,
        timeout: float = 120.0,
        system_prompt: str | None = None,
        retry_on_fail: bool = True,
        chat: bool | None = None,
        max_context_length: int | None = None,
        max_retries: int = 8,
        retry_initial_delay: float = 0.5,
        retry_max_delay: float = 30.0,
    ):
        is_chat = chat if chat is not None else not _COMPLETION_MODELS.match(model_name)
        if is_chat and system_prompt is None:
            system_prompt = DEFAULT_SYSTEM_PROMPT
        super().__init__(model_name, system_prompt=system_prompt)
        self.base_url = base_url.rstrip("/") if base_url else None
        self.organization = organization
        self.max_concurrency = int(max_concurrency)
        self.timeout = timeout
        self.retry_on_fail = retry_on_fail
        self.chat = is_chat
        self.max_context_length = max_context_length
        self.max_retries = max_retries
        self.retry_initial_delay = retry_initial_delay
        self.retry_max_delay = retry_max_delay
        self._api_key = api_key
        if self.max_concurrency < 1:
            raise ValueError(f"max_concurrency must be >= 1 (got {max_concurrency}).")

    def identity(self) -> dict:
        return {
            "model_name": self.model_name,
            "base_url": self.base_url,
            "chat": self.chat,
            "system_prompt": self.system_prompt if self.chat else None,
        }

    def card_entries(self) -> dict[str, list[str]]:
        entries = {"Model Name": [self.model_name]}
        if self.base_url is None:
            entries["Model Card"] = ["https://platform.openai.com/docs/models"]
            entries["License Information"] = ["https://openai.com/policies/terms-of-use"]
        return entries

    def __repr__(self) -> str:
        return f"OpenAI(model_name={self.model_name!r}, base_url={self.base_url!r})"

    # -- tokens and context -------------------------------------------------------------

    def count_tokens(self, value: str) -> int:
        return estimate_tokens(value)

    def _count_text_tokens(self, text: str) -> int:
        if not self.chat:
            return estimate_tokens(text)
        # Each chat message costs a few framing tokens besides its content.
        return estimate_tokens(text) + estimate_tokens(self.system_prompt or "") + 7

    def _context_length(self) -> int | None:
        if self.max_context_length is not None:
            return self.max_context_length
        if self.base_url is not None:
            return None
        for prefix, length in _CONTEXT_LENGTHS:
            if self.model_name.startswith(prefix):
                return length
        return None

    def _estimate_cost(self, prompt_tokens: int, completion_tokens: int) -> float | None:
        if self.base_url is not None:
            return None
        return estimate_cost(self.model_name, prompt_tokens, completion_tokens)

    def _lookahead(self, batch_size: int) -> int:
        return max(8 * max(batch_size, 64), 8 * self.max_concurrency)

    def _prompts_for_response_format(self) -> bool:
        return not self.chat

    # -- requests ---------------------------------------------------------------------

    def _resolve_api_key(self) -> str:
        key = self._api_key or os.environ.get("OPENAI_API_KEY")
        if key:
            return key
        if self.base_url is not None:
            return "no-key"  # local OpenAI-compatible servers rarely check it
        raise ValueError(
            f"OpenAI model {self.model_name!r}: no API key. Fix: set the OPENAI_API_KEY variable."
        )

    def _open_stream(self, params: dict, batch_size: int) -> AsyncStream:
        if params["repetition_penalty"] is not None:
            raise ValueError(
                f"OpenAI model {self.model_name!r} has no repetition_penalty. "
                "Fix: pass frequency_penalty= or presence_penalty= instead."
            )
        api_key = self._resolve_api_key()
        arguments = self._request_arguments(params)

        def make_client() -> Any:
            from openai import AsyncOpenAI

            return AsyncOpenAI(
                api_key=api_key,
                base_url=self.base_url,
                organization=self.organization,
                timeout=self.timeout,
                max_retries=0,  # retries are ours: backoff with jitter, Retry-After, clear failures
            )

        async def close_client(client: Any) -> None:
            await client.close()

        async def call(client: Any, request: GenerationRequest) -> GenerationResult:
            return await self._call(client, request, params, arguments)

        return AsyncStream(call, self.max_concurrency, make_client, close_client)

    def _request_arguments(self, params: dict) -> dict:
        arguments: dict[str, Any] = {
            "model": self.model_name,
            "n": params["n"],
            "temperature": params["temperature"],
            "top_p": params["top_p"],
        }
        if params["max_new_tokens"] is not None:
            uses_completion_tokens = self.chat and re.match(r"^(o\d|gpt-5)", self.model_name)
            arguments["max_completion_tokens" if uses_completion_tokens else "max_tokens"] = params[
                "max_new_tokens"
            ]
        if params["stop"]:
            arguments["stop"] = params["stop"]
        if params["logit_bias"]:
            arguments["logit_bias"] = dict(params["logit_bias"])
        if params["kwargs"]:
            arguments["extra_body"] = dict(params["kwargs"])
        if params["response_format"] is not None and self.chat:
            spec = params["response_format"]
            arguments["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": _schema_name(spec["name"]), "schema": spec["schema"]},
            }
        return arguments

    async def _call(
        self, client: Any, request: GenerationRequest, params: dict, arguments: dict
    ) -> GenerationResult:
        import openai

        arguments = dict(arguments)
        if params["seed"] is not None:
            arguments["seed"] = request.seed % (2**31)
        attempt = 0
        while True:
            try:
                if self.chat:
                    messages = [{"role": "user", "content": request.text}]
                    if self.system_prompt:
                        messages.insert(0, {"role": "system", "content": self.system_prompt})
                    response = await client.chat.completions.create(messages=messages, **arguments)
                    choices = sorted(response.choices, key=lambda choice: choice.index)
                    texts = [choice.message.content for choice in choices]
                else:
                    response = await client.completions.create(prompt=request.text, **arguments)
                    choices = sorted(response.choices, key=lambda choice: choice.index)
                    texts = [choice.text for choice in choices]
                if len(texts) != params["n"] or any(text is None for text in texts):
                    raise _MalformedResponse(f"expected {params['n']} choices with text, got {texts!r}")
                usage = getattr(response, "usage", None)
                completion = [self._apply_stop(text, params["stop"]) for text in texts]
                return GenerationResult(
                    completion,
                    prompt_tokens=(usage.prompt_tokens if usage else request.prompt_tokens),
                    completion_tokens=(
                        usage.completion_tokens if usage else sum(estimate_tokens(t) for t in completion)
                    ),
                )
            except (
                openai.BadRequestError,
                openai.AuthenticationError,
                openai.PermissionDeniedError,
                openai.NotFoundError,
                openai.UnprocessableEntityError,
            ) as error:
                raise RuntimeError(self._describe_failure(error)) from None
            except (
                openai.RateLimitError,
                openai.InternalServerError,
                openai.APITimeoutError,
                openai.APIConnectionError,
                openai.APIResponseValidationError,
                openai.APIStatusError,
                _MalformedResponse,
                ValueError,  # a body that is not JSON
            ) as error:
                status = getattr(error, "status_code", None)
                retryable = status is None or status in (408, 409, 429) or status >= 500
                attempt += 1
                if not (self.retry_on_fail and retryable) or attempt > self.max_retries:
                    raise RuntimeError(
                        self._describe_failure(error)
                        + (f" (after {attempt} attempts)" if retryable and self.retry_on_fail else "")
                    ) from error
                await asyncio.sleep(self._retry_delay(error, attempt))

    def _retry_delay(self, error: Any, attempt: int) -> float:
        response = getattr(error, "response", None)
        headers = getattr(response, "headers", None) or {}
        for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
            value = headers.get(name)
            if value is None:
                continue
            try:
                return max(0.0, float(value) * scale)
            except ValueError:
                try:
                    import time

                    return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
                except (TypeError, ValueError):
                    pass
        ceiling = min(self.retry_max_delay, self.retry_initial_delay * 2 ** (attempt - 1))
        return random.uniform(ceiling / 2, ceiling)

    def _describe_failure(self, error: Any) -> str:
        where = f" at {self.base_url}" if self.base_url else ""
        status = getattr(error, "status_code", None)
        message = getattr(error, "message", None) or str(error) or type(error).__name__
        message = re.sub(r"^Error code: \d+ - ", "", message)
        code = f"HTTP {status}: " if status else f"{type(error).__name__}: "
        return f"OpenAI model {self.model_name!r}{where} failed: {code}{message}"


class _MalformedResponse(Exception):
    """A response without the expected choices."""


def _schema_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "_", name)[:64] or "response"
