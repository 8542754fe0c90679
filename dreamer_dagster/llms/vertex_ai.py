"""Google Cloud Vertex AI (its OpenAI-compatible endpoint, with an access token)."""

from __future__ import annotations

import os
from typing import Any

from ..citations import GEMINI_CITATION
from ..errors import NonRetryableError
from .openai_compatible import OpenAICompatible

__all__ = ["VertexAI"]


class VertexAI(OpenAICompatible):
    """A model on `Vertex AI <https://cloud.google.com/vertex-ai>`_ through its OpenAI-compatible
    endpoint ``https://<location>-aiplatform.googleapis.com/v1/projects/<project>/locations/<location>/endpoints/openapi``.

    ``VertexAI(model_name, vertex_project, vertex_location, retry_on_fail,
    cache_folder_path, **kwargs)`` as in DataDreamer; the project is
    ``vertex_project`` or ``GOOGLE_CLOUD_PROJECT``, the location
    ``vertex_location`` or ``GOOGLE_CLOUD_LOCATION`` (``us-central1``). Vertex
    takes a Google access token, not a key: ``api_key=`` (e.g. ``gcloud auth
    print-access-token``), else the application default credentials through
    ``google-auth`` when a step runs. Model names are Vertex's
    (``google/gemini-2.0-flash-001``). Writes generations to the model cache.
    """

    PROVIDER = "VertexAI"
    #: Read by google-auth's application default credentials (a service account's key file).
    API_KEY_ENV = "GOOGLE_APPLICATION_CREDENTIALS"
    DEFAULT_BASE_URL = "https://{location}-aiplatform.googleapis.com/v1/projects/{project}/locations/{location}/endpoints/openapi"
    MODEL_CARD = "https://arxiv.org/abs/2312.11805"
    LICENSE = "https://ai.google.dev/gemini-api/terms"
    CITATIONS = (GEMINI_CITATION,)

    def __init__(
        self,
        model_name: str,
        vertex_project: str | None = None,
        vertex_location: str | None = None,
        retry_on_fail: bool = True,
        cache_folder_path: str | None = None,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        **kwargs: Any,
    ):
        project = vertex_project or os.environ.get("GOOGLE_CLOUD_PROJECT")
        location = vertex_location or os.environ.get("GOOGLE_CLOUD_LOCATION") or "us-central1"
        if base_url is None and not project:
            raise ValueError(
                "VertexAI: no Google Cloud project. Fix: pass vertex_project=... or set GOOGLE_CLOUD_PROJECT."
            )
        self.vertex_project = project
        self.vertex_location = location
        super().__init__(
            model_name,
            api_key,
            retry_on_fail,
            cache_folder_path,
            base_url=base_url or self.DEFAULT_BASE_URL.format(project=project, location=location),
            **kwargs,
        )

    def _resolve_api_key(self) -> str:
        if self._api_key:
            return self._api_key
        try:
            import google.auth
            import google.auth.transport.requests
        except ImportError:
            raise NonRetryableError(
                f"{self._label()}: no access token. Fix: pip install google-auth and run "
                "`gcloud auth application-default login`, or pass api_key=<gcloud auth print-access-token>."
            ) from None
        credentials, _ = google.auth.default(scopes=["https://www.googleapis.com/auth/cloud-platform"])
        credentials.refresh(google.auth.transport.requests.Request())
        return credentials.token
