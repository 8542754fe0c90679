"""API client settings as Dagster resources, where Dagster users look for secrets.

::

    defs = pipeline.definitions(
        resources={
            "openai": OpenAIResource(api_key=dg.EnvVar("OPENAI_API_KEY")),
            "anthropic": AnthropicResource(api_key=dg.EnvVar("ANTHROPIC_API_KEY")),
            "hf": HFTokenResource(token=dg.EnvVar("HF_TOKEN")),
        }
    )

The web UI then shows each key as the environment variable it comes from,
never as a value; Dagster reads it when a run starts. At run time every model
of the pipeline that a resource serves (``OpenAIResource``: ``OpenAI`` LLMs
and ``OpenAIEmbedder`` with its ``base_url``; ``AnthropicResource``:
``Anthropic``; ``BedrockResource``: ``Bedrock``; ``HFTokenResource``:
``HFAPIEndpoint``, and the token of ``publish_to_hf_hub`` exports) takes its
key and timeout; the model's identity (model name, base URL) stays in its
declaration and in the fingerprint, and none of these settings is. Without a
resource, models read their environment variable themselves, as before.

``dagster_openai.OpenAIResource`` (the ``dagster-openai`` package) works too:
its ``api_key``, ``organization``, ``project`` and ``base_url`` reach the
pipeline's OpenAI models on that ``base_url`` (the requests go through this
library's own async client, not the resource's sync one), and every step that
calls an API model reports dagster-openai's usage keys (``openai.calls``,
``openai.prompt_tokens``, ...).
"""

from __future__ import annotations

from typing import Any

import dagster as dg
from pydantic import Field

__all__ = [
    "AnthropicResource",
    "BedrockResource",
    "HFTokenResource",
    "OpenAIResource",
    "client_resource",
    "hf_token_of",
    "is_client_resource",
]


class _ClientResource(dg.ConfigurableResource):
    """What the key resources share: an API key read from ``dg.EnvVar``, checked at setup."""

    def _secret(self) -> str | None:
        return getattr(self, "api_key", None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        secret = self._secret()
        if secret is not None and not secret.strip():
            field = "token" if isinstance(self, HFTokenResource) else "api_key"
            raise dg.Failure(
                f"{type(self).__name__}: the {field} is empty. Fix: set the environment variable that "
                f"{field}=dg.EnvVar(...) names where the pipeline runs.",
                allow_retries=False,
            )

    def serves(self, model: Any) -> bool:  # pragma: no cover - every resource overrides it
        raise NotImplementedError

    def configure_model(self, model: Any) -> None:
        """Give a run-time model copy this resource's settings, if it serves it."""
        if self.serves(model):
            model.use_client_settings(api_key=self._secret(), timeout=getattr(self, "timeout", None))


class OpenAIResource(_ClientResource):
    """The key, organization and timeout of the OpenAI API (or of one OpenAI-compatible
    server, by ``base_url``) for the pipeline's OpenAI models; writes nothing."""

    api_key: str | None = Field(
        default=None,
        description="The API key; pass dg.EnvVar('OPENAI_API_KEY') so it never shows as a value.",
    )
    organization: str | None = Field(default=None, description="The OpenAI organization id.")
    timeout: float | None = Field(default=None, description="Seconds before a request times out.")
    base_url: str | None = Field(
        default=None,
        description="The models this resource serves: those with this base_url (None: OpenAI's own API). "
        "It selects models; it never changes where a model sends its requests.",
    )

    def serves(self, model: Any) -> bool:
        """Whether ``model`` is an OpenAI model on this resource's endpoint."""
        from .embedders.openai_embedder import OpenAIEmbedder
        from .llms.openai import OpenAI

        if not isinstance(model, (OpenAI, OpenAIEmbedder)):
            return False
        from .llms.urls import public_url

        return getattr(model, "base_url", None) == public_url(self.base_url)  # secrets never compared

    def configure_model(self, model: Any) -> None:
        if self.serves(model):
            model.use_client_settings(
                api_key=self.api_key, organization=self.organization, timeout=self.timeout
            )


class AnthropicResource(_ClientResource):
    """The key and timeout of Anthropic's Messages API for the pipeline's ``Anthropic`` models."""

    api_key: str | None = Field(
        default=None,
        description="The API key; pass dg.EnvVar('ANTHROPIC_API_KEY') so it never shows as a value.",
    )
    timeout: float | None = Field(default=None, description="Seconds before a request times out.")
    base_url: str | None = Field(
        default=None,
        description="The models this resource serves: those with this base_url (None: Anthropic's own "
        "API). It selects models; it never changes where a model sends its requests.",
    )

    def serves(self, model: Any) -> bool:
        """Whether ``model`` is an ``Anthropic`` model on this resource's endpoint."""
        from .llms.anthropic import Anthropic
        from .llms.urls import public_url

        return isinstance(model, Anthropic) and model.base_url == public_url(self.base_url)


class BedrockResource(_ClientResource):
    """The Bedrock API key (a bearer token, as ``AWS_BEARER_TOKEN_BEDROCK``) for the pipeline's
    ``Bedrock`` models; IAM access keys are not taken (see ``llms/bedrock.py``)."""

    api_key: str | None = Field(
        default=None,
        description="The Bedrock API key; pass dg.EnvVar('AWS_BEARER_TOKEN_BEDROCK').",
    )
    timeout: float | None = Field(default=None, description="Seconds before a request times out.")
    aws_region_name: str | None = Field(
        default=None, description="The models this resource serves: those in this region (None: every one)."
    )

    def serves(self, model: Any) -> bool:
        """Whether ``model`` is a ``Bedrock`` model (in this resource's region, if it names one)."""
        from .llms.bedrock import Bedrock

        if not isinstance(model, Bedrock):
            return False
        return self.aws_region_name is None or model.aws_region_name == self.aws_region_name


class HFTokenResource(_ClientResource):
    """The Hugging Face token for ``HFAPIEndpoint`` models and for publishing to the Hub
    (``publish_to_hf_hub`` exports) in the pipeline."""

    token: str | None = Field(
        default=None, description="The Hub token; pass dg.EnvVar('HF_TOKEN') so it never shows as a value."
    )
    timeout: float | None = Field(default=None, description="Seconds before a request times out.")

    def _secret(self) -> str | None:
        return self.token

    def serves(self, model: Any) -> bool:
        """Whether ``model`` is an ``HFAPIEndpoint`` model."""
        from .llms.hf_api_endpoint import HFAPIEndpoint

        return isinstance(model, HFAPIEndpoint)


def _is_dagster_openai(resource: Any) -> bool:
    """``dagster_openai.OpenAIResource`` (its package stays optional: never imported here)."""
    kind = type(resource)
    return kind.__name__ == "OpenAIResource" and kind.__module__.split(".")[0] == "dagster_openai"


def is_client_resource(resource: Any) -> bool:
    """A resource that gives models their run-time client settings (one of this module's,
    or ``dagster_openai.OpenAIResource``)."""
    if _is_dagster_openai(resource):
        return True
    return isinstance(resource, dg.ConfigurableResource) and callable(
        getattr(resource, "configure_model", None)
    )


def client_resource(resource: Any) -> Any:
    """The run-time form of a client resource: ``dagster_openai.OpenAIResource`` (its values
    resolved) as an :class:`OpenAIResource` of the same key, organization, project and URL."""
    if not _is_dagster_openai(resource):
        return resource
    return _DagsterOpenAISettings(
        api_key=resource.api_key,
        organization=resource.organization,
        project=resource.project,
        base_url=resource.base_url,
    )


class _DagsterOpenAISettings(OpenAIResource):
    """A ``dagster_openai.OpenAIResource``'s settings, applied as :class:`OpenAIResource`'s."""

    project: str | None = None

    def configure_model(self, model: Any) -> None:
        super().configure_model(model)
        if self.project and self.serves(model) and hasattr(model, "_client_kwargs"):
            model._client_kwargs = {**model._client_kwargs, "project": self.project}


def hf_token_of(resources: Any) -> str | None:
    """The token of the first :class:`HFTokenResource` among ``resources`` (None: none)."""
    for resource in resources:
        if isinstance(resource, HFTokenResource) and resource.token:
            return resource.token
    return None
