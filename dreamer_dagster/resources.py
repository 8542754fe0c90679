"""API client settings as Dagster resources, where Dagster users look for secrets.

::

    defs = pipeline.definitions(
        resources={"openai": OpenAIResource(api_key=dg.EnvVar("OPENAI_API_KEY"))}
    )

The web UI then shows the key as the environment variable it comes from,
never as a value. At run time every ``OpenAI`` LLM and ``OpenAIEmbedder`` of
the pipeline whose ``base_url`` matches the resource's takes its key,
organization and timeout; the model's identity (model name, base URL) stays
in its declaration and in the fingerprint, and none of these settings is.
Without the resource, models read ``OPENAI_API_KEY`` themselves, as before.
"""

from __future__ import annotations

from typing import Any

import dagster as dg
from pydantic import Field

__all__ = ["OpenAIResource"]


class OpenAIResource(dg.ConfigurableResource):
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

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        if self.api_key is not None and not self.api_key.strip():
            raise dg.Failure(
                "OpenAIResource: the API key is empty. Fix: set the environment variable that "
                "api_key=dg.EnvVar(...) names where the pipeline runs.",
                allow_retries=False,
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
        """Give a run-time model copy this resource's settings, if it serves it."""
        if self.serves(model):
            model.use_client_settings(
                api_key=self.api_key, organization=self.organization, timeout=self.timeout
            )
