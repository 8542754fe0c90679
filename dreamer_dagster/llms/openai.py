"""OpenAI and any OpenAI-compatible server (vLLM, Ollama, llama.cpp...) by ``base_url``."""

from __future__ import annotations

import os
import re
from typing import Any, ClassVar

from ..errors import NonRetryableError
from ..fingerprint import canonical
from ..model import ClientSettings
from ..pools import endpoint_pool
from ..step_like import is_step
from .api_retry import MalformedResponse, RetryPolicy, call_with_retries, malformed_body_errors
from .async_stream import AsyncStream
from .generation_result import GenerationResult
from .llm import LLM
from .openai_card import OpenAIInfo
from .openai_http import APIConnectionError, APIStatusError, OpenAIHTTPClient
from .pricing import Price, price_of
from .request import GenerationRequest
from .token_estimate import estimate_tokens
from .urls import Endpoint, sdk_client_options, secrets_of, sending_endpoint, split_url

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


class OpenAI(OpenAIInfo, ClientSettings, LLM):
    """A model behind the OpenAI API (or Azure OpenAI, or any OpenAI-compatible server), chat or completion.

    Arguments in DataDreamer's order: ``OpenAI(model_name, system_prompt,
    organization, api_key, base_url, api_version, retry_on_fail,
    cache_folder_path, **kwargs)``; ``api_version`` selects Azure OpenAI
    (``azure_endpoint=`` among the kwargs, or ``base_url``), and the other
    ``kwargs`` go to the client (``default_headers``, ``project``...).
    ``model_name`` may be a :class:`~dreamer_dagster.trainers.TrainOpenAIFineTune`
    trainer: the fine-tuned model it made (and the dependency edge).

    Requests run on an event loop with at most ``max_concurrency`` in flight and
    no batch barrier; results are still returned in input order. Within
    ``max_concurrency`` the number in flight adapts (``adaptive_concurrency``,
    see :mod:`~dreamer_dagster.llms.adaptive_concurrency`): it drops on 429s,
    503s, timeouts and answers slowing toward half the ``timeout``, and grows
    back while answers are healthy. They go as plain JSON through a lean aiohttp
    client (:mod:`~dreamer_dagster.llms.openai_http`), or through the SDK for Azure
    and for client kwargs other than ``default_headers`` and ``project``. Retries follow
    :mod:`~dreamer_dagster.llms.api_retry`: 429 (honouring ``Retry-After``), 5xx,
    timeouts, dropped connections and malformed bodies are retried with
    exponential backoff and jitter, each one counted (``stats["retries"]``);
    any other 4xx fails at once as a
    :class:`~dreamer_dagster.errors.RequestRejectedError` naming the model, the
    URL, the status and the provider's message. The API key is read from
    ``OPENAI_API_KEY`` when a run starts (or taken from ``api_key``) and is
    never part of the identity, a fingerprint, step.json or the cache; nor is
    a credential in ``base_url`` (sent, never shown: :mod:`~dreamer_dagster.llms.urls`).
    Before a run's first answer, an endpoint that cannot be reached fails at once. Tokens
    and cost come from the server's ``usage`` (reasoning and cached tokens
    apart) where given, else from an offline estimate (see ``token_estimate``);
    only OpenAI's own models (no ``base_url``) have a price. ``max_concurrency``,
    ``timeout``, the retry settings and the client kwargs change how results are
    fetched, not what they are, so they are not part of the identity. With
    ``batch=True`` a step's uncached prompts go through the Batch API (half the
    price, answers within a day; see :mod:`~dreamer_dagster.llms.openai_batch`).
    Writes generations to the model cache.
    """

    #: The provider's name in messages, its key's environment variable and default base URL.
    PROVIDER: ClassVar[str] = "OpenAI"
    API_KEY_ENV: ClassVar[str] = "OPENAI_API_KEY"
    #: Read when ``API_KEY_ENV`` is unset (names a provider's SDKs also read).
    API_KEY_ENV_FALLBACKS: ClassVar[tuple[str, ...]] = ()
    DEFAULT_BASE_URL: ClassVar[str | None] = None
    #: The system prompt a chat model gets when none is given (DataDreamer's, for OpenAI).
    DEFAULT_SYSTEM_PROMPT: ClassVar[str | None] = DEFAULT_SYSTEM_PROMPT
    #: The URL as given (secrets included), set by ``__init__``; never shown.
    _endpoint: Endpoint | None = None

    def __init__(
        self,
        model_name: Any,
        system_prompt: str | None = None,
        organization: str | None = None,
        api_key: str | None = None,
        base_url: str | None = None,
        api_version: str | None = None,
        retry_on_fail: bool = True,
        cache_folder_path: str | None = None,
        *,
        max_concurrency: int = 16,
        timeout: float = 120.0,
        chat: bool | None = None,
        max_context_length: int | None = None,
        max_retries: int = 8,
        retry_initial_delay: float = 0.5,
        retry_max_delay: float = 30.0,
        batch: bool = False,
        batch_poll_interval: float = 30.0,
        adaptive_concurrency: bool = True,
        **kwargs: Any,
    ):
        if base_url is not None and not isinstance(base_url, str):
            raise TypeError(f"{type(self).__name__}: base_url must be a URL string, got {base_url!r}.")
        if system_prompt is not None and not isinstance(system_prompt, str):
            raise TypeError(
                f"{type(self).__name__}: system_prompt (the 2nd positional argument, as in DataDreamer) "
                f"must be a string, got {type(system_prompt).__name__}."
            )
        name = _declared_model_name(model_name)
        is_chat = chat if chat is not None else not _COMPLETION_MODELS.match(name)
        trainer_prompt = _trainer_system_prompt(model_name)
        if is_chat and system_prompt is None:
            system_prompt = trainer_prompt if trainer_prompt is not None else self.DEFAULT_SYSTEM_PROMPT
        super().__init__(model_name, system_prompt=system_prompt)
        base_url = base_url or _trainer_base_url(model_name) or self.DEFAULT_BASE_URL
        self._endpoint = split_url(base_url) if base_url else None
        self.base_url = self._endpoint.public if self._endpoint else None
        self.organization = organization
        self.api_version = api_version
        self.retry_on_fail = retry_on_fail
        self.cache_folder_path = cache_folder_path
        self.max_concurrency = int(max_concurrency)
        self.timeout = timeout
        self.chat = is_chat
        self.max_context_length = max_context_length
        self.max_retries = max_retries
        self.retry_initial_delay = retry_initial_delay
        self.retry_max_delay = retry_max_delay
        self.batch = bool(batch)
        self.batch_poll_interval = float(batch_poll_interval)
        self.adaptive_concurrency = bool(adaptive_concurrency)
        self._api_key = api_key
        self._client_kwargs = dict(kwargs)
        if self.max_concurrency < 1:
            raise ValueError(f"max_concurrency must be >= 1 (got {max_concurrency}).")
        if self.batch and type(self).DEFAULT_BASE_URL is not None:
            raise ValueError(f"{type(self).__name__}: batch=True is OpenAI's Batch API; use OpenAI(...).")

    def identity(self) -> dict:
        identity = {
            "model_name": canonical(self.model_name),
            "base_url": self.base_url,
            "chat": self.chat,
            "system_prompt": self.system_prompt if self.chat else None,
        }
        if self.api_version is not None:
            identity["api_version"] = self.api_version
        for name in ("azure_endpoint", "azure_deployment"):
            if self._client_kwargs.get(name):
                identity[name] = self._client_kwargs[name]
        return identity

    def dependencies(self) -> list:
        from ..deferred import upstream_steps

        return upstream_steps(self.model_name)

    def resolve_deferred(self, context: Any) -> OpenAI:
        resolved = super().resolve_deferred(context)
        if _is_trainer(self.model_name):
            # A fine-tuning trainer resolves to its _model folder, which names the model.
            resolved.model_name = _fine_tuned_model_name(resolved.model_name)
        return resolved

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model_name={self.model_name!r}, base_url={self.base_url!r})"

    def default_pool(self) -> str:
        """One Dagster pool per endpoint: ``openai_api_openai_com``, ``openai_127_0_0_1_8000``,
        ``together_api_together_xyz``..."""
        return endpoint_pool(self.PROVIDER, self.base_url, "api.openai.com")

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
        if self.base_url is not None or not isinstance(self.model_name, str):
            return None
        for prefix, length in _CONTEXT_LENGTHS:
            if self.model_name.startswith(prefix):
                return length
        return None

    def known_context_length(self) -> int | None:
        return self._context_length()

    def price(self) -> Price | None:
        if self.base_url is not None or not isinstance(self.model_name, str):
            return None
        price = price_of(self.model_name)
        return price.scaled(0.5) if price is not None and self.batch else price  # the Batch API: half

    def _lookahead(self, batch_size: int) -> int:
        if self.batch:
            return BATCH_LOOKAHEAD  # one batch job holds as many prompts as it can
        return max(8 * max(batch_size, 64), 8 * self.max_concurrency)

    def _prompts_for_response_format(self) -> bool:
        return not self.chat

    # -- requests ---------------------------------------------------------------------

    def _label(self) -> str:
        where = f" at {self.base_url}" if self.base_url and self.base_url != self.DEFAULT_BASE_URL else ""
        return f"{self.PROVIDER} model {self.model_name!r}{where}"

    def _resolve_api_key(self) -> str:
        key = self._api_key
        for name in (self.API_KEY_ENV, *self.API_KEY_ENV_FALLBACKS):
            key = key or os.environ.get(name)
        if key:
            return key
        if self.base_url is not None and self.DEFAULT_BASE_URL is None:
            return "no-key"  # local OpenAI-compatible servers rarely check it
        raise NonRetryableError(
            f"{self._label()}: no API key. Fix: set the {self.API_KEY_ENV} environment variable "
            "where the pipeline runs (or pass api_key=...)."
        )

    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(
            self.retry_on_fail, self.max_retries, self.retry_initial_delay, self.retry_max_delay
        )

    #: Client kwargs the lean request path (:mod:`~dreamer_dagster.llms.openai_http`) sends as
    #: headers; any other kwarg, Azure (``api_version``) or ``batch=True`` takes the SDK.
    LEAN_CLIENT_KWARGS: ClassVar[frozenset[str]] = frozenset({"default_headers", "project"})

    def uses_lean_client(self) -> bool:
        """Whether requests go through the lean JSON client rather than the SDK."""
        return (
            self.api_version is None
            and not self.batch
            and set(self._client_kwargs) <= self.LEAN_CLIENT_KWARGS
        )

    def make_client(self, api_key: str, sync: bool = False) -> Any:
        """The async client for generation requests (the lean JSON client where it serves, else the
        SDK's), or the SDK's sync client (``sync``); the SDK's own retries off."""
        endpoint = sending_endpoint(self.base_url, self._endpoint)
        if not sync and self.uses_lean_client():
            from .openai_http import OpenAIHTTPClient

            return OpenAIHTTPClient(
                endpoint.url if endpoint else None,
                api_key,
                organization=self.organization,
                project=self._client_kwargs.get("project"),
                default_headers=self._client_kwargs.get("default_headers"),
                timeout=self.timeout,
                max_connections=self.max_concurrency,
            )
        import openai

        options: dict[str, Any] = {
            "api_key": api_key,
            "organization": self.organization,
            "timeout": self.timeout,
            "max_retries": 0,  # retries are ours: api_retry's one rule
            **self._client_kwargs,
        }
        if self.api_version is not None:
            if endpoint is not None and "azure_endpoint" not in options:
                options = sdk_client_options(endpoint, options)
            cls = openai.AzureOpenAI if sync else openai.AsyncAzureOpenAI
            return cls(api_version=self.api_version, **options)
        cls = openai.OpenAI if sync else openai.AsyncOpenAI
        return cls(**sdk_client_options(endpoint, {"base_url": None, **options}))

    def _open_stream(self, params: dict, batch_size: int) -> Any:
        if params["repetition_penalty"] is not None:
            raise ValueError(
                f"{self._label()} has no repetition_penalty. "
                "Fix: pass frequency_penalty= or presence_penalty= instead."
            )
        api_key = self._resolve_api_key()
        arguments = self._request_arguments(params)
        if self.batch:
            from .openai_batch import BatchAPIStream

            # The job's own calls (upload, create, poll) are retried by the SDK.
            client = self.make_client(api_key, sync=True).with_options(
                max_retries=self.max_retries if self.retry_on_fail else 0
            )
            return BatchAPIStream(self, client, params, arguments)

        async def close_client(client: Any) -> None:
            await client.close()

        async def call(client: Any, request: GenerationRequest) -> GenerationResult:
            return await self._call(client, request, params, arguments)

        return AsyncStream(
            call,
            self.max_concurrency,
            lambda: self.make_client(api_key),
            close_client,
            adaptive=self.adaptive_concurrency,
            # Back off well before answers reach the timeout: a timed-out answer is paid, then lost.
            latency_ceiling=self.timeout / 2 if isinstance(self.timeout, (int, float)) else None,
        )

    def _request_arguments(self, params: dict) -> dict:
        arguments: dict[str, Any] = {
            "model": self.model_name,
            "n": params["n"],
            "temperature": params["temperature"],
            "top_p": params["top_p"],
        }
        if params["max_new_tokens"] is not None:
            uses_completion_tokens = self.chat and re.match(r"^(o\d|gpt-5)", str(self.model_name))
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

    def request_body(self, request: GenerationRequest, params: dict, arguments: dict) -> dict:
        """The JSON body of one request: the arguments, the seed and the prompt or messages."""
        body = dict(arguments)
        extra = body.pop("extra_body", None) or {}
        if params["seed"] is not None:
            body["seed"] = params["seed"]  # as given (DataDreamer's): never a per-prompt derivation
        if self.chat:
            messages = [{"role": "user", "content": request.text}]
            if self.system_prompt:
                messages.insert(0, {"role": "system", "content": self.system_prompt})
            body["messages"] = messages
        else:
            body["prompt"] = request.text
        body.update(extra)
        return body

    def parse_response(self, response: Any, request: GenerationRequest, params: dict) -> GenerationResult:
        """A response (an SDK object or its JSON dict) as a result; MalformedResponse if it is not one."""
        data = response if isinstance(response, dict) else response.model_dump()
        choices = sorted(data.get("choices") or [], key=lambda choice: choice.get("index", 0))
        if self.chat:
            texts = [(choice.get("message") or {}).get("content") for choice in choices]
        else:
            texts = [choice.get("text") for choice in choices]
        # A refusal (``message.refusal``, or a content filter) is an answer: None, cached as such.
        refused = [text is None and _refused(choice) for text, choice in zip(texts, choices)]
        if len(texts) != params["n"] or any(t is None and not r for t, r in zip(texts, refused)):
            raise MalformedResponse(f"expected {params['n']} choices with text, got {texts!r}")
        completion = [None if text is None else self._apply_stop(text, params["stop"]) for text in texts]
        usage = data.get("usage")
        if not usage:
            return GenerationResult(
                completion,
                prompt_tokens=request.prompt_tokens,
                completion_tokens=sum(estimate_tokens(t) for t in completion if t is not None),
                usage_reported=False,
            )
        return GenerationResult(
            completion,
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
            reasoning_tokens=int((usage.get("completion_tokens_details") or {}).get("reasoning_tokens") or 0),
            cached_prompt_tokens=int((usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0),
            usage_reported=True,
        )

    async def _call(
        self, client: Any, request: GenerationRequest, params: dict, arguments: dict
    ) -> GenerationResult:
        body = self.request_body(request, params, arguments)
        if isinstance(client, OpenAIHTTPClient):
            path = "/chat/completions" if self.chat else "/completions"
            api_errors: tuple[type[BaseException], ...] = (APIStatusError, APIConnectionError)

            async def attempt() -> GenerationResult:
                return self.parse_response(await client.post(path, body), request, params)

        else:
            import openai

            api_errors = (openai.APIError,)

            async def attempt() -> GenerationResult:
                if self.chat:
                    response = await client.chat.completions.create(**body)
                else:
                    response = await client.completions.create(**body)
                return self.parse_response(response, request, params)

        return await call_with_retries(
            attempt,
            self.retry_policy(),
            self._label(),
            (*api_errors, MalformedResponse, *malformed_body_errors()),
            # What no message may show: the client's key and the secrets of the URL it calls.
            secrets=secrets_of(client.api_key, sending_endpoint(self.base_url, self._endpoint)),
            url=self.base_url or "https://api.openai.com/v1",
        )


#: Prompts a batch-mode run hands the Batch API at once (OpenAI takes up to 50,000 a job).
BATCH_LOOKAHEAD = 50_000


def _schema_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "_", name)[:64] or "response"


def _is_trainer(value: Any) -> bool:
    return is_step(value)


def _declared_model_name(model_name: Any) -> str:
    """The model's name while declaring: a trainer's base model stands for the model it makes."""
    if isinstance(model_name, str):
        return model_name
    if _is_trainer(model_name):
        if type(model_name).__name__ != "TrainOpenAIFineTune":
            raise TypeError(
                f"OpenAI(trainer) takes a TrainOpenAIFineTune trainer, not {type(model_name).__name__}. "
                "Fix: load an HF trainer's model with HFTransformers(trainer)."
            )
        return str(model_name._model_args.get("model_name"))
    raise TypeError(f"OpenAI: model_name must be a model name or a TrainOpenAIFineTune, got {model_name!r}.")


def _trainer_system_prompt(model_name: Any) -> str | None:
    return model_name._model_args.get("system_prompt") if _is_trainer(model_name) else None


def _trainer_base_url(model_name: Any) -> str | None:
    """The trainer's base_url as given (a credential in it included: it is sent, not shown)."""
    if not _is_trainer(model_name):
        return None
    endpoint = getattr(model_name, "_endpoint", None)
    return endpoint.url if endpoint is not None else model_name._model_args.get("base_url")


def _fine_tuned_model_name(model_dir: Any) -> str:
    import json
    from pathlib import Path

    path = Path(str(model_dir)) / "trained_model_name.json"
    if not path.is_file():
        raise FileNotFoundError(f"{model_dir} holds no trained_model_name.json: it is no OpenAI fine-tune.")
    return str(json.loads(path.read_text()))


def _refused(choice: dict) -> bool:
    """Whether a choice without text is the model refusing (not a malformed response)."""
    message = choice.get("message") or {}
    return bool(message.get("refusal")) or choice.get("finish_reason") == "content_filter"
