"""OpenAIEmbedder: embeddings from OpenAI's API or any OpenAI-compatible server, cached."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar

from ..errors import NonRetryableError
from ..llms.generation_result import GenerationResult
from ..llms.openai_card import OpenAIEmbedderInfo
from ..llms.urls import Endpoint, sdk_client_options, secrets_of, sending_endpoint, split_url
from ..model import ClientSettings
from ..pools import endpoint_pool
from ..task_models.task_model import DEFAULT_BATCH_SIZE
from .embedder import Embedder

__all__ = ["OpenAIEmbedder"]


@dataclass
class EmbeddingResult(GenerationResult):
    """What one embeddings request returned: a vector a text, and the tokens it cost."""

    vectors: Any = None


class OpenAIEmbedder(OpenAIEmbedderInfo, ClientSettings, Embedder):
    """Embeds texts with the OpenAI embeddings API (``/v1/embeddings``).

    ``base_url`` points it at any OpenAI-compatible server (vLLM, Ollama, a
    proxy). The API key is ``api_key`` or, at run time, ``OPENAI_API_KEY``; it is
    never part of the identity, fingerprints, ``step.json`` or the cache; nor is a
    credential inside ``base_url`` (sent, never shown: see
    :mod:`~dreamer_dagster.llms.urls`), and messages are scrubbed of both.
    DataDreamer's order: ``(model_name, dimensions, organization, api_key,
    base_url, api_version, retry_on_fail, cache_folder_path, **kwargs)``.

    One request embeds one batch; the batches of a run are sent concurrently,
    at most ``max_concurrency`` at a time with no batch barrier, by the same
    machinery and rules as ``OpenAI`` (an
    :class:`~dreamer_dagster.llms.async_stream.AsyncStream` and
    :mod:`~dreamer_dagster.llms.api_retry`): 429s (honouring ``Retry-After``),
    5xx, timeouts, lost connections and malformed bodies are retried with
    exponential backoff and jitter up to ``max_retries`` times (none with
    ``retry_on_fail=False``; each counted by cause, ``dreamer/retries_<cause>``,
    under the stream's adaptive in-flight limit); any other 4xx fails at once,
    naming the model, and no queued batch is sent after it. ``truncate`` is left to the server
    (counting OpenAI tokens needs tables fetched from the internet), which
    refuses over-long texts. Writes the model cache
    ``<output>/.cache/OpenAIEmbedder-<name>-<hash>.db``.
    """

    #: The key's environment variable and the default base URL (a provider's subclass sets its own).
    API_KEY_ENV: ClassVar[str] = "OPENAI_API_KEY"
    DEFAULT_BASE_URL: ClassVar[str | None] = None
    KINDS = ("openai",)
    _endpoint: Endpoint | None = None

    def __init__(
        self,
        model_name: str,
        dimensions: int | None = None,
        organization: str | None = None,
        api_key: str | None = None,
        base_url: str | None = None,
        api_version: str | None = None,
        retry_on_fail: bool = False,  # DataDreamer's default for OpenAIEmbedder (Together's: True)
        cache_folder_path: str | None = None,
        *,
        max_retries: int = 8,
        timeout: float | None = 120.0,
        max_concurrency: int = 16,
        retry_initial_delay: float = 0.5,
        retry_max_delay: float = 30.0,
        **kwargs: Any,
    ):
        if not isinstance(model_name, str) or not model_name:
            raise ValueError(f"OpenAIEmbedder: model_name must be a non-empty string, got {model_name!r}.")
        if dimensions is not None and (not isinstance(dimensions, int) or dimensions < 1):
            raise ValueError(f"OpenAIEmbedder: dimensions must be a positive int, got {dimensions!r}.")
        if not isinstance(max_concurrency, int) or max_concurrency < 1:
            raise ValueError(f"OpenAIEmbedder: max_concurrency must be >= 1, got {max_concurrency!r}.")
        self.model_name = model_name
        self.dimensions = dimensions
        self.organization = organization
        base_url = base_url or self.DEFAULT_BASE_URL
        self._endpoint = split_url(base_url) if base_url else None  # secrets included, never shown
        self.base_url = self._endpoint.public if self._endpoint else None
        self.api_version = api_version
        self.retry_on_fail = retry_on_fail
        self.cache_folder_path = cache_folder_path
        self.max_retries = max_retries if retry_on_fail else 0
        self.timeout = timeout
        self.max_concurrency = max_concurrency
        self.retry_initial_delay = retry_initial_delay
        self.retry_max_delay = retry_max_delay
        self.kwargs = kwargs
        self._api_key = api_key

    def run(  # type: ignore[override]
        self,
        texts: Iterable[str],
        truncate: bool = False,
        batch_size: int = DEFAULT_BATCH_SIZE,
        batch_scheduler_buffer_size: int | None = None,
        adaptive_batch_size: bool = False,
        progress_interval: int | None = 60,
        force: bool = False,
        cache_only: bool = False,
        verbose: bool | None = None,
        log_level: int | None = None,
        total_num_texts: int | None = None,
        return_generator: bool = False,
        *,
        instruction: str | None = None,
        **kwargs: Any,
    ) -> Iterator[Any] | list[Any]:
        """DataDreamer's ``OpenAIEmbedder.run`` order (no ``instruction`` slot: here keyword-only)."""
        return super().run(
            texts,
            truncate,
            instruction,
            batch_size,
            batch_scheduler_buffer_size,
            adaptive_batch_size,
            progress_interval,
            force,
            cache_only,
            verbose,
            log_level,
            total_num_texts,
            return_generator,
            **kwargs,
        )

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

    def _label(self) -> str:
        where = f" at {self.base_url}" if self.base_url and self.base_url != self.DEFAULT_BASE_URL else ""
        return f"{type(self).__name__} {self.model_name!r}{where}"

    def _resolve_api_key(self) -> str:
        api_key = self._api_key or os.environ.get(self.API_KEY_ENV)
        if api_key:
            return api_key
        if self.base_url is None or self.DEFAULT_BASE_URL is not None:
            raise NonRetryableError(
                f"{type(self).__name__} needs an API key. Fix: set the {self.API_KEY_ENV} environment "
                "variable where the pipeline runs (or pass api_key=...)."
            )
        return "no-key"  # an OpenAI-compatible server that wants none

    def make_client(self, api_key: str) -> Any:
        """The async SDK client, with the SDK's own retries off (``api_retry`` is the rule)."""
        import openai

        options: dict[str, Any] = {
            "api_key": api_key,
            "base_url": None,
            "organization": self.organization,
            "max_retries": 0,
            "timeout": self.timeout,
        }
        options = sdk_client_options(sending_endpoint(self.base_url, self._endpoint), options)
        if self.api_version is not None:
            return openai.AsyncAzureOpenAI(api_version=self.api_version, **options)
        return openai.AsyncOpenAI(**options)

    @property
    def dims(self) -> int:
        if self.dimensions is not None:
            return self.dimensions
        return 3072 if "-large" in self.model_name else 1536

    @property
    def model_max_length(self) -> int:
        return 8191

    def count_tokens(self, value: str) -> int:
        """The text's tokens, estimated offline as ``OpenAI.count_tokens`` does (DataDreamer
        counts with tiktoken, which is not a dependency here)."""
        from ..llms.token_estimate import estimate_tokens

        return estimate_tokens(value)

    def embed_batch(self, texts: list[str], truncate: bool, **kwargs: Any) -> Any:
        with self.batch_session(truncate, **kwargs) as embed:
            [(_, vectors)] = list(embed([texts]))
        return vectors

    def batch_session(self, truncate: bool, **kwargs: Any) -> Any:
        """Batches sent concurrently through one ``AsyncStream`` (an event loop and a client
        kept for the whole run, opened on the first miss: a fully cached run needs no key)."""
        import openai

        from ..llms.api_retry import MalformedResponse, RetryPolicy, call_with_retries, malformed_body_errors
        from ..llms.async_stream import AsyncStream
        from ..llms.request import GenerationRequest

        options = {**self.kwargs, **kwargs}
        if self.dimensions is not None:
            options["dimensions"] = self.dimensions
        policy = RetryPolicy(
            self.retry_on_fail, self.max_retries, self.retry_initial_delay, self.retry_max_delay
        )
        label = self._label()
        stats = self.stats
        secrets: list[str] = []  # the key and the URL's secrets, once the session opens

        async def call(client: Any, request: GenerationRequest) -> EmbeddingResult:
            texts = request.extra["texts"]

            async def attempt() -> EmbeddingResult:
                response = await client.embeddings.create(model=self.model_name, input=texts, **options)
                data = sorted(response.data, key=lambda item: item.index)
                if len(data) != len(texts):
                    raise MalformedResponse(f"{len(data)} embeddings for {len(texts)} texts")
                usage = getattr(response, "usage", None)
                tokens = int(getattr(usage, "prompt_tokens", 0) or 0) if usage is not None else 0
                return EmbeddingResult([], prompt_tokens=tokens, vectors=[item.embedding for item in data])

            errors = (openai.APIError, MalformedResponse, *malformed_body_errors())
            return await call_with_retries(
                attempt,
                policy,
                label,
                errors,
                secrets=secrets,
                url=self.base_url or "https://api.openai.com/v1",
            )

        async def close_client(client: Any) -> None:
            await client.close()

        def take_retries(stream: AsyncStream) -> None:
            # Counted by cause as an LLM counts them (``retries``, ``retries_<cause>``).
            counts, _, _ = stream.take_events()
            if stats is not None:
                stats.update(counts)

        @contextmanager
        def session() -> Iterator[Callable[[list[list[str]]], Iterator[tuple[int, Any]]]]:
            opened: list[AsyncStream] = []

            def embed(batches: list[list[str]]) -> Iterator[tuple[int, Any]]:
                if not opened:
                    api_key = self._resolve_api_key()
                    secrets[:] = secrets_of(api_key, sending_endpoint(self.base_url, self._endpoint))
                    opened.append(
                        AsyncStream(
                            call, self.max_concurrency, lambda: self.make_client(api_key), close_client
                        )
                    )
                stream = opened[0]
                stream.submit(
                    [
                        GenerationRequest(number, "", "", 0, extra={"texts": batch})
                        for number, batch in enumerate(batches)
                    ]
                )
                while stream.pending:
                    done = stream.poll(block=True)
                    take_retries(stream)
                    for request, result in done:
                        if stats is not None:
                            stats["prompt_tokens"] += result.prompt_tokens
                        yield request.index, result.vectors

            try:
                yield embed
            finally:
                if opened:
                    take_retries(opened[0])
                    opened[0].close()

        return session()

    def lookup_window(self, batch_size: int) -> int:
        # Enough batches a window to keep max_concurrency requests in flight.
        return max(super().lookup_window(batch_size), 2 * batch_size * self.max_concurrency)

    def unload_model(self) -> None:
        """Nothing stays loaded: each run opens (and closes) its own client."""
